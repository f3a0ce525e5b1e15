"""The filter bar in the real window: kind, folder, capture-date range and sort each change the results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import QDate

from fastslow_desktop.library import Library
from fastslow_desktop.models import load_bundle
from fastslow_desktop.ui.format import captured
from fastslow_desktop.ui.models.results import ResultRoles
from fastslow_desktop.ui.views.filter_bar import preset_range
from tests.test_capture_dates import VIDEO_TIME, _ts, write_jpeg, write_mp4
from tests.ui_helpers import open_window

QUERY = "a red square"


@pytest.fixture
def dated_library(tmp_path, tiny_bundle) -> tuple[Path, Path]:
    """media/home: two photos (EXIF 2020 and 2023, mtimes the other way round); media/trips: a photo
    without EXIF (mtime 2021) and a video whose header says 2022."""
    media = tmp_path / "media"
    (media / "home").mkdir(parents=True)
    (media / "trips").mkdir()
    write_jpeg(media / "home" / "a2020.jpg", (220, 30, 30), _ts(2024, 3, 1, 8), original="2020:05:01 10:00:00")
    write_jpeg(media / "home" / "b2023.jpg", (30, 220, 30), _ts(2019, 1, 1, 8), original="2023:09:10 18:30:00")
    write_jpeg(media / "trips" / "c2021.jpg", (30, 30, 220), _ts(2021, 4, 2, 15))
    write_mp4(media / "trips" / "d2022.mp4", VIDEO_TIME, _ts(2018, 1, 1))
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(media)
        library.index()
    return tmp_path / "library", media.resolve()


def _names(window) -> list[str]:
    model = window.results_model
    return [Path(model.index(row, 0).data(ResultRoles.Path)).name for row in range(model.rowCount())]


def _after(qtbot, window, change) -> list[str]:
    """Apply a filter change and return the result names of the query it re-runs."""
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        change()
    return _names(window)


def test_each_filter_reruns_the_query_and_changes_the_results(qtbot, ui_settings, dated_library, tiny_bundle):
    library_dir, media = dated_library
    window = open_window(qtbot, ui_settings, library_dir, tiny_bundle, k=0)
    bar = window.filter_bar
    assert bar.kind is window.search_bar.kind and bar.isAncestorOf(bar.kind), "kind sits in the filter row"
    qtbot.waitUntil(lambda: bar.folder.findData(str(media)) >= 0)  # the library's folder is offered
    window.search_bar.field.setText(QUERY)
    everything = _after(qtbot, window, window.search_bar.submit)
    assert sorted(everything) == ["a2020.jpg", "b2023.jpg", "c2021.jpg", "d2022.mp4"]

    # Kind: videos only, then back.
    assert _after(qtbot, window, lambda: bar.kind.setCurrentIndex(bar.kind.findData("video"))) == ["d2022.mp4"]
    assert len(_after(qtbot, window, lambda: bar.kind.setCurrentIndex(0))) == 4

    # Folder: "Choose…" asks for a folder and keeps it in the list.
    bar.ask_folder = lambda: str(media / "trips")
    names = _after(qtbot, window, lambda: bar.folder.activated.emit(bar.folder.findData("\0choose")))
    assert sorted(names) == ["c2021.jpg", "d2022.mp4"]
    assert bar.folder.currentData() == str(media / "trips")
    assert len(_after(qtbot, window, lambda: bar.folder.activated.emit(bar.folder.findData(str(media))))) == 4

    # Dates: a custom range 2021-01-01..2022-12-31 by capture time (EXIF, header, else mtime).
    bar.after.setDate(QDate(2021, 1, 1))
    bar.before.setDate(QDate(2022, 12, 31))
    names = _after(qtbot, window, lambda: bar.dates.setCurrentIndex(bar.dates.findData("custom")))
    assert sorted(names) == ["c2021.jpg", "d2022.mp4"] and bar.after.isVisible()
    names = _after(qtbot, window, lambda: bar.before.setDate(QDate(2021, 12, 31)))
    assert names == ["c2021.jpg"]
    assert len(_after(qtbot, window, lambda: bar.dates.setCurrentIndex(bar.dates.findData("any")))) == 4
    assert not bar.after.isVisible()

    # Sort: newest capture first (EXIF order, not file times).
    names = _after(qtbot, window, lambda: bar.sort.setCurrentIndex(bar.sort.findData("date")))
    assert names == ["b2023.jpg", "d2022.mp4", "c2021.jpg", "a2020.jpg"]


def test_filters_that_leave_nothing_are_named_and_cleared_in_one_click(qtbot, ui_settings, dated_library,
                                                                        tiny_bundle):
    library_dir, media = dated_library
    window = open_window(qtbot, ui_settings, library_dir, tiny_bundle, k=0)
    bar = window.filter_bar
    window.search_bar.field.setText(QUERY)
    assert len(_after(qtbot, window, window.search_bar.submit)) == 4
    _after(qtbot, window, lambda: bar.kind.setCurrentIndex(bar.kind.findData("video")))
    assert _after(qtbot, window, lambda: bar.dates.setCurrentIndex(bar.dates.findData("last_year"))) == []
    assert window.pages.currentWidget() is window.welcome
    body = window.welcome.body.text()
    assert "filters set (Videos · Last year)" in body and "add more folders" not in body
    assert not window.welcome.clear_button.isHidden()
    assert sorted(_after(qtbot, window, window.welcome.clear_button.click)) == \
        ["a2020.jpg", "b2023.jpg", "c2021.jpg", "d2022.mp4"]
    assert bar.active() == [] and bar.sort.currentData() == "relevance"


def test_preview_taken_row_says_where_the_time_came_from(qtbot, ui_settings, dated_library, tiny_bundle):
    library_dir, _media = dated_library
    window = open_window(qtbot, ui_settings, library_dir, tiny_bundle, k=0)
    _after(qtbot, window, lambda: window.run_query(QUERY))
    texts = {}
    for row in range(window.results_model.rowCount()):
        result = window.results_model.result(row)
        window.preview.show_result(result)
        texts[Path(result.path).name] = window.preview.fields["taken"].text()
    assert texts["a2020.jpg"] == "2020-05-01 10:00"
    assert texts["c2021.jpg"] == "2021-04-02 15:00 (file date)"
    assert texts["d2022.mp4"].endswith("(from the video file)")


def test_date_presets_and_the_capture_text():
    today = dt.date(2026, 3, 15)
    assert preset_range("30d", today) == (dt.date(2026, 2, 14), today)
    assert preset_range("year", today) == (dt.date(2026, 1, 1), today)
    assert preset_range("last_year", today) == (dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    assert preset_range("any", today) == (None, None)

    class Info:
        captured_at, captured_source, taken = "2024-05-01T10:00:00", "mtime", None

    assert captured(Info()) == "2024-05-01 10:00 (file date)"
