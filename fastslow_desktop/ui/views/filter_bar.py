"""The filter row under the search field: kind, folder, capture-date range and sort order.

It only holds choices: `request_fields()` gives them as SearchRequest fields, and `changed` says one
changed, so the window re-runs its query. The kind combo is the search bar's own (adopted), so the
search bar keeps sending it with every query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import QComboBox, QDateEdit, QFileDialog, QHBoxLayout, QLabel, QWidget

ANY_FOLDER, CHOOSE = "", "\0choose"  # item data of "All folders" and "Choose…"
# (label, key): the date presets; "custom" shows the two date edits.
DATE_PRESETS = (("Any time", "any"), ("Last 30 days", "30d"), ("This year", "year"), ("Last year", "last_year"),
                ("Custom…", "custom"))
SORTS = (("Relevance", "relevance"), ("Newest first", "date"))
FOLDER_TIP = "Only results in this folder and its subfolders"
FOLDER_CHARS = 20  # the folder box's width in characters; longer names are shortened in the middle


def short_name(path: str) -> str:
    """A folder's name as the box shows it: 'Holiday photos…summer 2019' rather than cut off at the edge."""
    name = Path(path).name or path
    if len(name) <= FOLDER_CHARS:
        return name
    half = (FOLDER_CHARS - 1) // 2
    return f"{name[:half]}…{name[-(FOLDER_CHARS - 1 - half):]}"


def preset_range(key: str, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """(first day, last day) of a date preset, both inclusive; None where open."""
    if key == "30d":
        return today - dt.timedelta(days=29), today
    if key == "year":
        return dt.date(today.year, 1, 1), today
    if key == "last_year":
        return dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31)
    return None, None


def _qdate(day: dt.date) -> QDate:
    return QDate(day.year, day.month, day.day)


def _pydate(day: QDate) -> dt.date:
    return dt.date(day.year(), day.month(), day.day())


class _FolderCombo(QComboBox):
    """A combo that knows whether its choice came from stepping through it (arrow keys or the wheel on the
    closed combo, which Qt reports as `activated` too) or from its open list: stepping onto "Choose…"
    must not open a folder dialog."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.stepping = False

    def keyPressEvent(self, event) -> None:
        self.stepping = not self.view().isVisible()
        try:
            super().keyPressEvent(event)
        finally:
            self.stepping = False

    def wheelEvent(self, event) -> None:
        self.stepping = True
        try:
            super().wheelEvent(event)
        finally:
            self.stepping = False


class FilterBar(QWidget):
    """Kind · folder · date · sort; emits `changed` when the user changes any of them."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, kind: QComboBox | None = None,
                 today: Callable[[], dt.date] = dt.date.today):
        super().__init__(parent)
        self.setObjectName("filterBar")
        self._today = today
        self._last_folder = 0  # the folder item to go back to when "Choose…" is cancelled
        # Asked for a folder by "Choose…"; replaced in tests.
        self.ask_folder: Callable[[], str] = lambda: QFileDialog.getExistingDirectory(
            self, "Only results in this folder", str(Path.home()))
        self.kind: QComboBox | None = None
        self.folder = _FolderCombo(self)
        self.folder.setObjectName("folderFilter")
        self.folder.setAccessibleName("Folder filter")
        self.folder.setToolTip(FOLDER_TIP)
        self.folder.setMinimumContentsLength(FOLDER_CHARS)
        self.folder.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.set_roots([])
        self.dates = QComboBox(self)
        self.dates.setObjectName("dateFilter")
        self.dates.setAccessibleName("Date filter")
        self.dates.setToolTip("When the photo or video was taken (camera date, else the file's date)")
        for label, key in DATE_PRESETS:
            self.dates.addItem(label, key)
        self.after = self._date_edit("dateAfter", "Taken on or after this day", dt.timedelta(days=365))
        self.before = self._date_edit("dateBefore", "Taken on or before this day", dt.timedelta(0))
        self.sort = QComboBox(self)
        self.sort.setObjectName("sortOrder")
        self.sort.setAccessibleName("Sort")
        for label, key in SORTS:
            self.sort.addItem(label, key)
        self._layout()
        if kind is not None:
            self.adopt_kind(kind)
        self.folder.activated.connect(self._on_folder)
        self.folder.currentIndexChanged.connect(self._folder_tip)
        self.dates.currentIndexChanged.connect(self._on_dates)
        self.after.dateChanged.connect(self._on_custom_date)
        self.before.dateChanged.connect(self._on_custom_date)
        self.sort.currentIndexChanged.connect(lambda _i: self.changed.emit())

    def _date_edit(self, name: str, tip: str, ago: dt.timedelta) -> QDateEdit:
        edit = QDateEdit(_qdate(self._today() - ago), self)
        edit.setObjectName(name)
        edit.setToolTip(tip)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        edit.setVisible(False)
        return edit

    def _layout(self) -> None:
        self._row = row = QHBoxLayout(self)
        row.setContentsMargins(10, 0, 10, 6)
        row.setSpacing(6)
        row.addWidget(self.folder)
        row.addWidget(self.dates)
        self._to = QLabel("to", self)
        self._to.setVisible(False)
        for widget in (self.after, self._to, self.before):
            row.addWidget(widget)
        row.addStretch(1)
        sort_label = QLabel("&Sort:", self)
        sort_label.setBuddy(self.sort)  # Alt+S, and a screen reader names the combo by its label
        row.addWidget(sort_label)
        row.addWidget(self.sort)

    def adopt_kind(self, combo: QComboBox) -> None:
        """Show the search bar's photos/videos combo first in this row (it keeps its own signals)."""
        old = combo.parentWidget().layout() if combo.parentWidget() else None
        if old is not None:
            old.removeWidget(combo)
        self.kind = combo
        self._row.insertWidget(0, combo)

    def install(self, window, layout) -> None:
        """Place this row under the window's search bar and wire it: library folders come in, and a
        changed filter re-runs the current query."""
        layout.insertWidget(layout.indexOf(window.search_bar) + 1, self)
        window.controller.roots_changed.connect(self.set_roots)
        self.changed.connect(window.search_bar.submit)

    # -- what the filters ask for --------------------------------------------------------------
    def request_fields(self) -> dict:
        """folder, date_from, date_to and sort as SearchRequest fields (kind travels with the search bar)."""
        folder = self.folder.currentData() or None
        key = self.dates.currentData()
        if key == "custom":
            start, end = sorted((_pydate(self.after.date()), _pydate(self.before.date())))
        else:
            start, end = preset_range(key, self._today())
        return {"folder": folder if folder != CHOOSE else None, "date_from": start, "date_to": end,
                "sort": self.sort.currentData()}

    def active(self) -> list[str]:
        """The filters that narrow the search now, in words ("Videos", "in Holiday", "Last year")."""
        words = []
        if self.kind is not None and self.kind.currentData():
            words.append(self.kind.currentText())
        if self.folder.currentData() not in (ANY_FOLDER, CHOOSE, None):
            words.append(f"in {Path(self.folder.currentData()).name or self.folder.currentData()}")
        if self.dates.currentData() == "custom":
            start, end = sorted((_pydate(self.after.date()), _pydate(self.before.date())))
            words.append(f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")
        elif self.dates.currentData() != "any":
            words.append(self.dates.currentText())
        return words

    def clear(self) -> None:
        """Every filter back to 'all' (the sort order is not a filter); one `changed` for the lot."""
        widgets = [w for w in (self.kind, self.folder, self.dates) if w is not None]
        for widget in widgets:
            widget.blockSignals(True)
            widget.setCurrentIndex(0)
            widget.blockSignals(False)
        self._last_folder = 0
        for widget in (self.after, self._to, self.before):
            widget.setVisible(False)
        self.changed.emit()

    # -- folders ---------------------------------------------------------------------------------
    def set_roots(self, roots: list) -> None:
        """The library's folders (RootInfo or paths); a chosen folder and the selection are kept."""
        current = self.folder.currentData()
        chosen = [self.folder.itemData(i) for i in range(self.folder.count())
                  if self.folder.itemData(i) not in (ANY_FOLDER, CHOOSE)]
        paths = [getattr(r, "path", r) for r in roots]
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem("All folders", ANY_FOLDER)
        for path in dict.fromkeys(paths + [p for p in chosen if p == current]):
            self.folder.addItem(short_name(path), path)
            self.folder.setItemData(self.folder.count() - 1, path, role=Qt.ItemDataRole.ToolTipRole)
        self.folder.addItem("Choose…", CHOOSE)
        index = self.folder.findData(current) if current else 0
        self.folder.setCurrentIndex(max(0, index))
        self._last_folder = self.folder.currentIndex()
        self.folder.blockSignals(False)
        self._folder_tip()

    def select_folder(self, path: str) -> None:
        """Filter to `path` (added to the list when it is not a library folder)."""
        index = self.folder.findData(path)
        if index < 0:
            index = self.folder.count() - 1  # before "Choose…"
            self.folder.insertItem(index, short_name(path), path)
            self.folder.setItemData(index, path, role=Qt.ItemDataRole.ToolTipRole)
        changed = index != self.folder.currentIndex()
        self.folder.setCurrentIndex(index)
        self._last_folder = index
        if changed:
            self.changed.emit()

    def _folder_tip(self, _index: int = 0) -> None:
        path = self.folder.currentData()
        self.folder.setToolTip(path if path not in (ANY_FOLDER, CHOOSE, None) else FOLDER_TIP)

    def _on_folder(self, index: int) -> None:
        if self.folder.itemData(index) == CHOOSE:
            self.folder.setCurrentIndex(self._last_folder)  # until a folder is picked
            if self.folder.stepping:  # arrowed onto it: the dialog opens from the open list (Space, Alt+↓)
                return
            path = self.ask_folder()
            if path:
                self.select_folder(str(Path(path).resolve()))
            return
        self.folder.setCurrentIndex(index)  # `activated` may come from a keyboard or a test, not a click
        if index != self._last_folder:
            self._last_folder = index
            self.changed.emit()

    # -- dates -----------------------------------------------------------------------------------
    def _on_dates(self, _index: int) -> None:
        custom = self.dates.currentData() == "custom"
        for widget in (self.after, self._to, self.before):
            widget.setVisible(custom)
        self.changed.emit()

    def _on_custom_date(self, _day: QDate) -> None:
        if self.dates.currentData() == "custom":
            self.changed.emit()
