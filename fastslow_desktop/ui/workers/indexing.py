"""Indexing job: library.index on a worker thread, progress throttled to what a person can read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

PROGRESS_INTERVAL = 0.1  # seconds between progress signals: more only floods the event loop


@dataclass
class OtherWriter:
    """The run could not start: another FastSlow process (`fastslow index`) is indexing this library."""

    message: str


def index_library(library, paths: list[str] | None, cancel: threading.Event, pause: threading.Event,
                  progress: Callable[[object], None]):
    """Runs in the indexing thread; returns the IndexReport, or OtherWriter when another process holds
    the library (the app tries again later instead of dropping the run)."""
    from fastslow_desktop.library import LibraryBusy

    last = [0.0, None]

    def throttled(event) -> None:
        now = time.monotonic()
        # Phase changes and pause flips always go through; counts at most every PROGRESS_INTERVAL.
        key = (event.phase, event.paused)
        if key != last[1] or now - last[0] >= PROGRESS_INTERVAL or event.done == event.total:
            last[0], last[1] = now, key
            progress(event)

    try:
        return library.index(paths, progress=throttled, cancel=cancel, pause=pause)
    except LibraryBusy as exc:
        return OtherWriter(str(exc))
