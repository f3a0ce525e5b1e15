"""The app controller: owns the services and worker threads; the window talks to it through signals.

Built once by the composition root (app.py) and passed to the window. Every call here returns at
once; the work runs in job pools and comes back as signals on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal

from .services import EngineFactory, ServiceConfig, Services, default_engine_factory, default_request_factory
from .workers.download import download_models
from .workers.indexing import index_library
from .workers.job import JobRunner
from .workers.search import run_fast, run_refine
from .workers.startup import NeedsDownload, StartupFailed, StartupStep, load_services, warm_slow

logger = logging.getLogger(__name__)

ROOTS_REFRESH_MS = 1000  # sidebar counts while indexing


class AppController(QObject):
    # models and start-up
    loading = Signal(str)  # what is being loaded
    ready = Signal()  # searchable
    warmed = Signal()  # the slow model is loaded too (re-ranking starts without a load)
    failed = Signal(str, bool)  # message, offline
    needs_download = Signal(list)  # hub repositories
    download_progress = Signal(int, int)  # bytes done, total
    download_finished = Signal(bool, str)  # ok, message
    # search
    stage1 = Signal(object)  # StageResult
    stage2 = Signal(object)  # StageResult
    refining = Signal(bool)
    search_failed = Signal(str)
    # library
    roots_changed = Signal(list)  # [RootInfo]
    status_changed = Signal(dict)  # library.status()
    index_started = Signal()
    index_progress = Signal(object)  # library Progress
    index_finished = Signal(object)  # IndexReport, or None after an error
    index_error = Signal(str)
    library_error = Signal(str)
    # the watcher's thread emits this; Qt queues it to the GUI thread
    _watch_batch = Signal(list)

    def __init__(self, config: ServiceConfig, engine_factory: EngineFactory | None = None,
                 request_factory: Callable | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.config = config
        self.engine_factory = engine_factory or default_engine_factory
        self.request_factory = request_factory or default_request_factory
        self.services: Services | None = None
        self.library = None  # open before the models are warm
        self._startup = JobRunner("startup", 1, self)
        self._tasks = JobRunner("library", 1, self)
        self._indexer = JobRunner("index", 1, self)
        self._fast = JobRunner("search-fast", 1, self)
        self._slow = JobRunner("search-slow", 1, self)
        self._generation = 0
        self._refine_cancel: threading.Event | None = None
        self._pending_request: dict | None = None
        self._until_library: list[Callable[[], None]] = []
        self._index_cancel = threading.Event()
        self._index_pause = threading.Event()
        self._index_running = False
        self._index_queue: set[str] | None = None  # paths waiting; empty set = nothing
        self._index_all_queued = False
        self._download_cancel: threading.Event | None = None
        self._startup_cancel = threading.Event()
        self._closing = False
        self._roots_timer = QTimer(self)
        self._roots_timer.setInterval(ROOTS_REFRESH_MS)
        self._roots_timer.timeout.connect(self.refresh)
        self._watch_batch.connect(self._on_watch_batch)

    # -- start-up -------------------------------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.services is not None

    def start(self, skip_download_check: bool = False) -> None:
        """Load models and library in the background; `ready` when searchable."""
        self.loading.emit("Loading the search models…")
        self._startup_cancel = cancel = threading.Event()
        # Each run's callbacks check its own cancel event: a run stopped by restart() stays silent.
        self._startup.submit(load_services, self.config, self.engine_factory, cancel,
                             skip_download_check=skip_download_check, with_progress=True,
                             on_progress=lambda step: cancel.is_set() or self._on_startup_step(step),
                             on_result=lambda outcome: self._on_startup_result(outcome, cancel),
                             on_error=lambda msg: self._on_startup_result(StartupFailed(msg), cancel))

    def _on_startup_step(self, step: StartupStep) -> None:
        if self._closing:
            return
        self.loading.emit(step.message)
        if step.library is not None and self.library is None:
            self.library = step.library
            self.refresh()
            for action in self._until_library:
                action()
            self._until_library.clear()

    def _on_startup_result(self, outcome, cancel: threading.Event) -> None:
        if self._closing or cancel.is_set():
            if isinstance(outcome, Services):
                outcome.library.close()
            return
        if isinstance(outcome, NeedsDownload):
            self._needs = outcome
            self.needs_download.emit(outcome.repos)
        elif isinstance(outcome, StartupFailed):
            self.failed.emit(outcome.message, outcome.offline)
        else:
            self.services = outcome
            self.library = outcome.library
            self.ready.emit()
            self._startup.submit(warm_slow, outcome, on_finished=self.warmed.emit)
            if self.config.watching:
                self._tasks.submit(self._start_watching, outcome.library,
                                   on_error=self.library_error.emit)
            if self._pending_request is not None:
                request, self._pending_request = self._pending_request, None
                self.search(**request)

    def download(self) -> None:
        """Fetch the preset's weights (after the user agreed); then start-up goes on."""
        self._download_cancel = threading.Event()
        self._startup.submit(download_models, self._needs.models, self._download_cancel, with_progress=True,
                             on_progress=lambda p: self.download_progress.emit(int(p[0]), int(p[1])),
                             on_result=lambda _: self._on_downloaded(True, ""),
                             on_error=lambda msg: self._on_downloaded(False, msg))

    def cancel_download(self) -> None:
        if self._download_cancel is not None:
            self._download_cancel.set()

    def _on_downloaded(self, ok: bool, message: str) -> None:
        self.download_finished.emit(ok, message)
        if ok:
            self.start(skip_download_check=True)
        else:
            self.failed.emit(message, True)

    def restart(self, config: ServiceConfig) -> None:
        """New models, device or library folder: close the services and build them again."""
        self._stop_services()
        self._closing = False
        self.config = config
        self.start()

    def _stop_services(self) -> None:
        self._closing = True
        self._startup_cancel.set()
        self._generation += 1
        self._roots_timer.stop()
        if self._refine_cancel is not None:
            self._refine_cancel.set()
        self._index_cancel.set()
        self._index_pause.clear()
        self._index_queue, self._index_all_queued = None, False
        for runner in (self._fast, self._slow, self._tasks, self._indexer):
            runner.clear()
        for runner in (self._startup, self._fast, self._slow, self._tasks, self._indexer):
            if not runner.wait(30000):
                logger.warning("%s jobs did not stop in time", runner.pool.objectName())
        engine = getattr(self.services, "engine", None)
        if engine is not None and hasattr(engine, "close"):
            engine.close()
        if self.library is not None:
            try:
                self.library.close()
            except Exception as exc:  # closing must not stop the app from quitting
                logger.warning("closing the library: %s", exc)
        self.services, self.library = None, None
        self._index_running = False
        self._index_cancel = threading.Event()

    def shutdown(self) -> None:
        """Cancel everything, wait for the workers, close the library (the window is closing)."""
        self._stop_services()

    # -- search ---------------------------------------------------------------------------
    def search(self, **request) -> None:
        """Stage 1 now (or as soon as the models are ready), then stage 2; a newer call cancels both."""
        self._generation += 1
        if self._refine_cancel is not None:
            self._refine_cancel.set()
            self._refine_cancel = None
        if not self.is_ready:
            self._pending_request = request  # runs when the models are ready
            return
        generation = self._generation
        try:
            req = self.request_factory(**request)
        except Exception as exc:
            self.search_failed.emit(str(exc))
            return
        self._fast.submit(run_fast, self.services.engine, req, generation, lambda: self._generation,
                          on_result=self._on_stage1, on_error=self.search_failed.emit)

    def cancel_search(self) -> None:
        """The query was cleared: drop whatever is queued or refining."""
        self._generation += 1
        self._pending_request = None
        if self._refine_cancel is not None:
            self._refine_cancel.set()
            self._refine_cancel = None

    def update_search(self, k: int | None, beta: float | None, exclusions: list[str]) -> None:
        """New K, β or default exclusions from Settings (no reload needed)."""
        self.config = replace(self.config, k=k, beta=beta, exclusions=list(exclusions))
        if self.services is not None and beta is not None:
            self.services.models.rerank_config.beta = float(beta)

    def presets(self) -> list[str]:
        """Model presets known once the models package is loaded (a short default list before)."""
        return list(self.services.presets) if self.services is not None else []

    def _on_stage1(self, outcome) -> None:
        if outcome is None or self._closing:
            return
        generation, stage1 = outcome
        if generation != self._generation:
            return
        self.stage1.emit(stage1)
        if getattr(stage1.request, "rerank", True) and stage1.results:
            cancel = threading.Event()
            self._refine_cancel = cancel
            self.refining.emit(True)
            self._slow.submit(run_refine, self.services.engine, stage1, cancel, generation,
                              on_result=self._on_stage2, on_error=self._on_refine_error,
                              on_finished=self._on_refine_finished)

    def _on_stage2(self, outcome) -> None:
        if outcome is None or self._closing:
            return
        generation, stage2 = outcome
        if generation == self._generation:
            self.stage2.emit(stage2)

    def _on_refine_error(self, message: str) -> None:
        self.search_failed.emit(f"Re-ranking failed: {message}")

    def _on_refine_finished(self) -> None:
        # The indicator stays on while a newer query's refine is still queued or running.
        if not self._slow.busy:
            self.refining.emit(False)

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
            self._tasks.submit(library.remove_root, path, on_result=lambda _: self.refresh(),
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

    def _start_index(self, paths: list[str] | None) -> None:
        self._index_running = True
        self._index_cancel = threading.Event()
        self._indexer.submit(index_library, self.library, paths, self._index_cancel, self._index_pause,
                             with_progress=True, on_progress=self.index_progress.emit,
                             on_result=self._on_index_result, on_error=self._on_index_error,
                             on_finished=self._on_index_finished)
        self._roots_timer.start()
        self.index_started.emit()

    def _on_index_result(self, report) -> None:
        if not self._closing:
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

    def pause_indexing(self, paused: bool) -> None:
        if paused:
            self._index_pause.set()
        else:
            self._index_pause.clear()

    def cancel_indexing(self) -> None:
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
        else:
            self._tasks.submit(self.library.stop_watching, on_error=self.library_error.emit)

    def _on_watch_batch(self, paths: list[str]) -> None:
        if not self._closing:
            self.index(list(paths))
