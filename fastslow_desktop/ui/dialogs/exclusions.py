"""Edit a list of exclusion patterns (one glob per line)."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from ..format import breakable


def parse_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


class PatternsEdit(QPlainTextEdit):
    """One pattern per line; `patterns()` gives the cleaned list."""

    def __init__(self, patterns: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setPlaceholderText("*.tmp\nnode_modules\nPrivate/*")
        # Patterns never contain tabs, and a box that takes Tab traps keyboard users (Tab never leaves it).
        self.setTabChangesFocus(True)
        self.setAccessibleName("Exclusion patterns")
        self.setAccessibleDescription("One file or folder pattern per line, for example *.tmp or Screenshots")
        self.setPlainText("\n".join(patterns or []))

    def patterns(self) -> list[str]:
        return parse_patterns(self.toPlainText())


class ExclusionsDialog(QDialog):
    def __init__(self, folder: str, patterns: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Exclusions")
        self.edit = PatternsEdit(patterns, self)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        intro = QLabel(f"Skip these files and folders inside<br><b>{html.escape(breakable(folder))}</b><br>"
                       "(one pattern per line, e.g. <code>*.tmp</code> or <code>Screenshots</code>):", self)
        intro.setWordWrap(True)  # a long path wraps instead of widening the dialog past the screen
        layout.addWidget(intro)
        layout.addWidget(self.edit)
        layout.addWidget(buttons)
        self.resize(460, 320)

    def patterns(self) -> list[str]:
        return self.edit.patterns()
