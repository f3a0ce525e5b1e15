"""Search jobs: stage 1 (fast, milliseconds) and stage 2 (slow re-rank, cancellable)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_fast(engine, request, generation: int, latest: Callable[[], int]):
    """Stage 1. A request that a newer one has already replaced is skipped (returns None)."""
    if generation != latest():
        return None
    return generation, engine.fast(request)


def run_refine(engine, stage1, cancel: threading.Event, generation: int):
    """Stage 2; None when cancelled (a newer query arrived)."""
    if cancel.is_set():
        return None
    stage2 = engine.refine(stage1, cancel)
    if stage2 is None or cancel.is_set():
        return None
    return generation, stage2
