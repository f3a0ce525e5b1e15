"""Stage-2 scoring: the slow model's visual tokens cached per segment, frame groups scored in cancellable batches.

Most of the slow model's time goes into encoding pixels (the conv pyramid), not into reading a
caption against them, and successive queries (typing, refining, a benchmark) re-rank mostly the
same candidates. So each segment's tokens are computed once and kept (up to a memory budget), and
a cached segment is not even decoded again: only the caption decoder runs (open_clip CoCa's
`image_embs` idea).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch arrives with the slow model; a fast-only query never imports it
    import torch

logger = logging.getLogger(__name__)

CACHE_BYTES = 256 * 1024 * 1024


class Cancelled(Exception):
    """Raised inside stage 2 when a newer query has cancelled it."""


@dataclass(eq=False)
class SegmentPixels:
    """What `Reranker` hands to the scorer for one candidate: a cache key, and its frames if decoded."""

    key: Hashable  # changes when the file changes: (segment id, mtime, size, frames)
    tokens: torch.Tensor | None = None  # (n_frames, N, D), held here so cache eviction cannot lose them
    frames: list[Image.Image] | None = None  # decoded pixels, for segments without tokens yet


class TokenCache:
    """Least-recently-used visual tokens per segment, bounded by bytes; thread-safe."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> torch.Tensor | None:
        with self._lock:
            tokens = self._items.get(key)
            if tokens is not None:
                self._items.move_to_end(key)
            return tokens

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: Hashable, tokens: torch.Tensor) -> None:
        size = tokens.element_size() * tokens.nelement()
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.element_size() * old.nelement()
            self._items[key] = tokens
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.element_size() * dropped.nelement()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


class CachedSlowScorer:
    """Stands in for `models.slow` inside `Reranker`: same `score_groups(text, groups)`, where each group
    is `[SegmentPixels]`; tokens come from the cache or are computed in one batch per chunk of groups,
    and a set `cancel` event stops it between chunks (raises Cancelled). Each score's decoder pass
    also yields the worst caption position, kept for the match judgement (`worst_tokens`)."""

    def __init__(self, slow, cache: TokenCache, cancel: threading.Event | None = None, groups_per_batch: int = 32):
        self._slow = slow
        self._cache = cache
        self._cancel = cancel
        # One batch for the usual K: on a 2-core CPU 20 photos take 32 ms in one batch, 44 in 8+8+4.
        self._batch = max(1, groups_per_batch)
        self._worst: dict[tuple[str, Hashable], float] = {}

    def __getattr__(self, name: str):
        return getattr(self._slow, name)  # tokenizer, device, … as the real scorer has them

    def _check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled

    def tokens(self, items: Sequence[SegmentPixels]) -> list[torch.Tensor]:
        """(n_frames, N, D) visual tokens per item; the missing ones are encoded in one batch."""
        for item in items:
            if item.tokens is None:
                item.tokens = self._cache.get(item.key)
        missing = [item for item in items if item.tokens is None]
        for item in missing:
            if not item.frames:
                raise ValueError(f"segment {item.key} has neither cached tokens nor decoded frames")
        if missing:
            encoded = self._slow.visual_tokens([frame for item in missing for frame in item.frames])
            start = 0
            for item in missing:
                item.tokens = encoded[start:start + len(item.frames)]
                start += len(item.frames)
                self._cache.put(item.key, item.tokens)
                item.frames = None  # the pixels are not needed once encoded
        return [item.tokens for item in items]

    @staticmethod
    def _memories(tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.flatten(0, 1).unsqueeze(0) for t in tokens]  # (1, n_frames*N, D): frames read at once

    def score_groups(self, text: str, groups: Sequence[Sequence[SegmentPixels]]) -> np.ndarray:
        """h(x, y) per group; the decoder attends over all the group's frames' tokens at once."""
        from ..models.slow_scorer import score_by_length

        scores = np.zeros(len(groups), np.float32)
        for start in range(0, len(groups), self._batch):
            self._check()
            chunk = list(range(start, min(start + self._batch, len(groups))))
            memories = self._memories(self.tokens([groups[i][0] for i in chunk]))
            both = score_by_length(self._slow.score_and_worst, text, memories)
            scores[chunk] = both[:, 0]
            for i, worst in zip(chunk, both[:, 1]):
                self._worst[text, groups[i][0].key] = float(worst)
        return scores

    def worst_tokens(self, text: str, items: Sequence[SegmentPixels]) -> np.ndarray:
        """The worst caption position's log-probability per item (`SlowScorerBase.worst_token`): kept
        from `score_groups` where it scored the item, computed now for the others. (n,) float32"""
        out = np.array([self._worst.get((text, item.key), np.nan) for item in items], np.float32)
        todo = [i for i in range(len(items)) if np.isnan(out[i])]
        if todo:
            self._check()
            out[todo] = self._slow.worst_token(text, self._memories(self.tokens([items[i] for i in todo])))
        return out

    def score_frames(self, text: str, item: SegmentPixels) -> np.ndarray:
        """h(x, y) of each frame of a segment on its own (where in the segment the text fits best)."""
        self._check()
        return self._slow.score_tokens(text, self.tokens([item])[0])
