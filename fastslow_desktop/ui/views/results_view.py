"""The results grid: a QListView in icon mode painting each result with one delegate (no per-item widgets).

After re-ranking the grid has sections: the matches, then the results that are only similar. A
section's first row is taller by a band the view paints its heading into, and the last match fills the
rest of its row, so the first non-match starts a new row under the heading.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import (QColor, QFocusEvent, QFont, QKeyEvent, QPainter, QPainterPath, QPalette, QPen,
                           QPixmap, QResizeEvent)
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ...search.types import nothing_matches
from ..models.results import ResultRoles

THUMB = 144  # thumbnail box, pixels
CELL = QSize(THUMB + 20, THUMB + 42)
BAND = 30  # height of a section heading above a section's first row
NOTHING_MATCHES = nothing_matches({"image"})  # over photos; over videos it names videos
MATCHES = "Matches"
SIMILAR = "Similar, not exact"


def section_heads(divider: tuple[str | None, int], count: int, kinds: set[str] = frozenset({"image"})
                  ) -> list[tuple[int, str]]:
    """(first row, heading) of each section of the grid; [] when the results are not judged."""
    state, n = divider
    if state == "none":
        return [(0, nothing_matches(kinds))] if count else []
    if state == "matches":
        return [(0, MATCHES)] + ([(n, SIMILAR)] if n < count else [])
    return []


class ResultDelegate(QStyledItemDelegate):
    """A card: the thumbnail (or a placeholder), a moment badge for videos, the file name."""

    def __init__(self, view: ResultsView):
        super().__init__(view)
        self._view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return self._view.cell_size(index.row())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette: QPalette = option.palette
        card = self._view.card_rect(option.rect, index.row())
        cell = card.adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        focused = self._view.hasFocus()
        if selected or hovered:
            colour = QColor(palette.color(QPalette.ColorRole.Highlight))
            # Full colour only while the grid has the keyboard: the card then reads as "where the keys act".
            colour.setAlpha((255 if focused else 110) if selected else 40)
            path = QPainterPath()
            path.addRoundedRect(cell, 8, 8)
            painter.fillPath(path, colour)
        if focused and option.state & QStyle.StateFlag.State_HasFocus:  # the current card: a ring, as Qt's views
            pen = QPen(palette.color(QPalette.ColorRole.Text), 2)
            painter.setPen(pen)
            painter.drawRoundedRect(cell.adjusted(1, 1, -1, -1), 8, 8)

        box = QRect(cell.left() + (cell.width() - THUMB) // 2, cell.top() + 6, THUMB, THUMB)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = pixmap.deviceIndependentSize().toSize().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            clip = QPainterPath()
            clip.addRoundedRect(target, 4, 4)
            painter.setClipPath(clip)
            painter.drawPixmap(target, pixmap)
            painter.setClipping(False)
        else:
            placeholder = QColor(palette.color(QPalette.ColorRole.Mid))
            placeholder.setAlpha(60)
            path = QPainterPath()
            path.addRoundedRect(box.adjusted(8, 8, -8, -8), 6, 6)
            painter.fillPath(path, placeholder)

        if index.data(ResultRoles.Kind) == "video":
            # The same words as the preview's Moment field, so both name the same moment.
            self._badge(painter, box, "▶ " + (index.data(ResultRoles.Moment) or "0:00"))

        text_rect = QRect(cell.left() + 6, box.bottom() + 6, cell.width() - 12, cell.bottom() - box.bottom() - 6)
        role = QPalette.ColorRole.HighlightedText if selected and focused else QPalette.ColorRole.Text
        painter.setPen(palette.color(role))
        name = option.fontMetrics.elidedText(index.data(Qt.ItemDataRole.DisplayRole) or "",
                                             Qt.TextElideMode.ElideMiddle, text_rect.width())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        painter.restore()

    @staticmethod
    def _badge(painter: QPainter, box: QRect, text: str) -> None:
        painter.save()
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        width, height = metrics.horizontalAdvance(text) + 12, metrics.height() + 4
        rect = QRect(box.left() + 6, box.bottom() - height - 6, width, height)
        path = QPainterPath()
        path.addRoundedRect(rect, height / 2, height / 2)
        painter.fillPath(path, QColor(0, 0, 0, 170))
        painter.setPen(QColor("white"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()


class ResultsView(QListView):
    """Arrows move; Enter opens the current result; Space shows or hides its preview; Escape, Up from the
    first row, or typing goes back to the search field."""

    open_requested = Signal(QModelIndex)
    preview_requested = Signal(QModelIndex)
    back_requested = Signal()  # Escape or Up from the first row: back to the search field
    typed = Signal(str)  # text typed while the grid has the keyboard: it belongs in the search field

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        # Section headings make some rows taller, so item sizes differ; the window shows at most a
        # few hundred results and the layout is batched, so this stays smooth.
        self.setUniformItemSizes(False)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(400)
        self._cell_width = CELL.width()
        self._columns = 1
        self._heads: dict[int, str] = {}  # first row of each section → its heading
        self.setSpacing(0)
        self.setWrapping(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(True)
        self.setItemDelegate(ResultDelegate(self))
        self.setFrameShape(QListView.Shape.NoFrame)
        self.setAccessibleName("Results")
        self.activated.connect(self.open_requested)

    def setModel(self, model) -> None:
        super().setModel(model)
        for signal in (model.modelReset, model.layoutChanged, model.rowsInserted, model.rowsRemoved):
            signal.connect(self._update_sections)
        self._update_sections()

    def _update_sections(self, *_args) -> None:
        model = self.model()
        divider = model.divider() if hasattr(model, "divider") else (None, 0)
        kinds = {model.result(row).kind for row in range(model.rowCount())} if divider[0] == "none" else set()
        self._heads = dict(section_heads(divider, model.rowCount(), kinds))
        self.scheduleDelayedItemsLayout()
        self.viewport().update()

    def headings(self) -> list[str]:
        """The section headings now shown, top to bottom (for tests and accessibility)."""
        return [self._heads[row] for row in sorted(self._heads)]

    def _section_start(self, row: int) -> int:
        return max((start for start in self._heads if start <= row), default=0)

    def cell_size(self, row: int) -> QSize:
        """A card's cell: one column wide (the last of a section fills its row), taller in a first row."""
        if not self._heads:
            return QSize(self._cell_width, CELL.height())
        start = self._section_start(row)
        height = CELL.height() + (BAND if row - start < self._columns else 0)
        width = self._cell_width
        if row + 1 in self._heads:  # the last card before the next section fills its row
            width *= self._columns - (row - start) % self._columns
        return QSize(width, height)

    def card_rect(self, cell: QRect, row: int) -> QRect:
        """The part of a cell the card is painted in (below a heading band, one column wide)."""
        top = BAND if self._heads and row - self._section_start(row) < self._columns else 0
        return QRect(cell.left(), cell.top() + top, self._cell_width, CELL.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        # Spread the columns over the whole width instead of leaving a strip on the right. The
        # scroll bar's width is always set aside: cells sized for the width without it would no
        # longer fit once it appears, and the last column would wrap.
        # A few pixels of slack too: the layout wraps a row whose cells fill the width exactly.
        width = self.width() - 2 * self.frameWidth() - self.verticalScrollBar().sizeHint().width() - 4
        self._columns = max(1, width // CELL.width())
        self._cell_width = max(CELL.width(), width // self._columns)
        super().resizeEvent(event)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if not self._heads or self.model() is None:
            return
        painter = QPainter(self.viewport())
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        colour = self.palette().color(QPalette.ColorRole.Text)
        line = QColor(self.palette().color(QPalette.ColorRole.Mid))
        for row, heading in self._heads.items():
            top = self.visualRect(self.model().index(row, 0)).top()
            band = QRect(12, top, self.viewport().width() - 24, BAND)
            if not band.intersects(event.rect()):
                continue
            if row:  # a rule between sections; the first heading needs none above it
                painter.fillRect(QRect(band.left(), band.top() + 2, band.width(), 1), line)
            painter.setPen(colour)
            painter.drawText(band.adjusted(0, 4, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             heading)
        painter.end()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and self.currentIndex().isValid():
            self.preview_requested.emit(self.currentIndex())
            event.accept()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex())
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape or (event.key() == Qt.Key.Key_Up and self._in_first_row()):
            self.back_requested.emit()
            event.accept()
            return
        text = event.text()
        plain = not event.modifiers() & ~(Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier)
        if plain and text and text.isprintable() and not text.isspace():
            self.typed.emit(text)  # a search app: letters are a query, not a jump to a file name
            event.accept()
            return
        super().keyPressEvent(event)

    def _in_first_row(self) -> bool:
        current = self.currentIndex()
        model = self.model()
        if not current.isValid() or model is None or not model.rowCount():
            return True
        return self.visualRect(current).top() <= self.visualRect(model.index(0, 0)).top()

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        self.viewport().update()  # the current card's ring and full highlight

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.viewport().update()
