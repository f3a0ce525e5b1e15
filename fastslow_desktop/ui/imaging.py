"""The UI's edge of the media layer: decoded PIL pictures become QImages here, and only here."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QSize
from PySide6.QtGui import QImage


def fit(image: Image.Image, size: QSize) -> Image.Image:
    """`image` shrunk (never enlarged) to fit inside `size`, keeping its aspect ratio."""
    if image.width <= size.width() and image.height <= size.height():
        return image
    image = image.copy()
    image.thumbnail((size.width(), size.height()), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


def to_qimage(image: Image.Image) -> QImage:
    """An RGB (or RGBA) PIL image as a QImage that owns its pixels (safe in worker threads)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    fmt, depth = ((QImage.Format.Format_RGB888, 3) if image.mode == "RGB"
                  else (QImage.Format.Format_RGBA8888, 4))
    data = image.tobytes()
    # .copy(): the QImage must own its pixels once `data` goes away.
    return QImage(data, image.width, image.height, depth * image.width, fmt).copy()
