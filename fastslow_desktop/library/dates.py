"""Capture times for media indexed before FastSlow read them (schema 2): filled once, from headers only."""

from __future__ import annotations

import logging
import os
import threading

from ..catalog import Catalog
from ..media import capture_time

logger = logging.getLogger(__name__)


def backfill_capture_times(catalog: Catalog, cancel: threading.Event | None = None) -> int:
    """Read the capture time of rows that only have their mtime as a stand-in; returns how many.

    Videos get their container's creation time (a few small reads, no decoding); photos already had
    their EXIF time copied by the migration, so theirs is the mtime. Files not there now wait."""
    rows = catalog.store.media_without_capture_source()
    updates = []
    for media_id, path, kind, mtime, taken in rows:
        if cancel is not None and cancel.is_set():
            break
        if not os.path.isfile(path):
            continue  # on a drive that is offline now: read it on a later run, not marked "mtime" for good
        updates.append((*capture_time(path, kind, taken, mtime), media_id))
    if updates:
        catalog.store.set_capture_times(updates)
        logger.info("read the capture time of %d files indexed by an older FastSlow", len(updates))
    return len(updates)
