"""The main window on a real temporary library with the tiny random bundle: search, drop, preview, settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from fastslow_desktop.ui.dialogs.settings import SettingsDialog
from fastslow_desktop.ui.models.results import ResultRoles
from fastslow_desktop.ui.settings import AppSettings
from tests.ui_helpers import close_window, open_window, write_photos

QUERY = "a red circle to the left of a blue square"


def _ids(model) -> list[int]:
    return [model.index(row, 0).data(ResultRoles.SegmentId) for row in range(model.rowCount())]


def test_typed_query_shows_fast_results_then_the_reranked_order(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    controller, model = window.controller, window.results_model
    seen: list[tuple[str, object]] = []
    controller.stage1.connect(lambda stage: seen.append(("stage1", _ids(model))))
    controller.refining.connect(lambda on: seen.append(("refining", on)))
    stage1s, stage2s = [], []
    controller.stage1.connect(stage1s.append)

    with qtbot.waitSignal(controller.stage2, timeout=30_000) as stage2:
        qtbot.keyClicks(window.search_bar.field, QUERY)  # as-you-type: one query once typing pauses
    stage2s.append(stage2.args[0])

    assert len(stage1s) == 1, "the debounce should turn one burst of typing into one query"
    fast_ids = [r.segment_id for r in stage1s[0].results]
    slow_ids = [r.segment_id for r in stage2s[0].results]
    assert seen[0] == ("stage1", fast_ids), "stage-1 results are in the grid as soon as they arrive"
    assert ("refining", True) in seen
    assert not window.search_bar.refining.isHidden() or seen[-1] == ("refining", False)
    qtbot.waitUntil(lambda: window.search_bar.refining.isHidden())
    assert _ids(model) == slow_ids, "the grid shows the stage-2 order"
    assert model.stage == 2
    assert sorted(fast_ids) == sorted(slow_ids) and fast_ids != slow_ids, "stage 2 re-orders the same results"
    # Re-ranked rows carry slow scores; the final score decides the order within the re-ranked head.
    assert model.index(0, 0).data(ResultRoles.SlowScore) is not None


def test_search_option_opens_the_window_with_the_query_typed_and_its_results_shown(qtbot, ui_settings,
                                                                                   indexed_library, tiny_bundle,
                                                                                   caplog):
    """`fastslow --search TEXT`: the text is in the field at once and runs as soon as the models are ready;
    the window logs when the first results are on screen (benchmarks/startup.py times that line)."""
    from fastslow_desktop.cli import build_parser
    from fastslow_desktop.ui.app import parse_args

    assert build_parser().parse_args(["--search", QUERY]).initial_search == QUERY
    assert parse_args(["--search", QUERY]).initial_search == QUERY
    caplog.set_level("INFO", logger="fastslow_desktop.ui.result_selection")
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle, wait_ready=False, query=QUERY)
    assert window.search_bar.field.text() == QUERY
    qtbot.waitUntil(lambda: window.results_model.rowCount() > 0, timeout=60_000)
    assert [r for r in caplog.records if r.getMessage().startswith("first results on screen")]


def test_newer_query_cancels_the_older_refinement(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    controller = window.controller
    stage2s = []
    controller.stage2.connect(stage2s.append)
    with qtbot.waitSignal(controller.stage1, timeout=10_000):
        window.run_query("a large green star")
    with qtbot.waitSignal(controller.stage2, timeout=30_000):
        window.run_query("two small yellow triangles")  # before the first refinement finishes
    qtbot.waitUntil(lambda: window.search_bar.refining.isHidden())
    assert [s.request.text for s in stage2s] == ["two small yellow triangles"]


def test_dropping_a_folder_indexes_it_and_updates_sidebar_and_status_bar(qtbot, ui_settings, tmp_path, tiny_bundle):
    photos = write_photos(tmp_path / "Holiday", 12)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    assert window.pages.currentWidget() is window.welcome, "first run: the welcome asks for folders"
    controller = window.controller
    progress = []
    controller.index_progress.connect(lambda event: progress.append(window.status.message.text()))

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photos))])
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(controller.index_started, timeout=10_000):
        window.dropEvent(drop)
    assert drop.isAccepted()
    with qtbot.waitSignal(controller.index_finished, timeout=30_000) as finished:
        pass
    assert finished.args[0].indexed == 12
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(photos.resolve())) == "12 / 12 indexed")
    assert window.sidebar.list.count() == 1
    assert any(text.startswith(("Indexing", "Looking")) for text in progress), progress
    qtbot.waitUntil(lambda: window.status.message.text().startswith("12 photos and 0 videos in 1 folder"))
    assert "Indexed 12 new files" in window.status.message.text()
    assert window.status.progress.isHidden() and window.status.pause.isHidden()


def test_preview_shows_metadata_and_fast_slow_and_final_scores(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000):
        window.run_query(QUERY)
    qtbot.waitUntil(lambda: window.search_bar.refining.isHidden())
    preview, model = window.preview, window.results_model
    window.results_view.setCurrentIndex(model.index(0, 0))
    top = model.result(0)
    assert preview.result.segment_id == top.segment_id
    assert preview.fields["final"].text() == f"{top.score:.3f}"
    assert preview.fields["fast"].text() == f"{top.fast_score:.3f}"
    assert preview.fields["slow"].text() == f"{top.slow_score:.3f}"
    assert preview.fields["path"].text().replace("\u200b", "") == top.path  # with invisible break points
    assert preview.fields["dimensions"].text() == f"{top.info.width} × {top.info.height}"
    qtbot.waitUntil(lambda: preview.image.pixmap() is not None and not preview.image.pixmap().isNull())

    # A video: the frame at the moment's timestamp, decoded in a worker, and the moment's times.
    video_row = next(r for r in range(model.rowCount()) if model.result(r).kind == "video")
    window.results_view.setCurrentIndex(model.index(video_row, 0))
    video = model.result(video_row)
    assert preview.fields["moment"].text().startswith("0:")
    assert not preview.play_button.isHidden()
    qtbot.waitUntil(lambda: not preview.image._pixmap.isNull())
    assert video.path.endswith(".mp4")


def test_settings_and_window_state_persist_across_a_restart(qtbot, tmp_path, indexed_library, tiny_bundle):
    ini = tmp_path / "settings" / "FastSlow.ini"
    window = open_window(qtbot, AppSettings.at(ini), indexed_library, tiny_bundle)
    dialog = SettingsDialog(window.settings)
    dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
    dialog.k.setValue(7)
    dialog.beta.setValue(0.5)
    dialog.exclusions.setPlainText("*.tmp\nPrivate")
    dialog.watching.setChecked(False)
    dialog.use_bundle.setChecked(True)
    dialog.bundle.setText(str(tiny_bundle))
    changed = dialog.save()
    assert changed >= {"device", "k", "beta", "exclusions", "watching", "models"}
    window.resize(720, 520)  # within the offscreen screen (800 × 600)
    window.search_bar.field.setText("three large red squares")
    close_window(qtbot, window)

    again = AppSettings.at(ini)  # a new process would read the same file
    assert (again.device, again.k, again.beta, again.exclusions, again.watching, again.models) == \
        ("cpu", 7, 0.5, ["*.tmp", "Private"], False, str(tiny_bundle))
    reopened = open_window(qtbot, again, indexed_library, tiny_bundle, wait_ready=False)
    assert reopened.search_bar.field.text() == "three large red squares"
    assert (reopened.width(), reopened.height()) == (720, 520)
    dialog = SettingsDialog(reopened.settings)
    assert dialog.k.value() == 7 and abs(dialog.beta.value() - 0.5) < 1e-9
    assert dialog.use_bundle.isChecked() and dialog.bundle.text() == str(tiny_bundle)
    assert dialog.exclusions.patterns() == ["*.tmp", "Private"]
    # The remembered query runs as soon as the models are ready.
    with qtbot.waitSignal(reopened.controller.stage1, timeout=30_000) as stage1:
        pass
    assert stage1.args[0].request.text == "three large red squares"


def test_ctrl_f_focuses_search_and_down_arrow_moves_into_results(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    window.activateWindow()
    with qtbot.waitSignal(window.controller.stage1, timeout=10_000):
        window.run_query(QUERY)
    window.results_view.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.search_bar.field.hasFocus())
    qtbot.keyClick(window.search_bar.field, Qt.Key.Key_Down)
    assert window.results_view.hasFocus()
    qtbot.keyClick(window.results_view, Qt.Key.Key_Right)
    assert window.results_view.currentIndex().row() == 1
    assert window.preview.result.segment_id == window.results_model.result(1).segment_id
    qtbot.keyClick(window.results_view, Qt.Key.Key_Space)  # Space toggles the preview (Quick Look style)
    assert window.preview.isHidden()
    qtbot.keyClick(window.results_view, Qt.Key.Key_Space)
    assert not window.preview.isHidden()
    qtbot.keyClick(window.results_view, Qt.Key.Key_Escape)  # back up to the query
    qtbot.waitUntil(lambda: window.search_bar.field.hasFocus())
    window.search_bar.field.setText(QUERY)
    qtbot.keyClick(window.search_bar.field, Qt.Key.Key_Escape)  # Escape there clears it, as the clear button does
    assert window.search_bar.field.text() == ""
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.welcome)


def test_removing_a_folder_takes_its_results_off_the_screen(qtbot, ui_settings, tmp_path, tiny_bundle):
    kept, dropped = write_photos(tmp_path / "Kept", 3), write_photos(tmp_path / "Dropped", 3, seed=4)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        window.add_folders([str(kept), str(dropped)])
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000):
        window.search_bar.field.setText(QUERY)
        window.run_query(QUERY)
    model = window.results_model
    paths = lambda: {model.index(row, 0).data(ResultRoles.Result).path for row in range(model.rowCount())}  # noqa: E731
    assert any(p.startswith(str(dropped.resolve())) for p in paths())
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):  # the query on screen runs again
        window.controller.remove_folder(str(dropped.resolve()))
    qtbot.waitUntil(lambda: paths() and not any(p.startswith(str(dropped.resolve())) for p in paths()),
                    timeout=30_000)


def test_more_like_this_says_in_the_search_field_what_the_results_are_like(qtbot, ui_settings, indexed_library,
                                                                           tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.stage1, timeout=10_000):
        window.search_bar.field.setText(QUERY)
        window.run_query(QUERY)
    first = window.results_model.result(0)
    with qtbot.waitSignal(window.controller.stage1, timeout=10_000):
        window.more_like_this(first)
    field = window.search_bar.field
    assert field.text() == "" and f"like {Path(first.path).name}" in field.placeholderText()
    qtbot.keyClicks(field, "a")
    assert "like" not in field.placeholderText()


def test_a_device_change_keeps_the_models_in_use_and_a_file_is_no_library(qtbot, ui_settings, indexed_library,
                                                                          tiny_bundle, tmp_path, monkeypatch):
    from fastslow_desktop.ui import window_dialogs

    ui_settings.models = "balanced"  # the stored preference; this library's own models are the tiny bundle
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.ready, timeout=60_000):
        ui_settings.device = "cpu"
        window.apply_settings({"device"})
    assert window.controller.config.models == str(tiny_bundle) and window.controller.config.device == "cpu"

    warned: list[str] = []
    monkeypatch.setattr(window_dialogs.QMessageBox, "warning", lambda parent, title, text: warned.append(text))
    (tmp_path / "photo.jpg").write_bytes(b"")
    ui_settings.library = str(tmp_path / "photo.jpg")
    window.apply_settings({"library"})
    assert warned and "is a file, not a folder" in warned[0]
    assert ui_settings.library == str(indexed_library) and window.controller.config.library_dir == indexed_library
    assert not window.controller.stopping


def test_turning_watching_back_on_catches_up(qtbot, ui_settings, tmp_path, tiny_bundle):
    photos = write_photos(tmp_path / "Photos", 2)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        window.add_folders([str(photos)])
    write_photos(tmp_path / "more", 1, seed=3)
    next((tmp_path / "more").iterdir()).rename(photos / "added unwatched.png")
    window.controller.set_watching(True)
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(photos.resolve())) == "3 / 3 indexed", timeout=60_000)


def test_the_window_fits_the_screen_it_opens_on(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    screen = window.screen().availableGeometry()
    assert window.width() <= screen.width() and window.height() <= screen.height()


def test_search_with_a_picture_from_the_file_menu(qtbot, ui_settings, indexed_library, tiny_bundle, monkeypatch,
                                                 tmp_path):
    from fastslow_desktop.ui import main_window

    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    [photo] = write_photos(tmp_path / "query", 1).iterdir()
    monkeypatch.setattr(main_window.QFileDialog, "getOpenFileName", lambda *args: (str(photo), ""))
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000) as stage1:
        window.picture_action.trigger()
    assert stage1.args[0].results and f"like {photo.name}" in window.search_bar.field.placeholderText()
    assert window.picture_action.shortcut().toString() == "Ctrl+Shift+I"


def test_a_new_k_reranks_the_query_on_screen(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000):
        window.search_bar.field.setText(QUERY)
        window.run_query(QUERY)
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000) as again:
        ui_settings.k = 3
        window.apply_settings({"k"})
    assert sum(r.slow_score is not None for r in again.args[0].results) == 3


def test_words_the_models_do_not_know_are_named_in_the_status_bar(qtbot, ui_settings, indexed_library, tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        window.run_query("a red 🐱 circle")
    # the quoted words isolated from the sentence (U+2068 … U+2069): right-to-left words keep the punctuation in place
    note = "These models do not know “\u2068🐱\u2069”: the results match the rest of the query."
    assert window.status.currentMessage() == note
    assert window.status.toolTip() == window.status.currentMessage()
    assert window.results_model.rowCount() > 0  # the rest of the query still finds the closest photos
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        window.run_query(QUERY)
    assert window.status.currentMessage() == ""  # read whole: the last query's note goes
