"""The results model on its own (no window): Qt's model checks, thumbnails by row, 10 000 results."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from PIL import Image
from PySide6.QtCore import QSize, Qt

from fastslow_desktop.search import SearchResult
from fastslow_desktop.ui.models.results import ResultRoles, ResultsModel
from fastslow_desktop.ui.views.results_view import ResultsView
from fastslow_desktop.ui.workers.thumbnails import ThumbnailLoader


def make_results(n: int, thumbs: list[Path] | None = None, offset: int = 0) -> list[SearchResult]:
    out = []
    for i in range(n):
        video = i % 5 == 4
        info = SimpleNamespace(size=1000 + i, mtime=1.7e9, taken=None, width=64, height=48,
                               duration=12.0 if video else None)
        out.append(SearchResult(
            segment_id=offset + i, media_id=offset + i, path=f"/photos/img_{offset + i:05d}.{'mp4' if video else 'jpg'}",
            kind="video" if video else "image", score=1.0 - i / max(n, 1), fast_score=0.5, slow_score=None,
            t_start=4.0 if video else None, t_end=8.0 if video else None,
            thumb=thumbs[i % len(thumbs)] if thumbs else None, info=info))
    return out


def test_results_model_passes_qt_model_checks_through_reset_and_reorder(qtmodeltester, qapp):
    model = ResultsModel()
    qtmodeltester.check(model)  # the tester stays attached and checks every change below
    model.set_results(make_results(30))
    qtmodeltester.check(model)
    reordered = list(reversed(model.results()))
    model.reorder(reordered)
    assert model.segment_ids() == [r.segment_id for r in reordered]
    qtmodeltester.check(model)
    model.set_results(make_results(7, offset=100))
    qtmodeltester.check(model)
    model.set_results([])
    qtmodeltester.check(model)


def test_reorder_keeps_the_selected_item_selected(qapp):
    model = ResultsModel()
    model.set_results(make_results(10))
    view = ResultsView()
    view.setModel(model)
    view.setCurrentIndex(model.index(2, 0))
    model.reorder(list(reversed(model.results())))
    assert view.currentIndex().row() == 7
    assert view.currentIndex().data(ResultRoles.SegmentId) == 2


def test_roles_expose_scores_kind_and_moment(qapp):
    model = ResultsModel()
    model.set_results(make_results(5))
    video = model.index(4, 0)
    assert video.data(ResultRoles.Kind) == "video"
    assert (video.data(ResultRoles.TimeStart), video.data(ResultRoles.TimeEnd)) == (4.0, 8.0)
    assert video.data(ResultRoles.Rank) == 5
    assert video.data(ResultRoles.SlowScore) is None
    assert video.data(Qt.ItemDataRole.DisplayRole) == "img_00004.mp4"
    assert "0:04–0:08" in video.data(Qt.ItemDataRole.ToolTipRole)
    assert model.roleNames()[ResultRoles.FastScore] == b"fastScore"


def test_thumbnails_load_in_workers_and_refresh_only_their_row(qtbot, tmp_path):
    thumbs = []
    for i, colour in enumerate(("red", "green", "blue")):
        path = tmp_path / f"t{i}.jpg"
        Image.new("RGB", (256, 192), colour).save(path)
        thumbs.append(path)
    loader = ThumbnailLoader(QSize(64, 64))
    model = ResultsModel(loader)
    model.set_results(make_results(3, thumbs))
    changed = []
    model.dataChanged.connect(lambda top, bottom, roles: changed.append((top.row(), bottom.row(), list(roles))))
    assert model.index(1, 0).data(Qt.ItemDataRole.DecorationRole) is None  # asked for: loads in the pool
    qtbot.waitUntil(lambda: model.index(1, 0).data(ResultRoles.ThumbnailState) == "loaded")
    pixmap = model.index(1, 0).data(Qt.ItemDataRole.DecorationRole)
    assert pixmap.width() == 64 and pixmap.height() == 48  # scaled in the worker, aspect kept
    assert changed == [(1, 1, [Qt.ItemDataRole.DecorationRole])]
    assert model.index(0, 0).data(ResultRoles.ThumbnailState) == "loading"  # never asked for: never loaded
    loader.wait()


def test_ten_thousand_results_reset_and_scroll_without_stalling(qtbot, tmp_path):
    thumb = tmp_path / "t.jpg"
    Image.new("RGB", (256, 256), "orange").save(thumb)
    loader = ThumbnailLoader(QSize(144, 144))
    model = ResultsModel(loader)
    view = ResultsView()
    view.setModel(model)
    view.resize(1000, 700)
    qtbot.addWidget(view)
    view.show()
    results = make_results(10_000, [thumb])
    start = time.perf_counter()
    model.set_results(results)
    qtbot.waitUntil(lambda: view.indexAt(view.viewport().rect().center()).isValid())
    view.repaint()
    shown = time.perf_counter() - start
    start = time.perf_counter()
    for value in range(0, view.verticalScrollBar().maximum(), view.verticalScrollBar().maximum() // 20):
        view.verticalScrollBar().setValue(value)
        view.repaint()
    scrolled = (time.perf_counter() - start) / 20
    assert shown < 0.5, f"showing 10 000 results took {shown:.3f} s"
    assert scrolled < 0.05, f"one scroll step took {scrolled * 1000:.0f} ms"
    loader.clear()
    loader.wait()
