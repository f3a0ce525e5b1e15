"""The model chooser through the loopback test hub: first run downloads `balanced` and searches; cancel
keeps the partial file and the next download resumes it; changing a library's preset re-embeds it
while the old models keep answering."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog

from tests.hubserver import test_hub  # noqa: F401  (fixture)
from tests.ui_helpers import open_window, write_photos

from fastslow_desktop.ui.dialogs.models import ModelChooser, progress_text, size_text

DOWNLOAD_MS = 120_000  # generous: a loaded 2-core machine


def test_progress_text_names_bytes_speed_and_time_left():
    assert progress_text(5_000_000, 10_000_000, 1_000_000, 5) == "5.0 MB of 10.0 MB · 1.0 MB/s · about 5 s left"
    # decimal units, as `fastslow models` and the README give sizes (balanced: 1 619 MB)
    assert size_text(1_619_395_592) == "1.6 GB" and size_text(0) == "shipped"
    assert progress_text(0, 0, 0.0, None) == "0 bytes"


def test_first_run_shows_the_chooser_and_downloads_indexes_and_searches(qtbot, ui_settings, tmp_path, test_hub):
    from fastslow_desktop.library.models_spec import stored_spec

    window = open_window(qtbot, ui_settings, tmp_path / "library", "balanced", wait_ready=False)
    qtbot.waitUntil(lambda: window._model_chooser is not None and window._model_chooser.isVisible(),
                    timeout=60_000)
    chooser = window._model_chooser
    names = [row.name for row in chooser.rows]
    assert {"balanced", "fast", "multilingual", "accurate", "synthscenes"} <= set(names)
    assert chooser.chosen() == "balanced" and "Download" in chooser.use_button.text()
    balanced = names.index("balanced")
    assert chooser.table.item(balanced, 4).text() == "no"  # not on this computer yet
    assert chooser.table.item(balanced, 2).text() == "English"
    with qtbot.waitSignal(window.controller.ready, timeout=DOWNLOAD_MS):
        chooser.use_button.click()
    assert sum(test_hub.sent.values()) > 0
    assert window.controller.services.models.name == "balanced"
    assert window.status.models.text() == "Models: balanced (English)"  # what the models understand
    assert window.status.models.toolTip() == "tiny balanced"  # the catalogue's description
    photos = write_photos(tmp_path / "photos", 5)
    with qtbot.waitSignal(window.controller.index_finished, timeout=DOWNLOAD_MS) as finished:
        window.add_folders([str(photos)])
    assert finished.args[0].indexed == 5
    with qtbot.waitSignal(window.controller.stage1, timeout=60_000):
        window.run_query("a red square")
    qtbot.waitUntil(lambda: window.results_model.rowCount() == 5, timeout=30_000)
    assert stored_spec(tmp_path / "library") == "balanced"  # the library remembers its models


def test_cancel_keeps_the_partial_download_and_the_next_one_resumes(qtbot, test_hub):
    from fastslow_desktop.models.presets import preset_infos

    chooser = ModelChooser(preset_infos())
    qtbot.addWidget(chooser)
    chooser.show()
    chooser.select("fast")
    test_hub.delay_per_chunk = 0.05  # a slow link: the cancel lands mid-file
    chooser.use_button.click()
    assert chooser.downloading and not chooser.use_button.isEnabled()
    qtbot.waitUntil(lambda: chooser.bar.value() > 0, timeout=60_000)
    assert " of " in chooser.detail.text() and "/s" in chooser.detail.text()
    chooser.cancel_button.click()
    qtbot.waitUntil(lambda: not chooser.downloading, timeout=60_000)
    assert "cancelled" in chooser.detail.text().lower() and "resumes" in chooser.detail.text()
    assert chooser.isVisible() and chooser.use_button.isEnabled()
    sent_before = sum(test_hub.sent.values())
    test_hub.delay_per_chunk = 0.0
    chooser.use_button.click()
    qtbot.waitUntil(lambda: chooser.result() == QDialog.DialogCode.Accepted, timeout=DOWNLOAD_MS)
    assert chooser.chosen() == "fast"
    assert any(start > 0 for _key, start, _n in test_hub.bodies), "the second download resumed with a Range"
    assert sent_before > 0


def test_an_offline_download_in_the_chooser_says_so_and_keeps_the_dialog(qtbot, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    from fastslow_desktop.models.presets import preset_infos

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    chooser = ModelChooser(preset_infos(), current="synthscenes")
    qtbot.addWidget(chooser)
    chooser.show()
    chooser.select("balanced")
    chooser.use_button.click()
    qtbot.waitUntil(lambda: not chooser.downloading, timeout=30_000)
    text = chooser.detail.text()
    assert "balanced" in text and "(synthscenes) keep working" in text and "fastslow demo" in text
    assert chooser.isVisible() and chooser.result() != QDialog.DialogCode.Accepted


def test_speeds_are_shown_to_three_significant_figures():
    from fastslow_desktop.ui.dialogs.models import speed_text

    assert speed_text({"images_per_s": 928.61, "text_ms": 3.61}) == "929 photos/s, 3.61 ms per query"
    assert speed_text({"images_per_s": 0.2213}) == "0.221 photos/s"


def test_changing_the_preset_re_embeds_while_the_old_models_answer(qtbot, ui_settings, tmp_path, test_hub,
                                                                   tiny_bundle):
    from fastslow_desktop.library import Library
    from fastslow_desktop.library.models_spec import stored_spec
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.presets import download_preset

    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(write_photos(tmp_path / "photos", 6))
        library.index()
        old_id = library.serving_model_id
    download_preset("balanced")
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    controller = window.controller
    # Held paused from its start, so the search below surely runs while the library is re-embedding.
    controller.reembedding.connect(lambda *_: controller.pause_indexing(True))
    with qtbot.waitSignal(controller.reembedding, timeout=DOWNLOAD_MS) as started:
        window._use_models("balanced")
    assert started.args[1] == "balanced"
    services = controller.services
    assert services.reembedding is not None and services.models.model_id == old_id  # the old ones answer
    assert "re-embedding" in window.status.models.text()
    with qtbot.waitSignal(controller.stage1, timeout=60_000) as during:  # the old embeddings answer
        window.run_query("a green circle")
    assert len(during.args[0].results) == 6 and controller.indexing
    failures: list[str] = []
    controller.search_failed.connect(failures.append)
    with qtbot.waitSignal(controller.stage1, timeout=DOWNLOAD_MS) as rerun:  # the query on screen runs again
        controller.pause_indexing(False)
    assert controller.services.reembedding is None and controller.services.models.name == "balanced"
    assert rerun.args[0].request.text == "a green circle" and len(rerun.args[0].results) == 6
    assert failures == []  # no search hit the old engine after its embeddings were dropped
    assert stored_spec(tmp_path / "library") == "balanced"
    assert controller.library.serving_model_id == controller.services.models.model_id != old_id
    with qtbot.waitSignal(controller.stage1, timeout=60_000) as stage1:
        window.run_query("a blue square")
    assert len(stage1.args[0].results) == 6


def test_settings_to_a_preset_not_on_disk_asks_downloads_with_speed_and_re_embeds(qtbot, ui_settings, tmp_path,
                                                                                   test_hub, tiny_bundle):
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(write_photos(tmp_path / "photos", 3))
        library.index()
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    window.settings.models = "fast"
    window.apply_settings({"models"})
    qtbot.waitUntil(lambda: window._download_dialog is not None and window._download_dialog.isVisible(),
                    timeout=60_000)
    dialog = window._download_dialog
    assert window.sidebar.list.count() == 1, "the library's folders stay in view while the new models come"
    details: list[str] = []
    window.controller.download_progress.connect(lambda _p: details.append(dialog.detail.text()))
    test_hub.delay_per_chunk = 0.01
    with qtbot.waitSignal(window.controller.reembedding, timeout=DOWNLOAD_MS) as started:
        dialog.download_button.click()
    assert started.args[1] == "fast"
    assert any(" of " in d and "/s" in d for d in details), details[-3:]
    qtbot.waitUntil(lambda: window.controller.services is not None
                    and window.controller.services.models.name == "fast", timeout=DOWNLOAD_MS)


def test_closing_the_app_during_a_download_stops_it(qtbot, ui_settings, tmp_path, test_hub):
    from tests.ui_helpers import close_window

    window = open_window(qtbot, ui_settings, tmp_path / "library", "balanced", wait_ready=False)
    qtbot.waitUntil(lambda: window._model_chooser is not None and window._model_chooser.isVisible(),
                    timeout=60_000)
    chooser = window._model_chooser
    test_hub.delay_per_chunk = 0.2  # slow enough that the download is surely still running
    chooser.use_button.click()
    qtbot.waitUntil(lambda: chooser.bar.value() > 0, timeout=60_000)
    cancel = chooser._cancel
    close_window(qtbot, window, timeout_ms=30_000)  # would wait for the whole download otherwise
    assert cancel.is_set()
    assert chooser.wait_stopped(30_000)


def test_new_models_re_embed_even_when_the_old_ones_cannot_be_loaded(qtbot, ui_settings, tmp_path, test_hub,
                                                                     tiny_bundle):
    """The old models are unknown (a library from before specs were remembered, made with a bundle folder):
    searches wait, but the re-embedding still starts by itself and then they work."""
    import sqlite3

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.presets import download_preset

    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(write_photos(tmp_path / "photos", 4))
        library.index()
    with sqlite3.connect(tmp_path / "library" / "library.db") as conn:
        conn.execute("DELETE FROM meta WHERE key LIKE 'models_spec%'")
    download_preset("balanced")
    window = open_window(qtbot, ui_settings, tmp_path / "library", "balanced", wait_ready=False)
    controller = window.controller
    with qtbot.waitSignal(controller.reembedding, timeout=DOWNLOAD_MS) as started:
        pass
    assert started.args == ["balanced", "balanced", False]
    qtbot.waitUntil(lambda: controller.services is not None and controller.services.reembedding is None,
                    timeout=DOWNLOAD_MS)
    with qtbot.waitSignal(controller.stage1, timeout=60_000) as stage1:
        window.run_query("a red square")
    assert len(stage1.args[0].results) == 4
