"""ANN figures: the library's HNSW index (its M, ef_construction and ef) against exact search, on
clustered unit vectors shaped like real embeddings, at 100k (and 1M in the full run)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hnswlib
import numpy as np

from fastslow_desktop.catalog import ann as product_ann

from .common import THREADS, Context, Result, percentile

logger = logging.getLogger(__name__)

K = 10
SEED = 7
RECALL_GOAL = 0.95
SPEEDUP_GOAL = 5.0


def clustered_vectors(n: int, dim: int, centres: int, seed: int = SEED, chunk: int = 100_000,
                      noise_seed: int | None = None) -> np.ndarray:
    """Unit vectors from a mixture of Gaussians around `centres` centres that share a common direction
    (real embeddings sit in a narrow cone, and a photo library is clumpy: trips, pets, documents).
    Cluster popularity is Zipf-like; each vector is ~0.75 cosine from its centre."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    spread = rng.standard_normal((centres, dim)).astype(np.float32)
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    centre_vecs = 0.5 * common + spread
    centre_vecs /= np.linalg.norm(centre_vecs, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, centres + 1) ** 0.7
    weights /= weights.sum()
    sigma = np.sqrt(0.78 / dim)
    out = np.empty((n, dim), dtype=np.float32)
    data_rng = np.random.default_rng(seed + 1 if noise_seed is None else noise_seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        which = data_rng.choice(centres, size=m, p=weights)
        block = centre_vecs[which] + sigma * data_rng.standard_normal((m, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + m] = block
    return out


def held_out_queries(dim: int, centres: int, count: int) -> np.ndarray:
    """Queries: new draws of the same mixture (same centres, fresh noise), not copies of indexed points."""
    return clustered_vectors(count, dim, centres, seed=SEED, chunk=count, noise_seed=SEED + 1000)


def build_index(vectors: np.ndarray, cache: Path, key: str) -> tuple[hnswlib.Index, float | None]:
    """The product's HNSW parameters, built with every core (cached: a 1M build takes many minutes).
    Returns (index, build seconds or None when loaded from the cache)."""
    n, dim = vectors.shape
    file = cache / f"hnsw-{key}-M{product_ann.M}-ef{product_ann.EF_CONSTRUCTION}.bin"
    index = hnswlib.Index(space="ip", dim=dim)
    if file.is_file():
        index.load_index(str(file), max_elements=n)
        return index, None
    index.init_index(max_elements=n, ef_construction=product_ann.EF_CONSTRUCTION, M=product_ann.M)
    start = time.perf_counter()
    index.add_items(vectors, np.arange(n), num_threads=THREADS)
    seconds = time.perf_counter() - start
    tmp = file.with_suffix(".tmp")
    index.save_index(str(tmp))
    tmp.replace(file)
    return index, seconds


def product_index(index: hnswlib.Index, n: int, dim: int, scratch: Path) -> product_ann.AnnIndex:
    """The library's AnnIndex serving a prebuilt hnswlib graph (ids 0..n-1), so queries take the
    product's code path (lock, ef = max(EF_SEARCH, 2k), exact matrix product for exact search)."""
    wrapped = product_ann.AnnIndex(scratch / "bench.hnsw", dim, "bench")
    wrapped._index = index
    wrapped._live = set(range(n))
    return wrapped


def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    sizes = ctx.sizes
    for label, n, n_queries in sizes.ann_sizes:
        dim = sizes.ann_dim
        vectors = clustered_vectors(n, dim, sizes.ann_centres)
        queries = held_out_queries(dim, sizes.ann_centres, n_queries)
        key = f"{n}-{dim}-{sizes.ann_centres}-s{SEED}"
        index, build_s = build_index(vectors, ctx.cache, key)
        ann = product_index(index, n, dim, ctx.scratch)
        ann._matrix = (np.arange(n, dtype=np.int64), vectors)  # exact search's matrix, as the product caches it
        ann.exact_query(queries[0], K)  # warm-up
        ann.query(queries[0], K)
        exact_ms, truth = [], []
        for q in queries:
            start = time.perf_counter()
            ids, _ = ann.exact_query(q, K)
            exact_ms.append((time.perf_counter() - start) * 1000)
            truth.append(set(ids.tolist()))
        ann_ms, hits = [], 0
        for q, true in zip(queries, truth):
            start = time.perf_counter()
            ids, _ = ann.query(q, K)
            ann_ms.append((time.perf_counter() - start) * 1000)
            hits += len(true & set(ids.tolist()))
        recall = hits / (K * len(queries))
        # Recall at other breadths (for the report, not a goal).
        product_ef = product_ann.EF_SEARCH
        sweep = []
        for ef in sorted({product_ef // 2, product_ef, 2 * product_ef}):
            index.set_ef(ef)
            labels, _ = index.knn_query(queries, k=K, num_threads=1)
            sweep.append(f"ef={ef}: {sum(len(t & set(row.tolist())) for t, row in zip(truth, labels)) / (K * len(queries)):.3f}")
        ann_p50, exact_p50 = percentile(ann_ms, 50), percentile(exact_ms, 50)
        built = f"built in {build_s:.0f} s with {THREADS} threads" if build_s is not None else "loaded from cache"
        shape = f"{n} clustered {dim}-d unit vectors ({sizes.ann_centres} centres), {len(queries)} held-out queries"
        results.append(Result(f"ann_p50_ms@{label}", ann_p50, "ms", exact_p50, exact_p50 / ann_p50,
                              goal=f"≥ {SPEEDUP_GOAL:g}× faster than exact" if label == "1M" else None,
                              met=(exact_p50 / ann_p50 >= SPEEDUP_GOAL) if label == "1M" else None,
                              note=f"AnnIndex.query (HNSW M={product_ann.M}, ef_construction="
                                   f"{product_ann.EF_CONSTRUCTION}, ef={max(product_ef, 2 * K)}), k={K}, "
                                   f"p90 {percentile(ann_ms, 90):.2f} ms; ratio = exact p50 / ANN p50; {shape}; "
                                   f"index {built}"))
        results.append(Result(f"ann_recall@10@{label}", recall, "recall", goal=f"≥ {RECALL_GOAL}",
                              met=recall >= RECALL_GOAL, note="against exact top-10; " + ", ".join(sweep)))
        results.append(Result(f"exact_p50_ms@{label}", exact_p50, "ms",
                              note=f"AnnIndex.exact_query (one matrix product + argpartition), "
                                   f"p90 {percentile(exact_ms, 90):.2f} ms"))
        del vectors, index, ann
    return results
