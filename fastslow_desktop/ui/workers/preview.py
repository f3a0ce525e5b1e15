"""Preview job: the large picture, or a video's frame at the moment, decoded by the media layer."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSize
from PySide6.QtGui import QImage

from ...media import DecodeError, frame_times, load_image, video_frame
from ..imaging import fit, to_qimage

logger = logging.getLogger(__name__)


def preview_image(path: str, kind: str, t_start: float | None, t_end: float | None, size: QSize) -> QImage:
    """The picture to show, fitting `size`, upright; a null QImage when it cannot be decoded. A video
    shows the frame that stands for the moment (its middle, the frame its thumbnail shows)."""
    side = max(size.width(), size.height())
    try:
        if kind == "video":
            start = t_start or 0.0
            seconds = frame_times(start, t_end if t_end is not None else start, 1)[0]
            image = video_frame(path, seconds, max_side=side)
        else:
            image = load_image(path, max_side=side)
    except (DecodeError, OSError) as exc:
        logger.info("no preview for %s: %s", path, getattr(exc, "reason", exc))
        return QImage()
    return to_qimage(fit(image, size))


def load_preview(token: int, path: str, kind: str, t_start: float | None, t_end: float | None,
                 size: QSize) -> tuple[int, QImage]:
    """Runs in a pool thread; `token` lets the GUI drop previews of items no longer selected."""
    return token, preview_image(path, kind, t_start, t_end, size)
