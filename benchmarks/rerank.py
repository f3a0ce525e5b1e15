"""Re-rank cost: stage 2 (decode the K candidates, slow scores, re-order) at K = 10, 20, 50 on the CPU
(and on CUDA when there is one), and exhaustive slow scoring of 1 000 photos against fast + re-rank."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fastslow_desktop.library import Library

from .common import Context, Result, median, skipped
from .models import bundle
from .photos import scene_photos

logger = logging.getLogger(__name__)

KS = (10, 20, 50)
EXHAUSTIVE_GOAL = 20.0


def photo_library(cache: Path, models, n: int) -> tuple[Path, list[str]]:
    """`n` SynthScenes photos (480 px JPEGs) indexed with the bundle (cached per model); and captions."""
    photos, captions = scene_photos(cache, n)
    slug = "".join(c if c.isalnum() else "-" for c in models.model_id)[:40]
    folder = cache / f"rerank-library-{slug}-{n}"
    marker = folder / "bench.json"
    if not marker.is_file():
        with Library.open(folder, models) as library:
            library.add_root(photos)
            report = library.index()
        marker.write_text(json.dumps(report.to_json()))
    return folder, captions


def _forget_tokens(engine) -> None:
    """Empty the engine's cache of slow visual tokens (when it has one): each measured re-rank then
    pays for decoding and encoding its K candidates, as a new query over unseen photos does."""
    cache = getattr(engine, "token_cache", None)
    if cache is not None:
        cache.clear()


def _stage2_ms(engine, texts: list[str], k: int) -> tuple[list[float], list[float]]:
    """Stage-2 times per query: cold (empty token cache), then the same stage 1 re-ranked again (warm)."""
    from fastslow_desktop.search import SearchRequest

    cold, warm = [], []
    for text in texts:
        stage1 = engine.fast(SearchRequest(text=text, top=50, k=k))
        _forget_tokens(engine)
        start = time.perf_counter()
        engine.refine(stage1)
        cold.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        engine.refine(stage1)
        warm.append((time.perf_counter() - start) * 1000)
    return cold, warm


def _rerank_rows(ctx: Context, folder: Path, texts: list[str], device: str) -> list[Result]:
    from fastslow_desktop.search import SearchEngine

    models = bundle(ctx.models, device=device)
    suffix = "" if device == "cpu" else f"[{device}]"
    rows = []
    with Library.open(folder, models) as library:
        engine = SearchEngine(library, models)
        try:
            engine.warm_up(slow=True)
            _stage2_ms(engine, texts[:1], KS[0])  # first call: lazy inits
            for k in KS:
                cold, warm = _stage2_ms(engine, texts, k)
                rows.append(Result(f"rerank_ms@K={k}{suffix}", median(cold), "ms",
                                   note=f"SearchEngine.refine on {device}, slow-token cache emptied first: decode K "
                                        f"photos, slow visual tokens + scores, re-order; median of {len(texts)} "
                                        f"queries; the same stage 1 again (tokens cached): {median(warm):.0f} ms"))
        finally:
            engine.close()
    return rows


def _exhaustive_row(ctx: Context, folder: Path, texts: list[str], device: str = "cpu") -> Result:
    """The slow model on every photo (decoded on 2 threads, scored in the scorer's batches) against the
    product's fast + re-rank at K = 20, same queries, same decode size."""
    from fastslow_desktop.search import SearchEngine, SearchRequest
    from fastslow_desktop.search.decoding import DECODE_WORKERS, decode_side

    models = bundle(ctx.models, device=device)
    label = ctx.sizes.exhaustive_label + ("" if device == "cpu" else f"[{device}]")
    with Library.open(folder, models) as library:
        engine = SearchEngine(library, models)
        try:
            engine.warm_up(slow=True)
            ids = library.segment_ids().tolist()
            side = decode_side(models)
            slow = models.slow
            exhaustive, staged = [], []
            for text in texts:
                engine.search(SearchRequest(text=text, top=50, k=20))  # page cache and lazy paths warm for both
                start = time.perf_counter()
                with ThreadPoolExecutor(DECODE_WORKERS) as pool:
                    images = [frames[0] for frames in pool.map(lambda sid: library.load_frames(sid, 1, side), ids)]
                scores = slow.score(text, images)
                order = np.argsort(-scores)[:50]  # noqa: F841 - the ranking it would show
                exhaustive.append((time.perf_counter() - start) * 1000)
            for text in texts:
                engine._text_cache.clear()  # the fast path pays for its text encoding too
                _forget_tokens(engine)
                start = time.perf_counter()
                engine.search(SearchRequest(text=text, top=50, k=20))
                staged.append((time.perf_counter() - start) * 1000)
        finally:
            engine.close()
    ex, st = median(exhaustive), median(staged)
    return Result(f"slow_exhaustive_vs_rerank_ratio@{label}", ex / st, "×", st, ex / st, goal=f"≥ {EXHAUSTIVE_GOAL:g}",
                  met=ex / st >= EXHAUSTIVE_GOAL,
                  note=f"{device}: slow model on all {len(ids)} photos {ex:.0f} ms (decode on {DECODE_WORKERS} threads + "
                       f"batched scores) vs SearchEngine.search with K=20, caches emptied, {st:.0f} ms (baseline); "
                       f"median of {len(texts)} queries")


def run(ctx: Context) -> list[Result]:
    import torch

    models = bundle(ctx.models, device="cpu")
    folder, captions = photo_library(ctx.cache, models, ctx.sizes.rerank_images)
    texts = captions[: ctx.sizes.rerank_queries + 1]
    rows = _rerank_rows(ctx, folder, texts, "cpu")
    if torch.cuda.is_available():
        rows += _rerank_rows(ctx, folder, texts, "cuda")
    else:
        rows += [skipped(f"rerank_ms@K={k}[cuda]", "ms", "no CUDA GPU on this machine") for k in KS]
    rows.append(_exhaustive_row(ctx, folder, captions[-ctx.sizes.exhaustive_queries:]))
    return rows
