"""The catalog: one library folder's database, HNSW caches and thumbnails behind one API.

Every write (roots, media, embeddings, the HNSW files) goes through a `Catalog` while its writer
lock is held (`writing()`: one writer per library, across threads and processes). Reads (search,
status) take no writer lock: SQLite's WAL gives them a consistent snapshot and each HNSW index has
its own readers–writer lock. HNSW files are saved after enough changes, after a while, when the
library has been idle for a moment, and on close; never on a query's path.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .ann import AnnIndex, exact_top_k, index_file_name
from .filtered import as_sorted_ids
from .idle_saver import IdleSaver
from .locks import WRITER_WAIT_SECONDS, WriterLock
from .records import LibraryError, LibraryPaths, MediaRecord, MediaRow, SegmentInfo, py_path
from .store import Store
from .thumbs import remove_thumbnails

logger = logging.getLogger(__name__)

SERVING_MODEL = "serving_model"
# The HNSW file only spares a repair at the next open (SQLite is the truth), so it is saved rarely:
SAVE_CHANGES = 5000  # after this many changes …
SAVE_FRACTION = 0.05  # … or changes reaching this share of the index …
SAVE_SECONDS = 1800.0  # … or when unsaved changes are this old …
# … or when the library has been idle for a while (idle_saver.py) …
# … and always on close.


class MovedFile(Protocol):
    path: str
    root_id: int
    mtime: float


def folder_is_read_only(folder: Path) -> bool:
    """An existing library folder (or its database) that this process cannot write."""
    db = LibraryPaths(folder).db
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return True
    return db.is_file() and not os.access(db, os.W_OK)


class Catalog:
    """A library folder's stored state. Thread-safe; see the module docstring for the locking."""

    def __init__(self, folder: str | Path, read_only: bool | None = None,
                 writer_wait: float = WRITER_WAIT_SECONDS):
        self.paths = LibraryPaths(Path(folder).expanduser().resolve())
        self.read_only = folder_is_read_only(self.paths.root) if read_only is None else read_only
        if not self.read_only:
            try:
                for sub in (self.paths.root, self.paths.thumbnails, self.paths.logs):
                    sub.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"Cannot create the library folder {self.paths.root}: "
                                   f"{exc.strerror or exc}.") from exc
        self.store = Store(self.paths.db, read_only=self.read_only)
        self._writer = WriterLock(self.paths.lock, self.paths.lock_owner, writer_wait)
        self._anns: dict[str, AnnIndex] = {}
        self._anns_lock = threading.RLock()
        self._saver = IdleSaver(self)
        self._kind_ids: dict[tuple[str, str], tuple[AnnIndex, int, np.ndarray]] = {}  # see kind_ids()
        self._per_media: dict[str, tuple[AnnIndex, int, float]] = {}  # see segments_per_media()
        self._unsynced = False  # another process wrote; the graphs in memory have not taken it in yet

    def close(self) -> None:
        self._saver.stop()
        if not self.read_only:
            self.save_dirty(wait=WRITER_WAIT_SECONDS)
        self.store.close()

    # -- the writer lock ------------------------------------------------------------------
    def writing(self, timeout: float | None = None):
        """Context manager holding the library's writer lock (re-entrant in one thread)."""
        if self.read_only:
            raise LibraryError(f"The library folder {self.paths.root} is read-only: it can be searched, "
                               "not indexed or changed.")
        return self._writer.held(timeout)

    def written_elsewhere_now(self) -> bool:
        """Whether another process holds the writer lock now (an index run between two of its commits)."""
        return not self.read_only and self._writer.held_elsewhere()

    def wait_for_other_writers(self, on_wait: Callable[[str], None]) -> None:
        """From now on a write waits as long as another process holds the library (not WRITER_WAIT_SECONDS),
        after telling `on_wait` who holds it: for a command line, where the user sees it and can stop it."""
        self._writer.wait, self._writer.on_wait = math.inf, on_wait

    # -- root writes (hold `writing()`) ---------------------------------------------------
    def add_root(self, path: str, excludes: Iterable[str] | None) -> int:
        with self.writing():
            return self.store.add_root(path, excludes)

    def merge_root_into(self, old_root: int, new_root: int) -> None:
        with self.writing():
            self.store.merge_root_into(old_root, new_root)

    def set_root_online(self, root_id: int, online: bool) -> None:
        with self.writing():
            self.store.set_root_online(root_id, online)

    def remove_root(self, root_id: int) -> None:
        """Forget a root and everything indexed in it (the files themselves are untouched)."""
        with self.writing():
            self.remove_media(list(self.store.media_under(root_id=root_id).values()))
            self.store.delete_root(root_id)
            self._after_changes()

    # -- media writes (hold `writing()`) --------------------------------------------------
    def apply_moves(self, moves: Sequence[tuple[MediaRow, MovedFile]]) -> None:
        with self.writing():
            for row, entry in moves:
                self.store.move_media(row.id, entry.path, entry.root_id, entry.mtime)
                logger.info("%r moved to %r: kept its embeddings", row.path, entry.path)

    def remove_media(self, rows: Sequence[MediaRow]) -> None:
        if not rows:
            return
        with self.writing():
            seg_ids, thumbs = self.store.delete_media([r.id for r in rows])
            self._forget_segments(seg_ids, thumbs)

    def _forget_segments(self, segment_ids: list[int], thumbs: list[str]) -> None:
        with self._anns_lock:
            anns = list(self._anns.values())
        for ann in anns:
            ann.remove(segment_ids)
        remove_thumbnails(self.paths.root, thumbs)

    def write_media(self, records: list[MediaRecord], model_id: str, dim: int | None = None) -> list[MediaRecord]:
        """Store decoded files (one transaction) and add their vectors to the HNSW index. A file
        whose write fails for any reason is stored as a failure with the reason instead; returns
        the records that were turned into failures that way."""
        with self.writing():
            try:
                self._write_records(records, model_id, dim)
                return []
            except LibraryError:
                raise  # the library itself cannot be written (full disk, read-only): no file is at fault
            except Exception as exc:  # noqa: BLE001 - find the file at fault, one at a time
                logger.warning("writing a batch of %d files failed (%s); writing them one by one", len(records), exc)
            failed = []
            for rec in records:
                try:
                    self._write_records([rec], model_id, dim)
                except LibraryError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one odd file must never stop a run
                    logger.exception("cannot store %r", rec.path)
                    rec.error, rec.segments = f"cannot store: {type(exc).__name__}: {exc}", None
                    failed.append(rec)
                    try:
                        self._write_records([rec], model_id, dim)
                    except Exception:  # noqa: BLE001
                        logger.exception("cannot store even the failure of %r", rec.path)
            return failed

    def _write_records(self, records: list[MediaRecord], model_id: str, dim: int | None) -> None:
        new_ids, matrix, old_ids, old_thumbs = self.store.write_media(records, model_id)
        kept = {seg.thumb for rec in records for seg in rec.segments or []}
        self._forget_segments(old_ids, [t for t in old_thumbs if t not in kept])
        if new_ids:
            self.ann(model_id, dim or matrix.shape[1]).add(new_ids, matrix)

    def write_embeddings(self, items: list[tuple[int, np.ndarray]], model_id: str) -> None:
        """Vectors of a new model for segments already stored (re-embedding)."""
        if not items:
            return
        with self.writing():
            self.store.write_embeddings(items, model_id)
            matrix = np.stack([v for _, v in items])
            self.ann(model_id, matrix.shape[1]).add([sid for sid, _ in items], matrix)

    def serve_if_first(self, model_id: str) -> None:
        """A library's first model serves searches from its first run on."""
        with self.writing():
            if self.store.get_meta(SERVING_MODEL) is None and not self.store.model_ids():
                self.store.set_meta(SERVING_MODEL, model_id)

    def finish_run(self, model_id: str, complete: bool) -> None:
        """After a run: when every file has the new model's embeddings, it serves and the old go."""
        with self.writing():
            if complete and not self.store.media_missing_model(model_id):
                if self.store.get_meta(SERVING_MODEL) != model_id:
                    self.store.set_meta(SERVING_MODEL, model_id)
                    logger.info("search now uses model %s", model_id)
                for old in self.store.drop_models_except(model_id):
                    with self._anns_lock:
                        self._anns.pop(old, None)
                    self.store.set_meta(f"ann:{old}", None)
                    try:
                        self.paths.root.joinpath(index_file_name(old)).unlink()
                    except OSError:
                        pass
            self._after_changes()

    # -- HNSW persistence -----------------------------------------------------------------
    def _after_changes(self) -> None:
        """Compact or save the HNSW files that are due; leave the rest to the idle saver."""
        with self._anns_lock:
            anns = dict(self._anns)
        for model_id, ann in anns.items():
            if ann.needs_compaction():
                ann.compact()
            due = ann.changes >= min(SAVE_CHANGES, max(1.0, SAVE_FRACTION * len(ann))) or \
                (ann.dirty and time.monotonic() - ann.dirty_since > SAVE_SECONDS)
            if due:
                self._save_ann(model_id, ann)
            elif ann.dirty:
                self._saver.poke()

    def dirty_anns(self, fraction: float) -> list[str]:
        """Models whose HNSW index has unsaved changes reaching `fraction` of it, or older than SAVE_SECONDS."""
        with self._anns_lock:
            anns = dict(self._anns)
        now = time.monotonic()
        return [m for m, ann in anns.items() if ann.dirty and (
            ann.changes >= fraction * len(ann) or now - ann.dirty_since > SAVE_SECONDS)]

    def _save_ann(self, model_id: str, ann: AnnIndex) -> None:
        ann.save(lambda record: self.store.set_meta(f"ann:{model_id}", json.dumps(record)))

    def save_dirty(self, wait: float = 0.0) -> bool:
        """Save every HNSW file with unsaved changes if the writer lock is free within `wait` seconds;
        True when nothing is left unsaved."""
        if self.read_only:
            return True
        try:
            if not self._writer.acquire(wait):
                return False
        except LibraryError as exc:  # another process is writing: its own saves cover the file
            logger.info("HNSW save skipped: %s", exc)
            return False
        try:
            with self._anns_lock:
                anns = dict(self._anns)
            for model_id, ann in anns.items():
                if ann.dirty:
                    self._save_ann(model_id, ann)
            return True
        except LibraryError as exc:
            logger.warning("%s", exc)
            return False
        finally:
            self._writer.release()

    # -- other writers --------------------------------------------------------------------
    def changed_elsewhere(self) -> bool:
        """Whether another process (e.g. `fastslow index` while the app runs) wrote to this library
        since the last call; if so, the HNSW indexes in memory take in its changes from SQLite."""
        if self.store.changed_elsewhere():
            self._unsynced = True
        with self._writer.this_process() as idle:
            # Only while this process writes nothing: a vector it adds after the ids below were read
            # would look stale and leave the graph. A busy writer's changes are taken in at a later call.
            if not (idle and self._unsynced):
                return False
            self._unsynced = False
            models = self.store.model_ids()
            with self._anns_lock:
                anns = dict(self._anns)
                for model_id in set(anns) - set(models):  # dropped by the other writer's model switch
                    del self._anns[model_id]
            for model_id, ann in anns.items():
                if model_id in models:
                    added, removed = ann.sync(self.store.embedding_ids(model_id),
                                              lambda ids, m=model_id: self.store.vectors(m, ids))
                    logger.info("another process changed the library: %d vectors added, %d removed (%s)",
                                added, removed, model_id)
                    if ann.dirty and not self.read_only:
                        self._saver.poke()  # this process's copy of the file is saved in time
        return True

    # -- reads ----------------------------------------------------------------------------
    def serving_model_id(self) -> str | None:
        return self.store.get_meta(SERVING_MODEL)

    def ann(self, model_id: str, dim: int | None = None) -> AnnIndex:
        """The HNSW index of a model, opened and checked against SQLite on first use."""
        with self._anns_lock:
            ann = self._anns.get(model_id)
            if ann is None:
                dim = dim or self.store.embedding_dim(model_id)
                if dim is None:
                    raise LibraryError(f"No embeddings for model {model_id} in this library.")
                ann = AnnIndex(self.paths.root / index_file_name(model_id), dim, model_id)
                saved = self.store.get_meta(f"ann:{model_id}")
                outcome = ann.open(self.store.embedding_ids(model_id),
                                   lambda ids: self.store.vectors(model_id, ids),
                                   json.loads(saved) if saved else None)
                logger.debug("HNSW index for %s %s", model_id, outcome)
                self._anns[model_id] = ann
                if ann.dirty and not self.read_only:
                    self._saver.poke()
            return ann

    def kind_ids(self, model_id: str, kind: str) -> np.ndarray:
        """Sorted ids of a kind's segments embedded by a model: read from SQLite once, then kept until
        the model's HNSW index changes (every change of its ids goes through it), so a kind filter
        costs no per-keystroke scan of the library."""
        ann = self.ann(model_id)
        version = ann.version
        cached = self._kind_ids.get((model_id, kind))
        if cached is not None and cached[0] is ann and cached[1] == version:
            return cached[2]
        ids = np.sort(self.store.segment_ids(kind=kind, model_id=model_id))
        self._kind_ids[(model_id, kind)] = (ann, version, ids)
        return ids

    def segments_per_media(self, model_id: str) -> float:
        """Searchable segments per file (1.0 for photos only; more with videos), kept until the model's
        index changes: how far the fast shortlist must reach for `top` distinct files."""
        ann = self.ann(model_id)
        version = ann.version
        cached = self._per_media.get(model_id)
        if cached is not None and cached[0] is ann and cached[1] == version:
            return cached[2]
        ratio = len(ann) / max(1, self.store.media_count())
        self._per_media[model_id] = (ann, version, ratio)
        return ratio

    def _allowed(self, model_id: str, kind: str | None, filter_ids: Iterable[int] | None,
                 cached: bool = True) -> np.ndarray | None:
        given = None if filter_ids is None else as_sorted_ids(filter_ids)
        if kind is None:
            return given
        # Uncached for the exact fallback, which must not depend on the HNSW index it stands in for.
        ids = self.kind_ids(model_id, kind) if cached else \
            np.sort(self.store.segment_ids(kind=kind, model_id=model_id))
        return ids if given is None else np.intersect1d(ids, given, assume_unique=True)

    def query(self, model_id: str, vector: np.ndarray, k: int, kind: str | None = None,
              filter_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (segment ids, scores) of a model's vectors for a unit query vector, best first."""
        return self.ann(model_id).query(vector, k, self._allowed(model_id, kind, filter_ids))

    def exact_query(self, model_id: str, vector: np.ndarray, k: int, kind: str | None = None,
                    filter_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As `query`, by brute force over the vectors stored in SQLite (when the HNSW cache fails)."""
        ids, vectors = self.store.vectors(model_id)
        allowed = self._allowed(model_id, kind, filter_ids, cached=False)
        if allowed is not None and len(ids):
            keep = np.isin(ids, allowed)
            ids, vectors = ids[keep], vectors[keep]
        return exact_top_k(ids, vectors, vector, k)

    def segments_info(self, ids: Sequence[int]) -> list[SegmentInfo]:
        """Rows for the given segment ids, in the same order (ids no longer in the library are skipped)."""
        rows = self.store.segment_rows(ids)
        root = self.paths.root
        out = []
        for sid in ids:
            row = rows.get(int(sid))
            if row is None:
                continue
            segment_id, media_id, path, *fields, online, thumb, captured_at, source = row  # kind … root between
            out.append(SegmentInfo(segment_id, media_id, py_path(path), *fields, bool(online),
                                   root / thumb if thumb else None, captured_at, source or "mtime"))
        return out
