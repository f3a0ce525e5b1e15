"""A QRunnable that runs one callable off the GUI thread and reports through Qt signals."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from fastslow_desktop.errors import explain, is_expected, log_file, unexpected

logger = logging.getLogger(__name__)


def job_error_message(name: str, exc: BaseException) -> str:
    """The one error path of every job: our own errors become their message (logged as a warning);
    anything else is a programming error, logged at ERROR with its traceback, and said briefly."""
    if is_expected(exc):
        logger.warning("job %s: %s", name, explain(exc))
        return explain(exc)
    logger.error("job %s failed:\n%s", name, "".join(traceback.format_exception(exc)))
    return unexpected(exc, log_file())


class JobSignals(QObject):
    """Lives in the GUI thread, so every emit from the pool thread is delivered there (queued)."""

    started = Signal()
    progress = Signal(object)
    result = Signal(object)
    error = Signal(str)
    finished = Signal()


class Job(QRunnable):
    """Runs `fn(*args, **kwargs)`; `progress=True` passes `progress=<emit>` to fn.

    Error messages go to the user, so a job's exceptions go through `job_error_message`: our own
    exception types keep their text (written for people); other errors log their traceback at ERROR.
    """

    def __init__(self, fn: Callable, *args, with_progress: bool = False, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = JobSignals()
        if with_progress:
            self.kwargs["progress"] = self.signals.progress.emit
        self.setAutoDelete(True)

    def run(self) -> None:
        signals = self.signals
        signals.ran = True
        signals.started.emit()
        try:
            value = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # reported to the user through `error`
            signals.error.emit(job_error_message(getattr(self.fn, "__name__", repr(self.fn)), exc))
        else:
            signals.result.emit(value)
        finally:
            signals.finished.emit()


class JobRunner(QObject):
    """Submits jobs to one pool and keeps their signal objects alive until they have finished.

    Without the reference, Python may collect a finished runnable's JobSignals before its queued
    signals are delivered, and the result would silently vanish.
    """

    def __init__(self, name: str, max_threads: int = 1, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setObjectName(name)
        self.pool.setMaxThreadCount(max_threads)
        self._alive: set[JobSignals] = set()

    def submit(self, fn: Callable, *args, on_result: Callable | None = None, on_error: Callable | None = None,
               on_progress: Callable | None = None, on_finished: Callable | None = None,
               with_progress: bool = False, **kwargs) -> JobSignals:
        job = Job(fn, *args, with_progress=with_progress, **kwargs)
        signals = job.signals
        self._alive.add(signals)
        # Connected first, so `busy` is already False inside the caller's on_finished.
        signals.finished.connect(lambda s=signals: self._alive.discard(s))
        if on_result is not None:
            signals.result.connect(on_result)
        if on_error is not None:
            signals.error.connect(on_error)
        if on_progress is not None:
            signals.progress.connect(on_progress)
        if on_finished is not None:
            signals.finished.connect(on_finished)
        # Last, after every callback: a finished job's QObject is freed on the GUI thread. Dropped by
        # Python alone it stayed, about 3 KB a job: 5 MB an hour at the app's poll for other writers.
        signals.finished.connect(signals.deleteLater)
        self.pool.start(job)
        return signals

    @property
    def busy(self) -> bool:
        return bool(self._alive)

    def clear(self) -> None:
        """Drop queued jobs that have not started (their signals never fire)."""
        self.pool.clear()
        self._alive = {s for s in self._alive if getattr(s, "ran", False)}

    def wait(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)
