"""Re-ranking: the slow model re-orders only the fast model's top K.

final = normalise(h) + β·s_fast over the K candidates; β, K and the normalisation come from the
bundle manifest (chosen on the validation split at training time).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("zscore", "per_token", "none")


@dataclass(frozen=True)
class RerankConfig:
    """Re-ranking defaults stored in a bundle's manifest (frozen: a request carries its own K and β)."""

    k: int = 20  # candidates the slow model re-scores
    beta: float = 1.0  # weight of the fast score in the final score
    normalization: str = "zscore"  # how h is put on a common scale: over the K (zscore), per token, or not

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RerankConfig:
        cfg = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        if cfg.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {cfg.normalization!r}; expected one of {NORMALIZATIONS}")
        # JSON gives any type: a string β failed only at the first search, a negative K turned re-ranking off.
        if isinstance(cfg.k, bool) or not isinstance(cfg.k, int) or cfg.k < 0:
            raise ValueError(f"k must be a whole number of at least 0, not {cfg.k!r}")
        if isinstance(cfg.beta, bool) or not isinstance(cfg.beta, (int, float)) or not math.isfinite(cfg.beta):
            raise ValueError(f"beta must be a finite number, not {cfg.beta!r}")
        return replace(cfg, beta=float(cfg.beta))


def normalize_slow(h: np.ndarray, normalization: str, n_tokens: int = 1) -> np.ndarray:
    """Put slow scores of one query's candidates on the scale β was tuned for."""
    h = np.asarray(h, dtype=np.float64)
    if normalization == "zscore":
        if len(h) < 2:
            return np.zeros_like(h)
        return (h - h.mean()) / (h.std() + 1e-6)
    if normalization == "per_token":
        return h / max(1, n_tokens)
    return h


def caption_tokens(tokenizer, text: str) -> int:
    """Tokens the slow model predicts for `text` (the per-token normalisation's divisor)."""
    return int((tokenizer([text]) != 0).sum()) - 1  # every non-pad token but the first


def combine(h: np.ndarray, fast: np.ndarray, config: RerankConfig, n_tokens: int = 1) -> np.ndarray:
    """final = normalise(h) + β·s_fast."""
    return normalize_slow(h, config.normalization, n_tokens) + config.beta * np.asarray(fast, np.float64)


@dataclass
class Ranked:
    """One candidate after re-ranking; slow_score is None when it was outside the top K."""

    key: Hashable
    fast_score: float
    slow_score: float | None
    score: float


class Reranker:
    """Scores the top K candidates of a query with the slow model and re-orders them."""

    def __init__(self, slow, config: RerankConfig):
        self.slow = slow
        self.config = config

    def rerank(
        self,
        text: str,
        keys: Sequence[Hashable],
        fast_scores: Sequence[float],
        load_frames: Callable[[Hashable], Sequence[Image.Image]],
        k: int | None = None,
        beta: float | None = None,
    ) -> list[Ranked]:
        """Candidates in fast order in, re-ranked top K then the rest (fast order) out.

        `load_frames(key)` returns the images of a candidate: one for a photo, a few frames for a
        video segment. Only the top K are ever loaded. A candidate that cannot be loaded keeps its
        fast rank (logged), so one unreadable file never breaks a query.
        """
        cfg = RerankConfig(
            k=k if k is not None else self.config.k,
            beta=beta if beta is not None else self.config.beta,
            normalization=self.config.normalization,
        )
        order = np.argsort(-np.asarray(fast_scores, dtype=np.float64), kind="stable")
        head = [int(i) for i in order[: cfg.k]]
        groups, scored = [], []
        for i in head:
            try:
                frames = list(load_frames(keys[i]))
            except Exception as exc:  # unreadable/moved file: keep it, unscored
                logger.warning("re-rank skipped %s: %s", keys[i], exc)
                continue
            if frames:
                groups.append(frames)
                scored.append(i)
        results: list[Ranked] = []
        if scored:
            h = self.slow.score_groups(text, groups)
            n_tokens = caption_tokens(self.slow.tokenizer, text)
            fast = np.array([fast_scores[i] for i in scored])
            final = combine(h, fast, cfg, n_tokens)
            for j in np.argsort(-final, kind="stable"):
                i = scored[j]
                results.append(Ranked(keys[i], float(fast_scores[i]), float(h[j]), float(final[j])))
        done = set(scored)
        for i in order:
            i = int(i)
            if i not in done:
                results.append(Ranked(keys[i], float(fast_scores[i]), None, float(fast_scores[i])))
        return results
