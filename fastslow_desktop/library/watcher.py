"""Live folder watching: watchdog records events, a debouncer hands quiet, size-stable batches on.

The event handler only records paths (it runs on watchdog's thread and must stay cheap); a debouncer
thread waits until nothing has happened for a quiet period and every recorded file has stopped
growing, then passes one batch of paths to the callback (normally an incremental index run).

A path whose last event says it is complete — its writer closed it (inotify's IN_CLOSE_WRITE), it
arrived by a rename, or it was deleted — needs neither the long quiet period nor the size check: a
batch made only of such paths goes on after SETTLED_QUIET_SECONDS, which still gathers a burst.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

logger = logging.getLogger(__name__)

QUIET_SECONDS = 0.4  # short: a new photo is searchable within a second; bursts still batch
SETTLED_QUIET_SECONDS = 0.1  # when every path's writer is done (closed, renamed in, deleted)
_SETTLING = {"closed", "deleted", "moved"}  # event types after which a path's content is final
MAX_WAIT_SECONDS = 30.0  # a folder that never stops changing is still indexed this often


class _Recorder(FileSystemEventHandler):
    def __init__(self, debouncer: Debouncer):
        self._debouncer = debouncer

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's entries changed: each changed entry has its own event
        paths = [event.src_path]
        dest = getattr(event, "dest_path", None)
        if dest:
            paths.append(dest)  # a move: the old place loses files, the new one gains them
        settled = event.event_type in _SETTLING
        self._debouncer.record((os.fsdecode(p) for p in paths if p), settled=settled)


class Debouncer:
    """Collects paths; after a quiet period with stable file sizes, calls `on_batch(paths)`."""

    def __init__(self, on_batch: Callable[[list[str]], None], quiet: float = QUIET_SECONDS):
        self.on_batch = on_batch
        self.quiet = quiet
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paths: set[str] = set()
        self._unsettled: set[str] = set()  # paths that may still be being written
        self._last_event = 0.0
        self._first_event = 0.0
        self._thread = threading.Thread(target=self._loop, name="fastslow-debounce", daemon=True)
        self.batches = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def record(self, paths: Iterable[str], settled: bool = False) -> None:
        """Note changed paths; `settled` when the event says their content is final (see the module)."""
        now = time.monotonic()
        paths = set(paths)
        with self._lock:
            if not self._paths:
                self._first_event = now
            self._paths.update(paths)
            if settled:
                self._unsettled -= paths
            else:
                self._unsettled |= paths
            self._last_event = now
        self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._paths)

    @staticmethod
    def _sizes(paths: Iterable[str]) -> dict[str, int]:
        sizes = {}
        for path in paths:
            try:
                sizes[path] = os.stat(path).st_size
            except OSError:
                sizes[path] = -1
        return sizes

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    if not self._paths:
                        break
                    idle = time.monotonic() - self._last_event
                    waited = time.monotonic() - self._first_event
                    snapshot = set(self._unsettled)
                    seen = self._last_event
                quiet = self.quiet if snapshot else min(self.quiet, SETTLED_QUIET_SECONDS)
                if idle < quiet and waited < MAX_WAIT_SECONDS:
                    # Woken early by a new event: it may settle the batch (a close after the writes).
                    self._wake.wait(quiet - idle)
                    self._wake.clear()
                    continue
                if snapshot:  # files that may still be being written keep growing: wait until two looks agree
                    before = self._sizes(snapshot)
                    self._stop.wait(min(0.5, self.quiet / 2))
                    if self._sizes(snapshot) != before and waited < MAX_WAIT_SECONDS:
                        with self._lock:
                            self._last_event = time.monotonic()
                        continue
                with self._lock:
                    if self._last_event != seen and waited < MAX_WAIT_SECONDS:
                        continue  # something changed meanwhile: judge the batch again
                    batch = sorted(self._paths)
                    self._paths.clear()
                    self._unsettled.clear()
                try:
                    self.batches += 1
                    self.on_batch(batch)
                except Exception:  # noqa: BLE001 - the watcher must outlive any one failed batch
                    logger.exception("indexing a batch of %d changed paths failed", len(batch))


class Watcher:
    """Watchdog observers for a set of root folders feeding one debouncer."""

    def __init__(self, roots: Iterable[str], on_batch: Callable[[list[str]], None], quiet: float = QUIET_SECONDS):
        self.debouncer = Debouncer(on_batch, quiet)
        self._observer = Observer()
        self._handler = _Recorder(self.debouncer)
        self._watches = {}
        for root in roots:
            self.add_root(root)

    def add_root(self, root: str) -> None:
        if root in self._watches or not os.path.isdir(root):
            return
        try:
            self._watches[root] = self._observer.schedule(self._handler, root, recursive=True)
        except OSError as exc:  # e.g. inotify watch limit reached
            logger.warning("cannot watch %s: %s", root, exc)

    @property
    def roots(self) -> set[str]:
        return set(self._watches)

    def remove_root(self, root: str) -> None:
        watch = self._watches.pop(root, None)
        if watch is not None:
            self._observer.unschedule(watch)

    def start(self) -> None:
        self.debouncer.start()
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=10)
        self.debouncer.stop()
