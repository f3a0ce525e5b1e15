"""The model download dialog: bytes, speed, time left, cancel; the controller runs the download in a worker."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from .models import decimal_size, progress_text


class DownloadDialog(QDialog):
    start_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, repos: list[str], parent: QWidget | None = None, size: int | None = None):
        super().__init__(parent)
        self.setWindowTitle("Download the search models")
        self.setModal(False)
        amount = f"{decimal_size(size)} from " if size else ""
        self.text = QLabel(
            f"FastSlow needs to download its search models once ({amount}" + ", ".join(repos) + "). After "
            "that it works offline. Nothing about your photos is sent anywhere.", self)
        self.text.setWordWrap(True)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)
        self.bar.setVisible(False)
        self.detail = QLabel(self)
        self.buttons = QDialogButtonBox(self)
        self.download_button = self.buttons.addButton("Download", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.download_button.clicked.connect(self._start)
        self.cancel_button.clicked.connect(self._cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        layout.addWidget(self.buttons)
        self.resize(480, 180)
        self._running = False

    def _start(self) -> None:
        self._running = True
        self.download_button.setEnabled(False)
        self.bar.setVisible(True)
        self.detail.setText("Connecting…")
        self.start_requested.emit()

    def _cancel(self) -> None:
        if self._running:
            self.detail.setText("Cancelling…")
            self.cancel_requested.emit()
        else:
            self.reject()

    def set_progress(self, p) -> None:
        """`p`: models.hub.DownloadProgress."""
        if p.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * p.done / p.total))
        self.detail.setText(progress_text(p.done, p.total, p.speed_bps, p.eta_s))

    def finish(self, ok: bool, message: str) -> None:
        self._running = False
        if ok:
            self.accept()
        else:
            self.reject()
