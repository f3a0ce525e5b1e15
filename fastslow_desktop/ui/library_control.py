"""The controller's library half: folders, index runs (queue, pause, cancel) and the watcher.

A mixin of AppController (same object, same signals); split out so each file reads in one sitting.
Every method returns at once; the work runs in the controller's job pools.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QTimer

from .workers.indexing import OtherWriter, index_library

logger = logging.getLogger(__name__)

OTHER_WRITER_RETRY_MS = 5000  # after another process held the library for the writer lock's whole wait


class LibraryControl:
    """Folders, indexing and watching; needs AppController's pools, signals and state."""

    # -- folders --------------------------------------------------------------------------
    def _with_library(self, action: Callable[[], None]) -> None:
        if self.library is not None:
            action()
        else:
            self._until_library.append(action)

    def add_folders(self, paths: list[str]) -> None:
        """Add folders (the global exclusions apply) and index them."""
        def go() -> None:
            library, exclude = self.library, list(self.config.exclusions)

            def add() -> list[str]:
                return [library.add_root(p, exclude=exclude) for p in paths]

            self._tasks.submit(add, on_result=lambda roots: (self.refresh(), self.index(roots)),
                               on_error=self.library_error.emit)
        self._with_library(go)

    def remove_folder(self, path: str) -> None:
        def go() -> None:
            library = self.library
            if self._index_running:
                self._index_cancel.set()  # removing waits for the index lock: stop the run first
            self._tasks.submit(library.remove_root, path,
                               on_result=lambda _: (self.refresh(), self.folder_removed.emit(path)),
                               on_error=self.library_error.emit)
        self._with_library(go)

    def set_folder_exclusions(self, path: str, patterns: list[str]) -> None:
        """Change one folder's exclusions, then re-scan it (newly excluded files leave the index)."""
        def go() -> None:
            library = self.library
            self._tasks.submit(library.add_root, path, exclude=list(patterns),
                               on_result=lambda root: (self.refresh(), self.index([root])),
                               on_error=self.library_error.emit)
        self._with_library(go)

    def refresh(self) -> None:
        """Re-read roots and status in the library thread (never on the GUI thread)."""
        if self.library is None or self._closing:
            return
        library = self.library

        def read():
            return library.roots(), library.status()

        self._tasks.submit(read, on_result=self._on_refreshed, on_error=self.library_error.emit)

    def _on_refreshed(self, outcome) -> None:
        if self._closing:
            return
        roots, status = outcome
        self.roots_changed.emit(roots)
        self.status_changed.emit(status)

    # -- other writers --------------------------------------------------------------------
    def _check_other_writers(self) -> None:
        """On a timer: has another process (`fastslow index` on this library) written to it? Its folders
        and counts show at once; the query on screen runs again once that writer has gone quiet, not
        after each of its batches."""
        if self.library is None or self._closing or self._polling_writers:
            return
        library, self._polling_writers = self.library, True

        def done() -> None:
            self._polling_writers = False

        def poll() -> tuple[bool, str | None, bool] | None:
            changed = library.changed_elsewhere()
            if changed:
                return True, library.models_chosen_elsewhere(), False
            if library.indexed_elsewhere_now():
                return None  # a run between two commits (slow files, loading models): not quiet yet
            return False, None, library.left_unfinished()

        self._tasks.submit(poll, on_result=lambda outcome: outcome and self._on_other_writers(library, *outcome),
                           on_error=lambda message: logger.warning("checking for other writers: %s", message),
                           on_finished=done)

    def _on_other_writers(self, library, changed: bool, their_models: str | None, unfinished: bool) -> None:
        if self._closing or library is not self.library:
            return
        if unfinished and self._written_elsewhere and self.config.watching:
            self.index(None)  # the other process stopped early (killed, Ctrl+C): the files it left are indexed here
        if their_models:  # follow them: keeping ours would re-embed the library back at the next run
            self._followed_models = their_models  # that process is re-embedding with them, not this app
            self.models_chosen_elsewhere.emit(their_models)
            self.use_models(their_models)
        elif changed:
            self._written_elsewhere = True
            self.written_elsewhere.emit(True)
            self.refresh()
        elif self._written_elsewhere:
            self._written_elsewhere = False
            self.written_elsewhere.emit(False)
            self.refresh()
            if self._last_request is not None and self._pending_request is None:
                self.search(**self._last_request)

    # -- indexing -------------------------------------------------------------------------
    @property
    def indexing(self) -> bool:
        return self._index_running

    @property
    def paused(self) -> bool:
        return self._index_pause.is_set()

    def index(self, paths: list[str] | None = None) -> None:
        """Index everything (None) or some paths; queued behind a running index run."""
        def go() -> None:
            if self._index_running:
                if paths is None:
                    self._index_all_queued = True
                else:
                    self._index_queue = (self._index_queue or set()) | set(paths)
                return
            self._start_index(paths)
        self._with_library(go)

    def retry_failed(self) -> None:
        """Try every failed file again (unchanged ones too), in a full run on the indexing thread."""
        def go() -> None:
            # The index pool runs one job at a time: the request is recorded before the run reads it.
            self._indexer.submit(self.library.retry_failed, on_error=self.index_error.emit)
            self.index(None)
        self._with_library(go)

    def _start_index(self, paths: list[str] | None) -> None:
        self._index_running = True
        self._index_cancel = threading.Event()
        self._indexer.submit(index_library, self.library, paths, self._index_cancel, self._index_pause,
                             with_progress=True, on_progress=self.index_progress.emit,
                             on_result=lambda report: self._on_index_result(report, paths),
                             on_error=self._on_index_error,
                             on_finished=self._on_index_finished)
        self._roots_timer.start()
        self.index_started.emit()

    def _on_index_result(self, report, paths: list[str] | None) -> None:
        if self._closing:
            return
        if isinstance(report, OtherWriter):  # a watched photo must not be dropped: the run waits its turn
            self.waiting_for_writer.emit(f"Waiting: {report.message.split(';')[0]}; FastSlow indexes "
                                         "what changed here once it has finished.")
            QTimer.singleShot(OTHER_WRITER_RETRY_MS, self, lambda: self._closing or self.index(paths))  # not once gone
            report = None
        self._adopt_reembedded()  # before index_finished: a refresh it triggers waits for the new engine
        self.index_finished.emit(report)

    def _on_index_error(self, message: str) -> None:
        if not self._closing:
            self.index_error.emit(message)
            self.index_finished.emit(None)

    def _on_index_finished(self) -> None:
        self._index_running = False
        self._roots_timer.stop()
        if self._closing:
            return
        self.refresh()
        if self._index_all_queued:
            self._index_all_queued, self._index_queue = False, None
            self._start_index(None)
        elif self._index_queue:
            paths, self._index_queue = sorted(self._index_queue), None
            self._start_index(paths)

    def _adopt_reembedded(self) -> None:
        """Once the library is re-embedded with the new models, searches use them (a new engine)."""
        services = self.services
        if services is None or services.reembedding is None or self._adopting:
            return
        new = services.reembedding
        self._adopting = True  # searches wait until it is known which engine answers them

        def build():  # the serving model is read off the GUI thread
            if services.library.serving_model_id != new.model_id:
                return None  # not complete yet (cancelled, or files still to embed)
            return self.engine_factory(services.library, new)

        self._tasks.submit(build, on_result=lambda engine: self._on_reembedded(services, engine),
                           on_error=lambda message: (self._on_reembedded(services, None),
                                                     self.library_error.emit(message)))

    def _on_reembedded(self, services, engine) -> None:
        self._adopting = False
        adopted = engine is not None and not self._closing and self.services is services
        if adopted:
            old = services.engine
            self.services = replace(services, models=services.reembedding, engine=engine, reembedding=None)
            self.ready.emit()
            close = getattr(old, "close", None)
            if close is not None:
                threading.Thread(target=close, name="fastslow-close-engine", daemon=True).start()
        # The query on screen runs (again) on whichever engine answers now.
        request, self._pending_request = self._pending_request or (self._last_request if adopted else None), None
        if request is not None and not self._closing:
            self.search(**request)

    def pause_indexing(self, paused: bool) -> None:
        if paused:
            self._index_pause.set()
        else:
            self._index_pause.clear()

    def cancel_indexing(self) -> None:
        """Stop the run under way (what it indexed so far is kept) and drop the runs queued behind it."""
        self._index_queue, self._index_all_queued = None, False
        self._index_pause.clear()  # a paused run must wake up to see the cancel
        self._index_cancel.set()

    # -- watching -------------------------------------------------------------------------
    def _start_watching(self, library) -> None:
        # The watcher calls back on its own thread: emitting a signal hands the batch to the GUI thread.
        library.watch(on_batch=self._watch_batch.emit)

    def set_watching(self, on: bool) -> None:
        self.config = replace(self.config, watching=on)
        if self.library is None:
            return
        if on:
            self._tasks.submit(self._start_watching, self.library, on_error=self.library_error.emit)
            self.index(None)  # what changed while nobody watched
        else:
            self._tasks.submit(self.library.stop_watching, on_error=self.library_error.emit)

    def _on_watch_batch(self, paths: list[str]) -> None:
        if not self._closing:
            self.index(list(paths))
