"""Search filters (media type, folder, date range) turned into the set of segment ids a query may return."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..library import Library, SegmentInfo
from .types import SearchRequest

logger = logging.getLogger(__name__)


def media_date(info: SegmentInfo) -> datetime.date:
    """The day a photo was taken (EXIF), else the day the file was last modified (local time)."""
    if info.taken:
        try:
            return datetime.date.fromisoformat(info.taken[:10])
        except ValueError:
            pass
    return datetime.datetime.fromtimestamp(info.mtime).date()


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def matches(info: SegmentInfo, request: SearchRequest) -> bool:
    """Whether a segment passes every filter of the request."""
    if request.kind and info.kind != request.kind:
        return False
    if request.folder and not _under(info.path, normalise_folder(request.folder)):
        return False
    if request.date_from or request.date_to:
        day = media_date(info)
        if request.date_from and day < request.date_from:
            return False
        if request.date_to and day > request.date_to:
            return False
    return True


def normalise_folder(folder: str) -> str:
    # Library paths are absolute with symlinks resolved, so the folder is compared the same way.
    return str(Path(folder).expanduser().resolve())


def allowed_ids(library: Library, request: SearchRequest) -> set[int] | None:
    """Segment ids that pass the folder and date filters, or None when there are none to apply.

    The media type is left to `library.query(kind=...)`, which filters it in SQL.
    """
    if not (request.folder or request.date_from or request.date_to):
        return None
    ids = library.segment_ids(kind=request.kind)
    infos: Sequence[SegmentInfo] = library.segments_info(ids.tolist())
    return {info.segment_id for info in infos if matches(info, request)}
