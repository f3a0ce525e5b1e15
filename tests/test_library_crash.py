"""`kill -9` during indexing, five times, then a normal run: the library ends up exactly as an
uninterrupted run leaves it, the database is intact and the HNSW file agrees with it."""

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
from tests.test_library_decode import make_bad_files


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


def test_kill_nine_five_times_then_a_normal_run_equals_an_uninterrupted_run(tmp_path, crash_folder, tiny_bundle,
                                                                          monkeypatch):
    monkeypatch.setenv("FASTSLOW_TORCH_THREADS", "1")  # inherited by the fork server's children
    ctx = _forkserver()
    models = load_bundle(tiny_bundle)
    with Library.open(tmp_path / "reference", models) as reference:
        reference.add_root(crash_folder)
        reference.index()
        expected = _snapshot(reference)

    library_dir = tmp_path / "killed"
    db = library_dir / "library.db"
    argv = ["index", str(crash_folder), "--library", str(library_dir), "--models", str(tiny_bundle)]
    rng = random.Random(1234)
    kills = 0
    rows_at_kill: list[int] = []
    for _ in range(5):
        before = max(0, _media_rows(db))
        child = ctx.Process(target=_run_cli, args=(argv,))
        child.start()
        # Kill at a random moment once this run has written something: wait on the database, not
        # on a guessed delay.
        deadline = time.monotonic() + 60
        while child.is_alive() and time.monotonic() < deadline and _media_rows(db) <= before:
            threading.Event().wait(0.01)
        threading.Event().wait(rng.uniform(0.0, 0.15))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)  # kill -9
            kills += 1
            rows_at_kill.append(_media_rows(db))
        child.join(timeout=30)
    assert kills >= 3, "the runs finished before they could be killed: make the folder bigger"
    total = len(expected["media"])
    assert sum(0 < rows < total for rows in rows_at_kill) >= 2, f"kills did not land mid-run: {rows_at_kill}"

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
