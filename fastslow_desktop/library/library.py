"""The library facade used by the search engine, the UI and the command line."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..paths import default_library_dir
from .ann import AnnIndex, index_file_name
from ..media import frame_times, load_image, video_frames
from .progress import IndexReport, Progress
from .scan import FileEntry, request_retry, root_for, scan_problems
from .store import LibraryError, MediaRow, Store

logger = logging.getLogger(__name__)

SERVING_MODEL = "serving_model"


@dataclass(frozen=True)
class LibraryPaths:
    """What lives in a library folder."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "library.db"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def ann(self, model_id: str) -> Path:
        return self.root / index_file_name(model_id)


@dataclass
class SegmentInfo:
    """One searchable item: a photo (t_start/t_end None) or a video segment."""

    segment_id: int
    media_id: int
    path: str
    kind: str  # "image" | "video"
    t_start: float | None
    t_end: float | None
    taken: str | None  # ISO date from EXIF, or None
    mtime: float
    size: int
    width: int | None
    height: int | None
    duration: float | None
    root: str
    online: bool
    thumb: Path | None  # absolute path of the JPEG thumbnail, or None


@dataclass
class RootInfo:
    path: str
    online: bool
    excludes: list[str]
    n_media: int
    n_indexed: int
    n_errors: int


class Library:
    """A library folder: roots, indexed media, embeddings and their ANN indexes.

    Thread-safe: searches may run while an index run writes from another thread.
    """

    def __init__(self, folder: str | Path, models=None):
        self.paths = LibraryPaths(Path(folder).expanduser().resolve())
        for folder_ in (self.paths.root, self.paths.thumbnails, self.paths.logs):
            folder_.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.paths.db)
        self.models = models
        self._anns: dict[str, AnnIndex] = {}
        self._ann_lock = threading.RLock()
        self._index_lock = threading.Lock()  # one index run at a time (CLI, UI or watcher)
        self._watcher = None

    @classmethod
    def open(cls, folder: str | Path | None = None, models=None) -> Library:
        """Open (creating if needed) a library folder; default: `paths.default_library_dir()`.
        `models` is a loaded bundle (`load_bundle(...)`), needed to index, not to read."""
        return cls(folder if folder is not None else default_library_dir(), models)

    def close(self) -> None:
        self.stop_watching()
        with self._ann_lock:
            for model_id, ann in self._anns.items():
                if ann.dirty:
                    self._save_ann(model_id)
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- roots ----------------------------------------------------------------------------
    def add_root(self, path: str | Path, exclude: Iterable[str] | None = None) -> str:
        """Add a folder (absolute, symlinks resolved); a folder inside an existing root is already
        covered, and a parent of existing roots absorbs them. `exclude`: glob patterns matched against
        paths relative to the folder and their parts (None keeps a known folder's patterns).
        Returns the root path stored."""
        path = str(Path(path).expanduser().resolve())
        if not os.path.isdir(path):
            raise LibraryError(f"{path} is not a folder.")
        roots = self.store.roots()
        parent = root_for(path, roots)
        if parent is not None and parent["path"] != path:
            logger.info("%s is already inside library folder %s", path, parent["path"])
            return parent["path"]
        root_id = self.store.add_root(path, None if exclude is None else list(exclude))
        for root in roots:
            if root["path"] != path and root_for(root["path"], [{"path": path}]):
                self.store.merge_root_into(root["id"], root_id)
        if self._watcher is not None:
            self._watcher.add_root(path)
        return path

    def remove_root(self, path: str | Path) -> None:
        """Forget a folder and everything indexed in it (the files themselves are untouched)."""
        path = str(Path(path).expanduser().resolve())
        root = next((r for r in self.store.roots() if r["path"] == path), None)
        if root is None:
            raise LibraryError(f"{path} is not a library folder.")
        with self._index_lock:
            self._remove_media(list(self.store.media_under(root_id=root["id"]).values()))
            self.store.delete_root(root["id"])
            self._save_dirty_anns()
        if self._watcher is not None:
            self._watcher.remove_root(path)

    def roots(self) -> list[RootInfo]:
        counts = self.store.root_counts()
        return [RootInfo(r["path"], r["online"], r["excludes"],
                         **counts.get(r["id"], {"n_media": 0, "n_indexed": 0, "n_errors": 0}))
                for r in self.store.roots()]

    # -- indexing -------------------------------------------------------------------------
    def index(
        self,
        paths: Iterable[str | os.PathLike] | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
    ) -> IndexReport:
        """Reconcile all roots (or only `paths`) with the disk and embed what is new or changed.
        `pause`/`cancel`: set them from any thread. Runs on the calling thread."""
        if self.models is None:
            raise LibraryError("No models loaded: open the library with models to index it.")
        from .indexer import Indexer

        with self._index_lock:
            if self.store.get_meta(SERVING_MODEL) is None and not self.store.model_ids():
                self.store.set_meta(SERVING_MODEL, self.models.model_id)
            scope = None if paths is None else [os.fspath(p) for p in paths]
            return Indexer(self).run(scope, progress, cancel, pause)

    # Called by the indexer (with the index lock held).
    def _apply_moves(self, moves: list[tuple[MediaRow, FileEntry]]) -> None:
        for row, entry in moves:
            self.store.move_media(row.id, entry.path, entry.root_id, entry.mtime)
            logger.info("%s moved to %s: kept its embeddings", row.path, entry.path)

    def _remove_media(self, rows: list[MediaRow]) -> None:
        if not rows:
            return
        seg_ids, thumbs = self.store.delete_media([r.id for r in rows])
        self._forget_segments(seg_ids, thumbs)

    def _forget_segments(self, segment_ids: list[int], thumbs: list[str]) -> None:
        with self._ann_lock:
            for ann in self._anns.values():
                ann.remove(segment_ids)
        for thumb in thumbs:
            try:
                (self.paths.root / thumb).unlink()
            except OSError:
                pass

    def _finish_run(self, model_id: str, complete: bool) -> None:
        """After a run: when every file has the new model's embeddings, it serves and the old go."""
        if complete and not self.store.media_missing_model(model_id):
            if self.store.get_meta(SERVING_MODEL) != model_id:
                self.store.set_meta(SERVING_MODEL, model_id)
                logger.info("search now uses model %s", model_id)
            for old in self.store.drop_models_except(model_id):
                with self._ann_lock:
                    self._anns.pop(old, None)
                self.store.set_meta(f"ann:{old}", None)
                try:
                    self.paths.ann(old).unlink()
                except OSError:
                    pass
        self._save_dirty_anns()

    # -- ANN ------------------------------------------------------------------------------
    @property
    def serving_model_id(self) -> str | None:
        """The model whose embeddings answer searches (the old one until a new model has re-embedded
        everything). Encode queries with this model."""
        return self.store.get_meta(SERVING_MODEL) or (self.models.model_id if self.models else None)

    def ann(self, model_id: str | None = None) -> AnnIndex:
        """The ANN index of a model (default: the serving model), opened and checked on first use."""
        model_id = model_id or self.serving_model_id
        if model_id is None:
            raise LibraryError("This library has no embeddings yet and no models were given.")
        with self._ann_lock:
            ann = self._anns.get(model_id)
            if ann is None:
                ann = AnnIndex(self.paths.ann(model_id), self._dim(model_id), model_id)
                saved = self.store.get_meta(f"ann:{model_id}")
                outcome = ann.open(self.store.embedding_ids(model_id),
                                   lambda ids: self.store.vectors(model_id, ids),
                                   json.loads(saved) if saved else None)
                logger.debug("HNSW index for %s %s", model_id, outcome)
                self._anns[model_id] = ann
                if ann.dirty:
                    self._save_ann(model_id)
            return ann

    def _dim(self, model_id: str) -> int:
        if self.models is not None and self.models.model_id == model_id and self.models.embedding_dim:
            return int(self.models.embedding_dim)
        row = self.store.conn.execute("SELECT length(vector) FROM embeddings WHERE model_id = ? LIMIT 1",
                                      (model_id,)).fetchone()
        if row is None:
            raise LibraryError(f"No embeddings for model {model_id} in this library.")
        return int(row[0]) // 4

    def _save_ann(self, model_id: str) -> None:
        record = self._anns[model_id].save()
        self.store.set_meta(f"ann:{model_id}", json.dumps(record))

    def _save_dirty_anns(self) -> None:
        with self._ann_lock:
            for model_id, ann in list(self._anns.items()):
                if ann.dirty:
                    self._save_ann(model_id)

    # -- reads for search -----------------------------------------------------------------
    def query(self, vector: np.ndarray, k: int, kind: str | None = None,
              filter_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (segment ids, scores) for a unit query vector of the serving model, best first.
        `kind` ('image' or 'video') restricts the results."""
        ann = self.ann()
        if kind is not None:
            allowed = set(int(i) for i in self.store.segment_ids(kind=kind))
            filter_ids = allowed if filter_ids is None else allowed & set(int(i) for i in filter_ids)
        return ann.query(vector, k, filter_ids)

    def vectors(self, model_id: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All (segment ids, (n, d) float32 unit vectors) of a model (default: the serving model)."""
        model_id = model_id or self.serving_model_id
        return self.store.vectors(model_id) if model_id else (np.zeros(0, np.int64), np.zeros((0, 0), np.float32))

    def segment_ids(self, kind: str | None = None) -> np.ndarray:
        return self.store.segment_ids(kind=kind, model_id=self.serving_model_id)

    def segments_info(self, ids: Sequence[int]) -> list[SegmentInfo]:
        """Rows for the given segment ids, in the same order (ids no longer in the library are skipped)."""
        rows = self.store.segment_rows(ids)
        out = []
        for sid in ids:
            row = rows.get(int(sid))
            if row is None:
                continue
            thumb = self.paths.root / row["thumb"] if row["thumb"] else None
            out.append(SegmentInfo(row["segment_id"], row["media_id"], row["path"], row["kind"], row["t_start"],
                                   row["t_end"], row["taken"], row["mtime"], row["size"], row["width"],
                                   row["height"], row["duration"], row["root"], bool(row["online"]), thumb))
        return out

    def thumbnail(self, segment_id: int) -> Path | None:
        info = self.segments_info([segment_id])
        return info[0].thumb if info and info[0].thumb and info[0].thumb.is_file() else None

    def load_frames(self, segment_id: int, n: int = 3, max_side: int | None = None) -> list[Image.Image]:
        """Decode a segment's pixels again for re-ranking: the photo, or n frames spread over the
        video segment. Raises DecodeError (file gone, unreadable) or LibraryError (unknown id)."""
        info = self.segments_info([segment_id])
        if not info:
            raise LibraryError(f"segment {segment_id} is not in the library")
        seg = info[0]
        if seg.kind == "image":
            return [load_image(seg.path, max_side=max_side)]
        return video_frames(seg.path, frame_times(seg.t_start or 0.0, seg.t_end or 0.0, n), max_side=max_side)

    def status(self) -> dict:
        """What `fastslow status --json` prints."""
        counts = self.store.counts()
        return {
            "roots": [{"path": r.path, "online": r.online, "media": r.n_media, "indexed": r.n_indexed,
                       "failed": r.n_errors} for r in self.roots()],
            "media": counts["media"],
            "images": counts["images"],
            "videos": counts["videos"],
            "segments": counts["segments"],
            "model": self.serving_model_id,
            # Files that failed, and folders or files the walk could not use (unreadable, special).
            "failed": sorted(self.store.failures() + scan_problems(self.store), key=lambda f: f["path"]),
        }

    def retry_failed(self) -> int:
        """Have the next run try every failed file again, even unchanged ones; returns how many."""
        return request_retry(self.store)

    # -- watching -------------------------------------------------------------------------
    def watch(self, on_batch: Callable[[list[str]], None] | None = None,
              on_report: Callable[[IndexReport], None] | None = None, quiet: float | None = None) -> None:
        """Watch every online root; each quiet batch of changes is indexed on the debouncer's thread
        (or handed to `on_batch` instead, e.g. to run it in a UI worker)."""
        from .watcher import QUIET_SECONDS, Watcher

        if self._watcher is not None:
            return

        def default(paths: list[str]) -> None:
            report = self.index(paths)
            logger.info("watch: %s", report.throughput_line())
            if on_report is not None:
                on_report(report)

        self._watcher = Watcher([r.path for r in self.roots() if r.online], on_batch or default,
                                quiet if quiet is not None else QUIET_SECONDS)
        self._watcher.start()

    def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    @property
    def watching(self) -> bool:
        return self._watcher is not None
