"""The results grid: a QListView in icon mode painting each result with one delegate (no per-item widgets)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPainterPath, QPalette, QPixmap, QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ..format import clock
from ..models.results import ResultRoles

THUMB = 144  # thumbnail box, pixels
CELL = QSize(THUMB + 20, THUMB + 42)


class ResultDelegate(QStyledItemDelegate):
    """A card: the thumbnail (or a placeholder), a moment badge for videos, the file name."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return CELL

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette: QPalette = option.palette
        cell = option.rect.adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        if selected or hovered:
            colour = QColor(palette.color(QPalette.ColorRole.Highlight))
            colour.setAlpha(255 if selected else 40)
            path = QPainterPath()
            path.addRoundedRect(cell, 8, 8)
            painter.fillPath(path, colour)

        box = QRect(cell.left() + (cell.width() - THUMB) // 2, cell.top() + 6, THUMB, THUMB)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pixmap, QPixmap) and not pixmap.isNull():
            size = pixmap.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
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
            self._badge(painter, box, "▶ " + clock(index.data(ResultRoles.TimeStart) or 0.0))

        text_rect = QRect(cell.left() + 6, box.bottom() + 6, cell.width() - 12, cell.bottom() - box.bottom() - 6)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
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
    """Arrows move; Enter opens the current result; Space previews it."""

    open_requested = Signal(QModelIndex)
    preview_requested = Signal(QModelIndex)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)  # constant-time layout: smooth with 10 000 results
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(400)
        self.setGridSize(CELL)
        self.setSpacing(0)
        self.setWrapping(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(True)
        self.setItemDelegate(ResultDelegate(self))
        self.setFrameShape(QListView.Shape.NoFrame)
        self.activated.connect(self.open_requested)

    def resizeEvent(self, event: QResizeEvent) -> None:
        # Spread the columns over the whole width instead of leaving a strip on the right.
        columns = max(1, self.viewport().width() // CELL.width())
        grid = QSize(self.viewport().width() // columns, CELL.height())
        if grid != self.gridSize():
            self.setGridSize(grid)
        super().resizeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and self.currentIndex().isValid():
            self.preview_requested.emit(self.currentIndex())
            event.accept()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_requested.emit(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)
