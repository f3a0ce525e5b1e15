"""The query pipeline: query vector → fast top N (ANN) → stage-1 results → slow re-rank of the top K → stage 2."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..library import Library, LibraryError
from ..models import Models, Reranker
from ..models.tokenizer import normalize_query
from .decoding import CandidateDecoder
from .filters import allowed_ids, sort_results
from .grouping import best_per_media, cap_per_media
from .matching import judge_results
from .moments import best_run, frames_for, narrow, needs_narrowing
from .query import ParsedQuery, load_query_image, missing_picture, request_terms
from .reading import reading_notes
from .slowcache import CachedSlowScorer, Cancelled, SegmentPixels, TokenCache
from .types import Candidate, SearchError, SearchRequest, SearchResult, StageResult

logger = logging.getLogger(__name__)

SHORTLIST_FACTOR = 3  # fast shortlist = up to this × max(top, K) segments: videos collapse to one result each
MIN_SHORTLIST_FACTOR = 1.25  # ... and at least this: a library of photos collapses nothing
MAX_SHORTLIST = 20_000
SEGMENTS_PER_VIDEO = 3  # at most this many segments of one video among the K re-ranked
TEXT_CACHE_SIZE = 512


class SearchHandle:
    """A query submitted with `SearchEngine.submit`: cancel it, or wait for it to finish."""

    def __init__(self, request: SearchRequest):
        self.request = request
        self.cancel_event = threading.Event()
        self.done = threading.Event()
        self.stage1: StageResult | None = None
        self.stage2: StageResult | None = None
        self.error: BaseException | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class SearchEngine:
    """Fast shortlist, then slow re-rank, over one library with one model bundle. Thread-safe, no Qt.

    `fast()` takes no lock that stage 2 holds, so results appear at once even while an older
    query's re-ranking is still running on another thread.
    """

    def __init__(self, library: Library, models: Models):
        self.library = library
        self.models = models
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._fast_encoder = None
        self._encoder_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._current: SearchHandle | None = None
        self._decoder = CandidateDecoder(library, models)
        self.token_cache = TokenCache()

    def close(self) -> None:
        """Cancel a running query, stop the decode workers and drop cached tokens (the library and
        models stay open)."""
        with self._submit_lock:
            if self._current is not None:
                self._current.cancel()
        self._decoder.close()  # waits for running decodes: the library closes next
        self.token_cache.clear()

    def warm_up(self, slow: bool = True, image: bool = True) -> None:
        """Load the models now (e.g. on a background thread at start-up) so the first query is quick:
        the text encoder always, the fast image tower with `image`, the slow model with `slow`."""
        self._text_encoder()
        if image:
            self._encoder()
        if slow:
            _ = self.models.reranker

    # -- query vectors --------------------------------------------------------------------
    def _encoder(self):
        # Held by the engine: `Models.fast` takes the bundle's build lock, which the slow model's
        # first load holds for seconds; stage 1 must not wait behind it.
        if self._fast_encoder is None:
            with self._encoder_lock:
                if self._fast_encoder is None:
                    self._fast_encoder = self.models.fast
        return self._fast_encoder

    def _text_encoder(self):  # lean ONNX text tower or fast encoder; its lock is not the slow build's
        return self.models.text_encoder

    def text_vector(self, text: str) -> np.ndarray:
        """g(y) for a text, cached per (normalised) string."""
        key = normalize_query(text)
        with self._cache_lock:
            cached = self._text_cache.get(key)
            if cached is not None:
                self._text_cache.move_to_end(key)
                return cached
        vector = self._text_encoder().encode_texts([text])[0]
        with self._cache_lock:
            self._text_cache[key] = vector
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return vector

    def image_vector(self, path: str) -> np.ndarray:
        """f(x) of a picture on disk."""
        return self._encoder().encode_images([load_query_image(path)])[0]

    def segment_vector(self, segment_id: int) -> np.ndarray:
        """The stored embedding of a photo or video segment ("more like this")."""
        ids, vectors = self.library.vectors(ids=[int(segment_id)])
        if len(ids) == 0:
            raise SearchError(f"Segment {segment_id} is no longer in the library: search again and pick another.")
        return np.asarray(vectors[0], np.float32)

    def query_vector(self, parsed: ParsedQuery) -> np.ndarray:
        """Weighted sum of the terms' unit vectors (subtracted terms negative), renormalised."""
        total = None
        for term in parsed.terms:
            if term.kind == "text":
                vec = self.text_vector(term.value)
            elif term.kind == "image":
                vec = self.image_vector(term.value)
            else:
                vec = self.segment_vector(int(term.value))
            vec = np.asarray(vec, np.float64)
            vec = vec / (np.linalg.norm(vec) + 1e-12)
            total = term.weight * vec if total is None else total + term.weight * vec
        norm = float(np.linalg.norm(total)) if total is not None else 0.0
        if norm < 1e-6:
            raise SearchError("The query's terms cancel each other out: there is nothing left to search for.")
        return (total / norm).astype(np.float32)

    # -- stage 1 --------------------------------------------------------------------------
    def rerank_depth(self, request: SearchRequest) -> int:
        k = request.k if request.k is not None else self.models.rerank_config.k
        return max(0, int(k))

    def _check_model(self) -> None:
        serving = self.library.serving_model_id
        if serving is not None and serving != self.models.model_id:
            raise SearchError(
                f"This library's embeddings come from model {serving}, not from {self.models.model_id}. "
                "Search with the bundle it was indexed with, or index it again with this one."
            )

    def fast(self, request: SearchRequest) -> StageResult:
        """Stage 1: the fast model's results, grouped per video. Never waits for a stage 2."""
        start = time.perf_counter()
        self._check_model()
        parsed = request_terms(request.text, request.image, request.like_segment)
        vector = self.query_vector(parsed)
        allowed = allowed_ids(self.library, request)
        want = max(1, int(request.top))
        depth = self.rerank_depth(request) if request.rerank else 0
        # As many segments as `top` files are likely to hold: each shortlisted row costs an HNSW step
        # and a SQLite row (half of stage 1 at 100 000 photos); the loop below widens when short.
        try:
            per_media = self.library.segments_per_media()
        except LibraryError as exc:
            raise SearchError(str(exc)) from exc
        factor = min(SHORTLIST_FACTOR, max(MIN_SHORTLIST_FACTOR, per_media))
        n = min(MAX_SHORTLIST, math.ceil(factor * max(want, depth)))
        while True:
            ids, scores = self._top(vector, n, None if allowed is not None else request.kind, allowed)
            infos = {info.segment_id: info for info in self.library.segments_info(ids.tolist())}
            candidates = [Candidate(int(i), float(s), infos[int(i)]) for i, s in zip(ids, scores) if int(i) in infos]
            n_media = sum(1 for _ in best_per_media(candidates, _media_of))
            # Long videos can fill the shortlist with their segments: widen it until `top` files are in.
            if n_media >= want or len(ids) < n or n >= MAX_SHORTLIST:
                break
            n = min(MAX_SHORTLIST, n * 4)
        if request.min_relative_score is not None and candidates and candidates[0].fast_score > 0:
            floor = request.min_relative_score * candidates[0].fast_score
            candidates = [c for c in candidates if c.fast_score >= floor]
        results = [_result(c, c.fast_score, None) for c in itertools.islice(best_per_media(candidates, _media_of), want)]
        results = sort_results(results, request)
        texts = [t.value for t in parsed.terms if t.kind == "text"]  # a picture alone loads no text tower
        notes = [note for note in [missing_picture(parsed)] if note] + (
            reading_notes(getattr(self._text_encoder(), "tokenizer", None), texts) if texts else [])
        return StageResult(request, results, 1, (time.perf_counter() - start) * 1000.0, None,
                           candidates=candidates, rerank_texts=parsed.positive_texts, notes=notes)

    def _top(self, vector: np.ndarray, n: int, kind: str | None, allowed: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n segment ids and scores: the library's ANN (exact below a few thousand vectors), and an
        exact search over the stored vectors if the index itself fails."""
        try:
            return self.library.query(vector, n, kind=kind, filter_ids=allowed)
        except LibraryError as exc:
            raise SearchError(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - a broken index cache must not break search
            logger.warning("ANN search failed (%s); searching exactly instead", exc)
        return self.library.exact_query(vector, n, kind=kind, filter_ids=allowed)

    # -- stage 2 --------------------------------------------------------------------------
    def refine(self, stage1: StageResult, cancel: threading.Event | None = None) -> StageResult | None:
        """Stage 2: the slow model re-scores the top K segments (a few per video) and re-orders them.

        Returns None if `cancel` was set before it finished, and `stage1` itself when there is
        nothing to re-rank (re-ranking off, K = 0, no results, or a query with no added text).
        """
        request = stage1.request
        depth = self.rerank_depth(request)
        if not request.rerank or depth == 0 or not stage1.candidates or not stage1.rerank_texts:
            return stage1
        start = time.perf_counter()
        picks = cap_per_media(stage1.candidates, _media_of, depth, SEGMENTS_PER_VIDEO)
        items = {c.segment_id: SegmentPixels(_pixels_key(c)) for c in picks}
        for item in items.values():
            item.tokens = self.token_cache.get(item.key)
        # Segments whose tokens are cached need no decoding at all.
        frames = self._decoder.load([c for c in picks if items[c.segment_id].tokens is None], cancel)
        if frames is None:
            return None
        for sid, decoded in frames.items():
            items[sid].frames = decoded
        readable = {sid for sid, item in items.items() if sid not in frames or frames[sid]}
        reranker = self.models.reranker
        slow = CachedSlowScorer(reranker.slow, self.token_cache, cancel)
        keys = [c.segment_id for c in picks]
        fast_scores = [c.fast_score for c in picks]
        final: dict[int, float] = {}
        slow_scores: dict[int, float] = {}
        total_weight = sum(w for w, _ in stage1.rerank_texts)
        try:
            for weight, text in stage1.rerank_texts:
                ranked = Reranker(slow, reranker.config).rerank(
                    text, keys, fast_scores, lambda sid: [items[sid]] if sid in readable else [], k=len(keys),
                    beta=request.beta)
                for r in ranked:
                    if r.slow_score is None:
                        continue
                    # Several added texts: the weighted mean of their final (and slow) scores.
                    final[r.key] = final.get(r.key, 0.0) + weight * r.score / total_weight
                    slow_scores[r.key] = slow_scores.get(r.key, 0.0) + weight * r.slow_score / total_weight
            if cancel is not None and cancel.is_set():
                return None
            by_id = {c.segment_id: c for c in stage1.candidates}
            reranked = sorted(final, key=lambda sid: -final[sid])
            ordered = [_result(by_id[sid], final[sid], slow_scores[sid]) for sid in reranked]
            ordered += [_result(c, c.fast_score, None) for c in stage1.candidates if c.segment_id not in final]
            matcher = self.models.matcher
            grouped = judge_results(list(best_per_media(ordered, lambda r: r.media_id)), matcher, stage1.rerank_texts,
                                    lambda text, rs: slow.worst_tokens(text, [items[r.segment_id] for r in rs]))
            if request.only_matches:
                grouped = [r for r in grouped if r.match == "yes"]
            results = self._narrow_moments(grouped[: max(1, int(request.top))], items, stage1.rerank_texts, slow)
        except Cancelled:
            return None
        results = sort_results(results, request)
        return replace(stage1, results=results, stage=2, slow_ms=(time.perf_counter() - start) * 1000.0,
                       judged=matcher is not None)

    def _narrow_moments(self, results: list[SearchResult], items: dict[int, SegmentPixels],
                        texts: list[tuple[float, str]], slow: CachedSlowScorer) -> list[SearchResult]:
        """A long video segment may hold several moments (a cut the indexer missed): point a
        re-ranked video result at the part whose frame the slow model finds most like the query."""
        out = []
        total = sum(w for w, _ in texts)
        for r in results:
            n = frames_for(r.t_start, r.t_end)
            if r.kind == "video" and r.slow_score is not None and needs_narrowing(r.t_start, r.t_end, n):
                # Each frame scored on its own says where in the segment the query fits.
                scores = sum(w / total * slow.score_frames(text, items[r.segment_id]) for w, text in texts)
                if len(scores) == n:  # a frame that failed to decode would shift the times
                    t_start, t_end = narrow(r.t_start, r.t_end, n, *best_run(scores.tolist()))
                    r = replace(r, t_start=t_start, t_end=t_end)
            out.append(r)
        return out

    # -- both stages ----------------------------------------------------------------------
    def search(self, request: SearchRequest) -> StageResult:
        """Both stages on the calling thread (the CLI); stage 1's result when re-ranking is off."""
        stage1 = self.fast(request)
        if not request.rerank:
            return stage1
        return self.refine(stage1) or stage1

    def submit(
        self,
        request: SearchRequest,
        on_stage1: Callable[[StageResult], None],
        on_stage2: Callable[[StageResult], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> SearchHandle:
        """Run a query on a worker thread: stage 1, `on_stage1`, then stage 2, `on_stage2`.

        Submitting cancels the previous query's stage 2. Callbacks run on the worker thread (a Qt
        caller re-emits them as signals). `on_stage2` is not called when the query was cancelled or
        when there was nothing to re-rank.
        """
        handle = SearchHandle(request)
        with self._submit_lock:
            if self._current is not None:
                self._current.cancel()
            self._current = handle
        worker = threading.Thread(target=self._run, args=(handle, on_stage1, on_stage2, on_error),
                                  name="fastslow-search", daemon=True)
        worker.start()
        return handle

    def _run(self, handle: SearchHandle, on_stage1, on_stage2, on_error) -> None:
        try:
            handle.stage1 = self.fast(handle.request)
            if handle.cancelled:
                return
            on_stage1(handle.stage1)
            if not handle.request.rerank:
                return
            stage2 = self.refine(handle.stage1, handle.cancel_event)
            if stage2 is None or stage2 is handle.stage1 or handle.cancelled:
                return
            handle.stage2 = stage2
            if on_stage2 is not None:
                on_stage2(stage2)
        except Exception as exc:  # reported to the caller; a worker thread must not die silently
            handle.error = exc
            if on_error is not None:
                on_error(exc)
            else:
                logger.exception("search for %r failed", handle.request.text)
        finally:
            handle.done.set()


def _pixels_key(candidate: Candidate) -> tuple:
    # A changed file has a new mtime or size, so stale tokens are never used.
    info = candidate.info
    return candidate.segment_id, info.mtime, info.size, frames_for(info.t_start, info.t_end)


def _media_of(item: Candidate) -> int:
    return item.info.media_id


def _result(candidate: Candidate, score: float, slow_score: float | None) -> SearchResult:
    info = candidate.info
    thumb = info.thumb if info.thumb is not None and info.thumb.is_file() else None
    return SearchResult(info.segment_id, info.media_id, info.path, info.kind, float(score),
                        candidate.fast_score, None if slow_score is None else float(slow_score),
                        info.t_start, info.t_end, thumb, info)
