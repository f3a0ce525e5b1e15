"""The model chooser: the preset catalogue (size, languages, speed, on disk) and downloading one.

Choosing a preset that is not on disk downloads it here, on a worker thread, with bytes, speed, ETA
and Cancel; a cancelled download keeps its partial file and the next try resumes it. The models in
use keep answering meanwhile: the app switches only after the dialog is accepted.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QProgressBar,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..format import eta
from ..workers.download import CANCELLED, download_preset_job
from ..workers.job import JobRunner

COLUMNS = ("Preset", "Download", "Languages", "Speed", "On this computer", "What it is for")
LANGUAGE_NAMES = {"en": "English", "multi": "many languages"}


def decimal_size(n: float) -> str:
    """Bytes in decimal units, as `fastslow models` and the README give download sizes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def size_text(n: int) -> str:
    return "shipped" if n == 0 else decimal_size(n)


def speed_text(speed: dict) -> str:
    images, text = speed.get("images_per_s"), speed.get("text_ms")
    if images is None and text is None:
        return "not measured"
    # Three significant figures: the measurements vary by more than that between runs.
    parts = [f"{images:.3g} photos/s" if images is not None else "",
             f"{text:.3g} ms per query" if text is not None else ""]
    return ", ".join(p for p in parts if p)


def languages_text(languages: list[str]) -> str:
    return ", ".join(LANGUAGE_NAMES.get(code, code) for code in languages) or "—"


def progress_text(done: int, total: int, speed_bps: float, eta_s: float | None) -> str:
    """'12.0 MB of 605.0 MB · 4.1 MB/s · about 2 min left'."""
    parts = [f"{decimal_size(done)} of {decimal_size(total)}" if total else decimal_size(done)]
    if speed_bps > 0:
        parts.append(f"{decimal_size(speed_bps)}/s")
    if eta_s is not None:
        parts.append(eta(eta_s))
    return " · ".join(parts)


class ModelChooser(QDialog):
    """Rows are models.presets.PresetInfo; `chosen()` is the preset to use once accepted."""

    def __init__(self, rows: list, current: str | None = None, parent: QWidget | None = None,
                 cuda: bool | None = None, preselect: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Choose the search models")
        self.rows = [r for r in rows if not r.legacy or r.name in (current, preselect)]
        self._current = current
        self._cancel: threading.Event | None = None
        self._runner = JobRunner("model-download", 1, self)
        intro = QLabel("FastSlow searches your photos with these models, on this computer. Downloading one "
                       "happens once; after that it works offline, and nothing about your photos is sent "
                       "anywhere." + (f" In use now: <b>{current}</b>." if current else ""), self)
        intro.setWordWrap(True)
        self.table = self._table(current, cuda, preselect or current)
        self.bar = QProgressBar(self)
        self.bar.setVisible(False)
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.use_button = self.buttons.addButton("Use these models", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.use_button.clicked.connect(self._use)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        self.table.itemSelectionChanged.connect(self._sync_button)
        layout = QVBoxLayout(self)
        for widget in (intro, self.table, self.bar, self.detail, self.buttons):
            layout.addWidget(widget)
        self.resize(900, 360)
        self._sync_button()

    def _table(self, current: str | None, cuda: bool | None, preselect: str | None) -> QTableWidget:
        table = QTableWidget(len(self.rows), len(COLUMNS), self)
        table.setHorizontalHeaderLabels(COLUMNS)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # Tab leaves the table for the buttons (else it walks every cell and wraps, changing the selection
        # and the default button on each press); the arrow keys move between rows.
        table.setTabKeyNavigation(False)
        table.setAccessibleName("Search model presets")
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        table.setWordWrap(True)  # "What it is for" wraps in its stretched column instead of ending in "…"
        table.setTextElideMode(Qt.TextElideMode.ElideNone)
        table.horizontalHeader().sectionResized.connect(lambda *_: table.resizeRowsToContents())
        selected = None
        for i, row in enumerate(self.rows):
            about = row.description
            if row.hardware == "cuda" and cuda is False:
                about += " (no CUDA GPU found here: it would run slowly)"
            name = row.name + (" (recommended)" if row.default else "") + (" — in use" if row.name == current else "")
            cells = (name, size_text(row.download_bytes), languages_text(row.languages), speed_text(row.speed),
                     "yes" if row.downloaded else "no", about)
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row.name)
                item.setToolTip(about)
                table.setItem(i, j, item)
            if row.name == preselect:
                selected = i
        table.resizeColumnsToContents()
        # Only the models in use (or asked for) are selected: anything else would make Enter start a download
        # nobody chose. Nothing selected leaves the default button disabled (_sync_button).
        if selected is not None:
            table.selectRow(selected)
        return table

    # -- state ----------------------------------------------------------------------------
    def selected(self):
        """The PresetInfo of the selected row, or None."""
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows else None

    def select(self, name: str) -> None:
        for i, row in enumerate(self.rows):
            if row.name == name:
                self.table.selectRow(i)

    def chosen(self) -> str | None:
        row = self.selected()
        return row.name if row is not None else None

    @property
    def downloading(self) -> bool:
        return self._cancel is not None

    def _sync_button(self) -> None:
        row = self.selected()
        self.use_button.setEnabled(row is not None and not self.downloading)
        self.use_button.setText("Use these models" if row is None or row.downloaded
                                else f"Download ({size_text(row.download_bytes)}) and use")

    # -- download -------------------------------------------------------------------------
    def _use(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.downloaded:
            self.accept()
            return
        self._cancel = threading.Event()
        self.table.setEnabled(False)
        self.bar.setRange(0, 0)
        self.bar.setVisible(True)
        self.detail.setText(f"Connecting to download {row.name}…")
        self.cancel_button.setText("Cancel download")
        self._sync_button()
        self._runner.submit(download_preset_job, row.name, self._cancel, with_progress=True,
                            on_progress=self.set_progress, on_result=self._on_done, on_error=self._on_failed)

    def set_progress(self, p) -> None:
        if self._cancel is None:
            return
        if p.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * p.done / p.total))
        self.detail.setText(progress_text(p.done, p.total, p.speed_bps, p.eta_s))

    def _finish_download(self) -> None:
        self._cancel = None
        self.table.setEnabled(True)
        self.bar.setVisible(False)
        self.cancel_button.setText("Cancel")
        self._sync_button()

    def _on_done(self, outcome: str) -> None:
        row = self.selected()
        self._finish_download()
        if outcome == CANCELLED:
            self.detail.setText("Download cancelled. What was downloaded is kept: downloading again resumes it.")
            return
        if row is not None:  # on disk now: mark it, then the app switches to it
            index = self.rows.index(row)
            self.rows[index] = type(row)(**{**row.to_dict(), "downloaded": True})
            self.table.item(index, 4).setText("yes")
        self.accept()

    def _on_failed(self, message: str) -> None:
        self._finish_download()
        kept = f"\nThe models in use ({self._current}) keep working." if self._current else ""
        self.detail.setText(message + kept)

    def _cancel_clicked(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.detail.setText("Cancelling…")
        else:
            self.reject()

    def reject(self) -> None:  # Esc or the window's close button while downloading: stop it too
        if self._cancel is not None:
            self._cancel.set()
        super().reject()

    def wait_stopped(self, msecs: int = 30_000) -> bool:
        """Wait for the download job (tests; the GUI never waits)."""
        return self._runner.wait(msecs)
