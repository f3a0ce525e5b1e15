"""An in-app video player that starts at a moment, with play/pause, a position slider and the time.

The controls are plain widgets (no QtMultimedia), so they are built and tested on machines where the
multimedia libraries are missing; the player itself is only built when QtMultimedia imports.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from ..format import clock


class PlayerControls(QWidget):
    """▶/❚❚, a slider over the whole video and 'position / duration'; the player drives and listens."""

    play_pause_clicked = Signal()
    seek_requested = Signal(int)  # milliseconds

    def __init__(self, parent=None):
        super().__init__(parent)
        self.play_pause = QToolButton(self)
        self.play_pause.setObjectName("playPause")
        self.play_pause.setToolTip("Play or pause")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("playerPosition")
        self.slider.setRange(0, 0)  # until the player knows the duration
        self.time = QLabel(self)
        self.time.setObjectName("playerTime")
        # Room for the widest 'h:mm:ss / h:mm:ss', so the slider does not jump as the digits change.
        self.time.setMinimumWidth(self.time.fontMetrics().horizontalAdvance("0:00:00 / 0:00:00") + 4)
        self.time.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 2, 0, 0)
        row.addWidget(self.play_pause)
        row.addWidget(self.slider, 1)
        row.addWidget(self.time)
        self._duration_ms = 0
        self.play_pause.clicked.connect(self.play_pause_clicked)
        self.slider.sliderMoved.connect(self.seek_requested)
        self.slider.sliderReleased.connect(lambda: self.seek_requested.emit(self.slider.value()))
        # Keys (arrows, Page Up/Down, Home, End) and clicks on the groove move the knob by "actions";
        # dragging is SliderMove and is sent by sliderMoved above.
        self.slider.actionTriggered.connect(self._on_slider_action)
        self.play_pause.setAccessibleName("Play or pause")
        self.slider.setAccessibleName("Position in the video")
        self.set_playing(False)
        self.set_position(0)

    def _on_slider_action(self, action: int) -> None:
        if action != QSlider.SliderAction.SliderMove.value:
            self.seek_requested.emit(self.slider.sliderPosition())

    def set_playing(self, playing: bool) -> None:
        self.play_pause.setText("❚❚" if playing else "▶")

    def set_duration(self, ms: int) -> None:
        self._duration_ms = max(0, int(ms))
        self.slider.setRange(0, self._duration_ms)
        self.set_position(self.slider.value())

    def set_position(self, ms: int) -> None:
        if not self.slider.isSliderDown():  # the user dragging wins over the player's reports
            self.slider.setValue(int(ms))
        self.time.setText(f"{clock(ms / 1000)} / {clock(self._duration_ms / 1000)}")


class MomentPlayer(QWidget):
    """`play(path, seconds)`: load, seek to the moment, play. `stop()` when the selection changes.

    At the end of the video it goes back to the moment, paused, instead of showing a black frame.
    """

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
        self.controls = PlayerControls(self)
        self._seek_ms: int | None = None
        self._start_ms = 0
        self.player.mediaStatusChanged.connect(self._on_status)
        self.player.errorOccurred.connect(self._on_error)
        self.player.positionChanged.connect(self.controls.set_position)
        self.player.durationChanged.connect(self.controls.set_duration)
        self.player.playbackStateChanged.connect(
            lambda state: self.controls.set_playing(state == QMediaPlayer.PlaybackState.PlayingState))
        self.controls.play_pause_clicked.connect(self.toggle)
        self.controls.seek_requested.connect(self.player.setPosition)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.video, 1)
        layout.addWidget(self.controls)

    def play(self, path: str, seconds: float | None) -> None:
        self._start_ms = self._seek_ms = int(max(0.0, seconds or 0.0) * 1000)
        source = QUrl.fromLocalFile(path)
        if self.player.source() == source and self.player.mediaStatus() not in self._not_loaded():
            self.player.setPosition(self._start_ms)  # the same video: seek, do not reload
            self._seek_ms = None
        else:
            self.player.setSource(source)
        self.player.play()

    def toggle(self) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        if self.player.playbackState() == QMediaPlayer.PlaybackState.PlayingState:
            self.player.pause()
        else:
            self.player.play()

    @staticmethod
    def _not_loaded() -> tuple:
        from PySide6.QtMultimedia import QMediaPlayer

        status = QMediaPlayer.MediaStatus
        return status.NoMedia, status.LoadingMedia, status.InvalidMedia

    def _on_status(self, status) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        # Seeking before the media is loaded is ignored by some backends: seek once it is.
        if self._seek_ms is not None and status in (QMediaPlayer.MediaStatus.LoadedMedia,
                                                    QMediaPlayer.MediaStatus.BufferedMedia):
            self.player.setPosition(self._seek_ms)
            self._seek_ms = None
        elif status == QMediaPlayer.MediaStatus.EndOfMedia:
            # Some backends leave a black frame at the end: go back to the moment and wait there.
            self.player.setPosition(self._start_ms)
            self.player.pause()

    def _on_error(self, error, message: str) -> None:
        from PySide6.QtMultimedia import QMediaPlayer

        if error != QMediaPlayer.Error.NoError:
            self.failed.emit(f"This video cannot play inside FastSlow: {message or error.name}. "
                             "Open it with your video player instead.")

    def stop(self) -> None:
        self.player.stop()
        self.player.setSource(QUrl())
