"""An in-app video player that starts at a moment (QtMultimedia; only built when it imports)."""

from __future__ import annotations

from PySide6.QtCore import QUrl, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget


class MomentPlayer(QWidget):
    """`play(path, seconds)`: load, seek to the moment, play. `stop()` when the selection changes."""

    failed = Signal(str)  # the backend could not play: a sentence for the pane

    def __init__(self, parent=None):
        super().__init__(parent)
        from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
        from PySide6.QtMultimediaWidgets import QVideoWidget

        self.video = QVideoWidget(self)
        self.player = QMediaPlayer(self)
        self.audio = QAudioOutput(self)
        self.player.setAudioOutput(self.audio)
        self.player.setVideoOutput(self.video)
        self._seek_ms: int | None = None
        self.player.mediaStatusChanged.connect(self._on_status)
        self.player.errorOccurred.connect(self._on_error)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.video)

    def play(self, path: str, seconds: float | None) -> None:
        self._seek_ms = int(max(0.0, seconds or 0.0) * 1000)
        self.player.setSource(QUrl.fromLocalFile(path))
        self.player.play()

    def _on_status(self, status) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        # Seeking before the media is loaded is ignored by some backends: seek once it is.
        if self._seek_ms is not None and status in (QMediaPlayer.MediaStatus.LoadedMedia,
                                                    QMediaPlayer.MediaStatus.BufferedMedia):
            self.player.setPosition(self._seek_ms)
            self._seek_ms = None

    def _on_error(self, error, message: str) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        if error != QMediaPlayer.Error.NoError:
            self.failed.emit(f"This video cannot play inside FastSlow: {message or error.name}. "
                             "Open it with your video player instead.")

    def stop(self) -> None:
        self.player.stop()
        self.player.setSource(QUrl())
