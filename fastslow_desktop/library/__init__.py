"""Library: folders, watching, decoding, SQLite + HNSW store and the indexer (no Qt, no training)."""

from .ann import AnnIndex
from ..media import DecodeError, load_image, open_image
from .library import Library, LibraryPaths, RootInfo, SegmentInfo
from .progress import IndexReport, Progress, TqdmProgress
from .store import LibraryError

__all__ = [
    "AnnIndex", "DecodeError", "IndexReport", "Library", "LibraryError", "LibraryPaths", "Progress",
    "RootInfo", "SegmentInfo", "TqdmProgress", "load_image", "open_image",
]
