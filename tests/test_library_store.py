"""The SQLite store and the HNSW cache: migrations with a backup, repair and rebuild from SQLite,
capacity growth, deletion, k clamping, and pause / resume / cancel of an index run."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.library import Library, LibraryError, Progress
from fastslow_desktop.catalog import ann as ann_module
from fastslow_desktop.catalog import store as store_module
from fastslow_desktop.catalog.ann import AnnIndex
from fastslow_desktop.catalog.store import Store
from fastslow_desktop.models import load_bundle


def _unit(rng, n, d=16) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_ann_grows_ahead_deletes_and_clamps_k(tmp_path, monkeypatch):
    monkeypatch.setattr(ann_module, "EXACT_BELOW", 0)
    rng = np.random.default_rng(0)
    index = AnnIndex(tmp_path / "i.hnsw", 16, "m")
    index.open(np.zeros(0, np.int64), lambda ids: (np.zeros(0, np.int64), np.zeros((0, 16), np.float32)), None)
    vectors = _unit(rng, 3000)
    for start in range(0, 3000, 500):  # past the initial capacity: resized ahead, never full
        index.add(np.arange(start, start + 500) + 1, vectors[start:start + 500])
    assert len(index) == 3000
    found, scores = index.query(vectors[41], k=3)
    assert found[0] == 42 and scores[0] > 0.999
    index.remove([42])
    assert 42 not in index.query(vectors[41], k=10)[0].tolist()
    found, _ = index.query(vectors[0], k=5, filter_ids={1, 2, 3})
    assert set(found.tolist()) == {1, 2, 3}  # k clamped to what the filter allows
    exact_ids, exact_scores = index.exact_query(vectors[7], k=4)
    assert exact_ids[0] == 8 and np.all(np.diff(exact_scores) <= 0)


def test_ann_is_repaired_or_rebuilt_from_sqlite(tmp_path):
    rng = np.random.default_rng(1)
    vectors = {i: v for i, v in zip(range(1, 101), _unit(rng, 100), strict=True)}

    def fetch(ids):
        ids = sorted(vectors) if ids is None else sorted(ids)
        return np.array(ids, np.int64), np.stack([vectors[i] for i in ids])

    first = AnnIndex(tmp_path / "i.hnsw", 16, "m")
    assert first.open(np.array(sorted(vectors)), fetch, None) == "rebuilt"
    saved = first.save()
    assert AnnIndex(tmp_path / "i.hnsw", 16, "m").open(np.array(sorted(vectors)), fetch, saved) == "loaded"

    # SQLite moved on after the save (a crash before the next one): 5 deleted, 10 added.
    for i in range(1, 6):
        del vectors[i]
    for i, v in zip(range(101, 111), _unit(rng, 10), strict=True):
        vectors[i] = v
    repaired = AnnIndex(tmp_path / "i.hnsw", 16, "m")
    assert repaired.open(np.array(sorted(vectors)), fetch, saved) == "repaired"
    assert repaired.ids() == set(vectors)
    assert repaired.exact_query(vectors[105], 1)[0][0] == 105

    (tmp_path / "i.hnsw").write_bytes(b"garbage")
    rebuilt = AnnIndex(tmp_path / "i.hnsw", 16, "m")
    assert rebuilt.open(np.array(sorted(vectors)), fetch, saved) == "rebuilt"
    assert rebuilt.ids() == set(vectors)


def test_schema_migration_backs_up_the_database_first(tmp_path, monkeypatch):
    db = tmp_path / "library.db"
    Store(db).close()
    current = store_module.SCHEMA_VERSION
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store_module._MIGRATIONS, current, "ALTER TABLE media ADD COLUMN rating INTEGER;")
    store = Store(db)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == current + 1
    assert "rating" in {row[1] for row in store.conn.execute("PRAGMA table_info(media)")}
    store.close()
    backup = tmp_path / f"library.db.v{current}.bak"
    assert sqlite3.connect(backup).execute("PRAGMA user_version").fetchone()[0] == current


def test_a_database_from_a_newer_version_is_refused_clearly(tmp_path):
    db = tmp_path / "library.db"
    sqlite3.connect(db).execute("PRAGMA user_version = 99")
    with pytest.raises(LibraryError, match="newer FastSlow"):
        Store(db)


def test_roots_inside_and_around_existing_roots(tmp_path, tiny_bundle):
    (tmp_path / "a" / "b").mkdir(parents=True)
    with Library.open(tmp_path / "lib", load_bundle(tiny_bundle)) as library:
        inner = library.add_root(tmp_path / "a" / "b")
        assert library.add_root(tmp_path / "a" / "b") == inner
        outer = library.add_root(tmp_path / "a")
        assert [r.path for r in library.roots()] == [outer]  # the parent absorbed the child
        assert library.add_root(tmp_path / "a" / "b") == outer
        library.remove_root(outer)
        assert library.roots() == []
        with pytest.raises(LibraryError):
            library.add_root(tmp_path / "missing")


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(150):
        Image.new("RGB", (40, 40), (n, 255 - n, (7 * n) % 256)).save(folder / f"{n:03d}.png")
    return folder


def test_cancel_keeps_what_was_done_and_the_next_run_finishes(tmp_path, tiny_bundle, photo_folder):
    cancel = threading.Event()

    def progress(event: Progress) -> None:
        if event.phase == "indexing" and event.done >= 20:
            cancel.set()

    with Library.open(tmp_path / "lib", load_bundle(tiny_bundle)) as library:
        library.add_root(photo_folder)
        first = library.index(progress=progress, cancel=cancel)
        assert first.cancelled and 20 <= first.indexed < 150
        assert len(library.ann()) == first.indexed
        second = library.index()
        assert second.indexed == 150 - first.indexed and second.unchanged == first.indexed
        assert len(library.ann()) == 150


def test_pause_holds_the_run_until_resumed(tmp_path, tiny_bundle, photo_folder):
    pause = threading.Event()
    paused_seen = threading.Event()
    done_while_paused: list[int] = []

    def progress(event: Progress) -> None:
        if event.phase == "indexing" and event.done >= 10 and not paused_seen.is_set() and not pause.is_set():
            pause.set()
        if event.paused:
            done_while_paused.append(event.done)
            paused_seen.set()

    seen_by_reader: list[int | None] = []  # judged on the test thread: an assert in a thread is lost

    def resume_when_paused() -> None:
        try:
            if paused_seen.wait(30):
                with Library.open(tmp_path / "lib") as reader:  # searches keep working during a pause
                    seen_by_reader.append(reader.status()["media"])
        finally:
            pause.clear()

    resumer = threading.Thread(target=resume_when_paused)
    resumer.start()
    with Library.open(tmp_path / "lib", load_bundle(tiny_bundle)) as library:
        library.add_root(photo_folder)
        report = library.index(progress=progress, pause=pause)
    resumer.join(30)
    assert paused_seen.is_set(), "the run never reported itself paused"
    assert seen_by_reader == [done_while_paused[0]], "a reader opened during the pause sees what was indexed"
    assert report.indexed == 150 and not report.cancelled and done_while_paused


def test_index_without_models_is_refused(tmp_path):
    with Library.open(tmp_path / "lib") as library:
        with pytest.raises(LibraryError, match="No models"):
            library.index()
