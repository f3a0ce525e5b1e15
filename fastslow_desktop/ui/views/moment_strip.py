"""A video's timeline in the preview: its segments in the query's shortlist, the matching moments lit."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from ...search.moments import Moment
from ..format import moment_label

STRIP_HEIGHT = 22


class MomentStrip(QWidget):
    """The whole duration as a bar; matching moments in the highlight colour, the shown one outlined.

    Clicking a moment emits `moment_clicked` with it.
    """

    moment_clicked = Signal(object)  # Moment

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("momentStrip")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(STRIP_HEIGHT)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._moments: list[Moment] = []
        self._duration = 0.0
        self._current: tuple[float, float] | None = None

    @property
    def moments(self) -> list[Moment]:
        return list(self._moments)

    @property
    def current(self) -> tuple[float, float] | None:
        return self._current

    def set_moments(self, moments: list[Moment], duration: float | None,
                    current: tuple[float, float] | None) -> None:
        """Show these moments on a bar as long as the video (or as its last moment, when unknown)."""
        self._moments = list(moments)
        ends = [m.t_end for m in moments] + ([current[1]] if current else [])
        self._duration = max([duration or 0.0] + ends) or 1.0
        self._current = current
        matching = [m for m in moments if m.matching]
        self.setToolTip("\n".join(f"{moment_label(m.t_start, m.t_end)}  score {m.score:.3f}" for m in matching))
        self.update()

    def set_current(self, current: tuple[float, float] | None) -> None:
        self._current = current
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(200, STRIP_HEIGHT)

    def _span(self, t_start: float, t_end: float) -> QRectF:
        bar = QRectF(self.rect()).adjusted(1, 3, -1, -3)
        scale = bar.width() / self._duration
        width = max(3.0, (t_end - t_start) * scale)  # a short moment stays visible and clickable
        return QRectF(bar.left() + t_start * scale, bar.top(), width, bar.height())

    def moment_at(self, x: float) -> Moment | None:
        """The moment drawn under this x (matching ones first, as they are drawn on top)."""
        for m in sorted(self._moments, key=lambda m: not m.matching):
            span = self._span(m.t_start, m.t_end)
            if span.left() <= x <= span.right():
                return m
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        moment = self.moment_at(event.position().x())
        if moment is not None:
            self.moment_clicked.emit(moment)
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        bar = QRectF(self.rect()).adjusted(1, 3, -1, -3)
        painter.fillRect(bar, QColor(palette.color(QPalette.ColorRole.Mid)).lighter(150))
        other = QColor(palette.color(QPalette.ColorRole.Mid))
        lit = QColor(palette.color(QPalette.ColorRole.Highlight))
        for m in sorted(self._moments, key=lambda m: m.matching):
            painter.fillRect(self._span(m.t_start, m.t_end), lit if m.matching else other)
        if self._current is not None:
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            painter.drawRect(self._span(*self._current).adjusted(0, -2, 0, 2))
        painter.end()
