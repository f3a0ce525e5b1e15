"""The keyboard's path through the main window: Tab follows the layout, top to bottom, left to right.

Qt's default order is the order widgets were created in, which put the filter row (built after the
splitter) behind the whole preview pane.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

from PySide6.QtWidgets import QWidget


def chain(widgets: Iterable[QWidget | None]) -> None:
    """Tab goes from each widget to the next (hidden or disabled ones are skipped by Qt as it goes)."""
    for first, second in pairwise([w for w in widgets if w is not None]):
        QWidget.setTabOrder(first, second)


def window_order(window) -> list[QWidget]:
    """Search row, the filter row, the banner under it, the folders, the results (or the welcome page), the
    preview, the status bar's buttons."""
    bar, banner, filters, side = window.search_bar, window.banner, window.filter_bar, window.sidebar
    status = window.status
    return [bar.field, filters.kind, filters.folder, filters.dates, filters.after, filters.before, filters.sort,
            banner.button, banner.close_button, side.list, side.add_button, side.remove_button, side.exclude_button,
            window.welcome.add_button, window.welcome.clear_button, window.results_view,
            *window.preview.tab_widgets(), status.pause, status.cancel, status.errors]


def set_window_order(window) -> None:
    chain(window_order(window))
    # The pane's own order changes when its player is made: it re-chains itself behind the grid.
    window.preview.tab_after = window.results_view
