"""Text-to-image retrieval evaluation with the SynthScenes relevance rule (R@1/5/10, ms per query)."""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fastslow_desktop.models.rerank import RerankConfig, caption_tokens, combine
from fastslow_desktop.synthscenes import satisfies

from .data import Item

logger = logging.getLogger(__name__)

RECALL_AT = (1, 5, 10)


@dataclass
class Queries:
    texts: list[str]
    relevant: list[np.ndarray]  # per query: indices of gallery items that satisfy it


def make_queries(items: Sequence[Item], n: int, seed: int) -> Queries:
    """Canonical captions of the gallery (unique), a seeded subset; relevance by the scene rule.

    Without ground-truth scenes (COCO, Flickr30K) an item is relevant only to its own captions.
    """
    canon = list(dict.fromkeys(item.captions[0] for item in items))
    rng = random.Random(seed)
    texts = rng.sample(canon, min(n, len(canon)))
    relevant = []
    for text in texts:
        if items[0].scene is not None:
            rel = [j for j, it in enumerate(items) if satisfies(it.scene, text)]
        else:
            rel = [j for j, it in enumerate(items) if text in it.captions]
        relevant.append(np.array(rel, dtype=np.int64))
    return Queries(texts, relevant)


def recall(rankings: list[np.ndarray], queries: Queries) -> dict[str, float]:
    out = {}
    for k in RECALL_AT:
        hits = [np.isin(r[:k], rel).any() for r, rel in zip(rankings, queries.relevant)]
        out[f"R@{k}"] = round(100.0 * float(np.mean(hits)), 2)
    return out


class Gallery:
    """A test or validation gallery with everything precomputed once per model."""

    def __init__(self, items: Sequence[Item], slow, fast_models: dict):
        self.images = [it.load() for it in items]
        self.items = items
        self.embeddings, self.encoders = {}, {}
        for name, encoder in fast_models.items():
            self.add_fast(name, encoder)
        self.slow = slow
        t0 = time.perf_counter()
        self.tokens = slow.visual_tokens(self.images)  # (N, T, D): the slow model sees each image once
        self.ms_tokens_per_image = 1000 * (time.perf_counter() - t0) / max(1, len(self.images))

    def add_fast(self, name: str, encoder) -> None:
        self.encoders[name] = encoder
        self.embeddings[name] = encoder.encode_images(self.images)

    def with_slow(self, slow) -> Gallery:
        """The same gallery seen by another slow model (fast embeddings shared)."""
        other = copy.copy(self)
        other.slow = slow
        t0 = time.perf_counter()
        other.tokens = slow.visual_tokens(self.images)
        other.ms_tokens_per_image = 1000 * (time.perf_counter() - t0) / max(1, len(self.images))
        return other

    def fast_rank(self, name: str, text: str) -> tuple[np.ndarray, np.ndarray]:
        q = self.encoders[name].encode_texts([text])[0]
        scores = self.embeddings[name] @ q
        return np.argsort(-scores, kind="stable"), scores

    def slow_rank(self, text: str) -> np.ndarray:
        return np.argsort(-self.slow.score_tokens(text, self.tokens), kind="stable")

    def rerank(self, name: str, text: str, k: int, cfg: RerankConfig) -> np.ndarray:
        order, scores = self.fast_rank(name, text)
        head = order[:k]
        h = self.slow.score_tokens(text, self.tokens[head])
        n_tokens = caption_tokens(self.slow.tokenizer, text)
        final = combine(h, scores[head], cfg, n_tokens)
        return np.concatenate([head[np.argsort(-final, kind="stable")], order[k:]])


def _timed(fn, queries: Queries):
    rankings = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for text in queries.texts:
            rankings.append(fn(text))
    return rankings, 1000 * (time.perf_counter() - t0) / max(1, len(queries.texts))


def row(model: str, k: int | None, rankings, ms: float, queries: Queries, **extra) -> dict:
    return {"model": model, "K": k, **recall(rankings, queries), "ms_per_query": round(ms, 3), **extra}


def evaluate_fast(gallery: Gallery, name: str, queries: Queries, label: str | None = None) -> dict:
    rankings, ms = _timed(lambda t: gallery.fast_rank(name, t)[0], queries)
    return row(label or name, None, rankings, ms, queries)


def evaluate_slow(gallery: Gallery, queries: Queries, label: str = "slow") -> dict:
    rankings, ms = _timed(gallery.slow_rank, queries)
    return row(label, None, rankings, ms, queries, pairs_per_query=len(gallery.items))


def evaluate_rerank(gallery: Gallery, name: str, queries: Queries, k: int, cfg: RerankConfig) -> dict:
    rankings, ms = _timed(lambda t: gallery.rerank(name, t, k, cfg), queries)
    return row("rerank", k, rankings, ms, queries, beta=cfg.beta, pairs_per_query=k)


def tune_rerank(gallery: Gallery, name: str, queries: Queries, ks: Sequence[int], betas: Sequence[float],
                normalization: str = "zscore", choose_from: Sequence[int] | None = None,
                ) -> tuple[RerankConfig, dict[int, float], dict[int, dict[float, float]]]:
    """β per K on the validation gallery, then the smallest K within half a point of the best R@1.

    The fast ranking and the slow scores of the largest K are computed once per query; every
    (K, β) pair then only re-combines them. Returns the chosen config, the best β per K, and the
    whole grid {K: {β: R@1}} (for the K/β plot). K is chosen among `choose_from` (default: ks).
    """
    k_max = max(ks)
    cached = []
    for text in queries.texts:
        order, scores = gallery.fast_rank(name, text)
        head = order[:k_max]
        h = gallery.slow.score_tokens(text, gallery.tokens[head])
        n_tokens = caption_tokens(gallery.slow.tokenizer, text)
        cached.append((order, scores[head], h, n_tokens))
    grid: dict[int, dict[float, float]] = {}
    for k in ks:
        grid[k] = {}
        for beta in betas:
            cfg = RerankConfig(k=k, beta=beta, normalization=normalization)
            rankings = []
            for order, fast, h, n_tokens in cached:
                final = combine(h[:k], fast[:k], cfg, n_tokens)
                rankings.append(np.concatenate([order[:k][np.argsort(-final, kind="stable")], order[k:]]))
            grid[k][beta] = recall(rankings, queries)["R@1"]
    # (R@1, β) per K: the best R@1, ties to the smaller β
    best_per_k = {k: max(((r, b) for b, r in row.items()), key=lambda rb: (rb[0], -rb[1])) for k, row in grid.items()}
    allowed = {k: v for k, v in best_per_k.items() if k in set(choose_from or ks)}
    top = max(r for r, _ in allowed.values())
    k = min(k for k, (r, _) in allowed.items() if r >= top - 0.5)
    logger.info("re-rank tuning on validation (K: (R@1, beta)): %s -> K=%d", best_per_k, k)
    return (RerankConfig(k=k, beta=best_per_k[k][1], normalization=normalization),
            {k: b for k, (_, b) in best_per_k.items()}, grid)
