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

from .library_control import LibraryControl
from .services import EngineFactory, ServiceConfig, Services, default_engine_factory, default_request_factory
from .workers.download import download_models
from .workers.job import JobRunner, job_error_message
from .workers.search import run_fast, run_refine
from .workers.startup import NeedsDownload, StartupFailed, StartupStep, load_services, warm_slow

logger = logging.getLogger(__name__)

ROOTS_REFRESH_MS = 1000  # sidebar counts while indexing
OTHER_WRITERS_MS = 2000  # how often the app asks whether another process wrote to the library (one row read)
STOP_WAIT_MS = 30_000  # per pool, on the stop thread: an uninterruptible import of torch may take this long


class AppController(LibraryControl, QObject):
    # models and start-up
    loading = Signal(str)  # what is being loaded
    ready = Signal()  # searchable
    warmed = Signal()  # the slow model is loaded too (re-ranking starts without a load)
    failed = Signal(str, bool)  # message, offline
    kept_models = Signal(str, str)  # why the new models failed, the models kept instead
    # models answering now, models the library is re-embedded with, whether another process is doing it
    reembedding = Signal(str, str, bool)
    models_chosen_elsewhere = Signal(str)  # another process moved the library to these models: the app follows
    needs_download = Signal(list)  # hub repositories
    download_progress = Signal(object)  # models.hub.DownloadProgress: bytes done, total, speed, ETA
    download_finished = Signal(bool, str)  # ok, message
    # search
    stage1 = Signal(object)  # StageResult
    stage2 = Signal(object)  # StageResult
    refining = Signal(bool)
    search_failed = Signal(str)
    # library
    roots_changed = Signal(list)  # [RootInfo]
    status_changed = Signal(dict)  # library.status()
    folder_removed = Signal(str)  # a folder and everything indexed in it left the library
    index_started = Signal()
    index_progress = Signal(object)  # library Progress
    index_finished = Signal(object)  # IndexReport, or None after an error
    index_error = Signal(str)
    waiting_for_writer = Signal(str)  # another process is indexing this library: the run is tried again later
    written_elsewhere = Signal(bool)  # another process writes to the library (True), or has gone quiet (False)
    library_error = Signal(str)
    stopping_changed = Signal(bool)  # True while the services stop in the background (restart, close)
    # the watcher's thread emits this; Qt queues it to the GUI thread
    _watch_batch = Signal(list)
    _stopped = Signal()  # from the stop thread

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
        self._last_request: dict | None = None
        self._adopting = False  # re-embedded models are taking over: searches wait for the new engine
        self._until_library: list[Callable[[], None]] = []
        self._index_cancel = threading.Event()
        self._index_pause = threading.Event()
        self._index_running = False
        self._index_queue: set[str] | None = None  # paths waiting; empty set = nothing
        self._index_all_queued = False
        self._download_cancel: threading.Event | None = None
        self._startup_cancel = threading.Event()
        self._closing = False
        self._stopping = False
        self._stop_thread: threading.Thread | None = None
        self._on_stopped: list[Callable[[], None]] = []
        self._restart_config: ServiceConfig | None = None
        self._fallback: ServiceConfig | None = None  # the working models while new ones start
        self._stopped_library = None  # closed by the stop thread; a late start-up result must not close it again
        self._runners = (self._startup, self._fast, self._slow, self._tasks, self._indexer)
        self._stopped.connect(self._on_stop_finished)
        self._roots_timer = QTimer(self)
        self._roots_timer.setInterval(ROOTS_REFRESH_MS)
        self._roots_timer.timeout.connect(self.refresh)
        self._watch_batch.connect(self._on_watch_batch)
        self._polling_writers = False  # a check for other writers is queued or running
        self._written_elsewhere = False  # another process wrote; the query on screen runs again when it stops
        self._followed_models: str | None = None  # models another process moved the library to, being loaded
        self._writers_timer = QTimer(self)
        self._writers_timer.setInterval(OTHER_WRITERS_MS)
        self._writers_timer.timeout.connect(self._check_other_writers)

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
            self._writers_timer.start()
            self.refresh()
            for action in self._until_library:
                action()
            self._until_library.clear()

    def _on_startup_result(self, outcome, cancel: threading.Event) -> None:
        if self._closing or cancel.is_set():
            if isinstance(outcome, Services) and outcome.library is not self._stopped_library:
                # Stopped before it was adopted: close it off the GUI thread (saving HNSW takes time).
                threading.Thread(target=outcome.library.close, name="fastslow-close", daemon=True).start()
            return
        if isinstance(outcome, NeedsDownload):
            self._needs = outcome
            self.needs_download.emit(outcome.repos)
        elif isinstance(outcome, StartupFailed):
            self._fail(outcome.message, outcome.offline)
        else:
            self.services, followed, self._followed_models = outcome, self._followed_models, None
            self.library = outcome.library
            self._writers_timer.start()
            self._fallback = None
            self.ready.emit()
            if outcome.reembedding is not None:  # new models for this library: re-embed it now
                # Followed another process's models while it still runs: it re-embeds, this app waits for it.
                elsewhere = (followed is not None and getattr(outcome.reembedding, "spec", None) == followed
                             and outcome.library.indexed_elsewhere_now())
                self.reembedding.emit(outcome.models.name, outcome.reembedding.name, elsewhere)
                self.index(None)
            # Catch up on files changed while the app was closed (or a run cut short by closing it) once the
            # slow model is warm: started at once, the walk cost the first typed query about 0.3 s.
            catch_up = outcome.reembedding is None and self.config.watching and outcome.has_folders
            self._startup.submit(warm_slow, outcome,
                                 on_finished=lambda: self._on_warmed(outcome.library if catch_up else None))
            if self.config.watching:
                self._tasks.submit(self._start_watching, outcome.library,
                                   on_error=self.library_error.emit)
            if self._pending_request is not None:
                request, self._pending_request = self._pending_request, None
                self.search(**request)

    def _on_warmed(self, catch_up_library) -> None:
        self.warmed.emit()
        if catch_up_library is not None and catch_up_library is self.library and not self._closing:
            self.index(None)

    def download(self) -> None:
        """Fetch the preset's weights (after the user agreed); then start-up goes on."""
        self._download_cancel = threading.Event()
        self._startup.submit(download_models, self._needs.models, self._download_cancel, with_progress=True,
                             on_progress=self.download_progress.emit,
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
            self._fail(message, True)

    def _fail(self, message: str, offline: bool) -> None:
        """New models could not be used: say why, and go back to the models that worked before."""
        fallback, self._fallback = self._fallback, None
        if fallback is None or self._closing:
            self.failed.emit(message, offline)
            return
        self.kept_models.emit(message, fallback.models)
        self.config, self.library = fallback, None
        self.start()

    def use_models(self, spec: str) -> None:
        """Switch to other models (already on disk): the library re-embeds with them in the background
        while its current embeddings keep answering."""
        config = replace(self.config, models=spec)
        if self.services is None and self.library is None and not self._stopping:
            self._startup_cancel.set()  # a start-up that stopped at "needs download" or failed
            self.config = config
            self.start()
        else:
            self.restart(config)

    def restart(self, config: ServiceConfig) -> None:
        """New models, device or library folder: stop the services in the background, then build them again.
        New models on the same library that cannot be used (offline) give way to the working ones."""
        if self.is_ready and config.models != self.config.models and config.library_dir == self.config.library_dir:
            self._fallback = self.config
        self._restart_config = config
        if self._stopping:
            return  # the stop under way starts the newest config when it is done
        self._begin_stop(on_done=self._restart_stopped)

    def _restart_stopped(self) -> None:
        config, self._restart_config = self._restart_config, None
        self._closing = False
        if config is not None:
            self.config = config
            self.start()

    def shutdown(self, on_done: Callable[[], None] | None = None,
                 also_wait: tuple[Callable[[], object], ...] = ()) -> None:
        """Cancel everything and close the library in the background (the window is closing).

        `on_done` runs on the GUI thread once the workers have stopped and the library is saved;
        `also_wait` are more blocking waits (the window's own pools) for the same background thread.
        """
        self._restart_config = None
        self._begin_stop(on_done=on_done, also_wait=also_wait)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait_stopped(self, seconds: float = 60.0) -> bool:
        """Block until a background stop has finished its work (tests and scripts; never the GUI)."""
        thread = self._stop_thread
        if thread is not None:
            thread.join(seconds)
            return not thread.is_alive()
        return True

    def _begin_stop(self, on_done: Callable[[], None] | None,
                    also_wait: tuple[Callable[[], object], ...] = ()) -> None:
        """Cancel at once on the GUI thread; wait for the pools and close the library on a plain thread."""
        self._closing = True
        self._startup_cancel.set()
        self._generation += 1
        self._roots_timer.stop()
        self._writers_timer.stop()
        if self._refine_cancel is not None:
            self._refine_cancel.set()
        self._index_cancel.set()
        self._index_pause.clear()
        self._index_queue, self._index_all_queued = None, False
        for runner in self._runners[1:]:
            runner.clear()
        if on_done is not None:
            self._on_stopped.append(on_done)
        if self._stopping:
            return
        engine = getattr(self.services, "engine", None)
        library = self._stopped_library = self.library
        self.services, self.library = None, None
        self._stopping = True
        self.stopping_changed.emit(True)
        pools = tuple(runner.pool for runner in self._runners)
        self._stop_thread = threading.Thread(target=self._stop_work, args=(pools, also_wait, engine, library),
                                             name="fastslow-stop", daemon=True)
        self._stop_thread.start()

    def _stop_work(self, pools, also_wait, engine, library) -> None:
        """Runs on the stop thread: wait for every job, then close the engine and the library (saves HNSW).

        Each step is guarded on its own: stopping must not stop the app from quitting, and the
        library is closed even when a wait failed.
        """
        waits = [lambda pool=pool: pool.waitForDone(STOP_WAIT_MS) or logger.warning(
            "%s jobs did not stop in time", pool.objectName()) for pool in pools]
        closes = [getattr(engine, "close", None), getattr(library, "close", None)]
        for step in [*waits, *also_wait, *closes]:
            if step is None:
                continue
            try:
                step()
            except Exception as exc:
                logger.error("stopping the services: %s", exc, exc_info=True)
        try:
            self._stopped.emit()  # queued to the GUI thread, after every job's own signals
        except RuntimeError:  # the controller was deleted meanwhile (the app is gone): nothing to tell
            pass

    def _on_stop_finished(self) -> None:
        self._stopping = False
        self._polling_writers = self._written_elsewhere = False  # a poll dropped by the stop never finished
        self._adopting = False  # a take-over job dropped by the stop must not hold searches back
        self._stop_thread = None
        self._index_running = False
        self._index_cancel = threading.Event()
        callbacks, self._on_stopped = self._on_stopped, []
        self.stopping_changed.emit(False)
        for callback in callbacks:
            callback()

    # -- search ---------------------------------------------------------------------------
    def search(self, **request) -> None:
        """Stage 1 now (or as soon as the models are ready), then stage 2; a newer call cancels both."""
        self._generation += 1
        if self._refine_cancel is not None:
            self._refine_cancel.set()
            self._refine_cancel = None
        self._last_request = dict(request)  # run again when re-embedded models take over
        if not self.is_ready or self._adopting:
            self._pending_request = request  # runs when the models are ready
            return
        generation = self._generation
        # K and β travel in each request: the models' configs are never changed (Settings may change them).
        if request.get("k") is None:
            request["k"] = self.config.k
        request.setdefault("beta", self.config.beta)
        try:
            req = self.request_factory(**request)
        except Exception as exc:
            self.search_failed.emit(job_error_message("search request", exc))
            return
        self._fast.submit(run_fast, self.services.engine, req, generation, lambda: self._generation,
                          on_result=self._on_stage1, on_error=self.search_failed.emit)

    def cancel_search(self) -> None:
        """The query was cleared: drop whatever is queued or refining."""
        self._generation += 1
        self._pending_request = self._last_request = None
        if self._refine_cancel is not None:
            self._refine_cancel.set()
            self._refine_cancel = None

    def update_search(self, k: int | None, beta: float | None, exclusions: list[str]) -> None:
        """New K, β or default exclusions from Settings (no reload needed)."""
        # The next search request carries them; nothing shared with running jobs is changed.
        self.config = replace(self.config, k=k, beta=beta, exclusions=list(exclusions))

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
