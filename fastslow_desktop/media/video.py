"""Videos through OpenCV: probing, frames at given times, and streaming scene segments.

Which instants stand for a segment is defined once, by `frame_times`: indexing keeps the samples
nearest those instants, re-embedding, re-ranking and the preview seek to them.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .files import DecodeError, opened_path, read_error
from .sniff import EXTENSION_FOR, HEAD_BYTES, picture_format

logger = logging.getLogger(__name__)

# FFmpeg's and OpenCV's own log lines ("moov atom not found", "Could not find decoder") would reach the
# terminal beside the one sentence FastSlow gives each file: quiet unless the user sets them (both are
# read when OpenCV first needs them, after this module is imported).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

# Sample a few frames per second, cut where consecutive samples differ much more than the clip's
# usual motion, keep every segment between MIN and MAX seconds.
SAMPLE_FPS = 4.0
MIN_SEGMENT_S = 1.0
MAX_SEGMENT_S = 10.0
FRAMES_PER_SEGMENT = 3  # frames that stand for an ordinary segment, when indexing and when re-ranking
CUT_MIN_DIFF = 4.0  # mean absolute difference (0-255) of 24x24 colour thumbnails
CUT_MOTION_FACTOR = 4.0


def frame_times(t_start: float, t_end: float, n: int) -> list[float]:
    """The n instants that stand for [t_start, t_end): the centres of n equal parts (n = 1: the middle,
    the frame a segment's thumbnail and preview show)."""
    if n <= 1:
        return [(t_start + t_end) / 2]
    span = max(0.0, t_end - t_start)
    return [t_start + span * (i + 0.5) / n for i in range(n)]


@dataclass
class VideoSegment:
    """A stretch of a video between two scene changes, with the frames at its `frame_times`."""

    t_start: float
    t_end: float
    frames: list[Image.Image] = field(default_factory=list)  # RGB, in time order


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float


def _open_capture(path: str | Path):
    import cv2  # imported here: photos-only runs never load OpenCV

    try:
        with opened_path(path) as checked:  # a regular file, opened without blocking
            with open(checked, "rb") as fh:
                picture = picture_format(fh.read(HEAD_BYTES))
            if picture is not None:  # FFmpeg would read it as a one-frame "video" of 0.04 s
                raise DecodeError(f"not a video: it is a picture ({picture}); named {EXTENSION_FOR[picture]} it is "
                                  "indexed as one")
            cap = cv2.VideoCapture(checked)
    except OSError as exc:
        raise read_error(exc) from exc
    if not cap.isOpened():
        cap.release()
        raise DecodeError("not a video (or a format this computer cannot decode)")
    return cap


def _probe(cap) -> VideoInfo:
    import cv2

    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if not (0 < fps < 1000):
        fps = 25.0  # some containers report 0 or nonsense; timestamps then come from frame order
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return VideoInfo(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     fps, count, count / fps if count > 0 else 0.0)


def bgr_to_pil(frame: np.ndarray, max_side: int | None = None) -> Image.Image:
    """An OpenCV BGR frame as a PIL RGB image, shrunk so its shorter side is `max_side`."""
    import cv2

    h, w = frame.shape[:2]
    if max_side and min(h, w) > max_side:
        scale = max_side / min(h, w)
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


SEEK_TRIES = 4  # seeks to land at or before the time asked for …
SEEK_READ_LIMIT = 240  # … and frames read forward from there (a variable-frame-rate video)


def _position(cap) -> float:
    import cv2

    return cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0


def _read_at(cap, seconds: float) -> np.ndarray | None:
    """The frame showing at `seconds`, or None. OpenCV seeks by frame number (the time times the
    header's frame rate), which lands early or late in a variable-frame-rate video: the landed frame's
    own timestamp says so, and the read goes back or forward to the frame that covers `seconds`."""
    import cv2

    seconds, target = max(0.0, seconds), max(0.0, seconds)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    half = 0.5 / fps if 0 < fps < 1000 else 0.02
    for _ in range(SEEK_TRIES):
        cap.set(cv2.CAP_PROP_POS_MSEC, target * 1000.0)
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        t = _position(cap)
        if not math.isfinite(t) or abs(t - seconds) <= half or t < seconds:
            break
        target = target * seconds / t if t > 0 and target > 0 else 0.0  # landed late: aim earlier
    if not math.isfinite(t) or abs(t - seconds) <= half:
        return frame
    for _ in range(SEEK_READ_LIMIT):  # landed early: the last frame starting at or before `seconds`
        if not cap.grab() or _position(cap) > seconds + half:
            break
        ok, later = cap.retrieve()
        if not ok or later is None:
            break
        frame = later
    return frame


def video_frames(path: str | Path, times: list[float], max_side: int | None = None) -> list[Image.Image]:
    """Frames at the given seconds (seeking), for re-embedding and re-ranking a stored segment.
    Raises DecodeError when none can be read."""
    cap = _open_capture(path)
    try:
        frames = [bgr_to_pil(f, max_side) for f in (_read_at(cap, t) for t in times) if f is not None]
    finally:
        cap.release()
    if not frames:
        raise DecodeError("video has no readable frames at those times")
    return frames


def video_frame(path: str | Path, seconds: float, max_side: int | None = None) -> Image.Image:
    """One frame at `seconds`, for the preview; the first frame when the container cannot seek there.
    Raises DecodeError."""
    cap = _open_capture(path)
    try:
        frame = _read_at(cap, seconds)
        if frame is None:
            frame = _read_at(cap, 0.0)
    finally:
        cap.release()
    if frame is None:
        raise DecodeError("video has no readable frames")
    return bgr_to_pil(frame, max_side)


class _Clock:
    """Each decoded frame's time: the container's timestamp while it moves forward (variable frame
    rate: phones), else one frame interval on. `last` is the last frame's time, read or skipped;
    `interval` the last step between two timestamps (the header's frame rate until there is one)."""

    def __init__(self, cap, fps: float):
        import cv2

        self._cap, self._prop, self.interval = cap, cv2.CAP_PROP_POS_MSEC, 1.0 / fps
        self.last: float | None = None

    def tick(self) -> float:
        t = self._cap.get(self._prop) / 1000.0
        if self.last is None:
            t = t if math.isfinite(t) and t >= 0 else 0.0
        elif math.isfinite(t) and t > self.last:
            self.interval = t - self.last
        else:
            t = self.last + self.interval
        self.last = t
        return t


def _samples(cap, first: np.ndarray, clock: _Clock) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, BGR frame) about SAMPLE_FPS times a second by the frames' own times, from the first on."""
    t, frame = clock.tick(), first
    while True:
        yield t, frame
        # Skip to the next sample's time: grab() demuxes and decodes without the colour conversion.
        due = t + 1.0 / SAMPLE_FPS - clock.interval / 2
        while True:
            if not cap.grab():
                return
            t = clock.tick()
            if t >= due:
                break
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            return


class _CutDetector:
    """Says where a scene changes: a jump well above the clip's usual motion between samples."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.diffs: list[float] = []

    def diff(self, frame: np.ndarray) -> float:
        import cv2

        small = cv2.resize(frame, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
        value = float(np.abs(small - self._prev).mean()) if self._prev is not None else 0.0
        self._prev = small
        return value

    def is_cut(self, diff: float, length: float, min_len: float, max_len: float) -> bool:
        threshold = max(CUT_MIN_DIFF, CUT_MOTION_FACTOR * float(np.median(self.diffs)) if self.diffs else 0.0)
        return (diff > threshold and length >= min_len) or length >= max_len


_Samples = list[tuple[float, Image.Image]]


def _segment(t_start: float, t_end: float, samples: _Samples, n: int) -> VideoSegment:
    """A segment whose frames are the samples nearest its `frame_times`."""
    if len(samples) <= n:
        return VideoSegment(t_start, t_end, [im for _, im in samples])
    times = [t for t, _ in samples]
    frames = []
    for target in frame_times(t_start, t_end, n):
        i = bisect.bisect_left(times, target)
        near = min((j for j in (i - 1, i) if 0 <= j < len(samples)), key=lambda j: abs(times[j] - target))
        frames.append(samples[near][1])
    return VideoSegment(t_start, t_end, frames)


def _split(samples: Iterator[tuple[float, np.ndarray]], max_side: int | None, min_len: float,
           max_len: float, tail: list) -> Iterator[tuple[float, float, _Samples]]:
    """Closed stretches (t_start, t_end, samples) between cuts; the open last stretch is left in
    `tail` as [t_start, last sample time, samples] when the samples run out."""
    cuts = _CutDetector()
    current: _Samples = []
    seg_start = last_t = 0.0
    for t, frame in samples:
        last_t = t
        diff = cuts.diff(frame)
        if current and cuts.is_cut(diff, t - seg_start, min_len, max_len):
            yield seg_start, t, current
            current, seg_start, cuts.diffs = [], t, []
        else:
            cuts.diffs.append(diff)
        current.append((t, bgr_to_pil(frame, max_side)))
    tail[:] = [seg_start, last_t, current]


def iter_video_segments(
    path: str | Path,
    max_side: int | None = None,
    frames_per_segment: int = FRAMES_PER_SEGMENT,
    min_len: float = MIN_SEGMENT_S,
    max_len: float = MAX_SEGMENT_S,
) -> tuple[VideoInfo, Iterator[VideoSegment]]:
    """Probe a video and stream its segments (memory stays bounded by two segments' samples).
    Raises DecodeError when the file is not a readable video."""
    cap = _open_capture(path)
    info = _probe(cap)
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise DecodeError("video has no readable frames")
    clock = _Clock(cap, info.fps)
    header_duration = info.duration

    def generate() -> Iterator[VideoSegment]:
        n = frames_per_segment
        pending = None  # held back one step so a too-short tail can join it
        tail: list = []
        try:
            for stretch in _split(_samples(cap, first, clock), max_side, min_len, max_len, tail):
                if pending is not None:
                    yield _segment(*pending, n)
                pending = stretch
        finally:
            cap.release()
        if not tail:  # the consumer stopped early
            return
        seg_start, _, samples = tail
        # The decoded frames say how long the video is: a header's frame count over a wrong frame rate,
        # or a file cut short, says otherwise (its moments would run past the last picture).
        info.duration = end = clock.last + clock.interval
        if end < 0.9 * header_duration:  # cut short, or a header whose frame rate is wrong
            logger.info("%s: frames up to %.1f s decode, the header says %.1f s", path, end, header_duration)
        if pending is not None and end - seg_start < min_len and pending[1] - pending[0] + end - seg_start <= max_len:
            yield _segment(pending[0], end, pending[2] + samples, n)  # the short tail joins the previous one
            return
        if pending is not None:
            yield _segment(*pending, n)
        if samples:
            yield _segment(seg_start, end, samples, n)

    return info, generate()
