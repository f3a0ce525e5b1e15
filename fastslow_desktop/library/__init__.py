"""Library: folders, watching, scanning and the indexer over the catalog (no Qt, no training)."""

from ..catalog import AnnIndex, LibraryBusy, LibraryError, LibraryPaths, RootInfo, SegmentInfo
from ..media import DecodeError, load_image, open_image
from .library import Library
from .progress import IndexReport, Progress, TqdmProgress

__all__ = [
    "AnnIndex", "DecodeError", "IndexReport", "Library", "LibraryBusy", "LibraryError", "LibraryPaths", "Progress",
    "RootInfo", "SegmentInfo", "TqdmProgress", "load_image", "open_image",
]
