"""Telling a screen reader what changed where nothing took the focus (result counts, failures)."""

from __future__ import annotations

from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QWidget

try:  # Qt 6.8 and newer
    from PySide6.QtGui import QAccessibleAnnouncementEvent
except ImportError:  # pragma: no cover - an older Qt: the text stays on screen only
    QAccessibleAnnouncementEvent = None


def announce(widget: QWidget, text: str) -> None:
    """Have an active screen reader say `text` (a polite announcement: it waits for what it is saying)."""
    if QAccessibleAnnouncementEvent is None or not text or not QAccessible.isActive():
        return
    QAccessible.updateAccessibility(QAccessibleAnnouncementEvent(widget, text))
