"""The library facade used by the search engine, the UI and the command line: roots, watching, reads."""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..catalog import THUMB_SIZE, AnnIndex, Catalog, LibraryError, RootInfo, SegmentInfo
from ..paths import default_library_dir
from ..media import DecodeError, frame_times, load_image, video_frames
from .indexer import Indexer
from .models_spec import TARGET_KEY, remember_spec
from .progress import IndexReport, Progress
from .scan import request_retry, root_for, scan_problems
from .unfinished import left_unfinished
from .walk import is_under

logger = logging.getLogger(__name__)


class Library:
    """A library folder: roots, indexed media, embeddings and their ANN indexes.

    Thread-safe: searches may run while an index run writes from another thread. All stored state
    lives in the `catalog`; this class adds the models, the indexer and the folder watcher.
    """

    def __init__(self, folder: str | Path, models=None, read_only: bool | None = None):
        self.catalog = Catalog(folder, read_only=read_only)
        self.paths = self.catalog.paths
        self.models = models
        self._watcher = None

    @classmethod
    def open(cls, folder: str | Path | None = None, models=None, read_only: bool | None = None) -> Library:
        """Open (creating if needed) a library folder; default: `paths.default_library_dir()`.
        `models` is a loaded bundle (`load_bundle(...)`), needed to index, not to read. A folder this
        process cannot write opens read-only (or pass `read_only=True`): search and status work."""
        return cls(folder if folder is not None else default_library_dir(), models, read_only)

    @property
    def read_only(self) -> bool:
        return self.catalog.read_only

    def close(self) -> None:
        self.stop_watching()
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_for_other_writers(self, on_wait: Callable[[str], None]) -> None:
        """Index runs and root changes wait for another process's writer as long as it takes (see Catalog)."""
        self.catalog.wait_for_other_writers(on_wait)

    # -- roots ----------------------------------------------------------------------------
    def add_root(self, path: str | Path, exclude: Iterable[str] | None = None) -> str:
        """Add a folder (absolute, symlinks resolved); a folder inside an existing root is already
        covered, and a parent of existing roots absorbs them. `exclude`: glob patterns matched against
        paths relative to the folder and their parts (None keeps a known folder's patterns).
        Waits for a running index run (the writer lock), so its rows never point at a merged root.
        Returns the root path stored."""
        path = str(Path(path).expanduser().resolve())
        if not os.path.isdir(path):
            raise LibraryError(f"{path} is not a folder.")
        own = str(self.paths.root.resolve())
        if is_under(path, own):
            raise LibraryError(f"{path} is FastSlow's own library folder (its database and thumbnails), "
                               "not a folder of photos; add the folders your photos are in.")
        with self.catalog.writing():
            roots = self.catalog.store.roots()
            parent = root_for(path, roots)
            if parent is not None and parent["path"] != path:
                logger.info("%s is already inside library folder %s", path, parent["path"])
                return parent["path"]
            root_id = self.catalog.add_root(path, None if exclude is None else list(exclude))
            for root in roots:
                if root["path"] != path and root_for(root["path"], [{"path": path}]):
                    self.catalog.merge_root_into(root["id"], root_id)
        if self._watcher is not None:
            self._watcher.add_root(path)
        return path

    def remove_root(self, path: str | Path) -> None:
        """Forget a folder and everything indexed in it (the files themselves are untouched)."""
        path = str(Path(path).expanduser().resolve())
        with self.catalog.writing():
            root = next((r for r in self.catalog.store.roots() if r["path"] == path), None)
            if root is None:
                raise LibraryError(f"{path} is not a library folder.")
            self.catalog.remove_root(root["id"])
        if self._watcher is not None:
            self._watcher.remove_root(path)

    def changed_elsewhere(self) -> bool:
        """Whether another process (`fastslow index` while the app runs) changed this library since the
        last call; if so, searches see its changes from now on and the watcher its folders."""
        if not self.catalog.changed_elsewhere():
            return False
        watcher = self._watcher
        if watcher is not None:
            online = {r["path"] for r in self.catalog.store.roots() if r["online"]}
            for path in sorted(online - watcher.roots):
                watcher.add_root(path)
            for path in sorted(watcher.roots - online):
                watcher.remove_root(path)
        return True

    def models_chosen_elsewhere(self) -> str | None:
        """The models another process moved this library to (`fastslow index --models …`) when they are
        not the ones this object indexes with; None when they agree. An app that kept its own would
        re-embed everything back with them at its next index run."""
        spec = getattr(self.models, "spec", None)
        target = self.catalog.store.get_meta(TARGET_KEY)
        return target if spec and target and target != spec else None

    def indexed_elsewhere_now(self) -> bool:
        """Whether another process (`fastslow index`) holds the library for writing at this moment."""
        return self.catalog.written_elsewhere_now()

    def left_unfinished(self) -> bool:
        """Whether an index run stopped before it went through its work (`fastslow index` killed or stopped)
        and no later run finished it: files it had not reached yet are not in the library."""
        return left_unfinished(self.catalog.store)

    @property
    def has_folders(self) -> bool:
        """Whether any folder is added (without the per-folder counts `roots()` computes)."""
        return bool(self.catalog.store.roots())

    def roots(self) -> list[RootInfo]:
        counts = self.catalog.store.root_counts()
        return [RootInfo(r["path"], r["online"], r["excludes"],
                         **counts.get(r["id"], {"n_media": 0, "n_indexed": 0, "n_errors": 0}))
                for r in self.catalog.store.roots()]

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
        scope = None if paths is None else [os.fspath(p) for p in paths]
        spec = getattr(self.models, "spec", None)
        if spec:  # later runs (and the app) load these models when none are named
            remember_spec(self.catalog, spec, self.models.model_id)
        return Indexer(self.catalog, self.models).run(scope, progress, cancel, pause)

    # -- reads for search -----------------------------------------------------------------
    @property
    def serving_model_id(self) -> str | None:
        """The model whose embeddings answer searches (the old one until a new model has re-embedded
        everything). Encode queries with this model."""
        return self.catalog.serving_model_id() or (self.models.model_id if self.models else None)

    def _model(self, model_id: str | None) -> str:
        model_id = model_id or self.serving_model_id
        if model_id is None:
            raise LibraryError("This library has no embeddings yet and no models were given.")
        return model_id

    def ann(self, model_id: str | None = None) -> AnnIndex:
        """The ANN index of a model (default: the serving model), opened and checked on first use."""
        model_id = self._model(model_id)
        dim = self.models.embedding_dim if self.models is not None and self.models.model_id == model_id else None
        return self.catalog.ann(model_id, int(dim) if dim else None)

    def query(self, vector: np.ndarray, k: int, kind: str | None = None,
              filter_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (segment ids, scores) for a unit query vector of the serving model, best first.
        `kind` ('image' or 'video') restricts the results."""
        model_id = self._model(None)
        self.ann(model_id)
        return self.catalog.query(model_id, vector, k, kind, filter_ids)

    def segments_per_media(self) -> float:
        """Searchable segments per file of the serving model (1.0 for photos only)."""
        model_id = self._model(None)
        self.ann(model_id)  # opened as `query` opens it: an empty index while nothing is embedded yet
        return self.catalog.segments_per_media(model_id)

    def exact_query(self, vector: np.ndarray, k: int, kind: str | None = None,
                    filter_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As `query`, by brute force over the stored vectors (no HNSW involved)."""
        model_id = self.serving_model_id
        if model_id is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return self.catalog.exact_query(model_id, vector, k, kind, filter_ids)

    def vectors(self, model_id: str | None = None, ids: Iterable[int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(segment ids, (n, d) float32 unit vectors) of a model (default: the serving model): all of
        them, or those of `ids`."""
        model_id = model_id or self.serving_model_id
        if not model_id:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return self.catalog.store.vectors(model_id, ids)

    def segment_ids(self, kind: str | None = None) -> np.ndarray:
        return self.catalog.store.segment_ids(kind=kind, model_id=self.serving_model_id)

    def filtered_segment_ids(self, kind: str | None = None, folder: str | None = None,
                             date_from: datetime.date | None = None, date_to: datetime.date | None = None
                             ) -> np.ndarray:
        """Searchable segment ids of one kind, under a folder, captured between two days (inclusive,
        local time); selected in SQL without loading the rows."""
        after = date_from.isoformat() if date_from else None
        before = (date_to + datetime.timedelta(days=1)).isoformat() if date_to and date_to < datetime.date.max else None
        return self.catalog.store.filtered_segment_ids(kind, folder, after, before, self.serving_model_id)

    def segments_info(self, ids: Sequence[int]) -> list[SegmentInfo]:
        """Rows for the given segment ids, in the same order (ids no longer in the library are skipped)."""
        return self.catalog.segments_info(ids)

    def thumbnail(self, segment_id: int) -> Path | None:
        info = self.segments_info([segment_id])
        return info[0].thumb if info and info[0].thumb and info[0].thumb.is_file() else None

    def load_frames(self, segment_id: int, n: int = 3, max_side: int | None = None) -> list[Image.Image]:
        """Decode a segment's pixels again for re-ranking: the photo, or n frames spread over the
        video segment. Raises DecodeError (file gone, unreadable) or LibraryError (unknown id)."""
        info = self.segments_info([segment_id])
        if not info:
            raise LibraryError(f"segment {segment_id} is not in the library")
        return self.segment_frames(info[0], n, max_side)

    def segment_frames(self, seg: SegmentInfo, n: int = 3, max_side: int | None = None) -> list[Image.Image]:
        """`load_frames` for a segment whose row the caller already holds (no database read): a photo
        larger than its thumbnail from the thumbnail, when that holds `max_side` on its shorter side."""
        if seg.kind == "image":
            small = _from_thumbnail(seg, max_side)
            return [small if small is not None else load_image(seg.path, max_side=max_side)]
        return video_frames(seg.path, frame_times(seg.t_start or 0.0, seg.t_end or 0.0, n), max_side=max_side)

    def status(self) -> dict:
        """What `fastslow status --json` prints."""
        counts = self.catalog.store.counts()
        problems, hidden = scan_problems(self.catalog.store)
        return {
            "roots": [{"path": r.path, "online": r.online, "media": r.n_media, "indexed": r.n_indexed,
                       "failed": r.n_errors, "excludes": list(r.excludes)} for r in self.roots()],
            "media": counts["media"],
            "images": counts["images"],
            "videos": counts["videos"],
            "segments": counts["segments"],
            "model": self.serving_model_id,
            # Files that failed, and folders or files the walk could not use (unreadable, special).
            "failed": sorted(self.catalog.store.failures() + problems, key=lambda f: f["path"]),
            "unfinished_run": self.left_unfinished(),  # running now, or stopped early: files may be missing
            "hidden": hidden,  # hidden folders and media files, skipped on purpose
        }

    def retry_failed(self) -> int:
        """Have the next run try every failed file again, even unchanged ones; returns how many."""
        with self.catalog.writing():
            return request_retry(self.catalog.store)

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


def _from_thumbnail(seg: SegmentInfo, max_side: int | None) -> Image.Image | None:
    """The photo's thumbnail when it holds enough pixels (shorter side ≥ max_side), else None.

    Made at index time from the same upright pixels, it decodes in well under a millisecond, where a
    12-megapixel camera JPEG takes tens even at reduced DCT scale: re-ranking K photos is bound by it.
    """
    if max_side is None or max_side > THUMB_SIZE or seg.thumb is None:  # too small for certain: not opened
        return None
    if not seg.width or not seg.height or max(seg.width, seg.height) <= THUMB_SIZE:
        return None  # a photo no larger than its thumbnail decodes as fast, without a second JPEG pass

    try:
        image = load_image(seg.thumb, max_side=max_side)
    except DecodeError:  # removed or damaged: the photo itself is decoded instead
        return None
    return image if min(image.size) >= max_side else None
