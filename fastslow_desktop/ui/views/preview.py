"""The preview pane: the large image or the video frame at the moment, its moments, actions, metadata.

The actions sit under the picture, outside the scrolled details, so they are visible at any window size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (QFormLayout, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QSizePolicy, QStackedWidget, QVBoxLayout, QWidget)

from ...search.moments import Moment, next_moment
from ..announce import announce
from ..desktop import multimedia_problem
from ..focus_order import chain
from ..format import breakable, captured, clock, file_size, match_text, moment_label, score, timestamp
from ..workers.job import JobRunner
from ..workers.preview import load_preview
from .moment_strip import MomentStrip

PREVIEW_SIZE = QSize(1024, 1024)  # decoded size; the label scales it to the pane


MAX_UPSCALE = 3.0  # small pictures are enlarged to fill the pane, up to this factor


def moments_tip(n: int, match: str | None) -> str:
    """What Next moment steps through: the video's moments that score near its best for the query. They
    "match" only when the slow model judged the video a match; otherwise they are just its closest."""
    moments = f"{n} moment{'s' if n != 1 else ''} of this video"
    if match == "yes":
        return f"{moments} match the query: go to the next one"
    if match in ("no", "maybe"):
        return f"{moments} come closest to the query (the video is not judged a clear match): go to the next one"
    return f"{moments} come closest to the query: go to the next one"


class ImageLabel(QLabel):
    """Keeps the full preview and re-scales it to fit the label (small pictures enlarged up to 3×)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._pixmap = QPixmap()

    def set_image(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pixmap.isNull():
            self.setPixmap(QPixmap())
            return
        # In device pixels: at 150 % or 200 % scaling a pixmap of the label's logical size was stretched
        # (blurred) by the screen; one of the device size, marked with the ratio, is drawn 1:1.
        ratio = self.devicePixelRatioF()
        size = self._pixmap.size()
        fit = size.scaled(self.size() * ratio, Qt.AspectRatioMode.KeepAspectRatio)
        limit = size * MAX_UPSCALE
        size = fit if fit.width() <= limit.width() else limit
        scaled = self._pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
        scaled.setDevicePixelRatio(ratio)
        self.setPixmap(scaled)


class PreviewPane(QWidget):
    open_requested = Signal(object)  # SearchResult
    reveal_requested = Signal(object)
    copy_requested = Signal(object)
    more_like_requested = Signal(object)
    play_requested = Signal(object)  # only when the in-app player is not available

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("preview")
        self._loader = JobRunner("preview", 1, self)
        self._token = 0
        self._result = None
        self._moment: tuple[float, float] | None = None  # the moment shown (Next moment steps it)
        self._moments: list[Moment] = []
        # Set by the window: the current query's moments of a video (ResultsModel.moments_of).
        self.moments_source: Callable[[object], list[Moment]] | None = None
        self._player = None
        self._cannot_play: str | None = None  # why the in-app player cannot run ("" when it can)
        self.tab_after: QWidget | None = None  # the widget Tab comes from into this pane (the window sets it)

        self.image = ImageLabel(self)
        self.image.setObjectName("previewImage")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.image)
        # Shown under Play when videos cannot play inside the app, naming the package to install.
        self.play_note = QLabel(self)
        self.play_note.setObjectName("playNote")
        self.play_note.setWordWrap(True)
        self.play_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.play_note.setVisible(False)
        self.scroll = self._build_details()

        self.placeholder = QLabel("Select a result to see it here.", self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setObjectName("hint")
        self.placeholder.setWordWrap(True)
        actions = QWidget(self)
        actions.setLayout(self._build_actions())
        actions.layout().setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.stack, 3)
        layout.addWidget(self._build_moments())
        layout.addWidget(actions)
        layout.addWidget(self.play_note)
        layout.addWidget(self.scroll, 2)
        layout.addWidget(self.placeholder)
        self._details = [self.stack, actions, self.scroll]
        self.show_result(None)
        self.setMinimumWidth(280)

    def _build_details(self) -> QScrollArea:
        """The title and the metadata rows, scrolled when the pane is short."""
        self.title = QLabel(self)
        self.title.setObjectName("previewTitle")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # a file named "Me <3 you & <Tom>.png" is shown whole
        bold = self.title.font()
        bold.setBold(True)
        self.title.setFont(bold)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        details = QWidget(self)
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addWidget(self.title)
        details_layout.addLayout(self._build_meta())
        details_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setObjectName("previewDetails")
        scroll.setWidget(details)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # it shows no focus and its labels take none: no Tab stop
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # long names wrap instead
        return scroll

    def _build_moments(self) -> QWidget:
        self.moments_row = QWidget(self)
        self.strip = MomentStrip(self.moments_row)
        self.strip.moment_clicked.connect(self.go_to_moment)
        self.next_button = QPushButton("Next moment", self.moments_row)
        self.next_button.setToolTip("The next moment in this video that matches the query")
        self.next_button.clicked.connect(self.next_moment)
        self.next_button.setAutoDefault(True)
        row = QHBoxLayout(self.moments_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.strip, 1)
        row.addWidget(self.next_button)
        self.moments_row.setVisible(False)
        return self.moments_row

    def _build_meta(self) -> QFormLayout:
        self.fields: dict[str, QLabel] = {}
        meta = self._meta = QFormLayout()
        meta.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for key, label in (("moment", "Moment"), ("path", "Path"), ("size", "Size"), ("taken", "Taken"),
                           ("modified", "Modified"), ("dimensions", "Dimensions"), ("duration", "Duration"),
                           ("match", "Match"), ("final", "Final score"), ("fast", "Fast score"),
                           ("slow", "Slow score")):
            value = QLabel(self)
            value.setWordWrap(True)
            value.setTextFormat(Qt.TextFormat.PlainText)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setObjectName(f"meta_{key}")
            self.fields[key] = value
            meta.addRow(label, value)
        # Shown with invisible break points (a long path wraps); "Copy path" copies it exactly, so the label
        # itself is not for copying.
        self.fields["path"].setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.fields["path"].setToolTip("“Copy path” copies it exactly")
        return meta

    def _build_actions(self) -> QGridLayout:
        self.open_button = QPushButton("Open", self)
        self.open_button.setToolTip("Open with the system viewer (Enter)")
        self.reveal_button = QPushButton("Show in folder", self)
        self.copy_button = QPushButton("Copy path", self)
        self.more_button = QPushButton("More like this", self)
        self.play_button = QPushButton("▶ Play from here", self)
        self.play_button.setAccessibleName("Play from here")
        for button in (self.open_button, self.reveal_button, self.copy_button, self.more_button, self.play_button):
            button.setAutoDefault(True)  # Enter presses a focused button, as Space does
        actions = QGridLayout()
        actions.addWidget(self.open_button, 0, 0)
        actions.addWidget(self.reveal_button, 0, 1)
        actions.addWidget(self.copy_button, 1, 0)
        actions.addWidget(self.more_button, 1, 1)
        actions.addWidget(self.play_button, 2, 0, 1, 2)
        self.open_button.clicked.connect(lambda: self._result and self.open_requested.emit(self._result))
        self.reveal_button.clicked.connect(lambda: self._result and self.reveal_requested.emit(self._result))
        self.copy_button.clicked.connect(lambda: self._result and self.copy_requested.emit(self._result))
        self.more_button.clicked.connect(lambda: self._result and self.more_like_requested.emit(self._result))
        self.play_button.clicked.connect(self._play)
        return actions

    def tab_widgets(self) -> list[QWidget]:
        """The pane's keyboard stops top to bottom: the player's controls (once made), Next moment, the actions."""
        player = [self._player.controls.play_pause, self._player.controls.slider] if self._player else []
        return [*player, self.next_button, self.open_button, self.reveal_button, self.copy_button,
                self.more_button, self.play_button]

    @property
    def result(self):
        return self._result

    def show_result(self, result) -> None:
        """Fill in metadata and scores now; the picture follows from a worker."""
        self._result = result
        self._stop_player()
        self.play_note.setVisible(False)
        for widget in self._details:
            widget.setVisible(result is not None)
        self.placeholder.setVisible(result is None)
        self._moments = self.moments_source(result) if result is not None and self.moments_source else []
        if result is None:
            self._token += 1
            self._moment = None
            self.moments_row.setVisible(False)
            self.image.set_image(QPixmap())
            return
        name = Path(result.path).name
        # Break points only where a name is too long for one line: a short one copies without them.
        self.title.setText(name if len(name) <= 40 else breakable(name))
        self._fill_fields(result)
        self.play_button.setVisible(result.kind == "video")
        self.stack.setCurrentWidget(self.image)
        if result.thumb is not None:
            # The small thumbnail at once, the full picture when the worker has it.
            self.image.set_image(QPixmap(str(result.thumb)))
        self._show_moment(result.t_start, result.t_end)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        QTimer.singleShot(0, self, self._remeasure_details)  # another width, other wrapped heights

    def _remeasure_details(self) -> None:
        """QScrollArea sizes its widget by sizeHint, which counts a wrapped row (a long path) as one line, so
        the rows got squeezed once a row was added (stage 2's match): give it the height they need."""
        details = self.scroll.widget()
        layout = details.layout()
        layout.invalidate()  # the box layout caches its height for a width; the rows may have changed since
        if layout.hasHeightForWidth():
            details.setMinimumHeight(layout.totalHeightForWidth(details.width()))

    def _fill_fields(self, result) -> None:
        info = result.info
        values = {
            "moment": moment_label(result.t_start, result.t_end) if result.kind == "video" else "",
            "path": breakable(result.path),
            "size": file_size(getattr(info, "size", None)),
            "taken": captured(info),
            "modified": timestamp(getattr(info, "mtime", None)),
            "dimensions": (f"{info.width} × {info.height}" if getattr(info, "width", None) else ""),
            "duration": clock(info.duration) if getattr(info, "duration", None) else "",
            "match": match_text(result),
            "final": score(result.score),
            "fast": score(result.fast_score),
            "slow": score(result.slow_score) if result.slow_score is not None else "— (not re-ranked)",
        }
        for key, value in values.items():
            self.fields[key].setText(value)
            self.fields[key].setVisible(bool(value))
            label = self._meta.labelForField(self.fields[key])
            if label is not None:
                label.setVisible(bool(value))
        QTimer.singleShot(0, self, self._remeasure_details)  # after the layout has placed the rows shown now

    def _show_moment(self, t_start: float | None, t_end: float | None) -> None:
        """Point the pane at a moment of the shown result: its times, the strip, the frame there."""
        result = self._result
        self._token += 1
        self._moment = None if t_start is None else (t_start, t_end if t_end is not None else t_start)
        if result.kind == "video":
            self.fields["moment"].setText(moment_label(t_start, t_end))
        matching = [m for m in self._moments if m.matching]
        self.moments_row.setVisible(result.kind == "video" and bool(self._moments))
        self.strip.set_moments(self._moments, getattr(result.info, "duration", None), self._moment)
        # Only worth a button when there is somewhere else to go.
        self.next_button.setEnabled(len(matching) > 1 or (len(matching) == 1 and not self._at(matching[0])))
        self.next_button.setToolTip(moments_tip(len(matching), getattr(result, "match", None)))
        self._loader.submit(load_preview, self._token, result.path, result.kind, t_start, t_end,
                            PREVIEW_SIZE, on_result=self._on_loaded)

    def _at(self, moment: Moment) -> bool:
        """Whether the moment shown lies in this one (a narrowed moment lies inside its segment)."""
        return self._moment is not None and moment.t_start <= self._moment[0] <= moment.t_end

    @property
    def moment(self) -> tuple[float, float] | None:
        """The moment shown, (t_start, t_end) in seconds; None for photos."""
        return self._moment

    def next_moment(self) -> None:
        """Step to the next matching moment of the same video (after the last, back to the first)."""
        if self._result is None or self._moment is None:
            return
        target = next_moment(self._moments, self._moment[0])
        if target is not None:
            self.go_to_moment(target)

    def go_to_moment(self, moment: Moment) -> None:
        """Show this moment; if the video is playing here, play on from it."""
        if self._result is None or self._result.kind != "video":
            return
        playing = self._player is not None and self.stack.currentWidget() is self._player
        self._show_moment(moment.t_start, moment.t_end)
        if playing:
            self._play()

    def update_scores(self, result) -> None:
        """Stage 2 arrived for the item already shown: new scores and judgement, and the refined moment
        (as the grid's badge now shows it) unless the user has stepped to another or is watching."""
        if self._result is None or result is None or result.media_id != self._result.media_id:
            return
        old, self._result = self._result, result
        self._fill_fields(result)
        moved = (result.t_start, result.t_end) != (old.t_start, old.t_end)
        on_old = self._moment == (old.t_start, old.t_end)
        playing = self._player is not None and self.stack.currentWidget() is self._player
        if result.kind == "video" and moved and on_old and not playing:
            self._moments = self.moments_source(result) if self.moments_source else []
            self._show_moment(result.t_start, result.t_end)
        elif self._moment is not None:
            self.fields["moment"].setText(moment_label(*self._moment))

    def _on_loaded(self, outcome: tuple[int, QImage]) -> None:
        token, image = outcome
        if token == self._token and not image.isNull():
            self.image.set_image(QPixmap.fromImage(image))  # QPixmap only here, on the GUI thread

    def _play(self) -> None:
        result = self._result
        if result is None:
            return
        if self._moment is not None:  # the moment shown, which Next moment may have changed
            result = replace(result, t_start=self._moment[0], t_end=self._moment[1])
        if self._cannot_play is None:
            self._cannot_play = multimedia_problem() or ""
        if self._cannot_play:
            self.show_play_problem(self._cannot_play)
            self.play_requested.emit(result)  # the window tries a system player, and says if there is none
            return
        if self._player is None:
            from .player import MomentPlayer

            self._player = MomentPlayer(self)
            self._player.failed.connect(self.show_play_problem)
            self.stack.addWidget(self._player)
            if self.tab_after is not None:  # its controls come first in the pane, as they are on screen
                chain([self.tab_after, *self.tab_widgets()])
        self.stack.setCurrentWidget(self._player)
        self._player.play(result.path, result.t_start)

    def show_play_problem(self, message: str) -> None:
        """Why the video does not play here, in the pane (not only on stderr)."""
        self.play_note.setText(message)
        self.play_note.setVisible(True)
        announce(self, message)

    def show_no_player(self, message: str) -> None:
        """Why it plays nowhere: why not here (if known), then `message`; set whole, never appended to."""
        self.show_play_problem("\n\n".join(part for part in (self._cannot_play, message) if part))

    def _stop_player(self) -> None:
        if self._player is not None:
            self._player.stop()
            self.stack.setCurrentWidget(self.image)

    def shutdown(self) -> None:
        """Stop playing and drop queued decodes; `wait()` (any thread) for the one running."""
        self._stop_player()
        self._loader.clear()

    def wait(self, msecs: int = 3000) -> bool:
        return self._loader.wait(msecs)
