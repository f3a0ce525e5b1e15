"""The main window's dialogs and model state: the model chooser, download consent, which models answer
(and falling back to them), Settings (and applying them), folder removal and exclusions.

A mixin of MainWindow (same object); the window module keeps the wiring, this one the conversations.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from .dialogs.download import DownloadDialog
from .dialogs.exclusions import ExclusionsDialog
from .dialogs.models import ModelChooser, languages_text
from .dialogs.settings import SettingsDialog
from .services import ServiceConfig

OFFLINE_HELP = ("To search without downloading, use a model bundle on disk: start with "
                "“fastslow --models PATH” or choose a bundle folder in Settings — or try "
                "“fastslow demo”, which works offline.")


class WindowDialogs:
    """Needs MainWindow's controller, settings, status bar, sidebar, results model and search bar."""

    # -- model chooser and download ---------------------------------------------------------
    def open_model_chooser(self, first_run: bool = False) -> ModelChooser:
        """The catalogue; a preset chosen there is downloaded in the dialog, then the app switches to it."""
        from fastslow_desktop.models.presets import preset_infos

        from .dialogs.settings import cuda_available

        config = self.controller.config
        # "In use" only for models that are loaded and answering, not ones that never came (offline).
        in_use = config.models if self.controller.is_ready and not first_run else None
        dialog = ModelChooser(preset_infos(), current=in_use, parent=self, cuda=cuda_available(),
                              preselect=config.models)
        self._model_chooser = dialog
        dialog.accepted.connect(lambda: self._use_models(dialog.chosen()))
        # Closing the app stops a download under way (its worker would otherwise hold the quit).
        stop = lambda stopping: stopping and dialog.downloading and dialog.reject()  # noqa: E731
        self.controller.stopping_changed.connect(stop)
        dialog.finished.connect(lambda _result: self.controller.stopping_changed.disconnect(stop))
        if first_run:
            dialog.rejected.connect(lambda: self._on_failed(
                "No search models yet: choose and download them (File › Models…), or use a bundle folder in "
                "Settings.", True))
        dialog.show()
        return dialog

    def _use_models(self, name: str | None) -> None:
        if not name or (name == self.controller.config.models and self.controller.is_ready):
            return
        self.settings.models = name
        self.status.set_models(f"Switching to {name}…")
        self.controller.use_models(name)

    def _on_ready(self) -> None:
        self._show_models(self.controller.services.models)
        if not self._keep_banner:
            self.banner.hide()
        self._keep_banner = False

    def _on_failed(self, message: str, offline: bool) -> None:
        self.status.set_models("Models unavailable")
        self.status.end_starting()
        # the hub's own message already gives the way out; say it once
        text = message if not offline or "fastslow demo" in message else f"{message}\n{OFFLINE_HELP}"
        self.banner.show_message(text, "Settings…")

    def _refresh_results(self, report) -> None:
        """An index run added, changed or removed media: the query on screen runs again."""
        if report is not None and any(getattr(report, key, 0) for key in ("indexed", "moved", "removed")):
            self._run_again()

    def _run_again(self, *_) -> None:
        """The library changed under the results on screen (an index run, a folder removed): search again."""
        query = self.search_bar.field.text().strip()
        if query and query == self._query and self.controller.is_ready:
            self.run_query(query, self.search_bar.kind_filter)

    def _show_models(self, models) -> None:
        """The status bar says which models answer and what they understand (tooltip: what they are for)."""
        from fastslow_desktop.models.presets import entry

        name = getattr(models, "name", "models")
        spec = entry(getattr(models, "spec", None) or name) or {}
        languages = languages_text(spec.get("languages", [])) if spec.get("languages") else ""
        self.status.set_models(f"Models: {name}" + (f" ({languages})" if languages else ""))
        self.status.models.setToolTip(spec.get("description", f"Model bundle {getattr(models, 'folder', '')}"))

    def _on_kept_models(self, message: str, kept: str) -> None:
        self._keep_banner = True
        self.settings.models = kept  # Settings shows the models in use
        self.status.set_models(f"Switching back to {kept}…")
        self.banner.show_message(f"{message}\nFastSlow keeps using {kept}.", "Settings…")

    def _on_models_chosen_elsewhere(self, spec: str) -> None:
        self.settings.models = spec  # Settings shows the models in use
        self.status.set_models(f"Switching to {spec}, which another FastSlow process indexed this library with…")

    def _on_reembedding(self, current: str, new: str, elsewhere: bool = False) -> None:
        who = "another FastSlow process is " if elsewhere else ""
        self.status.set_models(f"Models: {current}; {who}re-embedding with {new}…")
        answer = f"searches use {current} until it is done" if current != new else "searches work when it is done"
        by = " by another FastSlow process" if elsewhere else ""
        self.status.showMessage(f"The library is being re-embedded with {new}{by}; {answer}.", 10_000)

    def _on_needs_download(self, repos: list[str]) -> None:
        from fastslow_desktop.library.models_spec import has_embeddings
        from fastslow_desktop.models.presets import entry, preset_infos

        config = self.controller.config
        if entry(config.models) is not None and not has_embeddings(config.library_dir):
            self.open_model_chooser(first_run=True)  # a new library: let the person pick its models
            return
        row = next((r for r in preset_infos() if r.name == config.models), None)
        dialog = DownloadDialog(repos, self, size=row.download_bytes if row is not None else None)
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
                                      "of them is removed.",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)  # Enter keeps it: indexing again takes long
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.remove_folder(path)

    def _edit_exclusions(self, path: str, patterns: list[str]) -> None:
        dialog = ExclusionsDialog(path, patterns, self)
        if dialog.exec():
            self.controller.set_folder_exclusions(path, dialog.patterns())

    # -- settings -------------------------------------------------------------------------
    def open_settings(self) -> None:
        in_use = self.controller.config.models
        if in_use and self.settings.models != in_use:  # the library's own models, not a default never used
            self.settings.models = in_use
        dialog = SettingsDialog(self.settings, self.controller.presets(), self,
                                current_library=self.controller.config.library_dir)
        if dialog.exec():
            self.apply_settings(dialog.save())

    def apply_settings(self, changed: set[str]) -> None:
        """Take changed settings into use: reload services only when models or library changed."""
        s = self.settings
        config = self.controller.config
        if "library" in changed and s.library and Path(s.library).expanduser().exists() \
                and not Path(s.library).expanduser().is_dir():
            QMessageBox.warning(self, "Library folder", f"{s.library} is a file, not a folder: FastSlow keeps "
                                f"the library at {config.library_dir}.")
            s.library = str(config.library_dir)
            changed = changed - {"library"}
        if changed & {"models", "device", "library"}:
            library = Path(s.library).expanduser() if s.library else config.library_dir
            # Other models only when asked for: a device change keeps the ones in use, another library
            # brings its own (as at start-up).
            if "models" in changed:
                models = s.models
            elif library != config.library_dir:
                from fastslow_desktop.library.models_spec import stored_spec

                models = stored_spec(library) or s.models
            else:
                models = config.models
            new = ServiceConfig(library_dir=library, models=models, device=s.device, k=s.k, beta=s.beta,
                                exclusions=s.exclusions, watching=s.watching)
            if new.library_dir != config.library_dir:  # other models for the same library keep its folders shown
                self.results_model.set_results([])
                self.sidebar.set_roots([])
            self.controller.restart(new)  # "Stopping…", then "Loading…": the GUI thread never waits
            if self._query:
                self.run_query(self._query, self.search_bar.kind_filter)
            return
        if changed & {"k", "beta", "exclusions"}:
            self.controller.update_search(k=s.k, beta=s.beta, exclusions=s.exclusions)
            if changed & {"k", "beta"}:
                self._run_again()  # the results on screen were ranked with the old K and β
        if "watching" in changed:
            self.controller.set_watching(s.watching)
