"""Preview job: the large image, or a video's frame at the moment's timestamp (OpenCV seek)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage

from .thumbnails import read_scaled


def video_frame(path: str | Path, seconds: float, size: QSize) -> QImage:
    """The frame at `seconds`, scaled to fit `size`; a null QImage when it cannot be decoded."""
    import cv2  # imported here: only preview workers need it

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return QImage()
        capture.set(cv2.CAP_PROP_POS_MSEC, max(0.0, seconds) * 1000.0)
        ok, frame = capture.read()
        if not ok or frame is None:
            # Some containers cannot seek by time: take the first frame rather than nothing.
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = capture.read()
            if not ok or frame is None:
                return QImage()
    finally:
        capture.release()
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    height, width, _ = rgb.shape
    # .copy(): the QImage must own its pixels once the numpy buffer goes away.
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    if width > size.width() or height > size.height():
        image = image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return image


def load_preview(token: int, path: str, kind: str, seconds: float | None, size: QSize) -> tuple[int, QImage]:
    """Runs in a pool thread; `token` lets the GUI drop previews of items no longer selected."""
    if kind == "video":
        return token, video_frame(path, seconds or 0.0, size)
    return token, read_scaled(path, size)
