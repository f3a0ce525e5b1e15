"""The empty state: a first-run welcome that asks for folders, or a hint to start typing."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon, QResizeEvent
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

BODY_WIDTH = 520  # the text's line length, pixels: longer lines are hard to read


class WelcomePage(QWidget):
    add_requested = Signal()
    clear_filters_requested = Signal()

    def __init__(self, icon: QIcon | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("welcome")
        self.logo = QLabel(self)
        self.logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if icon is not None and not icon.isNull():
            self.logo.setPixmap(icon.pixmap(96, 96))
        self.heading = QLabel(self)
        self.heading.setObjectName("welcomeHeading")
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heading.setWordWrap(True)  # unwrapped, the 20 pt line set the window's smallest width
        self.body = QLabel(self)
        self.body.setObjectName("welcomeBody")  # the first run's instructions: body text, not a faint hint
        self.body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body.setWordWrap(True)
        self.add_button = QPushButton("Add folders…", self)
        self.add_button.setObjectName("primary")
        self.add_button.clicked.connect(self.add_requested)
        self.clear_button = QPushButton("Clear filters", self)
        self.clear_button.clicked.connect(self.clear_filters_requested)
        for button in (self.add_button, self.clear_button):
            button.setAutoDefault(True)  # Enter presses a focused button, as Space does
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        layout.addWidget(self.logo)
        layout.addWidget(self.heading)
        # The page's whole width, its lines kept to BODY_WIDTH by side margins (`_fit`): added with an
        # alignment, a word-wrapped label got only its narrow preferred width (a 240 px column of five lines).
        layout.addWidget(self.body)
        layout.addSpacing(12)
        layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.clear_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
        self.show_first_run()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        # A centred word-wrapped label gets its one-line height from the box layout, which cuts the
        # wrapped lines top and bottom: ask for the height its text needs at the width it will have.
        margins = self.layout().contentsMargins()
        width = max(100, self.width() - margins.left() - margins.right())
        pad = max(0, (width - BODY_WIDTH) // 2)
        self.body.setContentsMargins(pad, 0, pad, 0)
        self.body.setMinimumHeight(0)  # QLabel's heightForWidth counts the minimum: it only ever grew
        self.body.setMinimumHeight(self.body.heightForWidth(width))

    def show_first_run(self) -> None:
        self.heading.setText("Welcome to FastSlow")
        self.body.setText("Find photos and moments in videos by describing them. Drag your photo and video "
                          "folders onto this window, or add them here. Everything stays on this computer.")
        self._buttons(add=True)

    def show_hint(self, photos: int, videos: int) -> None:
        self.heading.setText("What are you looking for?")
        self.body.setText(f"Type a description above to search {photos} photo{'s' if photos != 1 else ''} and "
                          f"{videos} video{'s' if videos != 1 else ''}.")
        self._buttons()

    def show_no_results(self, query: str, filters: list[str] | None = None) -> None:
        """Nothing to show for `query`; when filters narrow the search, they are the likely reason: say so."""
        self.heading.setText("Nothing found")
        if filters:
            self.body.setText(f"Nothing matches “{query}” with the filters set ({' · '.join(filters)}). "
                              "Clear them to search everything.")
        else:
            self.body.setText(f"No photos or videos match “{query}” yet. Try other words, or add more folders.")
        self._buttons(clear=bool(filters))

    def _buttons(self, add: bool = False, clear: bool = False) -> None:
        self.add_button.setVisible(add)
        self.clear_button.setVisible(clear)
        self._fit()
