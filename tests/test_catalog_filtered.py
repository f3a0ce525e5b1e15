"""Filtered ANN search: a big allowed share is over-fetched and post-filtered (no per-node Python
callback), a small one is searched exactly over its own vectors; a kind's ids are cached per change."""

from __future__ import annotations

import numpy as np
import pytest

from fastslow_desktop.catalog import filtered
from fastslow_desktop.catalog.ann import AnnIndex

DIM = 16
N = 24_000  # above filtered.EXACT_SUBSET, so a half share goes through HNSW


def test_keep_allowed_keeps_order_and_only_allowed_labels():
    labels = np.array([9, 4, 7, 1, 12], dtype=np.int64)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], dtype=np.float32)
    kept, kept_scores = filtered.keep_allowed(labels, scores, np.array([1, 7, 9, 30], dtype=np.int64))
    assert kept.tolist() == [9, 7, 1] and kept_scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert filtered.keep_allowed(labels, scores, np.zeros(0, np.int64))[0].size == 0
    assert filtered.overfetch_size(50, 0.5, 10_000) == 166 and filtered.overfetch_size(50, 0.5, 100) == 100


@pytest.fixture(scope="module")
def big_index(tmp_path_factory):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, N + 1, dtype=np.int64)
    index = AnnIndex(tmp_path_factory.mktemp("ann") / "i.hnsw", DIM, "m")
    index.open(ids, lambda wanted: (ids, vectors), None)
    return index, ids, vectors


def _exact(ids, vectors, query, k, allowed):
    keep = np.isin(ids, allowed)
    scores = vectors[keep] @ query
    return ids[keep][np.argsort(-scores)[:k]]


def test_a_large_filter_share_is_over_fetched_without_a_per_node_callback(big_index, monkeypatch):
    index, ids, vectors = big_index
    allowed = ids[ids % 2 == 0]  # half the library, e.g. "photos only"
    calls = []
    knn = index._knn
    monkeypatch.setattr(index, "_knn", lambda *a, **kw: (calls.append(a[3] if len(a) > 3 else None), knn(*a, **kw))[1])
    rng = np.random.default_rng(1)
    recalls = []
    for _ in range(20):
        query = rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        got, scores = index.query(query, 10, set(allowed.tolist()))
        assert len(got) == 10 and np.all(got % 2 == 0) and np.all(np.diff(scores) <= 1e-6)
        recalls.append(len(set(got) & set(_exact(ids, vectors, query, 10, allowed))) / 10)
    assert calls and all(c is None for c in calls)  # never hnswlib's Python filter callback
    assert np.mean(recalls) >= 0.9


def test_a_small_filter_share_is_searched_exactly_over_its_own_vectors(big_index):
    index, ids, vectors = big_index
    allowed = ids[:700]  # e.g. the few videos of a photo library
    query = vectors[5] + 0.1 * vectors[300]
    query /= np.linalg.norm(query)
    got, _ = index.query(query, 20, allowed)
    assert got.tolist() == _exact(ids, vectors, query, 20, allowed).tolist()


def test_a_filter_subset_is_gathered_once_per_change_and_sorted_ids_are_not_re_sorted(big_index, monkeypatch):
    index, ids, vectors = big_index
    allowed = ids[ids % 10 == 3]  # a tenth of the library, as "videos only" in a photo library
    gathered = []

    class Counting:  # hnswlib's methods are read-only: count the gathers through a forwarding proxy
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def get_items(self, wanted):
            gathered.append(len(wanted))
            return self.real.get_items(wanted)

    monkeypatch.setattr(index, "_index", Counting(index._index))
    monkeypatch.setattr(np, "unique", lambda *a, **kw: pytest.fail("a sorted filter was sorted again"))
    rng = np.random.default_rng(2)
    for _ in range(5):
        query = rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        got, _ = index.query(query, 10, allowed)
        assert got.tolist() == _exact(ids, vectors, query, 10, allowed).tolist()
    assert gathered == [len(allowed)]  # one gather for five keystrokes
    index.remove([int(allowed[0])])  # a change: the next query gathers the subset again, without it
    got, _ = index.query(vectors[int(allowed[0]) - 1], 10, allowed)
    assert gathered == [len(allowed), len(allowed) - 1] and int(allowed[0]) not in got.tolist()
    monkeypatch.undo()
    index.add([int(allowed[0])], vectors[int(allowed[0]) - 1:int(allowed[0])])  # the fixture as it was
    assert filtered.as_sorted_ids(np.array([5, 1, 5, 3])).tolist() == [1, 3, 5]


def test_a_kind_filter_reads_its_ids_once_per_change(tiny_bundle, tmp_path, monkeypatch):
    from PIL import Image

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGB", (64, 48), colour).save(photos / f"p{i}.png")
    with Library.open(tmp_path / "lib", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        library.index()
        catalog, model = library.catalog, library.serving_model_id
        reads = []
        segment_ids = catalog.store.segment_ids
        monkeypatch.setattr(catalog.store, "segment_ids", lambda **kw: (reads.append(kw), segment_ids(**kw))[1])
        query = np.ones(library.ann().dim, np.float32) / np.sqrt(library.ann().dim)
        for _ in range(5):  # five keystrokes with "photos only"
            assert len(library.query(query, 10, kind="image")[0]) == 2
        assert len(reads) == 1
        Image.new("RGB", (64, 48), "green").save(photos / "p2.png")
        library.index()
        assert len(library.query(query, 10, kind="image")[0]) == 3  # the new photo is in the kind's ids
        assert len(reads) == 2
        assert len(library.query(query, 10, kind="video")[0]) == 0


class _StuckOnce:
    """An hnswlib index whose first search gathers too few results (as hnswlib then raises)."""

    def __init__(self, index):
        self._index, self.efs, self.failed = index, [], False

    def set_ef(self, ef):
        self.efs.append(ef)
        self._index.set_ef(ef)

    def knn_query(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")
        return self._index.knn_query(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._index, name)


def test_a_search_that_gathers_too_few_results_is_widened_not_made_exact(big_index, monkeypatch):
    """The exact fallback of a big index copies every vector out of hnswlib holding the GIL (13 s at
    100 000 × 512, the whole process stood still): a wider HNSW search answers instead."""
    index, ids, vectors = big_index
    stuck = _StuckOnce(index._index)
    monkeypatch.setattr(index, "_index", stuck)
    monkeypatch.setattr(index, "_exact_matrix", lambda: pytest.fail("fell back to the exact matrix"))
    got, _ = index.query(vectors[7], 10)
    assert got[0] == ids[7] and len(got) == 10
    assert stuck.efs[1] == 4 * stuck.efs[0]  # the second try searched four times wider
