"""Catalog: a library folder's stored state (SQLite, HNSW caches, thumbnails) behind one locked API."""

from .ann import AnnIndex, exact_top_k
from .catalog import SERVING_MODEL, Catalog
from .records import LibraryBusy, LibraryError, LibraryPaths, MediaRecord, MediaRow, NewSegment, RootInfo, SegmentInfo
from .thumbs import THUMB_SIZE, write_thumbnail

__all__ = [
    "SERVING_MODEL", "THUMB_SIZE", "AnnIndex", "Catalog", "LibraryBusy", "LibraryError", "LibraryPaths", "MediaRecord",
    "MediaRow", "NewSegment", "RootInfo", "SegmentInfo", "exact_top_k", "write_thumbnail",
]
