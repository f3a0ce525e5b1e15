"""Approximate nearest-neighbour index (hnswlib) over one model's segment embeddings.

A cache of SQLite's embeddings table, keyed by segment id. Changes apply in memory at once; the
catalog saves the file now and then (after many changes, after a while, when idle, on close), so a
one-photo change never rewrites it. A save holds only a read lock, so queries run on during it;
it writes a uniquely named temp file, checks its size against what hnswlib meant to write (hnswlib
ignores short writes) and only then renames it over the old file. On open the file is checked
against SQLite and repaired (missing ids added, stale ids marked deleted) or rebuilt. Exact search
(one matrix product) serves small libraries and is the fallback.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import hnswlib
import numpy as np

from ..models.backends import torch_threads
from .ann_file import save_atomically
from .filtered import EXACT_SUBSET, EXACT_SUBSET_SHARE, MIN_OVERFETCH_SHARE, as_sorted_ids, keep_allowed, overfetch_size
from .locks import ReadWriteLock

logger = logging.getLogger(__name__)

EXACT_BELOW = 2000  # below this many vectors a matrix product is as fast as HNSW and exact
# A denser graph than hnswlib's usual M 16 / ef_construction 100, for recall at a million vectors: on
# 1M clustered 512-d vectors (benchmarks/ann.py, 200 tuning queries apart from the benchmark's), M 16 /
# 100 reached recall@10 0.912 at ef 256 and 0.952 only at ef 640 (5.1 ms); M 32 / 200 reaches 0.980 at
# ef 128 (1.8 ms) and 0.995 at 256. The price is building: 40 min instead of 16 for 1M on 2 cores,
# a few ms per photo against the hundred ms its embedding takes.
M = 32
EF_CONSTRUCTION = 200
EF_SEARCH = 128
KNN_TRIES = 3  # HNSW searches, each 4× wider, before a query falls back to exact search
GROW = 1.5  # capacity grows ahead by this factor so resizes stay rare
MIN_CAPACITY = 1024
COMPACT_RATIO = 0.25  # deleted labels above this share of the live ones: rebuild the graph without them
COMPACT_MIN = 64
# Batches this large (a first import, a rebuild) use inference's threads (all cores unless FASTSLOW_TORCH_
# THREADS): 20 000 512-d vectors took 67 s on one, 33 on two. The indexer's batches stay on one.
BULK_ADD = 1000

FetchVectors = Callable[[Iterable[int] | None], tuple[np.ndarray, np.ndarray]]


def index_file_name(model_id: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in model_id)[:48]
    return f"index-{slug}-{hashlib.blake2b(model_id.encode(), digest_size=4).hexdigest()}.hnsw"


def ids_checksum(ids: Iterable[int]) -> str:
    """Fingerprint of a set of segment ids, to tell cheaply whether the file matches SQLite."""
    arr = np.array(sorted(int(i) for i in ids), dtype=np.int64)
    return f"{len(arr)}:{hashlib.blake2b(arr.tobytes(), digest_size=16).hexdigest()}"


def exact_top_k(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (ids, inner-product scores) by brute force, best first; ties keep the ids' order."""
    if len(ids) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    # einsum, not `@`: a matrix-vector product goes to OpenBLAS, whose worker threads then spin on the
    # cores that ONNX Runtime and torch need next (a kind-filtered query took 9–12 ms instead of 5 on
    # 2 cores); einsum's own loop is single-threaded: 0.3 ms for 10 000 × 128, 22 ms for 100 000 × 512.
    scores = np.einsum("ij,j->i", vectors, np.asarray(query, dtype=np.float32).reshape(-1))
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return np.asarray(ids)[top].astype(np.int64), scores[top].astype(np.float32)


def _add_threads(n: int) -> int:  # threads for n vectors: inference's count for a bulk batch, else one
    return torch_threads() if n >= BULK_ADD else 1


class AnnIndex:
    """HNSW over unit vectors (inner product). Queries and saves share a read lock, changes take the
    write lock; queries also take a small lock of their own (they set hnswlib's ef)."""

    def __init__(self, file: Path, dim: int, model_id: str):
        self.file = Path(file)
        self.dim = dim
        self.model_id = model_id
        self._rw = ReadWriteLock()
        self._query_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._index: hnswlib.Index | None = None
        self._live: set[int] = set()
        self._deleted = 0  # labels marked deleted still in the graph
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None  # (ids, vectors) for exact search
        # (digest of an allowed id set, its ids, their vectors): a kind filter's subset, gathered once
        self._subset: tuple[bytes, np.ndarray, np.ndarray] | None = None
        self.changes = 0  # since the last save
        self.version = 0  # counts every change: what is cached per id set (e.g. a kind's ids) keys on it
        self.dirty_since = time.monotonic()  # when the first of those changes came
        self.opened_as: str | None = None

    @property
    def dirty(self) -> bool:
        return self.changes > 0

    def _changed(self, n: int) -> None:
        self.version += 1
        if self.changes == 0:
            self.dirty_since = time.monotonic()
        self.changes += n

    @property
    def deleted(self) -> int:
        return self._deleted

    # -- building -------------------------------------------------------------------------
    def _new_index(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="ip", dim=self.dim)
        index.init_index(max_elements=max(MIN_CAPACITY, capacity), ef_construction=EF_CONSTRUCTION, M=M)
        index.set_ef(EF_SEARCH)
        return index

    def open(self, sqlite_ids: np.ndarray, fetch_vectors: FetchVectors, saved: dict | None) -> str:
        """Load the file and reconcile it with SQLite's ids (add missing, mark stale deleted), or
        rebuild it when it cannot be read. `saved` is what `save` returned last time (kept in SQLite).
        Returns (and keeps in `opened_as`) "loaded", "repaired" or "rebuilt"."""
        with self._rw.writing():
            self.opened_as = self._open(set(int(i) for i in sqlite_ids), fetch_vectors, saved)
        return self.opened_as

    def _load(self, wanted: int, saved: dict | None) -> hnswlib.Index | None:
        if not (saved and self.file.is_file() and saved.get("size") == self.file.stat().st_size
                and saved.get("dim") == self.dim):
            return None
        try:
            index = hnswlib.Index(space="ip", dim=self.dim)
            index.load_index(str(self.file), max_elements=max(MIN_CAPACITY, int(wanted * GROW)))
            index.set_ef(EF_SEARCH)
            return index
        except (RuntimeError, OSError, ValueError) as exc:
            logger.warning("HNSW file %s unreadable (%s); rebuilding it from the database", self.file, exc)
            return None

    def _open(self, wanted: set[int], fetch_vectors: FetchVectors, saved: dict | None) -> str:
        self._matrix = self._subset = None
        index = self._load(len(wanted), saved)
        if index is None:
            self._rebuild(fetch_vectors)
            return "rebuilt"
        self._index = index
        # Segment ids are never reused, so a label in the file is either live in SQLite or stale.
        in_file = set(int(i) for i in index.get_ids_list())
        stale, missing = in_file - wanted, wanted - in_file
        self._deleted = len(stale)
        if saved.get("checksum") == ids_checksum(wanted) and not missing:
            self._live = wanted  # nothing changed since the last save: the common case
            self.changes = 0
            return "loaded"
        if len(missing) > max(1000, len(wanted) // 2):
            self._rebuild(fetch_vectors)
            return "rebuilt"
        self._live = in_file & wanted
        for sid in stale:
            try:
                index.mark_deleted(sid)
            except RuntimeError:  # already marked deleted in the file
                pass
        if missing:
            ids, vectors = fetch_vectors(sorted(missing))
            self._add(ids, vectors)
        self._changed(max(1, len(missing) + len(stale)))
        logger.info("HNSW index for %s repaired: %d added, %d stale", self.model_id, len(missing), len(stale))
        return "repaired"

    def sync(self, sqlite_ids: np.ndarray, fetch_vectors: FetchVectors) -> tuple[int, int]:
        """Take in another process's changes: add the ids SQLite has and the graph lacks, drop those
        it no longer has. Returns (added, removed)."""
        wanted = set(int(i) for i in sqlite_ids)
        with self._rw.reading():
            missing, stale = wanted - self._live, self._live - wanted
        if missing:
            ids, vectors = fetch_vectors(sorted(missing))
            self.add(ids, vectors)
        self.remove(stale)
        return len(missing), len(stale)

    def _rebuild(self, fetch_vectors: FetchVectors) -> None:
        ids, vectors = fetch_vectors(None)
        self._index = self._new_index(int(len(ids) * GROW))
        self._live, self._deleted, self._matrix, self._subset = set(), 0, None, None
        if len(ids):
            self._add(ids, vectors)
        self._changed(max(1, len(ids)))
        logger.info("HNSW index for %s rebuilt from the database (%d vectors)", self.model_id, len(ids))

    # -- changes --------------------------------------------------------------------------
    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        with self._rw.writing():
            self._add(ids, vectors)

    def _add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._index is None:
            self._index = self._new_index(int(len(ids) * GROW))
        needed = self._index.get_current_count() + len(ids)
        if needed > self._index.get_max_elements():
            self._index.resize_index(int(needed * GROW))
        self._index.add_items(vectors, ids, num_threads=_add_threads(len(ids)))
        self._live.update(int(i) for i in ids)
        self._matrix = self._subset = None
        self._changed(len(ids))

    def remove(self, ids: Iterable[int]) -> None:
        with self._rw.writing():
            for sid in ids:
                sid = int(sid)
                if sid in self._live and self._index is not None:
                    try:
                        self._index.mark_deleted(sid)
                        self._deleted += 1
                    except RuntimeError:  # not in the index file (already deleted): nothing to do
                        pass
                    self._live.discard(sid)
                    self._matrix = self._subset = None
                    self._changed(1)

    def needs_compaction(self) -> bool:
        return self._deleted >= COMPACT_MIN and self._deleted > COMPACT_RATIO * len(self._live)

    def compact(self) -> None:
        """Rebuild the graph from the live vectors only, dropping deleted labels. The caller holds the
        library's writer lock (no change can come in meanwhile); queries go on using the old graph."""
        with self._rw.reading():
            ids = np.array(sorted(self._live), dtype=np.int64)
            vectors = np.asarray(self._index.get_items(ids), dtype=np.float32).reshape(len(ids), self.dim) \
                if len(ids) else np.zeros((0, self.dim), np.float32)
        fresh = self._new_index(int(len(ids) * GROW))
        if len(ids):
            fresh.add_items(vectors, ids, num_threads=_add_threads(len(ids)))
        with self._rw.writing():
            dropped, self._deleted = self._deleted, 0
            self._index, self._matrix, self._subset = fresh, None, None
            self._changed(max(1, dropped))
        logger.info("HNSW index for %s compacted: %d deleted labels dropped", self.model_id, dropped)

    def save(self, on_saved: Callable[[dict], None] | None = None) -> dict:
        """Write the index safely (see `save_atomically`); returns the record to keep in SQLite, which
        `on_saved` receives while the save lock is still held (so records and files never cross)."""
        with self._save_lock:
            with self._rw.reading():  # queries go on; changes wait until the file is written
                if self._index is None:
                    self._index = self._new_index(MIN_CAPACITY)
                size = save_atomically(self._index, self.file)
                record = {"size": size, "dim": self.dim, "count": len(self._live),
                          "checksum": ids_checksum(self._live)}
                self.changes = 0
            if on_saved is not None:
                on_saved(record)
            return record

    # -- queries --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._live)

    def ids(self) -> set[int]:
        with self._rw.reading():
            return set(self._live)

    def _exact_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        matrix = self._matrix
        if matrix is None:
            ids = np.array(sorted(self._live), dtype=np.int64)
            vecs = np.asarray(self._index.get_items(ids), dtype=np.float32) if len(ids) else \
                np.zeros((0, self.dim), np.float32)
            matrix = self._matrix = (ids, vecs.reshape(len(ids), self.dim))
        return matrix

    def _subset_matrix(self, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the live ids in `allowed`; the last set asked for is kept until the index
        changes (every change resets it)."""
        digest = hashlib.blake2b(allowed.tobytes(), digest_size=16).digest()
        if self._subset is not None and self._subset[0] == digest:
            return self._subset[1], self._subset[2]
        ids = allowed[np.fromiter((i in self._live for i in allowed.tolist()), dtype=bool, count=len(allowed))]
        vecs = np.asarray(self._index.get_items(ids), dtype=np.float32).reshape(len(ids), self.dim) \
            if len(ids) else np.zeros((0, self.dim), np.float32)
        self._subset = (digest, ids, vecs)
        return ids, vecs

    def exact_query(self, vector: np.ndarray, k: int, filter_ids: Iterable[int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k segment ids and inner-product scores by brute force, best first."""
        allowed = None if filter_ids is None else as_sorted_ids(filter_ids)
        with self._rw.reading():
            if allowed is not None and self._index is not None and len(allowed) <= EXACT_SUBSET \
                    and len(self._live) > EXACT_SUBSET:
                # A small subset of a big index: its own vectors, not a matrix of the whole library.
                # The same filter comes back with every keystroke: its vectors are gathered once.
                with self._query_lock:
                    ids, vecs = self._subset_matrix(allowed)
                return exact_top_k(ids, vecs, vector, k)
            with self._query_lock:
                ids, vecs = self._exact_matrix()
        if allowed is not None:
            keep = np.isin(ids, allowed, assume_unique=True)
            ids, vecs = ids[keep], vecs[keep]
        return exact_top_k(ids, vecs, vector, k)

    def _knn(self, query: np.ndarray, k: int, ef: int, allowed: set[int] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        # hnswlib raises when its search gathers fewer than k results (it happens now and then on
        # high-dimensional data): a wider search finds them in milliseconds, while the exact fallback
        # of a big index copies every vector out of hnswlib holding the GIL (13 s at 100 000 × 512,
        # during which the whole app stood still).
        for _ in range(KNN_TRIES - 1):
            try:
                return self._knn_once(query, k, ef, allowed)
            except RuntimeError:
                ef *= 4
        return self._knn_once(query, k, ef, allowed)

    def _knn_once(self, query: np.ndarray, k: int, ef: int, allowed: set[int] | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        with self._query_lock:
            self._index.set_ef(ef)
            if allowed is None:
                labels, dists = self._index.knn_query(query, k=k, num_threads=1)
            else:
                labels, dists = self._index.knn_query(query, k=k, num_threads=1, filter=lambda label: label in allowed)
        return labels[0].astype(np.int64), (1.0 - dists[0]).astype(np.float32)

    def query(self, vector: np.ndarray, k: int, filter_ids: Iterable[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (ids, scores) best first: HNSW for big libraries, exact below EXACT_BELOW or on trouble.
        `filter_ids` (a set or an array of segment ids) restricts the results (see filtered.py)."""
        allowed = None if filter_ids is None else as_sorted_ids(filter_ids)
        with self._rw.reading():
            total = len(self._live)
            live = total if allowed is None else min(total, len(allowed))
            share = live / max(total, 1)
            if live <= EXACT_BELOW or self._index is None or \
                    (share < EXACT_SUBSET_SHARE and live <= EXACT_SUBSET):
                return self.exact_query(vector, k, allowed)
            k = min(k, live)
            base = EF_SEARCH
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            try:
                if allowed is None:
                    return self._knn(query, k, max(base, 2 * k))
                if share >= MIN_OVERFETCH_SHARE:
                    fetch = overfetch_size(k, share, total)
                    labels, scores = keep_allowed(*self._knn(query, fetch, max(base, fetch)), allowed)
                    if len(labels) >= k:
                        return labels[:k], scores[:k]
                return self._knn(query, k, max(base, 2 * k), set(allowed.tolist()))
            except RuntimeError as exc:  # too few reachable neighbours (heavy deletion or filtering)
                logger.debug("HNSW query fell back to exact search: %s", exc)
                return self.exact_query(vector, k, allowed)
