"""Indexing job: library.index on a worker thread, progress throttled to what a person can read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

PROGRESS_INTERVAL = 0.1  # seconds between progress signals: more only floods the event loop


def index_library(library, paths: list[str] | None, cancel: threading.Event, pause: threading.Event,
                  progress: Callable[[object], None]):
    """Runs in the indexing thread; returns the IndexReport."""
    last = [0.0, None]

    def throttled(event) -> None:
        now = time.monotonic()
        # Phase changes and pause flips always go through; counts at most every PROGRESS_INTERVAL.
        key = (event.phase, event.paused)
        if key != last[1] or now - last[0] >= PROGRESS_INTERVAL or event.done == event.total:
            last[0], last[1] = now, key
            progress(event)

    return library.index(paths, progress=throttled, cancel=cancel, pause=pause)
