"""`kill -9` during indexing (five times; twenty with FASTSLOW_SLOW_TESTS=1) and in the middle of an
HNSW save, then a normal run: the library ends up exactly as an uninterrupted run leaves it, the
database is intact and the HNSW file agrees with it."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

from fastslow_desktop.library import Library
from fastslow_desktop.models import load_bundle
from tests.media_samples import make_bad_files


def _run_cli(argv: list[str]) -> None:
    """A child process running the `fastslow` entry point, as `python -m fastslow_desktop` does."""
    from fastslow_desktop.cli import main

    sys.exit(main(argv))


def _forkserver():
    """Children forked from a server that imports torch and open_clip once: each run starts in a
    fraction of a second instead of paying the imports again (keeps this test fast). Started at
    once, so its imports overlap the reference run. `python -m fastslow_desktop` itself is
    covered by tests/test_cli_index.py; a child runs the same `main`."""
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "open_clip", "fastslow_desktop.cli", "fastslow_desktop.library.indexer",
                                "fastslow_desktop.models", "tests.test_library_crash"])
    forkserver.ensure_running()
    return ctx


def _media_rows(db: Path) -> int:
    if not db.exists():
        return -1
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM media").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1  # created but not yet migrated


def _last_write(db: Path) -> tuple:
    """(media rows, newest indexed_at): changes with every batch a run writes, new files or not."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return tuple(conn.execute("SELECT COUNT(*), MAX(indexed_at) FROM media").fetchone())
        finally:
            conn.close()
    except sqlite3.Error:
        return (-1, None)


def _snapshot(library: Library) -> dict:
    conn = library.catalog.store.conn
    return {
        "status": library.status(),
        "media": sorted(conn.execute("SELECT path, kind, size, status, error, width, height FROM media")),
        "segments": sorted(conn.execute(
            "SELECT m.path, s.t_start, s.t_end FROM segments s JOIN media m ON m.id = s.media_id")),
        "embeddings": conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0],
    }


@pytest.fixture(scope="module")
def crash_folder(tmp_path_factory, synth_dataset_small) -> Path:
    root = tmp_path_factory.mktemp("crash")
    shutil.copytree(synth_dataset_small, root / "media")
    make_bad_files(root / "media" / "bad")
    return root / "media"


@pytest.fixture(scope="module")
def synth_dataset_small(tmp_path_factory) -> Path:
    from fastslow_desktop.synthscenes import generate

    out = tmp_path_factory.mktemp("synth-small")
    generate(out, 400, 12, seed=11, sizes=(96, 96))
    (out / "captions.jsonl").unlink()
    return out


def _kill_runs(ctx, argv: list[str], db: Path, runs: int, seed: int, touch: Path | None = None
               ) -> tuple[int, list[int]]:
    """Start `runs` index runs one after the other, each killed with -9 at a random moment after it has
    written something (or left to finish). `touch`: a folder whose photos get a new mtime before
    each run, so every run has work to do. Returns (kills, media rows at each kill)."""
    rng = random.Random(seed)
    kills = 0
    rows_at_kill: list[int] = []
    photos = sorted(touch.rglob("*.png")) if touch is not None else []
    for run in range(runs):
        for path in rng.sample(photos, min(len(photos), 80)):
            os.utime(path, (time.time(), time.time() + run + 1))
        before = _last_write(db)
        child = ctx.Process(target=_run_cli, args=(argv,))
        child.start()
        # Kill at a random moment once this run has written something: wait on the database, not
        # on a guessed delay.
        deadline = time.monotonic() + 60
        while child.is_alive() and time.monotonic() < deadline and _last_write(db) == before:
            threading.Event().wait(0.01)
        threading.Event().wait(rng.uniform(0.0, 0.15))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)  # kill -9
            kills += 1
            rows_at_kill.append(_media_rows(db))
        child.join(timeout=30)
    return kills, rows_at_kill


def _check_recovered(library_dir: Path, models, expected: dict) -> None:
    """Reopen a killed library: intact, indexes to the uninterrupted state, HNSW agrees with SQLite."""
    with Library.open(library_dir, models) as library:
        assert library.catalog.store.integrity_ok()
        library.index()
        assert _snapshot(library) == expected
        ids = set(library.catalog.store.embedding_ids(library.serving_model_id).tolist())
        assert library.ann().ids() == ids

    with Library.open(library_dir) as reopened:  # from the file alone: no rebuild, no repair needed
        ann = reopened.ann()
        assert ann.ids() == ids and ann.opened_as == "loaded"
        ids_arr, vectors = reopened.vectors()
        found, scores = ann.exact_query(vectors[0], 1)
        assert found[0] == ids_arr[0]


@pytest.fixture
def reference(tmp_path, crash_folder, tiny_bundle) -> tuple[object, dict]:
    models = load_bundle(tiny_bundle)
    with Library.open(tmp_path / "reference", models) as library:
        library.add_root(crash_folder)
        library.index()
        return models, _snapshot(library)


def test_kill_nine_five_times_then_a_normal_run_equals_an_uninterrupted_run(tmp_path, crash_folder, tiny_bundle,
                                                                          reference, monkeypatch):
    monkeypatch.setenv("FASTSLOW_TORCH_THREADS", "1")  # inherited by the fork server's children
    ctx = _forkserver()
    models, expected = reference
    library_dir = tmp_path / "killed"
    argv = ["index", str(crash_folder), "--library", str(library_dir), "--models", str(tiny_bundle)]
    kills, rows_at_kill = _kill_runs(ctx, argv, library_dir / "library.db", 5, 1234)
    assert kills >= 3, "the runs finished before they could be killed: make the folder bigger"
    total = len(expected["media"])
    assert sum(0 < rows < total for rows in rows_at_kill) >= 2, f"kills did not land mid-run: {rows_at_kill}"
    _check_recovered(library_dir, models, expected)


@pytest.mark.skipif(not os.environ.get("FASTSLOW_SLOW_TESTS"), reason="slow: set FASTSLOW_SLOW_TESTS=1")
def test_kill_nine_in_twenty_runs_that_save_hnsw_then_reopen(tmp_path, crash_folder, tiny_bundle, reference,
                                                              monkeypatch):
    """The acceptance run: 20 runs, photos touched before each so every run re-embeds some (and a
    finished run saves HNSW), each killed at a random moment."""
    monkeypatch.setenv("FASTSLOW_TORCH_THREADS", "1")
    ctx = _forkserver()
    models, expected = reference
    library_dir = tmp_path / "killed"
    argv = ["index", str(crash_folder), "--library", str(library_dir), "--models", str(tiny_bundle)]
    kills, _ = _kill_runs(ctx, argv, library_dir / "library.db", 20, 99, touch=crash_folder)
    assert kills >= 10
    _check_recovered(library_dir, models, expected)


def _run_cli_hanging_in_hnsw_save(argv: list[str], marker: str) -> None:
    """A child whose HNSW save writes part of its temp file, then hangs there until killed."""
    from fastslow_desktop.catalog import ann_file

    def partial(index, path: str) -> None:
        with open(path, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        Path(marker).write_text("in save")
        threading.Event().wait(120)

    ann_file._write_index = partial
    _run_cli(argv)


def test_kill_nine_in_the_middle_of_an_hnsw_save_loses_nothing(tmp_path, crash_folder, tiny_bundle, reference,
                                                               monkeypatch):
    monkeypatch.setenv("FASTSLOW_TORCH_THREADS", "1")
    ctx = _forkserver()
    models, expected = reference
    library_dir = tmp_path / "killed"
    argv = ["index", str(crash_folder), "--library", str(library_dir), "--models", str(tiny_bundle)]
    marker = tmp_path / "in-save"
    child = ctx.Process(target=_run_cli_hanging_in_hnsw_save, args=(argv, str(marker)))
    child.start()
    deadline = time.monotonic() + 120
    while child.is_alive() and not marker.exists() and time.monotonic() < deadline:
        threading.Event().wait(0.02)
    assert marker.exists(), "the run never reached its HNSW save"
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=30)
    with Library.open(library_dir, models) as library:  # no re-index: the run had written everything
        assert library.catalog.store.integrity_ok()
        snapshot = _snapshot(library)
        assert snapshot["status"]["unfinished_run"]  # killed before it ended: the next run finishes it (and clears)
        snapshot["status"]["unfinished_run"] = False
        assert snapshot == expected
        assert library.ann().ids() == set(library.catalog.store.embedding_ids(library.serving_model_id).tolist())
    _check_recovered(library_dir, models, expected)
