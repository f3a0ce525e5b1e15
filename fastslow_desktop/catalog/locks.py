"""Locks: a readers–writer lock for the in-memory HNSW graph, and the library's writer lock.

The writer lock is one per library folder across processes (an OS file lock through `filelock`,
fcntl on Unix and msvcrt on Windows) plus a re-entrant thread lock inside this process: index runs,
root changes and HNSW saves hold it; reads (search, status) never take it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .records import LibraryBusy, LibraryError

WRITER_WAIT_SECONDS = 30.0  # a second writer waits this long for the first, then says who holds it
# A holder that lets go within this long is not announced: the app's `held_elsewhere` probe takes the
# lock for microseconds, and a starting `fastslow index` that met it printed "… is indexing; waiting".
QUIET_WAIT_SECONDS = 0.5


class ReadWriteLock:
    """Many readers or one writer. Readers are never made to wait for a writer that only waits:
    queries must not queue behind an add that is itself waiting for a save to finish."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class WriterLock:
    """The library's one-writer lock: re-entrant within a thread, exclusive across threads and processes."""

    def __init__(self, lock_file: Path, owner_file: Path, wait: float = WRITER_WAIT_SECONDS):
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(str(lock_file))  # itself re-entrant: counts nested acquires
        self._owner_file = owner_file
        self.wait = wait
        # told once per acquire that another process holds the lock, before waiting for it (the CLI says so)
        self.on_wait: Callable[[str], None] | None = None

    def _who(self) -> str:
        try:
            pid = self._owner_file.read_text().strip()
        except OSError:
            pid = "?"
        return f"another FastSlow process (pid {pid or '?'})"

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock. Inside this process it waits for the current writer to finish (or returns
        False at once when `timeout` is 0); another process gets `timeout` seconds (default: `wait`),
        then LibraryError names it."""
        timeout = self.wait if timeout is None else timeout
        if not self._thread_lock.acquire(blocking=timeout > 0):
            return False
        deadline = time.monotonic() + timeout
        try:
            self._acquire_file_lock(deadline)
        except Timeout:
            self._thread_lock.release()
            raise LibraryBusy(f"{self._who()} is indexing this library; try again when it has finished.") \
                from None
        except OSError as exc:
            self._thread_lock.release()
            raise LibraryError(f"Cannot lock the library folder for writing: {exc.strerror or exc}.") from exc
        if self._file_lock.lock_counter == 1:
            try:
                self._owner_file.write_text(str(os.getpid()))
            except OSError:
                pass  # only used to name the holder in a message
        return True

    def _acquire_file_lock(self, deadline: float) -> None:
        left = max(0.0, deadline - time.monotonic())
        # Without on_wait the whole timeout is waited silently; with it, only a moment before saying so.
        try:
            self._file_lock.acquire(timeout=left if self.on_wait is None else min(QUIET_WAIT_SECONDS, left),
                                    poll_interval=0.02)
            return
        except Timeout:
            if self.on_wait is None or deadline <= time.monotonic():
                raise
        self.on_wait(f"{self._who()} is indexing this library")
        self._file_lock.acquire(timeout=max(0.0, deadline - time.monotonic()), poll_interval=0.05)

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock right now (False while a thread of this process does)."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            try:
                self._file_lock.acquire(timeout=0)
            except Timeout:
                return True
            except OSError:
                return False  # cannot tell (unwritable folder): a reader's question, not worth an error
            self._file_lock.release()
            return False
        finally:
            self._thread_lock.release()

    def release(self) -> None:
        self._file_lock.release()
        self._thread_lock.release()

    @contextmanager
    def this_process(self) -> Iterator[bool]:
        """Whether this process's writers are idle now, holding them off while True (no waiting, no file lock)."""
        got = self._thread_lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._thread_lock.release()

    @contextmanager
    def held(self, timeout: float | None = None) -> Iterator[None]:
        if not self.acquire(timeout):
            raise LibraryError("The library is busy with another change; try again in a moment.")
        try:
            yield
        finally:
            self.release()
