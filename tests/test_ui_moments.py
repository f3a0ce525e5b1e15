"""The results grid's match divider, a video's matching moments in the preview, and "Play from here"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fastslow_desktop.catalog.records import SegmentInfo
from fastslow_desktop.search.moments import Moment, moments_of, next_moment
from fastslow_desktop.search.types import Candidate, SearchResult
from fastslow_desktop.ui import desktop
from fastslow_desktop.ui.models.results import ResultRoles, ResultsModel
from fastslow_desktop.ui.views import preview as preview_module
from fastslow_desktop.ui.views.player import PlayerControls
from fastslow_desktop.ui.views.preview import PreviewPane
from fastslow_desktop.ui.views.results_view import BAND, CELL, MATCHES, NOTHING_MATCHES, SIMILAR, ResultsView
from tests.media_samples import write_test_video
from tests.ui_helpers import open_window

VIDEO = "/videos/holiday.mp4"


def _info(sid: int, media: int, kind: str = "image", t: float | None = None, length: float = 4.0) -> SegmentInfo:
    path = VIDEO if kind == "video" else f"/photos/p{media}.png"
    return SegmentInfo(sid, media, path, kind, t, None if t is None else t + length, None, 0.0, 100, 64, 48,
                       None if t is None else 12.0, "/", True, None)


def _result(sid: int, media: int, score: float, match: str | None = None, kind: str = "image",
            t: float | None = None) -> SearchResult:
    info = _info(sid, media, kind, t)
    return SearchResult(sid, media, info.path, kind, score, score, None if match is None else score,
                        info.t_start, info.t_end, None, info, match, None if match is None else 0.5)


def _grid(qtbot, results: list[SearchResult], stage: int = 2) -> ResultsView:
    model = ResultsModel()
    view = ResultsView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(740, 900)  # four columns
    view.show()
    model.set_results(results, stage)
    qtbot.wait(30)  # the delayed layout
    return view


def _rect(view: ResultsView, row: int):
    return view.visualRect(view.model().index(row, 0))


# -- the match divider -------------------------------------------------------------------------------
def test_matches_come_first_under_a_heading_and_the_rest_start_a_new_row_below_a_divider(qtbot):
    results = [_result(i, i, 1 - i / 10, "yes" if i in (1, 4) else "no") for i in range(9)]
    view = _grid(qtbot, results)
    model = view.model()
    assert [model.result(r).segment_id for r in range(3)] == [1, 4, 0], "matches first, then the rest in order"
    assert view.headings() == [MATCHES, SIMILAR]
    assert model.divider() == ("matches", 2)
    last_match, first_other = _rect(view, 1), _rect(view, 2)
    # The first non-match starts a new row, below the last match, at the left edge, under a heading band.
    assert first_other.left() == 0 and first_other.top() >= last_match.bottom()
    assert first_other.height() == CELL.height() + BAND
    assert _rect(view, 2 + 4).height() == CELL.height(), "only a section's first row carries the heading"
    assert view.card_rect(first_other, 2).top() == first_other.top() + BAND


def test_when_nothing_matches_the_grid_says_so_above_the_closest_results(qtbot):
    results = [_result(i, i, 1 - i / 10, "maybe" if i == 0 else "no") for i in range(6)]
    view = _grid(qtbot, results)
    assert view.headings() == [NOTHING_MATCHES] == ["No photo shows exactly that — closest results below"]
    assert view.model().divider() == ("none", 0)
    assert _rect(view, 0).height() == CELL.height() + BAND
    assert [view.model().result(r).segment_id for r in range(6)] == list(range(6)), "the order is kept"


def test_the_heading_over_unmatched_videos_names_videos():
    from fastslow_desktop.ui.views.results_view import section_heads

    assert section_heads(("none", 0), 3, {"video"}) == [(0, "No video shows exactly that — closest results below")]
    assert section_heads(("none", 0), 3, {"image", "video"}) == [(0, NOTHING_MATCHES)]
    assert section_heads(("none", 0), 3, {"image"}) == [(0, NOTHING_MATCHES)]


def test_before_the_slow_judgement_there_is_no_divider_and_no_message(qtbot):
    results = [_result(i, i, 1 - i / 10) for i in range(6)]
    view = _grid(qtbot, results, stage=1)
    assert view.headings() == [] and view.model().divider() == (None, 0)
    assert {_rect(view, r).height() for r in range(6)} == {CELL.height()}
    # Stage 2 arrives with judgements: the same items, re-ordered, now with a divider.
    judged = [replace(r, match="yes" if r.segment_id == 3 else "no") for r in results]
    view.model().reorder(judged, stage=2)
    qtbot.wait(30)
    assert view.headings() == [MATCHES, SIMILAR]
    assert view.model().result(0).segment_id == 3
    assert _rect(view, 1).top() >= _rect(view, 0).bottom()


# -- moments of a video ------------------------------------------------------------------------------
def _candidates() -> list[Candidate]:
    # A 12 s video in three segments (the first and last match the query) and a photo.
    return [Candidate(11, 0.30, _info(11, 7, "video", 8.0)), Candidate(20, 0.29, _info(20, 2)),
            Candidate(9, 0.28, _info(9, 7, "video", 0.0)), Candidate(10, 0.10, _info(10, 7, "video", 4.0))]


def test_moments_of_a_video_are_its_shortlisted_segments_in_time_order_with_the_matching_ones_marked():
    moments = moments_of(7, _candidates())
    assert [(m.segment_id, m.t_start, m.t_end, m.matching) for m in moments] == [
        (9, 0.0, 4.0, True), (10, 4.0, 8.0, False), (11, 8.0, 12.0, True)]
    assert moments_of(2, _candidates()) == [], "a photo has no moments"
    # The segment the search chose for the video (stage 2 may choose by the slow score) is lit too.
    assert [m.matching for m in moments_of(7, _candidates(), chosen=10)] == [True, True, True]
    assert next_moment(moments, 0.0).segment_id == 11
    assert next_moment(moments, 8.0).segment_id == 9, "after the last matching moment, back to the first"
    assert next_moment([Moment(1, 0.0, 1.0, 0.1, False)], 0.0) is None


def test_preview_strip_shows_every_matching_moment_and_next_moment_steps_through_them(qtbot):
    model = ResultsModel()
    video = _result(11, 7, 0.30, kind="video", t=8.0)
    model.set_results([video, _result(20, 2, 0.29)], stage=1, candidates=_candidates())
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.moments_source = model.moments_of
    pane.resize(340, 700)
    pane.show()
    pane.show_result(video)
    assert pane.moments_row.isVisible() and pane.next_button.isEnabled()
    assert [(m.t_start, m.matching) for m in pane.strip.moments] == [(0.0, True), (4.0, False), (8.0, True)]
    assert pane.strip.current == (8.0, 12.0)
    # The grid's badge and the preview name the same moment.
    assert model.index(0, 0).data(ResultRoles.Moment) == pane.fields["moment"].text() == "0:08–0:12"

    qtbot.mouseClick(pane.next_button, preview_module.Qt.MouseButton.LeftButton)
    assert pane.moment == (0.0, 4.0) and pane.fields["moment"].text() == "0:00–0:04"
    assert pane.strip.current == (0.0, 4.0)
    pane.next_moment()
    assert pane.moment == (8.0, 12.0), "the segment that does not match is skipped"
    pane.strip.moment_clicked.emit(pane.strip.moments[1])  # a click on the strip goes to any moment
    assert pane.moment == (4.0, 8.0)

    pane.show_result(model.result(1))  # a photo: no strip, no moment
    assert not pane.moments_row.isVisible() and pane.moment is None


def test_badges_keep_their_moment_from_fast_to_refined_results(qtbot):
    model = ResultsModel()
    video = _result(11, 7, 0.30, kind="video", t=2.0)
    model.set_results([_result(20, 2, 0.4), video], stage=1)
    before = model.index(model.row_of(11), 0).data(ResultRoles.Moment)
    model.reorder([replace(video, score=0.9, slow_score=0.9), _result(20, 2, 0.4)], stage=2)
    assert model.index(model.row_of(11), 0).data(ResultRoles.Moment) == before == "0:02–0:06"
    narrowed = replace(video, t_start=3.0, t_end=4.5)  # stage 2 found the moment inside the segment
    model.reorder([narrowed, _result(20, 2, 0.4)], stage=2)
    assert model.index(model.row_of(11), 0).data(ResultRoles.Moment) == "0:03–0:04"


# -- playing -----------------------------------------------------------------------------------------
@pytest.fixture
def video_library(tmp_path):
    folder = tmp_path / "Videos"
    folder.mkdir()
    # Four scenes of 2 s each: the indexer cuts at every colour change.
    write_test_video(folder / "colours.mp4", [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)], 2.0)
    return folder


def _indexed_window(qtbot, ui_settings, tmp_path, tiny_bundle, folder):
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        window.add_folders([str(folder)])
    with qtbot.waitSignal(window.controller.stage2, timeout=60_000):  # re-ranked: the grid is final
        window.run_query("a blue frame", "video")
    qtbot.waitUntil(lambda: window.search_bar.refining.isHidden() and window.preview.result is not None)
    return window


def test_play_from_here_starts_the_system_player_at_the_moment(qtbot, ui_settings, tmp_path, tiny_bundle,
                                                                video_library, monkeypatch):
    launched: list[tuple[str, list[str]]] = []
    # Where QtMultimedia cannot play (as on this test machine), the app hands the video to mpv or VLC.
    monkeypatch.setattr(preview_module, "multimedia_problem", lambda: "QtMultimedia is not installed.")
    monkeypatch.setattr(desktop.shutil, "which", lambda name: "/usr/bin/mpv" if name == "mpv" else None)
    monkeypatch.setattr(desktop.QProcess, "startDetached", lambda program, args: launched.append((program, args))
                        or True)
    window = _indexed_window(qtbot, ui_settings, tmp_path, tiny_bundle, video_library)
    pane = window.preview
    moments = pane.strip.moments
    assert len(moments) == 4, [(m.t_start, m.t_end) for m in moments]
    later = max(moments, key=lambda m: m.t_start)
    pane.go_to_moment(later)
    qtbot.mouseClick(pane.play_button, preview_module.Qt.MouseButton.LeftButton)
    assert len(launched) == 1
    program, args = launched[0]
    assert program == "mpv" and args[-1] == pane.result.path
    start = float(args[0].removeprefix("--start="))
    assert abs(start - later.t_start) <= 0.5 and later.t_start >= 4.0
    assert pane.play_note.isVisible(), "the pane says why the video plays outside the app"


def test_with_no_player_anywhere_the_note_says_so_once_however_often_play_is_clicked(qtbot, ui_settings, tmp_path,
                                                                                    tiny_bundle, video_library,
                                                                                    monkeypatch):
    monkeypatch.setattr(preview_module, "multimedia_problem", lambda: "QtMultimedia is not installed.")
    monkeypatch.setattr(desktop.shutil, "which", lambda name: None)
    monkeypatch.setattr(desktop.QDesktopServices, "openUrl", lambda url: False)
    window = _indexed_window(qtbot, ui_settings, tmp_path, tiny_bundle, video_library)
    pane = window.preview
    for _ in range(3):
        qtbot.mouseClick(pane.play_button, preview_module.Qt.MouseButton.LeftButton)
    note = pane.play_note.text()
    assert note.count("No video player was found") == 1 and note.count("QtMultimedia is not installed.") == 1
    assert "\n" in note  # two sentences from two places: each starts its own paragraph


def test_open_and_show_in_folder_say_so_when_nothing_on_the_computer_can(qtbot, ui_settings, tmp_path, tiny_bundle,
                                                                         video_library, monkeypatch):
    monkeypatch.setattr(desktop.shutil, "which", lambda name: None)  # no dbus-send
    monkeypatch.setattr(desktop.QDesktopServices, "openUrl", lambda url: False)
    window = _indexed_window(qtbot, ui_settings, tmp_path, tiny_bundle, video_library)
    result = replace(window.preview.result, kind="image")
    window._open(result)
    assert "No application on this computer opens" in window.status.currentMessage()
    window._reveal(result)
    assert "No file manager could show" in window.status.currentMessage()


def test_play_from_here_starts_the_in_app_player_at_the_moment(qtbot, ui_settings, tmp_path, tiny_bundle,
                                                                video_library):
    problem = desktop.multimedia_problem()
    if problem:
        pytest.skip(f"QtMultimedia cannot play here: {problem}")
    window = _indexed_window(qtbot, ui_settings, tmp_path, tiny_bundle, video_library)
    pane = window.preview
    later = max(pane.strip.moments, key=lambda m: m.t_start)
    pane.go_to_moment(later)
    qtbot.mouseClick(pane.play_button, preview_module.Qt.MouseButton.LeftButton)
    player = pane._player
    qtbot.waitUntil(lambda: player.player.position() > 0, timeout=10_000)
    assert abs(player.player.position() / 1000 - later.t_start) <= 0.5
    assert player.controls.slider.value() > 0 and "/ 0:08" in player.controls.time.text()
    # At the end it goes back to the moment, paused, rather than a black frame.
    qtbot.waitUntil(lambda: player.controls.play_pause.text() == "▶", timeout=15_000)
    assert abs(player.player.position() / 1000 - later.t_start) <= 0.5


def test_player_controls_show_the_time_and_follow_the_player(qtbot):
    controls = PlayerControls()
    qtbot.addWidget(controls)
    seeks: list[int] = []
    clicks: list[bool] = []
    controls.seek_requested.connect(seeks.append)
    controls.play_pause_clicked.connect(lambda: clicks.append(True))
    controls.set_duration(65_000)
    controls.set_position(4_200)
    assert controls.time.text() == "0:04 / 1:05"
    assert (controls.slider.maximum(), controls.slider.value()) == (65_000, 4_200)
    controls.set_playing(True)
    assert controls.play_pause.text() == "❚❚"
    controls.set_playing(False)
    assert controls.play_pause.text() == "▶"
    qtbot.mouseClick(controls.play_pause, preview_module.Qt.MouseButton.LeftButton)
    controls.slider.sliderMoved.emit(30_000)  # the user drags the slider
    assert clicks == [True] and seeks == [30_000]


def test_a_refined_moment_reaches_the_preview_as_it_reaches_the_badge(qtbot):
    model = ResultsModel()
    video = _result(11, 7, 0.30, kind="video", t=8.0)
    model.set_results([video], stage=1, candidates=_candidates())
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.moments_source = model.moments_of
    pane.show_result(video)
    refined = replace(video, t_start=10.0, t_end=12.0, slow_score=-3.0, match="yes", match_probability=0.8)
    model.reorder([refined], stage=2)
    pane.update_scores(model.result(0))
    assert pane.fields["moment"].text() == model.index(0, 0).data(ResultRoles.Moment) == "0:10–0:12"
    assert pane.moment == (10.0, 12.0) and pane.fields["match"].text() == "yes · 80 %"

    # A user who stepped to another moment stays there when stage 2 arrives.
    pane.show_result(video)
    pane.next_moment()
    pane.update_scores(refined)
    assert pane.moment == (0.0, 4.0) and pane.fields["moment"].text() == "0:00–0:04"


def test_stage_two_choosing_another_moment_keeps_the_video_selected_and_moves_badge_and_preview(qtbot):
    view = _grid(qtbot, [_result(20, 2, 0.4), _result(11, 7, 0.3, kind="video", t=8.0)], stage=1)
    model = view.model()
    model.set_results(model.results(), stage=1, candidates=_candidates())
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    view.setCurrentIndex(model.index(1, 0))
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.moments_source = model.moments_of
    pane.show_result(model.result(1))
    # Stage 2 prefers the video's first segment, and puts the video first.
    model.reorder([_result(9, 7, 0.9, "yes", kind="video", t=0.0), _result(20, 2, 0.4, "no")], stage=2)
    assert not resets, "a layout change, not a reset: the selection and scroll position survive"
    assert view.currentIndex().row() == 0 and view.currentIndex().data(ResultRoles.SegmentId) == 9
    pane.update_scores(model.result(model.row_of_media(7)))
    assert model.index(0, 0).data(ResultRoles.Moment) == pane.fields["moment"].text() == "0:00–0:04"
    assert pane.strip.current == (0.0, 4.0)


def test_next_moment_says_match_only_for_a_video_judged_a_match():
    from fastslow_desktop.ui.views.preview import moments_tip

    assert "match the query" in moments_tip(2, "yes")
    for judged in ("no", "maybe", None):
        assert "match the query" not in moments_tip(1, judged) and "1 moment of this video" in moments_tip(1, judged)
