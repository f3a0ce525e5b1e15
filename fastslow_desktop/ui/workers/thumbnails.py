"""Thumbnail loading in a thread pool: workers decode through the media layer to QImage, the GUI
thread makes the QPixmap."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, QThreadPool, Signal
from PySide6.QtGui import QImage

from ...media import DecodeError, load_image
from ..imaging import fit, to_qimage


def read_scaled(path: str | Path, size: QSize) -> QImage:
    """A picture file decoded upright at (about) the wanted size; a null QImage when unreadable."""
    try:
        # max_side = the smaller box side: JPEGs decode at a reduced scale (draft) that still fills it.
        image = load_image(path, max_side=min(size.width(), size.height()))
    except (DecodeError, OSError):
        return QImage()
    return to_qimage(fit(image, size))


class _Signals(QObject):
    loaded = Signal(object, QImage)  # key, image (null when the file cannot be read)


class _Load(QRunnable):
    def __init__(self, signals: _Signals, key, path: str, size: QSize):
        super().__init__()
        self.signals, self.key, self.path, self.size = signals, key, path, size

    def run(self) -> None:
        try:
            image = read_scaled(self.path, self.size)
        except Exception:  # a thumbnail never takes the app down
            image = QImage()
        self.signals.loaded.emit(self.key, image)


class ThumbnailLoader(QObject):
    """`request(key, path)` → `loaded(key, QImage)` on the GUI thread, later."""

    loaded = Signal(object, QImage)

    def __init__(self, size: QSize, threads: int = 2, parent: QObject | None = None):
        super().__init__(parent)
        self.size = size
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        # One signals object for every job, owned here, so no runnable outlives what it emits on.
        self._signals = _Signals(self)
        self._signals.loaded.connect(self.loaded)

    def request(self, key, path: str | Path) -> None:
        self.pool.start(_Load(self._signals, key, str(path), self.size))

    def clear(self) -> None:
        """Forget queued requests (a new result set replaced the old one)."""
        self.pool.clear()

    def wait(self, msecs: int = 3000) -> bool:
        return self.pool.waitForDone(msecs)
