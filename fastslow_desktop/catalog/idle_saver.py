"""The background thread that saves HNSW files once the library has been idle for a while."""

from __future__ import annotations

import threading
import time
from typing import Protocol

IDLE_SAVE_SECONDS = 20.0  # after this long without a change, once changes reach IDLE_FRACTION of an index …
IDLE_FRACTION = 0.01


class SavesDirty(Protocol):
    def dirty_anns(self, fraction: float) -> list[str]: ...

    def save_dirty(self, wait: float = 0.0) -> bool: ...


class IdleSaver:
    """A background thread that saves dirty HNSW files once no change has come for a while."""

    def __init__(self, catalog: SavesDirty, idle: float | None = None):
        self._catalog = catalog
        self._idle = idle
        self._last_change = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def idle(self) -> float:
        return IDLE_SAVE_SECONDS if self._idle is None else self._idle

    def poke(self) -> None:
        with self._lock:
            self._last_change = time.monotonic()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="fastslow-hnsw-saver", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                wait = self._last_change + self.idle - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            if not self._catalog.dirty_anns(IDLE_FRACTION):
                if not self._catalog.dirty_anns(0.0):
                    return
                self._stop.wait(max(self.idle, 60.0))  # a few changes: saved when they grow old or on close
                continue
            if self._catalog.save_dirty(wait=0.0):
                return
            self._stop.wait(self.idle)  # a writer is busy: its run ends with a save check anyway

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
