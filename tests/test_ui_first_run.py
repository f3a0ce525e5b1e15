"""First run: the welcome asks for folders; models that are not on disk lead to a download dialog, and
offline to a message that says how to use a local bundle or the demo."""

from __future__ import annotations

from tests.ui_helpers import open_window


def test_a_new_library_offline_offers_the_chooser_then_explains_how_to_work_offline(qtbot, ui_settings, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing cached: the preset must download
    window = open_window(qtbot, ui_settings, tmp_path / "library", "clip-vit-b-32", wait_ready=False)
    qtbot.waitUntil(lambda: window._model_chooser is not None and window._model_chooser.isVisible(),
                    timeout=60_000)
    chooser = window._model_chooser
    assert chooser.chosen() == "clip-vit-b-32" and "GB" in chooser.use_button.text()  # names the size
    chooser.use_button.click()
    qtbot.waitUntil(lambda: not chooser.downloading, timeout=30_000)
    assert "clip-vit-b-32" in chooser.detail.text() and "fastslow demo" in chooser.detail.text()
    chooser.reject()
    assert not window.banner.isHidden()
    text = window.banner.label.text()
    assert "--models PATH" in text and "fastslow demo" in text
    assert window.status.models.text() == "Models unavailable"
    assert window.status.message.text() != "Starting…"  # start-up is over, even without models
    assert window.pages.currentWidget() is window.welcome  # still usable: folders can be added meanwhile
    again = window.open_model_chooser()
    assert "in use" not in " ".join(again.table.item(r, 0).text() for r in range(again.table.rowCount()))
    again.reject()


def test_new_models_that_cannot_be_downloaded_leave_the_previous_ones_working(qtbot, ui_settings, tmp_path,
                                                                             monkeypatch, tiny_bundle):
    """Settings → preset clip-vit-b-32 offline: the banner names the model once, the app keeps tiny."""
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle
    from tests.ui_helpers import write_photos

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(write_photos(tmp_path / "photos", 4))
        library.index()
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    controller = window.controller
    window.settings.models = "clip-vit-b-32"
    window.apply_settings({"models"})
    qtbot.waitUntil(lambda: window._download_dialog is not None and window._download_dialog.isVisible(),
                    timeout=60_000)
    dialog = window._download_dialog
    assert "MB" in dialog.text.text() or "GB" in dialog.text.text()  # the consent names the download size
    with qtbot.waitSignal(controller.kept_models, timeout=30_000) as kept:
        dialog.download_button.click()
    assert kept.args[1] == str(tiny_bundle)
    qtbot.waitUntil(lambda: controller.is_ready, timeout=60_000)
    assert controller.services.models.name == "tiny" and window.status.models.text().startswith("Models: tiny")
    text = window.banner.label.text()
    assert not window.banner.isHidden() and "clip-vit-b-32" in text and "keeps using" in text
    assert text.count("fastslow demo") == 1 and "huggingface.co" not in text
    assert window.settings.models == str(tiny_bundle)
    with qtbot.waitSignal(controller.stage1, timeout=60_000) as stage1:  # typing still searches
        window.run_query("a red square")
    assert len(stage1.args[0].results) == 4


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
    qtbot.waitUntil(lambda: window.controller.library.watching and not window.controller.indexing,
                    timeout=60_000)  # after the start-up catch-up run
    # generous: on a loaded 2-core CI machine the watcher, debounce and embedding can take a while
    with qtbot.waitSignal(window.controller.index_finished, timeout=90_000) as finished:
        write_photos(tmp_path / "incoming", 4, seed=9)
        (tmp_path / "incoming" / "photo_00003.png").rename(photos / "new.png")
    assert finished.args[0].indexed == 1
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(photos.resolve())) == "4 / 4 indexed")


def test_with_watching_on_the_app_catches_up_on_what_changed_while_it_was_closed(qtbot, ui_settings, tmp_path,
                                                                               tiny_bundle):
    from tests.ui_helpers import write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = write_photos(tmp_path / "photos", 3)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        library.index()
    write_photos(tmp_path / "while closed", 2, seed=5)
    for n, path in enumerate(sorted((tmp_path / "while closed").iterdir())):
        path.rename(photos / f"added while closed {n}.png")
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle, watching=True)
    # Nobody asks: the run starts once the slow model is warm.
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(photos.resolve())) == "5 / 5 indexed", timeout=60_000)


def test_with_watching_off_the_app_leaves_the_library_as_it_is(qtbot, ui_settings, tmp_path, tiny_bundle):
    from tests.ui_helpers import write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = write_photos(tmp_path / "photos", 2)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle, watching=False)
    assert window.controller._startup.wait(60_000)  # warm-up done: where a catch-up run would start
    qtbot.wait(300)
    assert not window.controller.indexing
    assert window.sidebar.state_of(str(photos.resolve())) == "nothing indexed yet"
