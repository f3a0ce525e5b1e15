"""Video moments: how many frames a segment is judged by, and narrowing a long segment to its best frame."""

from __future__ import annotations

import math

from ..media import FRAMES_PER_SEGMENT  # the slow model attends over as many frames as indexing embeds

MAX_FRAMES_PER_SEGMENT = 6
SECONDS_PER_FRAME = 1.5  # long segments get a frame per this many seconds (events last >= 1.5 s)
NARROW_ABOVE_S = 3.0  # segments longer than this may hold several moments: narrow them to the best frame


def frames_for(t_start: float | None, t_end: float | None) -> int:
    """Frames to decode for a video segment: three, more for long ones (up to six)."""
    if t_start is None or t_end is None:
        return 1
    span = max(0.0, t_end - t_start)
    return max(FRAMES_PER_SEGMENT, min(MAX_FRAMES_PER_SEGMENT, math.ceil(span / SECONDS_PER_FRAME)))


def needs_narrowing(t_start: float | None, t_end: float | None, n_frames: int) -> bool:
    """Whether a segment is long enough that a cut the indexer missed may hide several moments."""
    return t_start is not None and t_end is not None and t_end - t_start > NARROW_ABOVE_S and n_frames >= 2


def narrow(t_start: float, t_end: float, n_frames: int, best: int) -> tuple[float, float]:
    """The part of [t_start, t_end) that frame `best` of `n_frames` stands for.

    Frames are sampled at the centres of n equal parts of the segment (media.frame_times),
    so frame i stands for the i-th part.
    """
    span = (t_end - t_start) / n_frames
    return t_start + span * best, t_start + span * (best + 1)
