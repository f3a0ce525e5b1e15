"""A message strip above the results for problems the user can act on (models missing, offline)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton


class Banner(QFrame):
    action_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # messages hold paths: "<2019>" is a name, not a tag
        self.label.setOpenExternalLinks(False)
        self.button = QPushButton("Settings…", self)
        self.close_button = QPushButton("✕", self)
        self.close_button.setObjectName("bannerClose")
        self.close_button.setFlat(True)
        self.close_button.setFixedWidth(28)
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss")
        for button in (self.button, self.close_button):
            button.setAutoDefault(True)  # Enter presses a focused button, as Space does
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        layout.addWidget(self.close_button)
        self.button.clicked.connect(self.action_clicked)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def show_message(self, text: str, action: str | None = "Settings…") -> None:
        self.label.setText(text)
        self.button.setVisible(action is not None)
        if action:
            self.button.setText(action)
        self.show()
