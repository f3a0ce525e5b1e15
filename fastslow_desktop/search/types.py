"""What a search asks for and what it returns: requests, results and staged result sets."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..path_text import path_fields

if TYPE_CHECKING:
    from ..library import SegmentInfo


class SearchError(Exception):
    """A search that cannot run, with a message a person can act on (bad image path, empty library…)."""


@dataclass
class SearchRequest:
    """One query and its options; the UI and the CLI build these."""

    text: str = ""  # plain text, or a combined query: '"red circle" + photo.jpg - "blue"', '2:"red circle"'
    top: int = 50  # results wanted
    k: int | None = None  # slow re-rank depth (segments); None = the bundle's default
    beta: float | None = None  # weight of the fast score in the final score; None = the bundle's
    rerank: bool = True
    kind: str | None = None  # "image" | "video" | None
    folder: str | None = None  # only results under this folder
    date_from: datetime.date | None = None  # capture day (EXIF, video header, else mtime), inclusive
    date_to: datetime.date | None = None  # inclusive
    image: str | None = None  # query by an image file on disk
    like_segment: int | None = None  # "more like this": the stored embedding of a segment
    min_relative_score: float | None = None  # drop results whose fast score is below this fraction of the best
    sort: str = "relevance"  # "relevance" | "date" (capture time, newest first)
    only_matches: bool = False  # keep only re-ranked results judged match == "yes"


@dataclass
class SearchResult:
    """One photo, or one video at its best moment."""

    segment_id: int
    media_id: int
    path: str
    kind: str
    score: float  # final score used for ordering
    fast_score: float  # f(x)ᵀg(y) of the query vector and this segment
    slow_score: float | None  # h(x, y); None when not re-ranked
    # The moment, in seconds (None for photos): the segment's times, or in stage 2 the part of a long
    # segment whose frame matches best (info.t_start/t_end keep the whole segment).
    t_start: float | None
    t_end: float | None
    thumb: Path | None  # the segment's thumbnail, when it exists on disk
    info: SegmentInfo
    # The slow stage's judgement (None before re-ranking): "yes" | "maybe" | "no", and its calibrated
    # probability that this result shows what the query describes.
    match: str | None = None
    match_probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The result object of `fastslow search --json` (shared/DESIGN.md)."""
        return {**path_fields(self.path), "kind": self.kind, "score": self.score, "fast_score": self.fast_score,
                "slow_score": self.slow_score, "t_start": self.t_start, "t_end": self.t_end,
                "captured_at": getattr(self.info, "captured_at", None),
                "captured_source": getattr(self.info, "captured_source", None),
                "match": self.match,
                "match_probability": None if self.match_probability is None else round(self.match_probability, 4)}


def nothing_matches(kinds: set[str]) -> str:
    """The heading over results none of which was judged a match: videos when they are all videos (the
    Videos filter), else photos (a video among photos is one of the closest results all the same)."""
    what = "video" if kinds == {"video"} else "photo"
    return f"No {what} shows exactly that — closest results below"


@dataclass
class Candidate:
    """A segment of the fast shortlist (before grouping); stage 2 re-scores these."""

    segment_id: int
    fast_score: float
    info: SegmentInfo


@dataclass
class StageResult:
    """Results of stage 1 (fast only) or stage 2 (re-ranked) for one request."""

    request: SearchRequest
    results: list[SearchResult]
    stage: int  # 1 = fast only, 2 = re-ranked
    fast_ms: float
    slow_ms: float | None
    # Kept for stage 2: the whole fast shortlist (segments, best first) and the texts to re-rank with.
    candidates: list[Candidate] = field(default_factory=list, repr=False)
    rerank_texts: list[tuple[float, str]] = field(default_factory=list, repr=False)
    judged: bool = False  # stage 2 ran the match judgement (the bundle has a calibration)
    notes: list[str] = field(default_factory=list)  # what of the query the models could not read (reading.py)

    @property
    def any_match(self) -> bool | None:
        """Whether some result was judged a match ("yes"); None when no result was judged at all
        (stage 1, re-ranking off, or a bundle without a match calibration). False is the UI's cue for
        "No photo shows exactly that — closest results below"."""
        judged = [r.match for r in self.results if r.match is not None]
        if not judged:
            # Filtered by only_matches down to nothing: the judgement ran, nothing was "yes".
            return False if self.stage == 2 and self.request.only_matches and self.judged else None
        return "yes" in judged

    def to_json(self, query: str | None = None) -> dict[str, Any]:
        """The object `fastslow search --json` prints for one query."""
        return {
            "query": query if query is not None else (self.request.text or self.request.image or ""),
            "results": [r.to_json() for r in self.results],
            "any_match": self.any_match,
            "notes": list(self.notes),
            "timing": {"fast_ms": round(self.fast_ms, 3),
                       "slow_ms": None if self.slow_ms is None else round(self.slow_ms, 3)},
        }
