"""Decoding the re-rank candidates' pixels on a small pool of worker threads."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from ..library import Library, LibraryError
from ..media import DecodeError
from ..models import Models
from .moments import frames_for
from .types import Candidate

logger = logging.getLogger(__name__)

DECODE_WORKERS = 2


class CandidateDecoder:
    """Decodes the frames the slow model re-scores; `close` waits for decodes already running."""

    def __init__(self, library: Library, models: Models):
        self.library = library
        self.models = models
        self._pool = ThreadPoolExecutor(DECODE_WORKERS, thread_name_prefix="fastslow-rerank-decode")

    def load(self, picks: list[Candidate], cancel: threading.Event | None) -> dict[int, list] | None:
        """Each candidate's frames by segment id, decoded and resized for the slow model ([] when
        unreadable); None if cancelled meanwhile or the decoder was closed."""
        side = decode_side(self.models)
        # Resized here too (PIL only, 0.5 ms a photo); the slow model's thread turns them into tensors.
        resize = self.models.slow.preprocess.resize

        def load(candidate: Candidate) -> list:
            if cancel is not None and cancel.is_set():
                return []
            info = candidate.info
            n = frames_for(info.t_start, info.t_end) if info.kind == "video" else 1
            try:
                return [resize(frame) for frame in self.library.segment_frames(info, n=n, max_side=side)]
            except (DecodeError, LibraryError, OSError) as exc:  # moved or unreadable: keeps its fast rank
                logger.warning("re-rank skipped %s: %s", info.path, exc)
                return []

        try:
            futures = {self._pool.submit(load, c): c.segment_id for c in picks}
        except RuntimeError:  # close() ran first: the library is closing, so this query is over
            return None
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.05)
            if cancel is not None and cancel.is_set():
                for future in pending:
                    future.cancel()
                return None
        if any(f.cancelled() for f in futures):  # close() dropped decodes that had not started
            return None
        return {futures[f]: f.result() for f in futures}

    def close(self) -> None:
        # Running decodes (a photo or a few frames each) are waited for: the library closes next (a
        # decode still reading SQLite as its connection closed once crashed the process).
        self._pool.shutdown(wait=True, cancel_futures=True)


def decode_side(models: Models) -> int | None:
    """The shorter side candidates are decoded at, at least (JPEG draft mode, or a thumbnail): the
    slow model sees a small square anyway. None (full size) when the bundle does not say its input size."""
    try:
        size = int(models.slow.preprocess.config.image_size)
    except AttributeError:
        return None
    return max(128, 2 * size)
