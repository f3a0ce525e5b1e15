"""The one registry of file types FastSlow reads: extension -> kind ('image', 'video' or 'raw')."""

from __future__ import annotations

import os
from pathlib import Path

IMAGE, VIDEO, RAW = "image", "video", "raw"

# Decoded by Pillow (HEIC/HEIF through pillow-heif, AVIF through Pillow's own plugin).
_IMAGE = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
          ".heic", ".heif", ".hif", ".avif")
# Decoded by OpenCV (FFmpeg).
_VIDEO = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp")
# Camera RAW: indexed from the embedded preview through rawpy (the optional `raw` extra).
_RAW = (".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".raf", ".orf", ".rw2",
        ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".raw")

FORMATS: dict[str, str] = {**{s: IMAGE for s in _IMAGE}, **{s: VIDEO for s in _VIDEO}, **{s: RAW for s in _RAW}}

IMAGE_EXTENSIONS = frozenset(s for s, k in FORMATS.items() if k == IMAGE)
VIDEO_EXTENSIONS = frozenset(s for s, k in FORMATS.items() if k == VIDEO)
RAW_EXTENSIONS = frozenset(s for s, k in FORMATS.items() if k == RAW)
PHOTO_EXTENSIONS = IMAGE_EXTENSIONS | RAW_EXTENSIONS  # everything that is a still picture


def file_format(path: str | Path) -> str | None:
    """'image', 'video' or 'raw' by extension; None for files FastSlow does not read."""
    return FORMATS.get(os.path.splitext(str(path))[1].lower())


def media_kind(path: str | Path) -> str | None:
    """The kind a library stores: 'image' (RAW photos included) or 'video'; None if not indexed."""
    fmt = file_format(path)
    return None if fmt is None else (VIDEO if fmt == VIDEO else IMAGE)


def is_photo(path: str | Path) -> bool:
    """Whether a path names a still picture (a query image, a dropped photo)."""
    return file_format(path) in (IMAGE, RAW)

