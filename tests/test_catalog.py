"""The catalog: HNSW saves that are rare, safe and off the query path; the writer lock across
threads and processes; compaction; read-only and damaged libraries."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from fastslow_desktop.catalog import Catalog, LibraryError, MediaRecord, NewSegment
from fastslow_desktop.catalog import ann as ann_module
from fastslow_desktop.catalog import ann_file
from fastslow_desktop.catalog import idle_saver
from fastslow_desktop.catalog.ann import AnnIndex

DIM = 16


def _unit(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _records(root: Path, root_id: int, vectors: np.ndarray, start: int = 0) -> list[MediaRecord]:
    return [MediaRecord(path=str(root / f"IMG_{start + i:06d}.jpg"), root_id=root_id, kind="image",
                        size=1000 + start + i, mtime=1.6e9 + start + i, hash=f"{start + i:032x}",
                        segments=[NewSegment(None, None, None, v)]) for i, v in enumerate(vectors)]


def _filled(tmp_path: Path, n: int, **kwargs) -> tuple[Catalog, int, np.ndarray]:
    """A catalog holding n synthetic photos written through its API, its HNSW file saved."""
    root = tmp_path / "photos"
    root.mkdir(exist_ok=True)
    catalog = Catalog(tmp_path / "lib", **kwargs)
    root_id = catalog.add_root(str(root), None)
    catalog.serve_if_first("m")
    vectors = _unit(np.random.default_rng(0), n)
    catalog.write_media(_records(root, root_id, vectors), "m", DIM)
    catalog.finish_run("m", complete=True)
    return catalog, root_id, vectors


def _ann_file(catalog: Catalog) -> Path:
    return catalog.ann("m").file


def test_the_library_files_are_as_private_as_the_umask_makes_them(tmp_path):
    """Under umask 077 nobody else may read the index or the thumbnails (pictures of private photos)."""
    from PIL import Image

    from fastslow_desktop.catalog.thumbs import write_thumbnail

    old = os.umask(0o077)
    try:
        catalog, _, _ = _filled(tmp_path, 400)
        thumb = write_thumbnail(catalog.paths.root, Image.new("RGB", (32, 32)), "/p/a.jpg", 1, 0.0, 0)
        files = (catalog.paths.db, _ann_file(catalog), catalog.paths.root / thumb)
        catalog.close()
    finally:
        os.umask(old)
    for file in files:
        assert file.stat().st_mode & 0o777 == 0o600, file


def test_one_new_photo_does_not_rewrite_the_hnsw_file_but_close_saves_it(tmp_path):
    catalog, root_id, vectors = _filled(tmp_path, 400)
    file = _ann_file(catalog)
    before = file.stat().st_mtime_ns, file.stat().st_size
    assert not catalog.ann("m").dirty  # 400 changes ≥ 5 %: the first run saved
    assert file.stat().st_mode & 0o777 == catalog.paths.db.stat().st_mode & 0o777  # not mkstemp's 0600
    extra = _unit(np.random.default_rng(5), 1)
    catalog.write_media(_records(tmp_path / "photos", root_id, extra, start=400), "m", DIM)
    catalog.finish_run("m", complete=True)
    assert (file.stat().st_mtime_ns, file.stat().st_size) == before  # 1 change < 5 % of 401: not saved
    assert catalog.query("m", extra[0], 1)[0][0] == max(catalog.ann("m").ids())  # searchable at once
    catalog.close()
    reopened = Catalog(tmp_path / "lib")
    try:
        ann = reopened.ann("m")
        assert ann.opened_as == "loaded" and len(ann) == 401
    finally:
        reopened.close()


def test_a_crash_before_the_save_loses_nothing(tmp_path):
    catalog, root_id, _ = _filled(tmp_path, 300)
    catalog.write_media(_records(tmp_path / "photos", root_id, _unit(np.random.default_rng(6), 3), start=300),
                        "m", DIM)
    catalog._saver.stop()  # as if the process died here: no idle save, no close
    catalog.store.close()
    reopened = Catalog(tmp_path / "lib")
    try:
        ann = reopened.ann("m")
        assert ann.opened_as == "repaired" and len(ann) == 303
        assert ann.ids() == set(reopened.store.embedding_ids("m").tolist())
    finally:
        reopened.close()


def test_an_idle_library_saves_its_hnsw_file(tmp_path, monkeypatch):
    monkeypatch.setattr(idle_saver, "IDLE_SAVE_SECONDS", 0.2)
    catalog, root_id, _ = _filled(tmp_path, 300)
    # 5 changes: under the 5 % that saves at once, over the 1 % that an idle library saves.
    catalog.write_media(_records(tmp_path / "photos", root_id, _unit(np.random.default_rng(7), 5), start=300),
                        "m", DIM)
    catalog.finish_run("m", complete=True)
    ann = catalog.ann("m")
    assert ann.dirty
    deadline = threading.Event()
    for _ in range(100):
        if not ann.dirty:
            break
        deadline.wait(0.1)
    assert not ann.dirty
    catalog.close()


@pytest.mark.parametrize("fault", ["short write", "ENOSPC"])
def test_a_full_disk_during_a_save_keeps_the_good_file_and_says_so(tmp_path, monkeypatch, fault):
    catalog, root_id, _ = _filled(tmp_path, 300)
    file = _ann_file(catalog)
    good = file.read_bytes()
    real = ann_file._write_index

    def broken(index, path):
        if fault == "ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(index, path)
        with open(path, "r+b") as fh:  # what hnswlib leaves when the disk fills mid-write
            fh.truncate(os.path.getsize(path) // 3)

    monkeypatch.setattr(ann_file, "_write_index", broken)
    catalog.write_media(_records(tmp_path / "photos", root_id, _unit(np.random.default_rng(8), 50), start=300),
                        "m", DIM)
    with pytest.raises(LibraryError, match="disk full"):
        catalog.finish_run("m", complete=True)
    assert file.read_bytes() == good
    assert not [p for p in file.parent.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(ann_file, "_write_index", real)
    catalog.close()  # space again: the close saves
    reopened = Catalog(tmp_path / "lib")
    try:
        assert reopened.ann("m").opened_as == "loaded" and len(reopened.ann("m")) == 350
    finally:
        reopened.close()


def test_two_indexes_saving_the_same_file_at_once_never_collide(tmp_path):
    rng = np.random.default_rng(2)
    anns = []
    for _ in range(2):
        ann = AnnIndex(tmp_path / "i.hnsw", DIM, "m")
        ann.open(np.zeros(0, np.int64), lambda ids: (np.zeros(0, np.int64), np.zeros((0, DIM), np.float32)), None)
        ann.add(np.arange(1, 501), _unit(rng, 500))
        anns.append(ann)
    errors: list[BaseException] = []

    def save_many(ann: AnnIndex) -> None:
        try:
            for _ in range(15):
                ann.save()
        except BaseException as exc:  # noqa: BLE001 - collected, asserted on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(a,)) for a in anns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    record = anns[0].save()
    assert AnnIndex(tmp_path / "i.hnsw", DIM, "m").open(np.arange(1, 501), None, record) == "loaded"


def test_queries_run_while_a_save_is_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(ann_module, "EXACT_BELOW", 0)
    catalog, _, vectors = _filled(tmp_path, 300)
    ann = catalog.ann("m")
    writing, release = threading.Event(), threading.Event()
    real = ann_file._write_index

    def slow(index, path):
        writing.set()
        release.wait(30)
        real(index, path)

    monkeypatch.setattr(ann_file, "_write_index", slow)
    saver = threading.Thread(target=ann.save)
    saver.start()
    assert writing.wait(10)
    answers = [catalog.query("m", vectors[i], 1)[0][0] for i in range(20)]  # would hang if it waited
    still_saving = saver.is_alive()
    release.set()
    saver.join()
    assert still_saving and len(answers) == 20
    catalog.close()


def test_deleted_labels_are_dropped_from_the_hnsw_graph(tmp_path):
    catalog, _, _ = _filled(tmp_path, 400)
    rows = sorted(catalog.store.media_under().values(), key=lambda r: r.id)
    catalog.remove_media(rows[:200])
    catalog.finish_run("m", complete=True)
    ann = catalog.ann("m")
    assert ann.deleted == 0 and len(ann) == 200
    assert len(ann._index.get_ids_list()) == 200  # the graph itself holds only live labels
    catalog.close()


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from fastslow_desktop.catalog.locks import WriterLock
root = Path(sys.argv[1])
lock = WriterLock(root / "writer.lock", root / "writer.pid")
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_a_second_writer_process_is_told_who_is_indexing_and_reads_still_work(tmp_path):
    catalog, _, vectors = _filled(tmp_path, 50, writer_wait=0.5)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "lib")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LibraryError, match=rf"another FastSlow process \(pid {holder.pid}\) is indexing"):
            catalog.add_root(str(tmp_path), None)
        assert catalog.store.counts()["media"] == 50  # reads need no writer lock
        assert catalog.query("m", vectors[3], 1)[0][0] == 4
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(30)
    catalog.add_root(str(tmp_path / "other"), None)  # free again
    catalog.close()


def test_a_read_only_library_can_be_searched_but_not_changed(tmp_path, monkeypatch):
    catalog, _, vectors = _filled(tmp_path, 60)
    catalog.close()
    lib = tmp_path / "lib"
    real_access = os.access
    # Tests run as root, whom chmod does not stop: make the folder look read-only instead.
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) in (lib, lib / "library.db")
                        and mode & os.W_OK else real_access(p, mode, **kw))
    readonly = Catalog(lib)
    try:
        assert readonly.read_only
        assert readonly.store.counts()["media"] == 60
        assert readonly.query("m", vectors[9], 1)[0][0] == 10
        with pytest.raises(LibraryError, match="read-only"):
            readonly.add_root(str(tmp_path), None)
    finally:
        readonly.close()


def test_a_database_with_garbage_pages_is_refused_with_a_clear_message(tmp_path):
    catalog, _, _ = _filled(tmp_path, 300)
    catalog.close()
    db = tmp_path / "lib" / "library.db"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    rng = np.random.default_rng(3)
    data[page:] = rng.integers(0, 256, len(data) - page, dtype=np.uint8).tobytes()  # header page kept
    db.write_bytes(bytes(data))
    with pytest.raises(LibraryError, match="damaged"):
        Catalog(tmp_path / "lib")


def _bind_read_only(source: Path, target: Path) -> bool:
    target.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode:
        return False
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True).returncode:
        subprocess.run(["umount", str(target)], capture_output=True)
        return False
    return True


def test_a_library_on_a_read_only_mount_opens_for_search_and_status(tmp_path, tiny_bundle):
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    catalog, _, vectors = _filled(tmp_path, 80)
    catalog.close()
    mount = tmp_path / "mounted"
    if not _bind_read_only(tmp_path / "lib", mount):
        pytest.skip("no read-only bind mount here (needs root and mount)")
    try:
        with Library.open(mount, load_bundle(tiny_bundle)) as library:
            assert library.read_only
            assert library.status()["media"] == 80
            assert library.catalog.query("m", vectors[0], 1)[0][0] == 1
            with pytest.raises(LibraryError, match="read-only"):
                library.index()
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
