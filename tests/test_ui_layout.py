"""The window at its default 1280×800 size: no clipped label or button in any state, the preview's actions
visible without scrolling, and screenshots of the match divider and of a query nothing matches.

Offscreen (the platform the suite runs on) lays widgets out exactly as a desktop does; set
FASTSLOW_SCREENSHOTS=DIR to keep the screenshots (the README's come from docs/screenshots/render_results.py).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtWidgets import QAbstractButton, QLabel, QLineEdit, QWidget

from fastslow_desktop.search.types import SearchRequest, StageResult
from fastslow_desktop.ui.views.preview import ImageLabel
from fastslow_desktop.ui.views.results_view import NOTHING_MATCHES, SIMILAR
from tests.ui_helpers import open_window

QUERY = "a red circle to the left of a blue square"
SIZE = (1280, 800)


def clipped(root: QWidget) -> list[str]:
    """Visible labels and buttons whose text needs more room than they have, or that a parent cuts off."""
    problems = []
    for widget in root.findChildren(QWidget):
        if not isinstance(widget, (QLabel, QAbstractButton)) or isinstance(widget, ImageLabel):
            continue
        if not widget.isVisible() or widget.width() <= 0 or isinstance(widget.parentWidget(), QLineEdit):
            continue  # (a line edit sizes its own clear button, an icon without text)
        name = f"{type(widget).__name__} {widget.objectName() or ''} {getattr(widget, 'text', lambda: '')()!r}"
        hint = widget.sizeHint()
        if isinstance(widget, QLabel) and widget.wordWrap():
            needed_height = widget.heightForWidth(widget.width())
            if needed_height > widget.height():
                problems.append(f"{name}: needs {needed_height} px height, has {widget.height()}")
        elif hint.width() > widget.width() or hint.height() > widget.height():
            problems.append(f"{name}: size hint {hint.width()}×{hint.height()}, "
                            f"geometry {widget.width()}×{widget.height()}")
        # Cut by a parent (a splitter pane, a scroll area) even though its own geometry is big enough.
        if _scrolled(widget) is None and widget.visibleRegion().boundingRect() != widget.rect():
            problems.append(f"{name}: only {widget.visibleRegion().boundingRect()} of {widget.rect()} visible")
    return problems


def _assert_fits(root: QWidget) -> None:
    problems = clipped(root)
    assert not problems, "\n".join(problems)


def _scrolled(widget: QWidget):
    """The preview's details scroll area when the widget is inside it (its rows may scroll below the fold)."""
    parent = widget.parentWidget()
    while parent is not None:
        if parent.objectName() == "previewDetails":
            return parent
        parent = parent.parentWidget()
    return None


def _settle(qtbot, window) -> None:
    window.resize(*SIZE)
    qtbot.wait(50)  # let layouts and the grid's delayed layout run
    assert (window.width(), window.height()) == SIZE


def _actions_visible(preview) -> None:
    buttons = [preview.open_button, preview.reveal_button, preview.copy_button, preview.more_button]
    if preview.result is not None and preview.result.kind == "video":
        buttons += [preview.play_button, preview.next_button]
    for button in buttons:
        assert button.isVisible(), button.text()
        # Entirely on screen inside the pane: nothing to scroll to, nothing cut in half.
        assert button.visibleRegion().boundingRect() == button.rect(), button.text()
        top_left = button.mapTo(preview, button.rect().topLeft())
        assert preview.rect().contains(top_left) and preview.rect().contains(
            button.mapTo(preview, button.rect().bottomRight())), button.text()


def _save(window, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("FASTSLOW_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert window.grab().save(str(path), "PNG")
    return path


def _judged(stage: StageResult, matches: int) -> StageResult:
    """Stage 2 as the match judgement leaves it: the first `matches` re-ranked results judged "yes"."""
    results = [replace(r, match="yes" if i < matches else "no", match_probability=0.9 if i < matches else 0.1)
               for i, r in enumerate(stage.results)]
    return replace(stage, results=results)


def test_welcome_and_empty_states_are_not_clipped(qtbot, ui_settings, tmp_path, indexed_library, tiny_bundle):
    first = open_window(qtbot, ui_settings, tmp_path / "empty-library", tiny_bundle)
    _settle(qtbot, first)
    assert first.welcome.heading.text() == "Welcome to FastSlow" and first.welcome.isVisible()
    _assert_fits(first)

    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    _settle(qtbot, window)
    qtbot.waitUntil(lambda: window.welcome.heading.text() == "What are you looking for?")
    assert window.welcome.body.text().startswith("Type a description")
    _assert_fits(window)

    window._query = "a purple elephant on the moon"
    window._on_stage1(StageResult(SearchRequest(text=window._query), [], 1, 1.0, None))
    qtbot.wait(20)
    assert window.welcome.heading.text() == "Nothing found" and window.welcome.isVisible()
    _assert_fits(window)


def _window_after_query(qtbot, ui_settings, library, bundle):
    """The window at its default size with QUERY re-ranked on screen; and the stage-2 signal's record."""
    window = open_window(qtbot, ui_settings, library, bundle)
    _settle(qtbot, window)
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000) as stage2:
        window.run_query(QUERY)
    qtbot.waitUntil(lambda: window.search_bar.refining.isHidden())
    return window, stage2


def test_photo_and_video_previews_fit_with_their_actions_in_view(qtbot, ui_settings, indexed_library, tiny_bundle,
                                                                  tmp_path):
    window, stage2 = _window_after_query(qtbot, ui_settings, indexed_library, tiny_bundle)
    model, preview = window.results_model, window.preview
    for kind in ("image", "video"):
        row = next(r for r in range(model.rowCount()) if model.result(r).kind == kind)
        window.results_view.setCurrentIndex(model.index(row, 0))
        qtbot.wait(20)
        assert preview.result.kind == kind
        _actions_visible(preview)
        _assert_fits(window)

    # The screenshots for the README: a query with a divider, and one nothing matches, as a new query's
    # stage 2 arrives (the best match selected, the grid at the top).
    window.search_bar.field.setText(QUERY)
    window._user_picked = False
    window._on_stage2(_judged(stage2.args[0], 3))
    qtbot.wait(50)
    assert window.results_view.headings()[:2] == ["Matches", SIMILAR]
    assert window.preview.fields["match"].text() == "yes · 90 %"
    _assert_fits(window)
    assert _save(window, tmp_path, "match-divider.png").stat().st_size > 10_000
    window._user_picked = False
    window._on_stage2(_judged(stage2.args[0], 0))
    qtbot.wait(50)
    assert window.results_view.headings() == [NOTHING_MATCHES]
    assert _save(window, tmp_path, "nothing-matches.png").stat().st_size > 10_000


@pytest.mark.parametrize("shown", ["timing", "refining"])
def test_search_field_keeps_its_width_when_timing_or_refining_appears(qtbot, shown):
    from fastslow_desktop.ui.views.search_bar import SearchBar

    bar = SearchBar()
    qtbot.addWidget(bar)
    bar.resize(1000, 50)
    bar.show()
    qtbot.wait(10)
    before = bar.field.width()
    if shown == "timing":
        bar.set_timing(12.0, 3456.0)
    else:
        bar.set_refining(True)
    qtbot.wait(10)
    assert bar.field.width() == before
    _assert_fits(bar)


def test_the_in_app_player_and_its_controls_fit_the_preview(qtbot, ui_settings, indexed_library, tiny_bundle):
    from fastslow_desktop.ui.desktop import multimedia_problem

    problem = multimedia_problem()
    if problem:
        pytest.skip(f"QtMultimedia cannot play here: {problem}")
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    _settle(qtbot, window)
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000):
        window.run_query(QUERY, "video")
    qtbot.waitUntil(lambda: window.search_bar.refining.isHidden() and window.preview.result is not None)
    window.preview.play_button.click()
    controls = window.preview._player.controls
    qtbot.waitUntil(lambda: controls.slider.maximum() > 0, timeout=10_000)
    assert controls.isVisible() and controls.time.text().endswith("/ 0:09")
    _actions_visible(window.preview)
    _assert_fits(window)


def test_a_wrapped_path_keeps_its_lines_when_stage_2_adds_the_match_row(qtbot, ui_settings, indexed_library,
                                                                         tiny_bundle):
    """QScrollArea sizes the details by sizeHint (a wrapped row counts as one line): when stage 2 added the
    match row to the result on show, a two-line path was squeezed into one line and cut in half."""
    window, stage2 = _window_after_query(qtbot, ui_settings, indexed_library, tiny_bundle)
    model, preview = window.results_model, window.preview
    row = next(r for r in range(model.rowCount()) if model.result(r).kind == "video")
    window.results_view.setCurrentIndex(model.index(row, 0))
    window._user_picked = True
    qtbot.wait(20)
    assert preview.fields["match"].isHidden()  # the tiny bundle judges nothing: no match row yet
    window._on_stage2(_judged(stage2.args[0], 0))
    assert not preview.fields["match"].isHidden()
    path = preview.fields["path"]
    assert path.heightForWidth(path.width()) > path.fontMetrics().height() * 1.5, "the test path should wrap"
    try:  # the pane measures again once the event loop has laid the new row out: give a loaded machine time
        qtbot.waitUntil(lambda: not clipped(window), timeout=3_000)
    except qtbot.TimeoutError:
        pass
    _assert_fits(window)
