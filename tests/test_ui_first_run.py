"""First run: the welcome asks for folders; models that are not on disk lead to a download dialog, and
offline to a message that says how to use a local bundle or the demo."""

from __future__ import annotations

from tests.ui_helpers import open_window


def test_hub_models_offline_offer_a_download_then_explain_how_to_work_offline(qtbot, ui_settings, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing cached: the preset must download
    window = open_window(qtbot, ui_settings, tmp_path / "library", "clip-vit-b-32", wait_ready=False)
    controller = window.controller
    qtbot.waitUntil(lambda: window._download_dialog is not None and window._download_dialog.isVisible(),
                    timeout=60_000)
    dialog = window._download_dialog
    assert "laion" in dialog.text.text().lower() or "/" in dialog.text.text()  # names what it will fetch
    with qtbot.waitSignal(controller.failed, timeout=30_000) as failed:
        dialog.download_button.click()
    message, offline = failed.args
    assert offline
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert not window.banner.isHidden()
    text = window.banner.label.text()
    assert "--models PATH" in text and "fastslow demo" in text
    assert window.status.models.text() == "Models unavailable"
    assert window.pages.currentWidget() is window.welcome  # still usable: folders can be added meanwhile


def test_a_missing_bundle_folder_is_reported_in_the_window(qtbot, ui_settings, tmp_path):
    window = open_window(qtbot, ui_settings, tmp_path / "library", tmp_path / "no-such-bundle", wait_ready=False)
    with qtbot.waitSignal(window.controller.failed, timeout=60_000) as failed:
        pass
    assert not failed.args[1]
    assert "No model bundle at" in window.banner.label.text()
    assert window.banner.button.text() == "Settings…"


def test_queries_typed_before_the_models_are_ready_run_once_they_are(qtbot, ui_settings, tmp_path, tiny_bundle):
    from tests.ui_helpers import write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(write_photos(tmp_path / "photos", 6))
        library.index()
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle, wait_ready=False)
    assert not window.controller.is_ready
    with qtbot.waitSignal(window.controller.stage1, timeout=60_000) as stage1:
        window.run_query("a large green star")  # queued: the models are still loading
        window.run_query("two small yellow triangles")  # replaces the queued one
    assert stage1.args[0].request.text == "two small yellow triangles"
    assert window.results_model.rowCount() == 6


def test_watching_indexes_a_new_photo_through_the_same_worker(qtbot, ui_settings, tmp_path, tiny_bundle):
    from tests.ui_helpers import write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = write_photos(tmp_path / "photos", 3)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        library.index()
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle, watching=True)
    qtbot.waitUntil(lambda: window.controller.library.watching, timeout=10_000)
    # generous: on a loaded 2-core CI machine the watcher, debounce and embedding can take a while
    with qtbot.waitSignal(window.controller.index_finished, timeout=90_000) as finished:
        write_photos(tmp_path / "incoming", 4, seed=9)
        (tmp_path / "incoming" / "photo_00003.png").rename(photos / "new.png")
    assert finished.args[0].indexed == 1
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(photos.resolve())) == "4 / 4 indexed")
