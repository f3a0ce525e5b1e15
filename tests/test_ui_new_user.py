"""What a new user hit (issue 14, item 7): the demo's query must not replace a new library's first run,
results refresh when indexing adds media, Settings describes presets and names the open library."""

from __future__ import annotations

from tests.ui_helpers import open_window, write_photos


def test_the_demo_query_does_not_replace_a_new_librarys_first_run(qtbot, ui_settings, tmp_path, tiny_bundle):
    ui_settings.last_query = "a red circle"  # typed in the demo's library, then the app was closed
    ui_settings.last_query_library = str(tmp_path / "demo" / "library")
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    assert window.search_bar.field.text() == ""
    qtbot.waitUntil(lambda: window.sidebar is not None and window._has_roots is not None, timeout=30_000)
    assert window.pages.currentWidget() is window.welcome
    assert window.welcome.heading.text() == "Welcome to FastSlow" and not window.welcome.add_button.isHidden()
    # Even a query typed before any folder is added keeps the first run (and its Add button) on screen.
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        window.run_query("a dog")
    assert window.welcome.heading.text() == "Welcome to FastSlow" and not window.welcome.add_button.isHidden()


def test_results_refresh_when_indexing_adds_media(qtbot, ui_settings, tmp_path, tiny_bundle):
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    controller = window.controller
    with qtbot.waitSignal(controller.index_finished, timeout=60_000):
        window.add_folders([str(write_photos(tmp_path / "first", 3))])
    window.search_bar.field.setText("a green circle")
    with qtbot.waitSignal(controller.stage1, timeout=30_000):
        window.run_query("a green circle")
    assert window.results_model.rowCount() == 3
    with qtbot.waitSignal(controller.stage1, timeout=90_000) as again:  # no retyping
        window.add_folders([str(write_photos(tmp_path / "second", 4, seed=5))])
    assert again.args[0].request.text == "a green circle"
    qtbot.waitUntil(lambda: window.results_model.rowCount() == 7, timeout=30_000)


def test_settings_describes_the_presets_and_names_the_open_library(qapp, ui_settings, tmp_path):
    from fastslow_desktop.ui.dialogs.settings import SettingsDialog

    ui_settings.models = "balanced"
    dialog = SettingsDialog(ui_settings, current_library=tmp_path / "Elsewhere")
    names = [dialog.preset.itemText(i) for i in range(dialog.preset.count())]
    assert names[:1] == ["balanced"] and {"fast", "multilingual", "accurate", "synthscenes"} <= set(names)
    assert names.index("clip-vit-b-32") == len(names) - 1  # legacy last
    assert "photos" in dialog.preset_about.text()
    dialog.preset.setCurrentText("multilingual")
    assert "languages" in dialog.preset_about.text()
    assert str(tmp_path / "Elsewhere") in dialog.library_now.text()
    assert dialog.library.placeholderText().startswith("default: ")
