"""The main window's dialogs: model download consent, Settings (and applying them), folder removal and exclusions.

A mixin of MainWindow (same object); the window module keeps the wiring, this one the conversations.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from .dialogs.download import DownloadDialog
from .dialogs.exclusions import ExclusionsDialog
from .dialogs.settings import SettingsDialog
from .services import ServiceConfig


class WindowDialogs:
    """Needs MainWindow's controller, settings, status bar, sidebar, results model and search bar."""

    # -- models download ------------------------------------------------------------------
    def _on_needs_download(self, repos: list[str]) -> None:
        dialog = DownloadDialog(repos, self)
        self._download_dialog = dialog
        dialog.start_requested.connect(self.controller.download)
        dialog.cancel_requested.connect(self.controller.cancel_download)
        self.controller.download_progress.connect(dialog.set_progress)
        self.controller.download_finished.connect(dialog.finish)
        dialog.finished.connect(lambda result: self._download_closed(dialog, result))
        dialog.show()

    def _download_closed(self, dialog: DownloadDialog, result: int) -> None:
        self.controller.download_progress.disconnect(dialog.set_progress)
        self.controller.download_finished.disconnect(dialog.finish)
        if not result and not self.controller.is_ready:
            self._on_failed("The search models were not downloaded.", True)

    # -- folders --------------------------------------------------------------------------
    def _remove_folder(self, path: str) -> None:
        answer = QMessageBox.question(self, "Remove folder",
                                      f"Stop searching {path}?\nYour files are not touched; only FastSlow's index "
                                      "of them is removed.")
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.remove_folder(path)

    def _edit_exclusions(self, path: str, patterns: list[str]) -> None:
        dialog = ExclusionsDialog(path, patterns, self)
        if dialog.exec():
            self.controller.set_folder_exclusions(path, dialog.patterns())

    # -- settings -------------------------------------------------------------------------
    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self.controller.presets(), self)
        if dialog.exec():
            self.apply_settings(dialog.save())

    def apply_settings(self, changed: set[str]) -> None:
        """Take changed settings into use: reload services only when models or library changed."""
        s = self.settings
        config = self.controller.config
        if changed & {"models", "device", "library"}:
            library = Path(s.library).expanduser() if s.library else config.library_dir
            new = ServiceConfig(library_dir=library, models=s.models, device=s.device, k=s.k, beta=s.beta,
                                exclusions=s.exclusions, watching=s.watching)
            self.results_model.set_results([])
            self.sidebar.set_roots([])
            self.controller.restart(new)  # "Stopping…", then "Loading…": the GUI thread never waits
            if self._query:
                self.run_query(self._query, self.search_bar.kind_filter)
            return
        if changed & {"k", "beta", "exclusions"}:
            self.controller.update_search(k=s.k, beta=s.beta, exclusions=s.exclusions)
        if "watching" in changed:
            self.controller.set_watching(s.watching)
