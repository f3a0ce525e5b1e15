"""The search row: a debounced as-you-type field, a photos/videos filter and the "refining…" indicator."""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QKeyEvent, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QWidget

DEBOUNCE_MS = 250
KINDS = (("Photos and videos", None), ("Photos", "image"), ("Videos", "video"))
WIDEST_TIMING = "500 results · fast 9999 ms · slow 99.9 s"
PLACEHOLDER = "Describe what you remember — “a red circle to the left of a blue square”"


class SearchField(QLineEdit):
    """Down arrow hands the focus to the results, so the keyboard alone goes type → arrows → Enter;
    Escape clears the query (as the clear button does)."""

    move_down = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Down:
            self.move_down.emit()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape and self.text():
            self.clear()
            self.textEdited.emit("")  # a user's edit: the search bar runs the (empty) query
            event.accept()
            return
        super().keyPressEvent(event)


class SearchBar(QWidget):
    """Emits `query_changed(text, kind)` once typing pauses (or at once on Enter)."""

    query_changed = Signal(str, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.field = SearchField(self)
        self.field.setObjectName("searchField")
        self.field.setPlaceholderText(PLACEHOLDER)
        self.field.setClearButtonEnabled(True)
        self.field.setMinimumHeight(34)
        self.field.setAccessibleName("Search")
        self.kind = QComboBox(self)
        self.kind.setAccessibleName("Photos or videos")
        self.kind.setToolTip("Search photos, videos, or both")
        for label, kind in KINDS:
            self.kind.addItem(label, kind)
        self.refining = QWidget(self)  # the "refining…" indicator: a busy bar and a word
        busy = QProgressBar(self.refining)
        busy.setRange(0, 0)  # indeterminate
        busy.setFixedSize(60, 6)
        busy.setTextVisible(False)
        self.refining_label = QLabel("refining…", self.refining)
        self.refining_label.setToolTip("The slow model is re-ranking the best matches")
        row = QHBoxLayout(self.refining)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(busy)
        row.addWidget(self.refining_label)
        self.refining.setVisible(False)
        self.timing = QLabel(self)
        self.timing.setObjectName("timing")
        # Both keep their room while empty or hidden, so the search field never changes width under
        # the user's typing when results, timings and "refining…" come and go.
        policy = self.refining.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.refining.setSizePolicy(policy)
        self.timing.setMinimumWidth(self.timing.fontMetrics().horizontalAdvance(WIDEST_TIMING) + 6)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(self.field, 1)
        layout.addWidget(self.kind)
        layout.addWidget(self.refining)
        layout.addWidget(self.timing)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.submit)
        self.field.textEdited.connect(self._debounce.start)
        self.field.textEdited.connect(lambda _text: self.field.setPlaceholderText(PLACEHOLDER))
        self.field.returnPressed.connect(self.submit)
        self.kind.currentIndexChanged.connect(self.submit)

    @property
    def text(self) -> str:
        return self.field.text().strip()

    @property
    def kind_filter(self) -> str | None:
        return self.kind.currentData()

    def show_like(self, name: str) -> None:
        """Results like a picture are on screen: the empty field says so (until the next typed query)."""
        self.field.clear()
        self.field.setPlaceholderText(f"Showing results like {name} — type to search by words")

    def submit(self) -> None:
        self._debounce.stop()
        self.query_changed.emit(self.text, self.kind_filter)

    def set_refining(self, on: bool) -> None:
        self.refining.setVisible(on)

    def set_timing(self, fast_ms: float | None, slow_ms: float | None, count: int | None = None) -> None:
        """'40 results · fast 65 ms · slow 207 ms'; empty when nothing is known."""
        parts = [] if count is None else [f"{count} result{'' if count == 1 else 's'}"]
        if fast_ms is not None:
            parts.append(f"fast {fast_ms:.0f} ms")
        if slow_ms is not None:
            parts.append(f"slow {slow_ms / 1000:.1f} s" if slow_ms >= 1000 else f"slow {slow_ms:.0f} ms")
        self.timing.setText(" · ".join(parts))
