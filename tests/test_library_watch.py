"""Live watching: files copied or moved into a watched folder become searchable within seconds."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from fastslow_desktop.library import Library
from fastslow_desktop.library.watcher import Debouncer, Watcher
from fastslow_desktop.models import load_bundle
from fastslow_desktop.synthscenes import generate


def wait_until(condition, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(interval)
    return condition()


@pytest.fixture(scope="module")
def source_images(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("watch-src")
    generate(out, 200, 0, seed=3, sizes=(64, 64))
    return sorted((out / "images").iterdir())


def _searchable_paths(library: Library) -> set[str]:
    ids = library.ann().ids()
    return {info.path for info in library.segments_info(sorted(ids))}


def test_two_hundred_copied_files_are_searchable_within_thirty_seconds(tmp_path, tiny_bundle, source_images):
    watched = tmp_path / "watched"
    watched.mkdir()
    library = Library.open(tmp_path / "lib", load_bundle(tiny_bundle))
    library.add_root(watched)
    library.index()
    library.watch(quiet=0.5)
    try:
        # 150 files copied one by one, and a folder of 50 moved in from outside.
        staging = tmp_path / "staging" / "trip"
        staging.mkdir(parents=True)
        for src in source_images[150:]:
            shutil.copy(src, staging / src.name)
        for src in source_images[:150]:
            shutil.copy(src, watched / src.name)
        shutil.move(str(staging), str(watched / "trip"))
        copy_ended = time.monotonic()
        expected = {str((watched / s.name).resolve()) for s in source_images[:150]}
        expected |= {str((watched / "trip" / s.name).resolve()) for s in source_images[150:]}
        assert wait_until(lambda: expected <= _searchable_paths(library), timeout=30)
        assert time.monotonic() - copy_ended <= 30

        # Deleting a folder and renaming a file are picked up too.
        shutil.rmtree(watched / "trip")
        (watched / source_images[0].name).rename(watched / "renamed.png")
        gone = {p for p in expected if "/trip/" in p} | {str((watched / source_images[0].name).resolve())}
        wanted = (expected - gone) | {str((watched / "renamed.png").resolve())}
        assert wait_until(lambda: _searchable_paths(library) == wanted, timeout=30)
    finally:
        library.close()
    assert not library.watching


def test_debouncer_waits_for_quiet_and_for_files_to_stop_growing(tmp_path):
    batches: list[list[str]] = []
    got = threading.Event()
    debouncer = Debouncer(lambda paths: (batches.append(paths), got.set()), quiet=0.3)
    debouncer.start()
    try:
        growing = tmp_path / "growing.mp4"
        growing.write_bytes(b"x")
        debouncer.record([str(growing)])
        for _ in range(8):  # keeps being written for ~0.8 s: no batch while it grows
            threading.Event().wait(0.1)
            with growing.open("ab") as fh:
                fh.write(b"x" * 1000)
            debouncer.record([str(growing)])
            assert not batches
        assert got.wait(10)
        assert batches == [[str(growing)]]
    finally:
        debouncer.stop()


def test_a_failing_batch_does_not_stop_the_watcher(tmp_path):
    calls: list[list[str]] = []
    second = threading.Event()

    def on_batch(paths):
        calls.append(paths)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second.set()

    debouncer = Debouncer(on_batch, quiet=0.1)
    debouncer.start()
    try:
        debouncer.record(["/nonexistent/a"])
        assert wait_until(lambda: len(calls) == 1, timeout=10)
        debouncer.record(["/nonexistent/b"])
        assert second.wait(10)
    finally:
        debouncer.stop()


def test_a_batch_of_finished_files_skips_the_quiet_period(tmp_path):
    """Closed-after-writing, renamed-in and deleted paths are final: their batch goes on at once."""
    batches: list[tuple[float, list[str]]] = []
    got = threading.Event()
    debouncer = Debouncer(lambda paths: (batches.append((time.monotonic(), paths)), got.set()), quiet=3.0)
    debouncer.start()
    try:
        start = time.monotonic()
        debouncer.record([str(tmp_path / "a.jpg")])
        debouncer.record([str(tmp_path / "a.jpg")], settled=True)  # its writer closed it
        assert got.wait(10)
        assert batches[0][1] == [str(tmp_path / "a.jpg")]
        assert batches[0][0] - start < 2.0  # well before the 3 s quiet period
    finally:
        debouncer.stop()


def test_a_file_written_again_after_closing_waits_for_the_quiet_period(tmp_path):
    batches: list[tuple[float, list[str]]] = []
    got = threading.Event()
    debouncer = Debouncer(lambda paths: (batches.append((time.monotonic(), paths)), got.set()), quiet=1.5)
    debouncer.start()
    try:
        start = time.monotonic()
        debouncer.record([str(tmp_path / "a.jpg")], settled=True)
        debouncer.record([str(tmp_path / "a.jpg")])  # opened and written again: not final any more
        assert got.wait(10)
        assert batches[0][0] - start >= 1.5
    finally:
        debouncer.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="inotify reports a closed-after-writing file")
def test_the_watcher_hands_on_a_copied_file_once_it_is_closed(tmp_path):
    batches: list[tuple[float, list[str]]] = []
    got = threading.Event()
    watcher = Watcher([str(tmp_path)], lambda paths: (batches.append((time.monotonic(), paths)), got.set()),
                      quiet=3.0)
    watcher.start()
    try:
        time.sleep(0.2)
        start = time.monotonic()
        (tmp_path / "new.jpg").write_bytes(b"x" * 10_000)
        assert got.wait(10)
        assert str(tmp_path / "new.jpg") in batches[0][1]
        assert str(tmp_path) not in batches[0][1]  # the folder's own "modified" event is not a change
        assert batches[0][0] - start < 2.0
    finally:
        watcher.stop()
