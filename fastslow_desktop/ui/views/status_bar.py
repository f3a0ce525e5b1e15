"""The status bar: indexing progress (count, rate, ETA) with pause/resume, the errors button, model state."""

from __future__ import annotations

import re

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton

from ..announce import announce
from ..format import eta


def progress_text(event) -> str:
    """'Indexing 340 / 1000 · 85 files/s · about 8 s left' for a library Progress event."""
    if event.phase == "scanning":
        return "Looking for new and changed files…"
    if event.phase == "saving":
        return "Saving the index…"
    if event.phase == "done":
        return "Indexing done"
    text = f"Indexing {event.done} / {event.total}"
    if event.paused:
        return text + " · paused"
    if event.rate:
        text += f" · {event.rate:.0f} files/s" if event.rate >= 10 else f" · {event.rate:.1f} files/s"
    left = eta(event.eta)
    return text + (f" · {left}" if left else "")


UP_TO_DATE = "Library is up to date"


def report_text(report) -> str:
    """'Indexed 1000 files in 12 s' (+ failures, cancellation) for an IndexReport."""
    if report is None:
        return "Indexing stopped"
    done = report.indexed + report.reembedded
    text = (f"Indexed {done} new file{'s' if done != 1 else ''} in {report.seconds:.0f} s" if done
            else UP_TO_DATE)
    if report.failed:
        text += f" · {report.failed} could not be read"
    if report.offline_roots:
        text += f" · {len(report.offline_roots)} folder(s) offline"
    if report.cancelled:
        text += " · stopped"
    return text


STARTING = "Starting…"  # the message until the library has something to say
QUERY_NOTE_MS = 20_000  # how long the note on an unread part of the query stays


class AppStatusBar(QStatusBar):
    pause_toggled = Signal(bool)  # True: pause
    cancel_clicked = Signal()  # stop indexing (what is done is kept)
    errors_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.message = QLabel(STARTING, self)
        self.message.setObjectName("indexMessage")
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(14)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.pause = QToolButton(self)
        self.pause.setText("Pause")
        self.pause.setCheckable(True)
        self.pause.setToolTip("Pause or resume indexing")
        self.pause.setVisible(False)
        self.cancel = QToolButton(self)
        self.cancel.setObjectName("cancelIndexing")
        self.cancel.setText("Stop")
        self.cancel.setToolTip("Stop indexing; what is indexed so far is kept")
        self.cancel.setVisible(False)
        self.errors = QToolButton(self)
        self.errors.setObjectName("errorsButton")
        self.errors.setAutoRaise(True)
        self.errors.setVisible(False)
        self.errors.setToolTip("Files that could not be read, and why")
        self.models = QLabel(self)
        self.models.setObjectName("modelState")
        self._last_report = ""
        self._query_note = ""
        self._elsewhere = False  # another process (`fastslow index`) is writing to the library
        self.addWidget(self.message, 1)
        self.addPermanentWidget(self.progress)
        self.addPermanentWidget(self.pause)
        self.addPermanentWidget(self.cancel)
        self.addPermanentWidget(self.errors)
        self.addPermanentWidget(self.models)
        self.pause.toggled.connect(self._on_pause)
        self.errors.clicked.connect(self.errors_clicked)
        self.cancel.clicked.connect(self._on_cancel)

    def _on_pause(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    def _on_cancel(self) -> None:
        self.message.setText("Stopping indexing…")
        self.cancel.setEnabled(False)  # one click is enough; index_finished hides it
        self.cancel_clicked.emit()

    def index_started(self) -> None:
        self.clearMessage()  # a "Waiting: another process…" note is over once this app's run starts
        self.message.setText("Looking for new and changed files…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.pause.setVisible(True)
        self.cancel.setEnabled(True)
        self.cancel.setVisible(True)

    def index_progress(self, event) -> None:
        self.message.setText(progress_text(event))
        if event.phase == "indexing" and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        elif event.phase != "indexing":
            self.progress.setRange(0, 0)

    def index_finished(self, report) -> None:
        self._last_report = report_text(report)
        self.message.setText(self._last_report)
        self.progress.setVisible(False)
        self.pause.blockSignals(True)
        self.pause.setChecked(False)
        self.pause.setText("Pause")
        self.pause.blockSignals(False)
        self.pause.setVisible(False)
        self.cancel.setVisible(False)

    def show_summary(self, status: dict) -> None:
        """Between index runs: what the library holds."""
        if self.progress.isVisible():
            return
        photos, videos = status.get("images", 0), status.get("videos", 0)
        folders = len(status.get("roots", []))
        if not folders:
            self.message.setText("No folders yet")
            return
        summary = (f"{photos} photo{'s' if photos != 1 else ''} and {videos} video{'s' if videos != 1 else ''} "
                   f"in {folders} folder{'s' if folders != 1 else ''}")
        last = "another FastSlow process is indexing it" if self._elsewhere else self._last_report
        self.message.setText(summary + (f" · {last}" if last else ""))

    def indexed_elsewhere(self, active: bool) -> None:
        """Another process writes to the library (True) or has finished: this app's last report is old news.
        A run it left unfinished is finished by this app next, whose report then replaces this one."""
        self._elsewhere = active
        if not active:
            self.clearMessage()  # its "Waiting: another process…" note
            self._last_report = UP_TO_DATE

    def set_failures(self, count: int) -> None:
        text = f"{count} file{'s' if count != 1 else ''} failed"
        self.errors.setText(f"⚠ {text}")
        self.errors.setAccessibleName(text)  # not "warning sign …"
        self.errors.setVisible(count > 0)

    def end_starting(self) -> None:
        """Start-up ended without models: "Starting…" would otherwise stay for good."""
        if self.message.text() == STARTING:
            self.message.setText("")

    def set_models(self, text: str) -> None:
        self.models.setText(text)

    def show_query_notes(self, notes: list[str]) -> None:
        """What of the query the models could not read (for a while); a query read whole clears the last one's."""
        # Quoted words kept apart from the sentence (first-strong isolates): a right-to-left query inside the
        # quotes reordered the punctuation around it.
        text = re.sub(r"“([^”]*)”", "“\u2068\\1\u2069”", " ".join(notes))
        if text:
            self.showMessage(text, QUERY_NOTE_MS)
            announce(self, text)
        elif self.currentMessage() and self.currentMessage() == self._query_note:
            self.clearMessage()
        self.setToolTip(text)  # the whole note, when a long query's is cut at the window's edge
        self._query_note = text
