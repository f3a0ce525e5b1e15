"""Which result is current: the best one after each new query, the user's pick kept through stage 2 and
through re-runs of the same query (an index run added files; another process indexed the library).

A mixin of MainWindow (same object), like window_dialogs and result_actions.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt

from .announce import announce
from .models.results import ResultRoles

logger = logging.getLogger(__name__)


class ResultSelection:
    """Needs MainWindow's results model and view, preview pane, search bar, status bar and pages."""

    _auto_selecting = False
    _user_picked = False  # the user chose a result: stage 2 and re-runs must not move the selection
    _shown_request = None  # the request whose results are on screen: the same one again is a re-run
    _rerun = False
    _keeping = None  # while a re-run replaces the results: what the preview shows, kept if it is selected again

    def _on_stage1(self, stage) -> None:
        if not self._first_results_shown and stage.results:
            self._first_results_shown = True
            # benchmarks/startup.py times launch -> this line (app_start_to_first_results_ms)
            logger.info("first results on screen: %d results, fast stage %.0f ms", len(stage.results), stage.fast_ms)
        self._rerun = self._shown_request is not None and stage.request == self._shown_request
        self._shown_request = stage.request
        shown = self.preview.result if self._rerun else None
        scrolled = self.results_view.verticalScrollBar().value() if self._rerun else 0
        self._keeping = shown
        try:
            self.results_model.set_results(stage.results, stage=1, candidates=stage.candidates)
            self.search_bar.set_timing(stage.fast_ms, None, len(stage.results))
            if not self._rerun:  # a refresh of the same query is not news
                announce(self.results_view, self.search_bar.timing.text().split(" · ")[0])
            self.status.show_query_notes(stage.notes)  # part of the query unread: the results must not hide it
            if not stage.results:
                self._user_picked = False
                self.preview.show_result(None)  # a re-run that found nothing: what it showed is gone
                self._show_empty_page()  # no folders yet: the first run stays a first run
                return
            self.pages.setCurrentWidget(self.results_view)
            row = self.results_model.row_of_media(shown.media_id) if shown is not None else None
            self.results_view.setAutoScroll(not self._rerun)  # a re-run leaves the grid where the user left it
            self._select_row(0 if row is None else row)
        finally:
            self._keeping = None
            self.results_view.setAutoScroll(True)
        self._user_picked = self._user_picked and row is not None
        if self._rerun:
            self.results_view.doItemsLayout()  # lays the rows out now, so that the scroll range is there
            self.results_view.verticalScrollBar().setValue(scrolled)

    def _on_stage2(self, stage) -> None:
        self.results_model.reorder(stage.results, stage=stage.stage, candidates=stage.candidates)
        self.search_bar.set_timing(stage.fast_ms, stage.slow_ms, self.results_model.rowCount())
        state, n = self.results_model.divider()
        if not self._rerun and state is not None:
            announce(self.results_view, f"{n} match{'' if n == 1 else 'es'}" if state == "matches"
                     else "Nothing matches exactly; the closest results are shown")
        current = self.preview.result
        if current is not None:
            row = self.results_model.row_of_media(current.media_id)  # stage 2 may move a video's moment
            if row is not None:
                self.preview.update_scores(self.results_model.result(row))
        if self._rerun:
            return  # the results the user was looking at, refreshed: nothing moves
        if not self._user_picked and self.results_model.rowCount():
            self._select_row(0)  # the best match after re-ranking, unless the user picked one
            self.results_view.scrollToTop()
        elif self.results_view.currentIndex().isValid():
            self.results_view.scrollTo(self.results_view.currentIndex())

    def _forget_results(self) -> None:
        """The query was cleared: the same text typed again is a new query, not a re-run."""
        self._shown_request, self._user_picked = None, False

    def _select_row(self, row: int) -> None:
        index = self.results_model.index(row, 0)
        # Without stealing focus from the search field: the user is still typing.
        self._auto_selecting = True
        try:
            self.results_view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        finally:
            self._auto_selecting = False

    def _focus_results(self) -> None:
        if self.results_model.rowCount():
            self.results_view.setFocus(Qt.FocusReason.OtherFocusReason)
            if not self.results_view.currentIndex().isValid():
                self._select_row(0)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._auto_selecting and current.isValid():
            self._user_picked = True
        result = current.data(ResultRoles.Result) if current.isValid() else None
        if self._keeping is not None and (result is None or result.media_id == self._keeping.media_id):
            if result is not None:  # the same file again: no reload, a playing video plays on
                self.preview.update_scores(result)
            return  # (None: the re-run's reset, before its selection)
        self.preview.show_result(result)

    def _on_reset(self) -> None:
        if self._keeping is None:
            self.preview.show_result(None)

    def _toggle_preview(self, index: QModelIndex) -> None:
        """Space: show the preview pane for this item, or hide it again (like Quick Look)."""
        result = index.data(ResultRoles.Result)
        if self.preview.isVisible() and self.preview.result is not None and result is not None \
                and self.preview.result.segment_id == result.segment_id:
            self.preview_action.setChecked(False)
        else:
            self.preview_action.setChecked(True)
            self.preview.show_result(result)
