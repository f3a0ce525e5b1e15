"""The folders sidebar: each library folder with its state (indexed/total, offline, errors); add, remove, exclusions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QStyle, QVBoxLayout,
                               QWidget)


def root_state(root, counting: bool = False) -> str:
    """'812 / 1000 indexed · 3 errors · offline' for a library RootInfo. `counting`: another process is
    indexing, and a folder's files are counted only as it reaches them, so there is no total to show."""
    count = f"{root.n_indexed} indexed so far" if counting else f"{root.n_indexed} / {root.n_media} indexed"
    parts = [count if root.n_media else "nothing indexed yet"]
    if root.n_errors:
        parts.append(f"{root.n_errors} error{'s' if root.n_errors != 1 else ''}")
    if not root.online:
        parts.append("offline")
    if root.excludes:
        parts.append(f"{len(root.excludes)} excluded pattern{'s' if len(root.excludes) != 1 else ''}")
    return " · ".join(parts)


class FoldersSidebar(QWidget):
    add_requested = Signal()
    remove_requested = Signal(str)  # folder path
    exclusions_requested = Signal(str, list)  # folder path, its current patterns

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel("Folders", self)
        title.setObjectName("sidebarTitle")
        self.list = QListWidget(self)
        self.list.setObjectName("folders")
        self.list.setIconSize(QSize(20, 20))
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(False)
        self.list.setFrameShape(QListWidget.Shape.NoFrame)
        self.list.setAccessibleName("Folders")
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # names wrap; no 3 px scroll
        self.empty = QLabel("Drop photo or video folders here, or use Add.", self)
        self.empty.setWordWrap(True)
        self.empty.setObjectName("hint")
        self.add_button = QPushButton("Add…", self)
        self.add_button.setToolTip("Add a folder of photos and videos")
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Forget this folder (your files are not touched)")
        self.exclude_button = QPushButton("Exclude…", self)
        self.exclude_button.setToolTip("File or folder patterns to skip in this folder")
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for button in (self.add_button, self.remove_button, self.exclude_button):
            button.setAutoDefault(True)  # Enter presses a focused button, as Space does (outside dialogs too)
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(title)
        # With no folders the hint takes the list's place: an empty white list reads as something broken.
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty, 1, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(buttons)

        self._roots: dict[str, object] = {}
        self._counting = False  # another process is indexing (see root_state)
        self.add_button.clicked.connect(self.add_requested)
        self.remove_button.clicked.connect(self._remove)
        self.exclude_button.clicked.connect(self._exclusions)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()
        self.list.setVisible(False)  # no folders until set_roots says otherwise
        self.setMinimumWidth(240)

    def indexed_elsewhere(self, active: bool) -> None:
        """Another process is indexing (True) or has finished: the folders' totals are unknown meanwhile."""
        if active != self._counting:
            self._counting = active
            self.set_roots(list(self._roots.values()))

    def set_roots(self, roots: list) -> None:
        """Refresh in place (keeps the selection while counts change during indexing)."""
        current, row = self.current_path(), self.list.currentRow()
        refocus = self.remove_button.hasFocus() or self.exclude_button.hasFocus()
        self._roots = {r.path: r for r in roots}
        self.list.blockSignals(True)  # no button state (nor focus) flickers while the rows are rebuilt
        self.list.clear()
        folder_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon)
        offline_icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DriveNetIcon)
        for root in roots:
            item = QListWidgetItem(offline_icon if not root.online else folder_icon,
                                   f"{Path(root.path).name or root.path}\n{root_state(root, self._counting)}")
            item.setData(Qt.ItemDataRole.UserRole, root.path)
            item.setToolTip(root.path)
            self.list.addItem(item)
            if root.path == current:
                self.list.setCurrentItem(item)
        removed = current is not None and current not in self._roots
        if removed and self.list.count():
            self.list.setCurrentRow(min(row, self.list.count() - 1))  # its neighbour is next
        self.list.blockSignals(False)
        self.empty.setVisible(not roots)
        self.list.setVisible(bool(roots))
        self._update_buttons()
        # The keyboard stays here, on what comes next: a disabled button would hand it on to whatever
        # follows in the chain, which may be far off in the preview.
        if refocus and removed:
            (self.list if self.list.count() else self.add_button).setFocus(Qt.FocusReason.OtherFocusReason)

    def paths(self) -> list[str]:
        return list(self._roots)

    def state_of(self, path: str) -> str | None:
        root = self._roots.get(path)
        return root_state(root, self._counting) if root is not None else None

    def current_path(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _update_buttons(self) -> None:
        has = self.current_path() is not None
        self.remove_button.setEnabled(has)
        self.exclude_button.setEnabled(has)

    def _remove(self) -> None:
        path = self.current_path()
        if path:
            self.remove_requested.emit(path)

    def _exclusions(self) -> None:
        path = self.current_path()
        if path:
            self.exclusions_requested.emit(path, list(self._roots[path].excludes))
