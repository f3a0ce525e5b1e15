"""The controller contract: K and β in each request (configs never mutated), Stop indexing in the status bar,
one job error path, and the small things a new user saw (About's version, no CUDA offered without a GPU)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from PySide6.QtCore import Qt

from fastslow_desktop import __version__
from fastslow_desktop.ui.dialogs.settings import SettingsDialog
from fastslow_desktop.ui.menus import about_text
from fastslow_desktop.ui.workers.job import JobRunner
from tests.ui_helpers import open_window, write_photos


def test_k_and_beta_travel_in_each_request_and_the_model_config_stays_put(qtbot, ui_settings, indexed_library,
                                                                         tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    controller = window.controller
    bundle_config = controller.services.models.rerank_config
    finals: dict[float, list[float]] = {}
    for beta in (0.0, 10.0):
        controller.update_search(k=4, beta=beta, exclusions=[])
        with qtbot.waitSignal(controller.stage2, timeout=30_000) as stage2:
            window.run_query("a red circle")
        request = stage2.args[0].request
        assert (request.k, request.beta) == (4, beta)
        finals[beta] = [r.score for r in stage2.args[0].results if r.slow_score is not None]
    assert controller.services.models.rerank_config is bundle_config and bundle_config.beta == 1.0
    assert finals[0.0] != finals[10.0], "β did not reach the re-ranker"
    with pytest.raises(dataclasses.FrozenInstanceError):
        bundle_config.beta = 2.0


def test_stop_button_cancels_indexing_and_keeps_what_was_done(qtbot, ui_settings, tmp_path, tiny_bundle):
    photos = write_photos(tmp_path / "Camera", 400)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    controller, status = window.controller, window.status
    done: list[int] = []
    controller.index_progress.connect(lambda e: e.phase == "indexing" and done.append(e.done))
    with qtbot.waitSignal(controller.index_finished, timeout=120_000) as finished:
        window.add_folders([str(photos)])
        qtbot.waitUntil(lambda: bool(done) and status.cancel.isVisible(), timeout=60_000)
        qtbot.mouseClick(status.cancel, Qt.MouseButton.LeftButton)
        assert not status.cancel.isEnabled() and status.message.text() == "Stopping indexing…"
    report = finished.args[0]
    assert report.cancelled and report.indexed < 400
    assert not status.cancel.isVisible() and "stopped" in status.message.text()
    qtbot.waitUntil(lambda: not controller.indexing, timeout=10_000)


def _run_job(qtbot, fn) -> str:
    # on_error is connected before the job starts: a waitSignal on the returned signals connects after
    # pool.start, and a job that fails at once can emit first (seen in CI: the signal never arrived).
    runner, errors = JobRunner("test", 1), []
    runner.submit(fn, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
    runner.wait(5000)
    return errors[0]


def test_a_programming_error_in_a_job_logs_its_traceback_at_error(qtbot, caplog):
    def broken():
        return {}["missing key"]

    with caplog.at_level(logging.DEBUG, logger="fastslow_desktop"):
        message = _run_job(qtbot, broken)
    assert message.startswith("unexpected error (KeyError")
    [record] = [r for r in caplog.records if r.name == "fastslow_desktop.ui.workers.job"]
    assert record.levelno == logging.ERROR and "Traceback" in record.getMessage() and "broken" in record.getMessage()


def test_our_own_errors_in_a_job_become_their_message(qtbot, caplog):
    from fastslow_desktop.library import LibraryError

    def locked():
        raise LibraryError("The library is being indexed by another process.")

    with caplog.at_level(logging.DEBUG, logger="fastslow_desktop"):
        message = _run_job(qtbot, locked)
    assert message == "The library is being indexed by another process."
    [record] = [r for r in caplog.records if r.name == "fastslow_desktop.ui.workers.job"]
    assert record.levelno == logging.WARNING and "Traceback" not in record.getMessage()


def test_about_shows_the_version():
    assert f"version {__version__}" in about_text()


@pytest.mark.parametrize("cuda, chosen, offered", [
    (False, "auto", ["auto", "cpu"]),
    (True, "auto", ["auto", "cpu", "cuda"]),
    (None, "auto", ["auto", "cpu", "cuda"]),  # torch not loaded yet: not known, so not hidden
    (False, "cuda", ["auto", "cpu", "cuda"]),  # chosen on another machine: kept, marked
])
def test_settings_offers_cuda_only_with_a_gpu(qapp, ui_settings, monkeypatch, cuda, chosen, offered):
    import fastslow_desktop.ui.dialogs.settings as settings_module

    monkeypatch.setattr(settings_module, "cuda_available", lambda: cuda)
    ui_settings.device = chosen
    dialog = SettingsDialog(ui_settings)
    assert [dialog.device.itemData(i) for i in range(dialog.device.count())] == offered
    if cuda is False and chosen == "cuda":
        assert "not found" in dialog.device.itemText(2)


def test_cuda_is_not_probed_before_torch_is_loaded(monkeypatch):
    import sys

    from fastslow_desktop.ui.dialogs.settings import cuda_available

    monkeypatch.delitem(sys.modules, "torch")
    assert cuda_available() is None and "torch" not in sys.modules


def test_retry_failed_files_tries_an_unchanged_bad_file_again(qtbot, ui_settings, tmp_path, tiny_bundle):
    photos = write_photos(tmp_path / "Camera", 3)
    (photos / "notes.jpg").write_text("a text file with a photo's name\n")
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    controller = window.controller
    reports = []
    controller.index_finished.connect(reports.append)
    with qtbot.waitSignal(controller.index_finished, timeout=60_000):
        window.add_folders([str(photos)])
    with qtbot.waitSignal(controller.index_finished, timeout=60_000):
        window.reindex_action.trigger()  # a plain re-scan leaves a content failure alone
    with qtbot.waitSignal(controller.index_finished, timeout=60_000):
        window.retry_action.trigger()
    assert [r.failed for r in reports] == [1, 0, 1]


def test_jobs_on_qts_pool_threads_leave_no_connection_or_object_behind(qtbot, tmp_path):
    """Qt's pool threads enter Python afresh for every job (an empty threading.local each time): the app's
    poll for other writers, every 2 s, opened a SQLite connection per job and kept each job's QObject."""
    import shiboken6

    from fastslow_desktop.catalog.store import Store

    store, runner, done = Store(tmp_path / "library.db"), JobRunner("test", 1), []
    handles = [runner.submit(store.generation, on_result=done.append) for _ in range(50)]
    qtbot.waitUntil(lambda: len(done) == 50, timeout=10_000)
    assert len(store._connections) <= 2  # the pool's thread (one) and this one: not one per job
    qtbot.waitUntil(lambda: not any(shiboken6.isValid(h) for h in handles), timeout=5_000)  # freed once done
    runner.wait(5000)
    store.close()
