"""Faults at the edges of indexing: file names that are not UTF-8, a write that fails for one file,
a parent folder added while its child indexes, and torch's process-wide thread count."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from fastslow_desktop.catalog import store as store_module
from fastslow_desktop.library import Library, Progress
from fastslow_desktop.models import load_bundle


def _photos(folder: Path, n: int, offset: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"{offset + i:03d}.png"
        Image.new("RGB", (32, 32), ((7 * (i + offset)) % 256, 90, (3 * i) % 256)).save(path)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def models(tiny_bundle):
    return load_bundle(tiny_bundle)


def test_a_file_name_that_is_not_utf8_is_indexed_like_any_other(tmp_path, models):
    folder = tmp_path / "photos"
    _photos(folder, 3)
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    Image.new("RGB", (32, 32), (200, 10, 10)).save(raw, "PNG")
    name = os.fsdecode(raw)  # carries a surrogate escape
    with Library.open(tmp_path / "lib", models) as library:
        library.add_root(folder)
        report = library.index()
        assert (report.indexed, report.failed) == (4, 0)
        assert library.status()["failed"] == []
        rows = library.catalog.store.media_under(prefix=str(folder))
        assert name in rows and rows[name].status == "ok"
        sid = next(i.segment_id for i in library.segments_info(library.segment_ids().tolist()) if i.path == name)
        assert library.thumbnail(sid) is not None
        assert library.load_frames(sid)[0].size == (32, 32)
        again = library.index()
        assert (again.unchanged, again.indexed) == (4, 0)
        os.unlink(raw)
        gone = library.index([str(folder)])  # a watcher-style run scoped to the folder
        assert gone.removed == 1 and name not in library.catalog.store.media_under()


def test_a_fault_writing_one_file_becomes_a_failure_row_and_the_rest_is_indexed(tmp_path, models, monkeypatch):
    folder = tmp_path / "photos"
    paths = _photos(folder, 12)
    victim = str(paths[5].resolve())
    real = store_module.Store._upsert_media

    def flaky(conn, rec, old_ids, old_thumbs):
        if rec.path == victim and not rec.error:
            raise ValueError("simulated fault while storing")
        return real(conn, rec, old_ids, old_thumbs)

    monkeypatch.setattr(store_module.Store, "_upsert_media", staticmethod(flaky))
    with Library.open(tmp_path / "lib", models) as library:
        library.add_root(folder)
        report = library.index()
        assert (report.indexed, report.failed) == (11, 1)
        failed = {f["path"]: f["error"] for f in library.status()["failed"]}
        assert list(failed) == [victim] and "simulated fault" in failed[victim]
        assert len(library.ann()) == 11


def test_a_full_disk_stops_the_run_with_one_sentence_and_keeps_what_was_stored(tmp_path, models, monkeypatch):
    """A full disk is not one file's fault: the run stops with a sentence (never one failure row per
    file, never a negative count), and a run with room again finishes the job."""
    import sqlite3

    from fastslow_desktop.library import LibraryError

    folder = tmp_path / "photos"
    _photos(folder, 12)
    real = store_module.Store._upsert_media
    full = {"on": True}

    def no_room(conn, rec, old_ids, old_thumbs):
        if full["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        return real(conn, rec, old_ids, old_thumbs)

    monkeypatch.setattr(store_module.Store, "_upsert_media", staticmethod(no_room))
    with Library.open(tmp_path / "lib", models) as library:
        library.add_root(folder)
        with pytest.raises(LibraryError, match="disk holding the library .* is full"):
            library.index()
        assert library.status()["failed"] == [], "no file is blamed for the full disk"
        full["on"] = False
        report = library.index()
        assert (report.indexed, report.failed) == (12, 0)


def _state(library: Library) -> dict:
    conn = library.catalog.store.conn
    return {
        "roots": [r.path for r in library.roots()],
        "media": sorted(conn.execute("SELECT m.path, r.path, m.status FROM media m JOIN roots r ON r.id = m.root_id")),
        "orphans": conn.execute("SELECT COUNT(*) FROM media WHERE root_id NOT IN (SELECT id FROM roots)").fetchone()[0],
        "segments": conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0],
        "status": {k: v for k, v in library.status().items() if k != "roots"},
    }


def test_adding_a_parent_while_its_child_indexes_ends_as_a_sequential_run(tmp_path, models):
    parent = tmp_path / "photos"
    child = parent / "2024"
    _photos(child, 120)
    _photos(parent, 15, offset=500)
    with Library.open(tmp_path / "sequential", models) as library:
        library.add_root(child)
        library.index()
        library.add_root(parent)
        library.index()
        expected = _state(library)

    started = threading.Event()

    def progress(event: Progress) -> None:
        if event.phase == "indexing" and event.done >= 5:
            started.set()

    with Library.open(tmp_path / "concurrent", models) as library:
        library.add_root(child)
        run = threading.Thread(target=library.index, kwargs={"progress": progress})
        run.start()
        assert started.wait(120)
        library.add_root(parent)  # waits for the run (the writer lock), then absorbs the child
        run.join(120)
        library.index()
        assert _state(library) == expected
    assert expected["orphans"] == 0 and len(expected["media"]) == 135


def test_indexing_leaves_the_process_wide_torch_thread_count_alone(tmp_path, models, monkeypatch):
    import torch

    _ = models.fast  # loading the model may set the count (start-up does, once)
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    _photos(tmp_path / "photos", 4)
    with Library.open(tmp_path / "lib", models) as library:
        library.add_root(tmp_path / "photos")
        assert library.index().indexed == 4
    assert calls == []  # searches on other threads keep the count start-up chose


def test_a_full_disk_warns_about_thumbnails_once_not_per_file(tmp_path, caplog, monkeypatch):
    import errno
    import logging

    from PIL import Image

    from fastslow_desktop.catalog import thumbs

    monkeypatch.setattr(thumbs, "_last_warning", {})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(thumbs.tempfile, "mkstemp", no_space)
    image = Image.new("RGB", (32, 32))
    with caplog.at_level(logging.DEBUG, logger=thumbs.__name__):
        for n in range(20):
            assert thumbs.write_thumbnail(tmp_path, image, f"/photos/{n}.jpg", 100, 1.0, 0) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No space left" in warnings[0].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 19
