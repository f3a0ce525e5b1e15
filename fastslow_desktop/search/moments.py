"""Video moments: frames per segment, narrowing a long segment to its best frame, and a video's other moments."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

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


def narrow(t_start: float, t_end: float, n_frames: int, first: int, last: int | None = None) -> tuple[float, float]:
    """The part of [t_start, t_end) that frames `first` to `last` (inclusive; default: `first`) of
    `n_frames` stand for.

    Frames are sampled at the centres of n equal parts of the segment (media.frame_times),
    so frame i stands for the i-th part.
    """
    span = (t_end - t_start) / n_frames
    last = first if last is None else last
    return t_start + span * first, t_start + span * (last + 1)


# Frames whose score is within this of the best frame's fit the query as well: the moment spans them all.
# In the slow score's units (the caption's log-likelihood, both directions, in nats): 1 nat is the best
# frame making the caption e ≈ 2.7 times likelier. A static scene's frames differ by far less, so it is
# not cut to one arbitrary frame's share.
NARROW_MARGIN = 1.0


def best_run(scores: Sequence[float], margin: float = NARROW_MARGIN) -> tuple[int, int]:
    """(first, last) frame of the run of neighbouring frames around the best one that score within
    `margin` of it."""
    best = max(range(len(scores)), key=lambda i: scores[i])
    floor = scores[best] - margin
    first, last = best, best
    while first > 0 and scores[first - 1] >= floor:
        first -= 1
    while last + 1 < len(scores) and scores[last + 1] >= floor:
        last += 1
    return first, last


# A segment of the same video counts as another matching moment when its fast score is within this
# margin of the video's best (cosine units: the spread between a right and a near-miss caption is
# larger than this for the shipped models, so near-duplicates of the best moment qualify, not noise).
MOMENT_MARGIN = 0.05


@dataclass(frozen=True)
class Moment:
    """One segment of a video for the current query: its times, its fast score, whether it matches."""

    segment_id: int
    t_start: float
    t_end: float
    score: float
    matching: bool


def moments_of(media_id: int, candidates: Iterable[Any], margin: float = MOMENT_MARGIN,
               chosen: int | None = None) -> list[Moment]:
    """Every segment of one video in the query's fast shortlist, in time order, the matching ones marked.

    `candidates` are search.types.Candidate (segment_id, fast_score, info); segments outside the
    shortlist scored too low to be worth showing, and photos have no moments. The `chosen` segment
    (the one the search shows for this video, which stage 2 may pick by the slow score) always matches.
    """
    own = [c for c in candidates if c.info.media_id == media_id and c.info.t_start is not None]
    if not own:
        return []
    best = max(c.fast_score for c in own)
    moments = [Moment(c.segment_id, float(c.info.t_start),
                      float(c.info.t_end if c.info.t_end is not None else c.info.t_start),
                      float(c.fast_score), c.fast_score >= best - margin or c.segment_id == chosen) for c in own]
    return sorted(moments, key=lambda m: (m.t_start, m.segment_id))


def next_moment(moments: list[Moment], t_now: float) -> Moment | None:
    """The first matching moment that starts after `t_now`, wrapping round to the first one."""
    matching = [m for m in moments if m.matching]
    if not matching:
        return None
    later = [m for m in matching if m.t_start > t_now + 1e-6]
    return later[0] if later else matching[0]
