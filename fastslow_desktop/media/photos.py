"""Any photo FastSlow reads, RAW or not: the one entry point indexing, re-ranking and the preview use."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .formats import RAW, file_format
from .images import ImageInfo, open_picture
from .raw import open_raw


def open_image(path: str | Path, max_side: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """Decode a photo to upright RGB, at least `max_side` on its shorter side when that is cheaper;
    RAW files through their embedded preview. Returns the image and its info. Raises DecodeError."""
    if file_format(path) == RAW:
        return open_raw(path, max_side)  # rawpy is imported only here, and only when installed
    return open_picture(path, max_side)


def load_image(path: str | Path, max_side: int | None = None) -> Image.Image:
    """A photo as upright 8-bit RGB (see `open_image`). Raises DecodeError."""
    return open_image(path, max_side)[0]
