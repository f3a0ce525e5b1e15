"""The search engine on a small library with tiny random models: stages, grouping, filters, queries, cancel."""

from __future__ import annotations

import datetime
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastslow_desktop.library import Library
from fastslow_desktop.models import load_bundle
from fastslow_desktop.search import (
    SearchEngine,
    SearchError,
    SearchRequest,
    parse_query,
)
from fastslow_desktop.search.moments import frames_for, narrow, needs_narrowing
from fastslow_desktop.synthscenes import generate

OLD_DAY = datetime.date(2020, 1, 15)
NEW_DAY = datetime.date(2023, 6, 1)


def _timestamp(day: datetime.date) -> float:
    return datetime.datetime(day.year, day.month, day.day, 12).timestamp()


def build_small_library(root: Path, bundle: Path, n_images: int = 40, n_videos: int = 3) -> Library:
    """A SynthScenes folder (photos dated 2020 and 2023 by file time) indexed with `bundle`."""
    media = root / "media"
    generate(media, n_images, n_videos, seed=5, sizes=(96, 96))
    for i, photo in enumerate(sorted((media / "images").iterdir())):
        ts = _timestamp(OLD_DAY if i % 2 == 0 else NEW_DAY)
        os.utime(photo, (ts, ts))
    library = Library.open(root / "library", load_bundle(bundle))
    library.add_root(media)
    library.index()
    return library


@pytest.fixture(scope="module")
def small(tmp_path_factory, tiny_bundle):
    library = build_small_library(tmp_path_factory.mktemp("search"), tiny_bundle)
    engine = SearchEngine(library, library.models)
    yield engine
    engine.close()
    library.close()


def _vectors_by_id(library: Library) -> dict[int, np.ndarray]:
    ids, vectors = library.vectors()
    return {int(i): v for i, v in zip(ids, vectors)}


def test_stage_one_returns_fast_scores_best_first_without_slow_scores(small):
    stage1 = small.fast(SearchRequest("a red circle to the left of a blue square", top=10))
    assert stage1.stage == 1 and stage1.slow_ms is None and stage1.fast_ms > 0
    assert len(stage1.results) == 10
    scores = [r.fast_score for r in stage1.results]
    assert scores == sorted(scores, reverse=True)
    assert all(r.slow_score is None and r.score == r.fast_score for r in stage1.results)
    # The fast score is the dot product of the query's text vector and the stored vector.
    text = small.text_vector("a red circle to the left of a blue square")
    vectors = _vectors_by_id(small.library)
    for r in stage1.results:
        assert r.fast_score == pytest.approx(float(vectors[r.segment_id] @ text), abs=1e-4)


def test_text_vectors_are_cached_per_normalised_string(small, monkeypatch):
    first = small.text_vector("Two small yellow triangles.")
    calls = []
    encoder = small._encoder()
    monkeypatch.setattr(encoder, "encode_texts", lambda texts: calls.append(texts) or np.zeros((1, 4)))
    again = small.text_vector("two small yellow triangles")
    assert calls == [] and again is first


def test_stage_two_rescores_only_the_top_k_and_orders_them_by_final_score(small):
    stage1 = small.fast(SearchRequest("a large green star", top=12, k=5, kind="image"))
    stage2 = small.refine(stage1)
    assert stage2.stage == 2 and stage2.slow_ms is not None and stage2.fast_ms == stage1.fast_ms
    scored = [r for r in stage2.results if r.slow_score is not None]
    assert len(scored) == 5
    assert stage2.results[:5] == scored  # re-ranked head, then the rest in fast order
    assert [r.score for r in scored] == sorted((r.score for r in scored), reverse=True)
    top5 = {r.segment_id for r in stage1.results[:5]}
    assert {r.segment_id for r in scored} == top5
    rest = stage2.results[5:]
    assert [r.segment_id for r in rest] == [r.segment_id for r in stage1.results[5:]]
    # Same final scores as the models' own Reranker gives for these candidates.
    frames = {r.segment_id: small.library.load_frames(r.segment_id, n=1) for r in stage1.results[:5]}
    ranked = small.models.reranker.rerank("a large green star", list(frames),
                                          [r.fast_score for r in stage1.results[:5]], frames.__getitem__)
    assert [x.key for x in ranked] == [r.segment_id for r in scored]


def test_videos_come_back_once_each_at_their_best_segment(small):
    query = "two small yellow triangles"
    stage1 = small.fast(SearchRequest(query, top=10, kind="video"))
    paths = [r.path for r in stage1.results]
    assert stage1.results and len(paths) == len(set(paths)) and all(r.kind == "video" for r in stage1.results)
    text, vectors = small.text_vector(query), _vectors_by_id(small.library)
    all_ids = small.library.segment_ids(kind="video").tolist()
    infos = small.library.segments_info(all_ids)
    for r in stage1.results:
        segs = [i for i in infos if i.media_id == r.media_id]
        best = max(segs, key=lambda i: float(vectors[i.segment_id] @ text))
        assert r.segment_id == best.segment_id and (r.t_start, r.t_end) == (best.t_start, best.t_end)
        assert r.t_end > r.t_start >= 0 and r.thumb is not None and r.thumb.is_file()
    stage2 = small.refine(stage1)
    assert len({r.path for r in stage2.results}) == len(stage2.results)
    assert all(r.t_start is not None for r in stage2.results)


def test_an_image_query_finds_the_image_itself_and_skips_the_slow_stage(small):
    photo = sorted(p for p in Path(small.library.roots()[0].path, "images").iterdir())[3]
    stage1 = small.fast(SearchRequest(image=str(photo), top=5))
    assert stage1.results[0].path == str(photo.resolve()) and stage1.results[0].fast_score > 0.999
    assert small.refine(stage1) is stage1  # no text to score: stage 2 has nothing to add
    assert small.search(SearchRequest(image=str(photo), top=5)).results[0].slow_score is None


def test_more_like_this_starts_from_the_stored_vector(small):
    seed = small.fast(SearchRequest("a blue circle", top=3)).results[2]
    stage1 = small.fast(SearchRequest(like_segment=seed.segment_id, top=3))
    assert stage1.results[0].segment_id == seed.segment_id and stage1.results[0].fast_score > 0.999
    with pytest.raises(SearchError, match="no longer in the library"):
        small.fast(SearchRequest(like_segment=10**9))


def test_combined_query_is_the_renormalised_weighted_sum_and_reranks_with_its_added_text(small):
    photo = min(Path(small.library.roots()[0].path, "images").iterdir())
    parsed = parse_query(f'2:"a red circle" + {photo} - "blue"')
    vector = small.query_vector(parsed)
    t1, t2 = small.text_vector("a red circle"), small.text_vector("blue")
    im = small.image_vector(str(photo))
    expected = 2 * t1 + im / np.linalg.norm(im) - t2
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-5)
    stage1 = small.fast(SearchRequest(f'2:"a red circle" + {photo} - "blue"', top=5, k=4))
    assert stage1.rerank_texts == [(2.0, "a red circle")]
    stage2 = small.refine(stage1)
    assert stage2.stage == 2 and sum(r.slow_score is not None for r in stage2.results) == 4


def test_unreadable_query_picture_is_a_search_error(small, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    for path in (bad, tmp_path / "missing.png"):
        with pytest.raises(SearchError, match="picture"):
            small.fast(SearchRequest(image=str(path)))


def test_filters_restrict_type_folder_and_date_range(small):
    root = Path(small.library.roots()[0].path)
    everything = small.fast(SearchRequest("a red circle", top=100)).results
    assert {r.kind for r in everything} == {"image", "video"}
    images = small.fast(SearchRequest("a red circle", top=100, kind="image")).results
    assert images and all(r.kind == "image" for r in images)
    in_videos = small.fast(SearchRequest("a red circle", top=100, folder=str(root / "videos"))).results
    assert in_videos and all(r.path.startswith(str(root / "videos") + os.sep) for r in in_videos)
    old = small.fast(SearchRequest("a red circle", top=100, kind="image", date_to=datetime.date(2021, 1, 1))).results
    new = small.fast(SearchRequest("a red circle", top=100, kind="image",
                                   date_from=datetime.date(2023, 1, 1), date_to=datetime.date(2023, 12, 31))).results
    assert len(old) == len(new) == 20
    assert all(datetime.date.fromtimestamp(r.info.mtime) == OLD_DAY for r in old)
    assert all(datetime.date.fromtimestamp(r.info.mtime) == NEW_DAY for r in new)
    assert small.fast(SearchRequest("a red circle", folder=str(root / "nowhere"))).results == []


def test_relative_score_cutoff_drops_weak_results(small):
    photo = sorted(Path(small.library.roots()[0].path, "images").iterdir())[5]
    loose = small.fast(SearchRequest(image=str(photo), top=100)).results
    tight = small.fast(SearchRequest(image=str(photo), top=100, min_relative_score=0.9995)).results
    best = loose[0].fast_score
    assert 1 <= len(tight) < len(loose)
    assert all(r.fast_score >= 0.9995 * best for r in tight)


def test_stage_two_reuses_cached_visual_tokens_without_decoding_again(small, monkeypatch):
    stage1 = small.fast(SearchRequest("an orange star above a purple circle", top=8, k=6))
    first = small.refine(stage1)
    decoded = []
    real_load = small.library.segment_frames
    monkeypatch.setattr(small.library, "segment_frames", lambda *a, **kw: decoded.append(a) or real_load(*a, **kw))
    again = small.refine(stage1)
    assert decoded == []
    assert [(r.segment_id, r.slow_score, r.t_start) for r in again.results] == \
        [(r.segment_id, r.slow_score, r.t_start) for r in first.results]
    small.token_cache.clear()
    cold = small.refine(stage1)
    assert decoded
    # results past K keep slow_score None; the re-scored ones must match to float tolerance
    assert [r.slow_score is None for r in cold.results] == [r.slow_score is None for r in first.results]
    assert [r.slow_score for r in cold.results if r.slow_score is not None] == pytest.approx(
        [r.slow_score for r in first.results if r.slow_score is not None], rel=1e-4)


def test_a_cancelled_stage_two_returns_none(small):
    stage1 = small.fast(SearchRequest("a large green star", top=5))
    cancel = threading.Event()
    cancel.set()
    assert small.refine(stage1, cancel) is None


def test_stage_one_never_waits_for_a_blocked_stage_two_and_a_new_query_cancels_it(small, monkeypatch):
    gate, entered = threading.Event(), threading.Event()
    real_load = small.library.segment_frames

    def blocked_load(*args, **kwargs):
        entered.set()
        gate.wait(20)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(small.library, "segment_frames", blocked_load)
    small.token_cache.clear()  # so that stage 2 has to decode, and blocks there
    got: dict[str, list] = {"stage1": [], "stage2": []}
    old = small.submit(SearchRequest("a large green star", top=5, k=5), got["stage1"].append, got["stage2"].append)
    try:
        assert entered.wait(10), "stage 2 never started"
        started = time.perf_counter()
        fresh = small.fast(SearchRequest("three large red squares", top=5))
        assert time.perf_counter() - started < 5.0 and len(fresh.results) == 5
        assert not old.done.is_set()  # the old stage 2 is still stuck
        new = small.submit(SearchRequest("two small yellow triangles", top=5, k=3), lambda r: None)
        assert old.cancelled and not new.cancelled
    finally:
        gate.set()
    assert old.wait(20) and new.wait(20)
    assert len(got["stage1"]) == 1 and got["stage2"] == [] and old.stage2 is None
    assert new.stage2 is not None and new.stage2.stage == 2 and new.error is None


def test_submit_reports_errors_to_the_caller(small):
    errors = []
    handle = small.submit(SearchRequest(image="/no/such/picture.png"), lambda r: None, on_error=errors.append)
    assert handle.wait(10) and len(errors) == 1 and isinstance(errors[0], SearchError)


def test_long_video_segments_are_narrowed_to_their_best_part_in_stage_two(small):
    stage2 = small.search(SearchRequest("two small yellow triangles", top=10, kind="video", k=30))
    long = [r for r in stage2.results if r.info.t_end - r.info.t_start > 3.0]
    assert long, "the test library should hold a long video segment"
    for r in stage2.results:
        assert r.info.t_start <= r.t_start < r.t_end <= r.info.t_end + 1e-9
    for r in long:  # a run of whole frames' shares: one frame's, or more where frames fit as well
        share = (r.info.t_end - r.info.t_start) / frames_for(r.info.t_start, r.info.t_end)
        frames = (r.t_end - r.t_start) / share
        assert frames == pytest.approx(round(frames)) and round(frames) >= 1


def test_moment_frames_cover_long_segments_and_narrowing_picks_the_frames_share():
    assert frames_for(None, None) == 1 and frames_for(0.0, 2.0) == 3 and frames_for(0.0, 7.5) == 5
    assert frames_for(0.0, 30.0) == 6
    assert narrow(2.0, 8.0, 6, 0) == (2.0, 3.0) and narrow(2.0, 8.0, 6, 5) == (7.0, 8.0)
    assert narrow(2.0, 8.0, 6, 1, 3) == (3.0, 6.0)


def test_a_moment_spans_the_neighbouring_frames_that_fit_the_query_as_well():
    from fastslow_desktop.search.moments import NARROW_MARGIN, best_run

    assert best_run([-30.0, -12.0, -31.0, -29.0]) == (1, 1)  # one frame clearly best: its share
    static = [-20.0, -20.1, -19.9, -20.05, -20.2, -20.0]  # a static scene: every frame alike
    assert best_run(static) == (0, 5)  # the whole segment, not one arbitrary slice of it
    assert best_run([-25.0, -12.0, -12.5, -30.0, -12.2]) == (1, 2)  # contiguous around the best only
    assert best_run([-10.0, -10.0 - NARROW_MARGIN, -40.0]) == (0, 1)
    assert needs_narrowing(0.0, 10.0, 6) and not needs_narrowing(0.0, 2.0, 3) and not needs_narrowing(None, None, 1)


def test_a_failing_ann_index_falls_back_to_exact_search(small, monkeypatch):
    request = SearchRequest("an orange star above a purple circle", top=8, kind="image")
    expected = [r.segment_id for r in small.fast(request).results]

    class BrokenIndex:
        def query(self, *args, **kwargs):
            raise RuntimeError("index file damaged")

    monkeypatch.setattr(small.library, "ann", lambda *a, **kw: BrokenIndex())
    assert [r.segment_id for r in small.fast(request).results] == expected


def test_token_cache_evicts_least_recently_used_entries_beyond_its_byte_budget():
    import torch

    from fastslow_desktop.search.slowcache import TokenCache

    cache = TokenCache(max_bytes=3 * 4 * 100)  # room for three (100,) float32 tensors
    for key in "abc":
        cache.put(key, torch.zeros(100))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("d", torch.zeros(100))
    assert "b" not in cache and all(k in cache for k in "acd")
    cache.put("huge", torch.zeros(1000))  # larger than the whole budget: not kept, nothing evicted
    assert "huge" not in cache and all(k in cache for k in "acd")


def test_close_waits_for_a_decode_still_running_so_the_library_can_close_next(small, monkeypatch):
    """The app's stop closes the engine and then the library: a decode worker still reading SQLite
    when its connection closed crashed the process, so close() waits for the running decodes."""
    engine = SearchEngine(small.library, small.library.models)
    stage1 = engine.fast(SearchRequest("a red circle", top=10, k=5))
    started, finished = threading.Event(), []
    real = small.library.segment_frames

    def slow_load(*args, **kwargs):
        started.set()
        time.sleep(0.5)
        out = real(*args, **kwargs)
        finished.append(True)
        return out

    monkeypatch.setattr(small.library, "segment_frames", slow_load)
    cancel = threading.Event()
    worker = threading.Thread(target=engine.refine, args=(stage1, cancel))
    worker.start()
    assert started.wait(30)
    cancel.set()  # as the controller does before it stops the services
    engine.close()
    assert finished, "close() returned while a decode was still reading the library"
    worker.join(30)


def test_the_fast_shortlist_reaches_as_far_as_the_library_has_segments_per_file(small, monkeypatch):
    library = small.library
    n_media, n_segments = library.catalog.store.counts()["media"], len(library.ann())
    assert library.segments_per_media() == pytest.approx(n_segments / n_media)
    asked: list[int] = []
    real_query = library.query

    def spy(vector, k, **kw):
        asked.append(k)
        return real_query(vector, k, **kw)

    monkeypatch.setattr(library, "query", spy)
    request = SearchRequest("a red circle", top=8, k=4)
    for per_media, factor in ((1.0, 1.25), (2.0, 2.0), (9.0, 3.0)):  # photos only; some videos; long videos
        monkeypatch.setattr(library, "segments_per_media", lambda value=per_media: value)
        asked.clear()
        stage1 = small.fast(request)
        assert asked[0] == int(np.ceil(factor * 8)) and len(stage1.results) == 8
    # A shortlist that collapses to fewer than `top` files is widened until it holds them.
    monkeypatch.setattr(library, "segments_per_media", lambda: 1.0)
    asked.clear()
    videos = small.fast(SearchRequest("a red circle", top=3, k=0, kind="video"))
    assert len(videos.results) == 3 and len({r.media_id for r in videos.results}) == 3
    assert asked[0] == 4 and len(asked) >= 2 and asked[1] == 16


def test_a_library_with_nothing_indexed_yet_answers_with_no_results(tmp_path, tiny_bundle):
    library = Library.open(tmp_path / "library", load_bundle(tiny_bundle))
    engine = SearchEngine(library, library.models)
    try:
        assert library.segments_per_media() == 0.0  # nothing embedded: the shortlist floor applies
        assert engine.fast(SearchRequest("a red circle")).results == []
    finally:
        engine.close()
        library.close()
