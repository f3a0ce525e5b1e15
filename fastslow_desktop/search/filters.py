"""Search filters (media type, folder, capture-date range) as the segment ids a query may return, and
the date order of results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..library import Library
from .types import SearchRequest, SearchResult

SORTS = ("relevance", "date")


def normalise_folder(folder: str) -> str:
    # Library paths are absolute with symlinks resolved, so the folder is compared the same way.
    return str(Path(folder).expanduser().resolve())


def allowed_ids(library: Library, request: SearchRequest) -> np.ndarray | None:
    """Segment ids that pass the folder and date filters, or None when there are none to apply.

    Selected in SQL (the media type too, when another filter is set); alone, the media type is
    left to `library.query(kind=...)`.
    """
    if not (request.folder or request.date_from or request.date_to):
        return None
    folder = normalise_folder(request.folder) if request.folder else None
    ids = library.filtered_segment_ids(request.kind, folder, request.date_from, request.date_to)
    return np.sort(ids)  # a sorted array: the ANN index filters with it without building a set


def sort_results(results: list[SearchResult], request: SearchRequest) -> list[SearchResult]:
    """The results in the request's order: as ranked ("relevance"), or by capture time, newest first,
    equal times by score ("date"). Results with no known time go last."""
    if request.sort != "date":
        return results
    return sorted(results, key=lambda r: (r.info.captured_at is not None, r.info.captured_at or "", r.score),
                  reverse=True)
