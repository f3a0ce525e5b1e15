"""The indexer: reconcile folders with the catalog, then decode in worker threads and embed in batches.

Decoding (and preprocessing, which is thread-safe) runs in a small thread pool that stays a few
batches ahead; inference runs batched on the calling thread; each batch of files is written through
the catalog in one transaction. A bad file gets an error row and the run goes on. The indexer
depends on the catalog and the models only; the run holds the catalog's writer lock throughout.

Torch's thread count is left as start-up set it (`models.device`, FASTSLOW_TORCH_THREADS):
`torch.set_num_threads` is process-wide, and changing it here would change it under searches
running on other threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from ..catalog import THUMB_SIZE, Catalog, MediaRecord, MediaRow, NewSegment, write_thumbnail
from ..media import (
    FRAMES_PER_SEGMENT,
    DecodeError,
    capture_time,
    frame_times,
    iter_video_segments,
    open_image,
    partial_hash,
    video_frames,
)
from .dates import backfill_capture_times
from .progress import IndexReport, Progress
from .scan import FileEntry, reconcile
from .unfinished import run_completed, run_started

logger = logging.getLogger(__name__)

BATCH_FRAMES = 64  # frames per inference batch
# The encoder does not wait for a full batch: once this many frames are decoded, no other decode has
# finished and MIN_FLUSH_SECONDS have passed since the last batch began, they are embedded at once.
# Waiting for 64 frames (or FLUSH_SECONDS) left the encoder's cores idle at the start of every run:
# 2 s of a 9 s run of 100 camera photos with ViT-B-32 int8. The pause keeps a decoder-bound run
# (small photos, a small model) from writing a batch every few ms, which held the app's GUI thread
# over 100 ms (tests/test_ui_responsiveness.py).
MIN_BATCH_FRAMES = 16
MIN_FLUSH_SECONDS = 0.25
FLUSH_SECONDS = 2.0  # write what is decoded at least this often, so progress and search keep up
LONG_VIDEO_SEGMENTS = 24  # beyond this many segments a worker embeds as it goes, bounding memory


@dataclass
class _Decoded:
    """A worker's output: the record to write plus, per segment, the preprocessed frames."""

    record: MediaRecord | None = None  # full jobs
    row: MediaRow | None = None  # re-embedding jobs
    segment_ids: list[int] = field(default_factory=list)  # re-embedding: the stored segments
    frames: list[list] = field(default_factory=list)  # per segment: list of (3,S,S) tensors, or [vector]
    vectors: list[np.ndarray | None] = field(default_factory=list)  # per segment, when the worker embedded
    error: str | None = None

    @property
    def n_frames(self) -> int:
        return sum(len(f) for f in self.frames)


def decode_side(image_size: int) -> int:
    """The shorter side a photo is decoded to for a model of this input size: the input and the
    thumbnail need no more, and a JPEG's DCT-scaled decode is a proper downscale. Twice the input (the
    first cut) made a 12 MP photo decode at 1/4 scale instead of 1/8 for a 256 px ViT: 54 -> 43 ms
    decode and 15 -> 7 ms thumbnail per camera photo (2-core AMD EPYC)."""
    return max(image_size, THUMB_SIZE)


def _mean_unit(vectors: np.ndarray) -> np.ndarray:
    vec = vectors.mean(axis=0)
    norm = float(np.linalg.norm(vec))
    return (vec / norm if norm > 0 else vec).astype(np.float32)


class Indexer:
    """One reconcile + embed pass over a library (`run`); pause, resume and cancel via events."""

    def __init__(self, catalog: Catalog, models, workers: int | None = None, batch_frames: int = BATCH_FRAMES):
        self.catalog = catalog
        self.models = models
        self.model_id = models.model_id
        self._workers = workers
        self.batch_frames = batch_frames
        self._fast = None

    # -- workers (threads) ----------------------------------------------------------------
    @property
    def workers(self) -> int:
        """Decode threads. On the CPU half the cores decode and inference gets the torch threads set
        once at start-up; a model on a GPU needs no CPU core, so all but one decode (the one left
        feeds the GPU and writes the catalog)."""
        if self._workers:
            return self._workers
        cores = os.cpu_count() or 2
        device = getattr(self._fast, "device", None) if self._fast is not None else None
        if getattr(device, "type", "cpu") == "cuda":
            return max(1, cores - 1)
        return max(1, min(4, cores // 2))

    @property
    def fast(self):
        if self._fast is None:
            fast = self.models.fast  # loads the weights on first need only
            # choosing (and guarding, or exporting) the backend here counts as loading, not as throughput
            backend = getattr(fast, "backend", None)
            logger.info("indexing with %s on backend %s", self.model_id, getattr(backend, "name", "torch"))
            self._fast = fast
        return self._fast

    def _decode_side(self) -> int:
        return decode_side(int(self.fast.preprocess.config.image_size))

    def _thumb(self, image, path: str, size: int, mtime: float, index: int) -> str | None:
        return write_thumbnail(self.catalog.paths.root, image, path, size, mtime, index)

    def _decode_full(self, entry: FileEntry, side: int) -> _Decoded:
        record = MediaRecord(path=entry.path, root_id=entry.root_id, kind=entry.kind, size=entry.size,
                             mtime=entry.mtime, hash=None)
        out = _Decoded(record=record)
        preprocess = self.fast.preprocess
        try:
            record.hash = partial_hash(entry.path, entry.size)
            if entry.kind == "image":
                image, info = open_image(entry.path, max_side=side)
                record.width, record.height, record.taken = info.width, info.height, info.taken
                record.segments = [NewSegment(None, None, self._thumb(image, entry.path, entry.size, entry.mtime, 0),
                                              None)]
                out.frames = [[preprocess(image)]]
                out.vectors = [None]
            else:
                info, segments = iter_video_segments(entry.path, max_side=side, frames_per_segment=FRAMES_PER_SEGMENT)
                record.segments = []
                for i, seg in enumerate(segments):
                    thumb = self._thumb(seg.frames[len(seg.frames) // 2], entry.path, entry.size, entry.mtime, i)
                    record.segments.append(NewSegment(seg.t_start, seg.t_end, thumb, None))
                    out.frames.append([preprocess(f) for f in seg.frames])
                    out.vectors.append(None)
                    if len(out.frames) > LONG_VIDEO_SEGMENTS:
                        self._embed_in_worker(out)
                if not record.segments:
                    raise DecodeError("video has no readable frames")
                record.width, record.height, record.duration = info.width, info.height, round(info.duration, 3)
        except DecodeError as exc:
            record.error, record.segments, out.frames, out.vectors = exc.reason, None, [], []
        except OSError as exc:
            record.error, record.segments, out.frames, out.vectors = \
                f"cannot read file: {exc.strerror or exc}", None, [], []
        except Exception as exc:  # noqa: BLE001 - one odd file must never stop a run
            logger.exception("unexpected error decoding %s", entry.path)
            record.error, record.segments, out.frames, out.vectors = \
                f"unexpected error: {type(exc).__name__}: {exc}", None, [], []
        # Never raises: a video's header is re-read without decoding, and mtime is the last resort.
        record.captured_at, record.captured_source = capture_time(entry.path, entry.kind, record.taken, entry.mtime)
        return out

    def _embed_in_worker(self, out: _Decoded) -> None:
        """Long videos: embed finished segments now so their frames need not wait in memory."""
        import torch

        todo = [i for i, v in enumerate(out.vectors) if v is None and out.frames[i]]
        if not todo:
            return
        flat = [t for i in todo for t in out.frames[i]]
        vecs = self.fast.encode_image_tensors(torch.stack(flat))
        pos = 0
        for i in todo:
            n = len(out.frames[i])
            out.vectors[i] = _mean_unit(vecs[pos:pos + n])
            out.frames[i] = []
            pos += n

    def _decode_reembed(self, job: tuple[MediaRow, list[dict]], side: int) -> _Decoded:
        row, segs = job
        out = _Decoded(row=row)
        preprocess = self.fast.preprocess
        try:
            for seg in segs:
                if row.kind == "image":
                    frames = [open_image(row.path, max_side=side)[0]]
                else:
                    frames = video_frames(row.path, frame_times(seg["t_start"], seg["t_end"], FRAMES_PER_SEGMENT),
                                          max_side=side)
                out.segment_ids.append(seg["id"])
                out.frames.append([preprocess(f) for f in frames])
                out.vectors.append(None)
        except (DecodeError, OSError) as exc:
            out.error = getattr(exc, "reason", str(exc))
            out.frames, out.vectors, out.segment_ids = [], [], []
        except Exception as exc:  # noqa: BLE001
            logger.exception("unexpected error re-decoding %s", row.path)
            out.error = f"unexpected error: {exc}"
            out.frames, out.vectors, out.segment_ids = [], [], []
        return out

    # -- the run --------------------------------------------------------------------------
    def run(
        self,
        scope: Iterable[str] | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
    ) -> IndexReport:
        """Reconcile, embed what is new or changed, and finish (model switch, HNSW save when due)."""
        started = time.perf_counter()
        report = IndexReport()
        emit = progress or (lambda event: None)
        scope = None if scope is None else list(scope)
        with self.catalog.writing():
            self.catalog.serve_if_first(self.model_id)
            run_started(self.catalog.store, scope)
            emit(Progress("scanning"))
            jobs = self._plan(scope, report)
            backfill_capture_times(self.catalog, cancel)
            run = _Run(self, jobs, report, emit, cancel or threading.Event(), pause or threading.Event())
            if jobs:
                run.embed_all()
            emit(Progress("saving", run.done, len(jobs)))
            self.catalog.finish_run(self.model_id, complete=not report.cancelled)
            if not report.cancelled:
                run_completed(self.catalog.store, scope)
        report.seconds = time.perf_counter() - started
        emit(Progress("done", run.done, len(jobs), failed=report.failed))
        return report

    def _plan(self, scope: Iterable[str] | None, report: IndexReport) -> list[tuple[str, object]]:
        """Reconcile the disk with the catalog, apply moves and removals; returns the decode jobs."""
        plan = reconcile(self.catalog.store, scope)
        report.unchanged = plan.unchanged
        self.catalog.apply_moves(plan.moves)
        report.moved = len(plan.moves)
        for root_id, path in plan.moved_roots.items():  # every file of this unavailable folder was found moved
            logger.info("folder %s moved: its files were found in another folder; forgetting it", path)
            self.catalog.remove_root(root_id)
        report.offline_roots = tuple(p for p in plan.offline_roots if p not in plan.moved_roots.values())
        self.catalog.remove_media(plan.removed)
        report.removed = len(plan.removed)
        queued = {e.path for e in plan.to_index}
        reembed = [row for row in self.catalog.store.media_missing_model(self.model_id) if row.path not in queued]
        # Workers never touch the database: the segments to re-embed are read here.
        return [("full", e) for e in plan.to_index] + \
            [("reembed", (r, self.catalog.store.segments_of(r.id))) for r in reembed]

    def flush(self, batch: list[_Decoded], report: IndexReport) -> None:
        """Embed a batch's frames in one go and write its files in one transaction."""
        import torch

        flat = [t for d in batch for i, frames in enumerate(d.frames) if d.vectors[i] is None for t in frames]
        vecs = self.fast.encode_image_tensors(torch.stack(flat)) if flat else None
        pos = 0
        records: list[MediaRecord] = []
        reembeds: list[tuple[int, np.ndarray]] = []
        for d in batch:
            seg_vectors = []
            for i, frames in enumerate(d.frames):
                if d.vectors[i] is None:
                    seg_vectors.append(_mean_unit(vecs[pos:pos + len(frames)]))
                    pos += len(frames)
                else:
                    seg_vectors.append(d.vectors[i])
            if d.record is not None:
                if d.record.error:
                    report.failed += 1
                    logger.info("cannot index %r: %s", d.record.path, d.record.error)
                else:
                    for seg, vec in zip(d.record.segments, seg_vectors, strict=True):
                        seg.vector = vec
                    report.indexed += 1
                    report.segments += len(seg_vectors)
                records.append(d.record)
            elif d.error:
                logger.warning("cannot re-embed %r: %s", d.row.path, d.error)
            else:
                reembeds.extend(zip(d.segment_ids, seg_vectors, strict=True))
                report.reembedded += 1
                report.segments += len(seg_vectors)
        if records:
            dim = int(self.models.embedding_dim) if self.models.embedding_dim else None
            counted = {id(rec) for rec in records if rec.error is None}  # counted as indexed above
            for rec in self.catalog.write_media(records, self.model_id, dim):
                if id(rec) in counted:  # stored as a failure after all (the catalog says why)
                    report.indexed -= 1
                    report.failed += 1
        self.catalog.write_embeddings(reembeds, self.model_id)


class _Run:
    """The embedding part of one run: a decode pool kept a few batches ahead of batched inference."""

    def __init__(self, indexer: Indexer, jobs: list[tuple[str, object]], report: IndexReport,
                 emit: Callable[[Progress], None], cancel: threading.Event, pause: threading.Event):
        self.indexer, self.jobs, self.report, self.emit = indexer, jobs, report, emit
        self.cancel, self.pause = cancel, pause
        self.done = 0
        self.batch: list[_Decoded] = []
        self.pending: set[Future] = set()
        self._jobs = iter(jobs)
        self.last_flush = self.flush_started = self.embed_started = time.perf_counter()
        self.inflight_limit = 2 * indexer.batch_frames  # raised once the model (and its device) is known

    def event(self, current: str | None, paused: bool = False) -> Progress:
        elapsed = time.perf_counter() - self.embed_started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        total = len(self.jobs)
        eta = (total - self.done) / rate if rate > 0 else None
        return Progress("indexing", self.done, total, rate, eta, current, self.report.failed, paused)

    def flush(self) -> None:
        self.flush_started = time.perf_counter()
        if self.batch:
            self.indexer.flush(self.batch, self.report)
        self.batch, self.last_flush = [], time.perf_counter()

    def fill(self, pool: ThreadPoolExecutor, side: int) -> None:
        while len(self.pending) < self.inflight_limit and not self.cancel.is_set() and not self.pause.is_set():
            job = next(self._jobs, None)
            if job is None:
                return
            kind, item = job
            fn = self.indexer._decode_full if kind == "full" else self.indexer._decode_reembed
            self.pending.add(pool.submit(fn, item, side))

    def embed_all(self) -> None:
        self.emit(self.event(None))
        loading = time.perf_counter()
        side = self.indexer._decode_side()  # loads the model weights: only when there is work
        self.report.load_seconds = time.perf_counter() - loading
        self.inflight_limit = max(2 * self.indexer.workers, 2 * self.indexer.batch_frames)
        self.last_flush = self.embed_started = time.perf_counter()
        with ThreadPoolExecutor(self.indexer.workers, thread_name_prefix="fastslow-decode") as pool:
            self.fill(pool, side)
            while self._step(pool, side):
                pass
            # Whatever finished decoding before a cancel is still written: that work is done.
            for fut in self.pending:
                if fut.done() and not fut.cancelled():
                    self.batch.append(fut.result())
            self.flush()
        self.report.cancelled = self.cancel.is_set()

    def _step(self, pool: ThreadPoolExecutor, side: int) -> bool:
        """One turn of the loop: wait for decoded files, batch them, flush when due. False at the end."""
        if not (self.pending or (not self.cancel.is_set() and self.done < len(self.jobs))):
            return False
        if self.pause.is_set() and not self.cancel.is_set():
            self.flush()
            self.emit(self.event(None, paused=True))
            while self.pause.is_set() and not self.cancel.is_set():
                self.cancel.wait(0.2)
            self.fill(pool, side)
        if self.cancel.is_set():
            for fut in self.pending:
                fut.cancel()
            return False
        if not self.pending:
            self.fill(pool, side)
            if not self.pending:
                return False
        finished, _ = wait(self.pending, timeout=0.5, return_when=FIRST_COMPLETED)
        for fut in finished:
            self.pending.discard(fut)
            decoded = fut.result()
            self.batch.append(decoded)
            self.done += 1
            self.emit(self.event(decoded.record.path if decoded.record else decoded.row.path))
        self.fill(pool, side)
        now, frames = time.perf_counter(), sum(d.n_frames for d in self.batch)
        # a batch that took longer than the pause (a busy encoder) is followed at once, never paused for
        encoder_would_wait = frames >= min(MIN_BATCH_FRAMES, self.indexer.batch_frames) and \
            now - self.flush_started >= MIN_FLUSH_SECONDS and not any(fut.done() for fut in self.pending)
        if frames >= self.indexer.batch_frames or encoder_would_wait or now - self.last_flush > FLUSH_SECONDS:
            self.flush()
        return True
