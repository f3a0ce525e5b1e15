"""The indexer: reconcile folders with the database, then decode in worker threads and embed in batches.

Decoding (and preprocessing, which is thread-safe) runs in a small thread pool that stays a few
batches ahead; inference runs batched on the calling thread; each batch of files is written in one
transaction. A bad file gets an error row and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..media import (
    FRAMES_PER_SEGMENT,
    DecodeError,
    frame_times,
    iter_video_segments,
    open_image,
    partial_hash,
    video_frames,
)
from .progress import IndexReport, Progress
from .scan import FileEntry, reconcile
from .store import MediaRecord, MediaRow, NewSegment

if TYPE_CHECKING:
    from .library import Library

logger = logging.getLogger(__name__)

THUMB_SIZE = 256  # longest side of a thumbnail, pixels
BATCH_FRAMES = 64  # frames per inference batch
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


def _mean_unit(vectors: np.ndarray) -> np.ndarray:
    vec = vectors.mean(axis=0)
    norm = float(np.linalg.norm(vec))
    return (vec / norm if norm > 0 else vec).astype(np.float32)


class Indexer:
    """One reconcile + embed pass over a library (`run`); pause, resume and cancel via events."""

    def __init__(self, library: Library, workers: int | None = None, batch_frames: int = BATCH_FRAMES,
                 torch_threads: int | None = None):
        self.library = library
        self.store = library.store
        self.models = library.models
        self.model_id = library.models.model_id
        cores = os.cpu_count() or 2
        # Split the cores between decoding and inference instead of letting both use all of them:
        # torch's intra-op threads spin, and on a 2-core laptop oversubscription made tiny-batch
        # inference 100x slower in measurements.
        self.workers = workers or max(1, min(4, cores // 2))
        self.torch_threads = torch_threads or max(1, cores - self.workers)
        self.batch_frames = batch_frames
        self._fast = None

    # -- workers (threads) ----------------------------------------------------------------
    @property
    def fast(self):
        if self._fast is None:
            self._fast = self.models.fast  # loads the weights on first need only
        return self._fast

    def _decode_side(self) -> int:
        size = int(self.fast.preprocess.config.image_size)
        return max(2 * size, THUMB_SIZE)

    def _thumb(self, image, path: str, size: int, mtime: float, index: int) -> str | None:
        key = hashlib.blake2b(f"{path}\0{size}\0{mtime}".encode(), digest_size=10).hexdigest()
        rel = Path("thumbnails") / key[:2] / f"{key}-{index}.jpg"
        out = self.library.paths.root / rel
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            thumb = image.copy()
            thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
            tmp = out.with_name(out.name + ".tmp")
            thumb.save(tmp, "JPEG", quality=85)
            os.replace(tmp, out)
        except OSError as exc:
            logger.warning("cannot write thumbnail for %s: %s", path, exc)
            return None
        return rel.as_posix()

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
        started = time.perf_counter()
        cancel = cancel or threading.Event()
        pause = pause or threading.Event()
        report = IndexReport()
        emit = progress or (lambda event: None)
        emit(Progress("scanning"))

        plan = reconcile(self.store, scope)
        report.unchanged = plan.unchanged
        report.offline_roots = tuple(plan.offline_roots)
        self.library._apply_moves(plan.moves)
        report.moved = len(plan.moves)
        self.library._remove_media(plan.removed)
        report.removed = len(plan.removed)

        queued = {e.path for e in plan.to_index}
        reembed = [row for row in self.store.media_missing_model(self.model_id) if row.path not in queued]
        # Workers never touch the database: the segments to re-embed are read here.
        jobs: list[tuple[str, object]] = [("full", e) for e in plan.to_index] + \
            [("reembed", (r, self.store.segments_of(r.id))) for r in reembed]
        total = len(jobs)
        ann = self.library.ann(self.model_id) if jobs else None

        done = 0
        batch: list[_Decoded] = []
        last_flush = time.perf_counter()
        embed_started = time.perf_counter()

        def flush() -> None:
            nonlocal batch, last_flush
            if batch:
                self._flush(batch, ann, report)
            batch, last_flush = [], time.perf_counter()

        def event(current: str | None, paused: bool = False) -> Progress:
            elapsed = time.perf_counter() - embed_started
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (total - done) / rate if rate > 0 else None
            return Progress("indexing", done, total, rate, eta, current, report.failed, paused)

        if jobs:
            emit(event(None))
            import torch

            loading = time.perf_counter()
            side = self._decode_side()  # loads the model weights: only when there is work
            report.load_seconds = time.perf_counter() - loading
            last_flush = embed_started = time.perf_counter()
            saved_threads = torch.get_num_threads()
            torch.set_num_threads(min(saved_threads, self.torch_threads))
            inflight_limit = max(2 * self.workers, 2 * self.batch_frames)
            job_iter = iter(jobs)
            pending: set[Future] = set()
            try:
                with ThreadPoolExecutor(self.workers, thread_name_prefix="fastslow-decode") as pool:
                    def fill() -> None:
                        while len(pending) < inflight_limit and not cancel.is_set() and not pause.is_set():
                            job = next(job_iter, None)
                            if job is None:
                                return
                            kind, item = job
                            fn = self._decode_full if kind == "full" else self._decode_reembed
                            pending.add(pool.submit(fn, item, side))

                    fill()
                    while pending or (not cancel.is_set() and done < total):
                        if pause.is_set() and not cancel.is_set():
                            flush()
                            emit(event(None, paused=True))
                            while pause.is_set() and not cancel.is_set():
                                cancel.wait(0.2)
                            fill()
                        if cancel.is_set():
                            for fut in pending:
                                fut.cancel()
                            break
                        if not pending:
                            fill()
                            if not pending:
                                break
                        finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            pending.discard(fut)
                            decoded = fut.result()
                            batch.append(decoded)
                            done += 1
                            path = decoded.record.path if decoded.record else decoded.row.path
                            emit(event(path))
                        fill()
                        if sum(d.n_frames for d in batch) >= self.batch_frames or \
                                time.perf_counter() - last_flush > FLUSH_SECONDS:
                            flush()
                    # Whatever finished decoding before a cancel is still written: that work is done.
                    for fut in pending:
                        if fut.done() and not fut.cancelled():
                            batch.append(fut.result())
                    flush()
            finally:
                torch.set_num_threads(saved_threads)
            report.cancelled = cancel.is_set()

        emit(Progress("saving", done, total))
        self.library._finish_run(self.model_id, complete=not report.cancelled)
        report.seconds = time.perf_counter() - started
        emit(Progress("done", done, total, failed=report.failed))
        return report

    def _flush(self, batch: list[_Decoded], ann, report: IndexReport) -> None:
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
                    logger.info("cannot index %s: %s", d.record.path, d.record.error)
                else:
                    for seg, vec in zip(d.record.segments, seg_vectors, strict=True):
                        seg.vector = vec
                    report.indexed += 1
                    report.segments += len(seg_vectors)
                records.append(d.record)
            elif d.error:
                logger.warning("cannot re-embed %s: %s", d.row.path, d.error)
            else:
                reembeds.extend(zip(d.segment_ids, seg_vectors, strict=True))
                report.reembedded += 1
                report.segments += len(seg_vectors)
        if records:
            new_ids, matrix, old_ids, old_thumbs = self.store.write_media(records, self.model_id)
            kept = {seg.thumb for rec in records for seg in rec.segments or []}
            self.library._forget_segments(old_ids, [t for t in old_thumbs if t not in kept])
            ann.add(new_ids, matrix)
        if reembeds:
            self.store.write_embeddings(reembeds, self.model_id)
            ann.add([sid for sid, _ in reembeds], np.stack([v for _, v in reembeds]))
