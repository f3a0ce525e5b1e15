"""Rescans: failed files retried when it can help, unreadable folders never taken for deleted, symbolic
links not followed out of a root, and every skipped special file or unreadable folder explained."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.library import Library, LibraryError
from fastslow_desktop.library import indexer as indexer_module
from fastslow_desktop.library import scan as scan_module
from fastslow_desktop.library import walk as walk_module
from fastslow_desktop.library.scan import is_content_failure
from fastslow_desktop.library.walk import WalkReport, walk
from fastslow_desktop.models import load_bundle
from tests.media_samples import make_bad_files


def make_photos(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n small distinct PNG photos; returns their absolute paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        path = folder / f"photo{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
        out.append(str(path.resolve()))
    return out


@pytest.fixture
def library(tmp_path, tiny_bundle):
    lib = Library.open(tmp_path / "library", load_bundle(tiny_bundle))
    yield lib
    lib.close()


def _failed(lib: Library) -> dict[str, str]:
    return {f["path"]: f["error"] for f in lib.status()["failed"]}


# -- item 3: failed files are retried ----------------------------------------------------------------


@pytest.mark.parametrize("fault", [PermissionError(errno.EACCES, "Permission denied"),
                                   OSError(errno.EIO, "Input/output error"),
                                   RuntimeError("weights of a broken bundle")],
                         ids=["permission", "io-error", "model-fault"])
def test_transient_failures_are_retried_by_the_next_run(library, tmp_path, monkeypatch, fault):
    photos = make_photos(tmp_path / "media", 20)
    library.add_root(tmp_path / "media")

    def broken(*args, **kwargs):
        raise fault

    with monkeypatch.context() as patch:
        patch.setattr(indexer_module, "open_image", broken)
        first = library.index()
    assert first.failed == 20 and first.indexed == 0
    assert set(_failed(library)) == set(photos)

    second = library.index()  # the fault is gone; the files did not change
    assert second.indexed == 20 and second.failed == 0 and second.unchanged == 0
    assert _failed(library) == {} and library.status()["media"] == 20
    third = library.index()  # and once indexed they are left alone
    assert third.unchanged == 20 and third.indexed == 0


def test_content_failures_wait_for_a_change_or_retry_failed(library, tmp_path):
    bad = make_bad_files(tmp_path / "media" / "bad")
    # A RAW file without rawpy fails for want of a package, not for its content: retried every run.
    os.remove(next(path for path in bad if path.endswith(".nef")))
    bad = {path: reason for path, reason in bad.items() if not path.endswith(".nef")}
    library.add_root(tmp_path / "media")
    assert library.index().failed == len(bad)
    assert all(is_content_failure(error) for error in _failed(library).values()), _failed(library)

    again = library.index()  # unchanged bad files are not decoded again on every run
    assert again.indexed == again.failed == 0 and again.unchanged == len(bad)

    fixed = next(path for path in bad if path.endswith("empty.jpg"))
    Image.new("RGB", (20, 20), (200, 10, 10)).save(fixed, "JPEG")  # a change: tried again at once
    changed = library.index()
    assert changed.indexed == 1 and changed.failed == 0 and changed.unchanged == len(bad) - 1

    assert library.retry_failed() == len(_failed(library))
    retried = library.index()
    assert retried.failed == len(bad) - 1 and retried.unchanged == 1
    after = library.index()  # a retry request is used once
    assert after.indexed == after.failed == 0 and after.unchanged == len(bad)


# -- item 4: folders that cannot be listed keep their entries ---------------------------------------


def _fail_for(monkeypatch, name: str, folder: Path, code: int) -> None:
    """Make os.<name> raise OSError(code) for `folder` only, as chmod 000 or a stale mount would
    (the tests run as root, which chmod does not stop)."""
    real = getattr(os, name)
    target = str(folder)

    def fake(path=".", *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == target:
            raise OSError(code, os.strerror(code), target)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, fake)


@pytest.mark.parametrize("name,code", [("scandir", errno.EACCES), ("scandir", errno.ESTALE),
                                       ("scandir", errno.EIO), ("stat", errno.ESTALE)])
def test_an_unlistable_sub_folder_keeps_its_entries(library, tmp_path, monkeypatch, name, code):
    media = tmp_path / "media"
    locked = media / "trips" / "locked"
    photos = make_photos(locked, 150) + make_photos(media / "open", 5, seed=1)
    library.add_root(media)
    assert library.index().indexed == 155

    new = make_photos(media / "open" / "new", 2, seed=2)
    with monkeypatch.context() as patch:
        _fail_for(patch, name, locked.resolve(), code)
        report = library.index()
    assert report.removed == 0 and report.moved == 0 and report.indexed == 2
    assert set(library.catalog.store.media_under()) == set(photos) | set(new)
    assert library.status()["media"] == 157
    assert _failed(library) == {str(locked.resolve()): f"cannot list folder: {os.strerror(code)}"}

    healed = library.index()  # readable again: nothing to do, and the warning row goes
    assert healed.unchanged == 157 and healed.indexed == healed.removed == 0
    assert _failed(library) == {}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to drop the capabilities that let root read anything")
def test_a_real_chmod_000_sub_folder_keeps_its_entries(library, tmp_path):
    """The same with a real `chmod 000`, reconciled by a process without root's override capabilities."""
    media = tmp_path / "media"
    locked = media / "locked"
    photos = make_photos(locked, 30) + make_photos(media / "open", 3, seed=1)
    library.add_root(media)
    assert library.index().indexed == 33
    library.catalog.store.close()
    script = ("import sys; from pathlib import Path; from fastslow_desktop.library.scan import reconcile; "
              "from fastslow_desktop.catalog.store import Store; "
              "plan = reconcile(Store(Path(sys.argv[1]))); print(len(plan.removed), getattr(plan, 'kept_unreadable', None))")
    locked.chmod(0)
    try:
        out = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=0", sys.executable,
                              "-c", script, str(library.paths.db)], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    finally:
        locked.chmod(0o755)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "30"]
    assert set(library.catalog.store.media_under()) == set(photos)
    assert _failed(library) == {str(locked.resolve()): "cannot list folder: Permission denied"}


class _Listing(list):
    """What os.scandir returns, as a list: iterable and a context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _StaleMountPoint:
    """A directory entry whose stat fails as a stale network mount point's does."""

    def __init__(self, entry: os.DirEntry):
        self.name, self.path = entry.name, entry.path

    def is_symlink(self) -> bool:
        return False

    def is_dir(self, follow_symlinks: bool = True) -> bool:
        return True  # from the listing's d_type, without a stat

    def stat(self, follow_symlinks: bool = True):
        raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), self.path)


def test_a_stale_mount_point_inside_a_root_keeps_its_entries(library, tmp_path, monkeypatch):
    media = tmp_path / "media"
    photos = make_photos(media / "nas", 12) + make_photos(media / "local", 2, seed=1)
    library.add_root(media)
    library.index()
    real = os.scandir

    def scandir(path="."):
        entries = list(real(path))
        if os.fspath(path) != str(media.resolve()):
            return _Listing(entries)
        return _Listing(_StaleMountPoint(e) if e.name == "nas" else e for e in entries)

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        report = library.index()
    assert report.removed == 0 and set(library.catalog.store.media_under()) == set(photos)
    assert _failed(library) == {str(media.resolve() / "nas"): "cannot read folder: Stale file handle"}


def test_a_watched_path_that_cannot_be_read_keeps_its_entries(library, tmp_path, monkeypatch):
    media = tmp_path / "media"
    photos = make_photos(media / "sub", 10)
    library.add_root(media)
    library.index()
    with monkeypatch.context() as patch:
        for name in ("stat", "lstat"):
            _fail_for(patch, name, (media / "sub").resolve(), errno.EACCES)
        report = library.index([media / "sub"])
    assert report.removed == 0 and set(library.catalog.store.media_under()) == set(photos)
    assert "Permission denied" in _failed(library)[str((media / "sub").resolve())]


def test_a_folder_that_is_really_gone_is_still_removed(library, tmp_path):
    media = tmp_path / "media"
    make_photos(media / "gone", 4)
    keep = make_photos(media / "kept", 3, seed=1)
    library.add_root(media)
    library.index()
    for path in (media / "gone").iterdir():
        path.unlink()
    (media / "gone").rmdir()
    report = library.index()
    assert report.removed == 4 and set(library.catalog.store.media_under()) == set(keep)


# -- item 10: symbolic links, special files, long paths ---------------------------------------------


def test_symlinks_are_not_followed_and_aliases_are_stored_once(library, tmp_path):
    media = tmp_path / "media"
    real = make_photos(media / "real", 3)
    outside = make_photos(tmp_path / "elsewhere", 4, seed=1)
    os.symlink(tmp_path / "elsewhere", media / "a link out")
    os.symlink(media / "real", media / "a link in")  # sorts before "real": walked first by the old code
    os.symlink(real[0], media / "a alias.png")
    os.symlink(media, media / "real" / "loop")
    os.symlink("/", media / "root of the disk")
    library.add_root(media)
    report = library.index()
    assert set(library.catalog.store.media_under()) == set(real) and report.indexed == 3
    failed = _failed(library)
    link_out = str(media.resolve() / "a link out")
    assert set(failed) == {link_out, str(media.resolve() / "root of the disk")}
    assert "not followed" in failed[link_out] and str((tmp_path / "elsewhere").resolve()) in failed[link_out]
    assert not set(outside) & set(library.catalog.store.media_under())


def test_a_watched_symlink_is_not_indexed_under_its_name(library, tmp_path):
    media = tmp_path / "media"
    real = make_photos(media, 1)
    library.add_root(media)
    library.index()
    os.symlink(real[0], media / "alias.png")  # the watcher reports the new link's path
    report = library.index([media / "alias.png"])
    assert report.indexed == 0 and set(library.catalog.store.media_under()) == set(real)


def test_links_to_a_folder_in_another_root_are_not_reported(library, tmp_path):
    make_photos(tmp_path / "one", 2)
    make_photos(tmp_path / "two", 2, seed=1)
    os.symlink(tmp_path / "two", tmp_path / "one" / "to two")
    library.add_root(tmp_path / "one")
    library.add_root(tmp_path / "two")
    assert library.index().indexed == 4 and _failed(library) == {}


def test_links_to_files_outside_and_broken_links_are_explained(library, tmp_path):
    media = tmp_path / "media"
    make_photos(media, 1)
    outside = make_photos(tmp_path / "elsewhere", 1, seed=1)
    os.symlink(outside[0], media / "out.png")
    os.symlink(tmp_path / "gone.png", media / "dangling.png")
    os.symlink(tmp_path / "gone.txt", media / "dangling.txt")  # not named like media: nobody expects it
    os.symlink(media / "loop.jpg", media / "loop.jpg")  # a link to itself
    library.add_root(media)
    assert library.index().indexed == 1
    failed = _failed(library)
    base = str(media.resolve())
    assert set(failed) == {f"{base}/out.png", f"{base}/dangling.png", f"{base}/loop.jpg"}
    assert "link to a file outside" in failed[f"{base}/out.png"]
    assert str((tmp_path / "elsewhere").resolve()) in failed[f"{base}/out.png"]
    assert failed[f"{base}/dangling.png"] == "broken link: what it points at does not exist"
    assert failed[f"{base}/loop.jpg"] == "broken link: it points back at itself (a loop of links)"


def test_a_link_that_cannot_be_resolved_is_a_row_not_the_end_of_the_run(library, tmp_path, monkeypatch):
    media = tmp_path / "media"
    photos = make_photos(media, 2)
    os.symlink(tmp_path, media / "locked")
    real = os.path.realpath

    def realpath(path, *args, **kwargs):
        if str(path).endswith("locked"):  # what /proc/1/cwd does for a user who may not read it
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scan_module.os.path, "realpath", realpath)
    library.add_root(media)
    assert library.index().indexed == 2 and set(library.catalog.store.media_under()) == set(photos)
    assert _failed(library) == {str(media.resolve() / "locked"):
                                "link that cannot be read, not followed: Permission denied"}


def test_a_library_folder_inside_an_indexed_folder_is_not_indexed(tmp_path, tiny_bundle):
    media = tmp_path / "media"
    photos = make_photos(media, 3)
    lib = Library.open(media / "my library", load_bundle(tiny_bundle))  # thumbnails land under the root
    try:
        lib.add_root(media)
        assert lib.index().indexed == 3
        assert any((media / "my library" / "thumbnails").rglob("*.jpg"))
        assert lib.index().indexed == 0
        thumbnail = next((media / "my library" / "thumbnails").rglob("*.jpg"))
        assert lib.index([thumbnail, thumbnail.parent]).indexed == 0  # the watcher's batches too
        assert set(lib.catalog.store.media_under()) == set(photos)
        for own in (media / "my library", media / "my library" / "thumbnails"):
            with pytest.raises(LibraryError, match="own library folder"):
                lib.add_root(own)
    finally:
        lib.close()


def test_hard_links_are_walked_once(tmp_path):
    photos = make_photos(tmp_path, 3)
    os.link(photos[1], tmp_path / "z second name.png")
    assert [path for path, _ in walk(tmp_path)] == photos


def test_special_files_get_a_row_with_a_reason(library, tmp_path):
    media = tmp_path / "media"
    make_photos(media, 2)
    os.mkfifo(media / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(media / "socket.png"))
    os.mkfifo(media / "pipe.txt")  # not named like a photo: nobody expects it to be indexed
    library.add_root(media)
    try:
        report = library.index()
    finally:
        sock.close()
    assert report.indexed == 2
    failed = _failed(library)
    base = str(media.resolve())
    assert failed == {f"{base}/pipe.jpg": "not a regular file (named pipe)",
                      f"{base}/socket.png": "not a regular file (socket)"}


def test_rows_of_a_removed_folder_go_with_it(library, tmp_path):
    os.makedirs(tmp_path / "one")
    os.mkfifo(tmp_path / "one" / "pipe.jpg")
    make_photos(tmp_path / "two", 1)
    library.add_root(tmp_path / "one")
    library.add_root(tmp_path / "two")
    library.index()
    assert len(_failed(library)) == 1
    library.remove_root(tmp_path / "one")
    assert _failed(library) == {}
    library.index()
    assert "pipe.jpg" not in (library.catalog.store.get_meta(scan_module.SCAN_PROBLEMS) or "")


def test_a_device_file_gets_a_row(library, tmp_path):
    media = tmp_path / "media"
    make_photos(media, 1)
    try:
        os.mknod(media / "disk.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    except (PermissionError, OSError):
        pytest.skip("creating device files needs root")
    library.add_root(media)
    assert library.index().indexed == 1
    assert _failed(library) == {str(media.resolve() / "disk.jpg"): "not a regular file (device file)"}


def test_paths_longer_than_path_max_get_a_row(tmp_path):
    root = tmp_path / "media"
    make_photos(root, 1)
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 250 characters: past Linux's 4096, made relative to stay creatable
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("deep.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as f:
            f.write(b"\x89PNG")
    finally:
        os.close(fd)
    report = WalkReport()
    found = [path for path, _ in walk(root, report=report)]
    assert found == [str(root / "photo000.png")]
    assert len(report.problems) == 1 and report.problems[0][1].endswith("path too long")
    assert len(report.problems[0][0]) > os.pathconf("/", "PC_PATH_MAX")


def test_reconcile_functions_stay_small():
    import ast
    import inspect

    for module in (scan_module, walk_module):
        source = inspect.getsource(module)
        assert len(source.splitlines()) <= 400
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 60, node.name


def _padded_png(path: Path, colour: tuple[int, int, int], size: int = 4096) -> None:
    """A PNG padded after its end to `size` bytes (decoders stop at IEND): two pictures, one file size."""
    Image.new("RGB", (24, 24), colour).save(path)
    path.write_bytes(path.read_bytes().ljust(size, b"\0"))


def test_an_edit_that_keeps_size_and_time_is_embedded_again_and_a_chmod_is_not(library, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    edited, touched = photos / "edited.png", photos / "touched.png"
    _padded_png(edited, (200, 20, 20))
    _padded_png(touched, (20, 200, 20))
    library.add_root(photos)
    assert library.index().indexed == 2
    before = library.vectors()[1].copy()
    st = edited.stat()
    _padded_png(edited, (20, 20, 200))  # new pixels, same size, and the old time put back (exiftool -P)
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert edited.stat().st_size == st.st_size and edited.stat().st_mtime_ns == st.st_mtime_ns
    touched.chmod(0o600)  # the inode changes, the content does not
    hashed = []
    real_hash = scan_module.partial_hash
    monkeypatch.setattr(scan_module, "partial_hash", lambda *a, **kw: hashed.append(a[0]) or real_hash(*a, **kw))
    report = library.index()
    assert (report.indexed, report.unchanged) == (1, 1)
    assert not np.allclose(library.vectors()[1], before)  # the edited photo's embedding is new
    assert str(touched.resolve()) in hashed
    hashed.clear()
    again = library.index()
    assert (again.indexed, again.unchanged, hashed) == (0, 2, [])  # checked once, not on every run
