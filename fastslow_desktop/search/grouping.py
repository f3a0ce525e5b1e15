"""Video grouping: one result per file, ranked by its best segment, which carries the moment's times."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def best_per_media(ranked: Iterable[T], media_of: Callable[[T], int]) -> Iterator[T]:
    """Items in rank order, keeping only the first (best) one of each media file.

    Photos have one segment each, so only videos collapse: a video's entry is its best segment.
    """
    seen: set[int] = set()
    for item in ranked:
        media = media_of(item)
        if media not in seen:
            seen.add(media)
            yield item


def cap_per_media(ranked: Iterable[T], media_of: Callable[[T], int], limit: int, per_media: int) -> list[T]:
    """The first `limit` items in rank order with at most `per_media` from any one file.

    Stage 2 re-ranks a few segments per video (the best moment by the fast score is not always the
    right one), but no single long video may take every re-ranking slot.
    """
    counts: dict[int, int] = {}
    out: list[T] = []
    for item in ranked:
        if len(out) >= limit:
            break
        media = media_of(item)
        if counts.get(media, 0) < per_media:
            counts[media] = counts.get(media, 0) + 1
            out.append(item)
    return out
