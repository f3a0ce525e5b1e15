"""The query on screen runs again when the library changes under it (an index run, another process): the
user's pick, the preview and the scroll position stay; only a new query starts again at the best match."""

from __future__ import annotations

from fastslow_desktop.ui.models.results import ResultRoles
from tests.ui_helpers import indexed_photos, open_window, write_photos

QUERY = "a large green star"


def _window_with_results(qtbot, ui_settings, tmp_path, tiny_bundle):
    photos = indexed_photos(tmp_path / "library", tiny_bundle, tmp_path / "photos", 8)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.stage2, timeout=60_000):
        qtbot.keyClicks(window.search_bar.field, QUERY)
    return window, photos


def _preview_calls(window) -> list:
    """Every show_result from now on (a reset shows None, a reload the result again)."""
    calls, show = [], window.preview.show_result
    window.preview.show_result = lambda result: (calls.append(result), show(result))[-1]
    return calls


def _run_again_after_adding(qtbot, window, folder, n: int, total: int) -> None:
    write_photos(folder, n, seed=11)
    with qtbot.waitSignal(window.controller.stage2, timeout=60_000):
        window.controller.index(None)  # its report names new files: the query runs again
    assert window.results_model.rowCount() == total


def test_a_rerun_keeps_the_users_pick_in_the_grid_and_the_preview(qtbot, ui_settings, tmp_path, tiny_bundle):
    window, photos = _window_with_results(qtbot, ui_settings, tmp_path, tiny_bundle)
    model, view = window.results_model, window.results_view
    view.setCurrentIndex(model.index(5, 0))  # as a click does
    picked = model.result(5)
    assert window.preview.result.media_id == picked.media_id
    calls = _preview_calls(window)
    _run_again_after_adding(qtbot, window, photos / "more", 3, 11)
    assert view.currentIndex().data(ResultRoles.Result).media_id == picked.media_id
    assert window.preview.result.media_id == picked.media_id
    assert calls == []  # neither cleared by the reset nor loaded again
    window.search_bar.field.clear()
    with qtbot.waitSignal(window.controller.stage2, timeout=60_000):
        qtbot.keyClicks(window.search_bar.field, "a small blue circle")  # a new query: the best match again
    assert view.currentIndex().row() == 0 and not window._user_picked


def test_a_rerun_without_a_pick_keeps_the_scroll_and_the_preview(qtbot, ui_settings, tmp_path,
                                                                             tiny_bundle):
    window, photos = _window_with_results(qtbot, ui_settings, tmp_path, tiny_bundle)
    window.resize(700, 500)
    _run_again_after_adding(qtbot, window, photos / "more", 40, 48)  # enough rows to scroll
    bar = window.results_view.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(bar.maximum() // 2)
    scrolled = bar.value()
    shown = window.preview.result
    calls = _preview_calls(window)
    _run_again_after_adding(qtbot, window, photos / "again", 2, 50)
    assert bar.value() == scrolled
    assert window.results_view.currentIndex().data(ResultRoles.Result).media_id == shown.media_id
    assert window.preview.result.media_id == shown.media_id and calls == []


def test_folder_counts_have_no_total_while_another_process_indexes(qtbot):
    """Another process's run adds a folder's files as it reaches them: "288 / 288 indexed" of 300 looked done."""
    from fastslow_desktop.catalog.records import RootInfo
    from fastslow_desktop.ui.views.sidebar import FoldersSidebar

    sidebar = FoldersSidebar()
    qtbot.addWidget(sidebar)
    sidebar.set_roots([RootInfo("/photos/new", True, [], 288, 288, 0), RootInfo("/photos/empty", True, [], 0, 0, 0)])
    assert sidebar.state_of("/photos/new") == "288 / 288 indexed"
    sidebar.indexed_elsewhere(True)
    assert (sidebar.state_of("/photos/new"), sidebar.state_of("/photos/empty")) == ("288 indexed so far",
                                                                                      "nothing indexed yet")
    assert "288 indexed so far" in sidebar.list.item(0).text()
    sidebar.indexed_elsewhere(False)
    assert sidebar.state_of("/photos/new") == "288 / 288 indexed"
