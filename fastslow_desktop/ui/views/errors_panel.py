"""The errors panel: files that could not be indexed, and why (library.status()["failed"])."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QDockWidget, QHeaderView, QTableWidget, QTableWidgetItem


class ErrorsPanel(QDockWidget):
    def __init__(self, parent=None):
        super().__init__("Files that could not be indexed", parent)
        self.setObjectName("errorsPanel")
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(["File", "Why"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # the file's name, at the end, stays in view
        self.setWidget(self.table)

    def set_failures(self, failures: list[dict]) -> None:
        self.table.setRowCount(len(failures))
        for row, failure in enumerate(failures):
            path = QTableWidgetItem(failure.get("path", ""))
            path.setToolTip(failure.get("path", ""))
            why = QTableWidgetItem(failure.get("error") or "unknown error")
            why.setToolTip(failure.get("error") or "")
            self.table.setItem(row, 0, path)
            self.table.setItem(row, 1, why)
        if failures:
            self.table.resizeColumnToContents(0)
            self.table.setColumnWidth(0, min(self.table.columnWidth(0), 420))

    def failures(self) -> list[tuple[str, str]]:
        return [(self.table.item(r, 0).text(), self.table.item(r, 1).text()) for r in range(self.table.rowCount())]
