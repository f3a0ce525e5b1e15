"""The library remembers an index run that stopped before it went through its work, until a run covering
at least as much completes (library/unfinished.py)."""

from __future__ import annotations

import threading

from fastslow_desktop.catalog.store import Store
from fastslow_desktop.library import Library
from fastslow_desktop.library.unfinished import left_unfinished, run_completed, run_started
from fastslow_desktop.models import load_bundle
from tests.ui_helpers import write_photos


def test_scopes_widen_while_runs_stop_and_only_a_covering_run_clears_them(tmp_path):
    store = Store(tmp_path / "library.db")
    assert not left_unfinished(store)
    run_started(store, ["/a"])
    run_started(store, ["/b"])  # stopped too: both are owed
    run_completed(store, ["/a"])
    assert left_unfinished(store)  # /b is still owed
    run_completed(store, ["/a", "/b"])
    assert not left_unfinished(store)
    run_started(store, None)
    run_completed(store, ["/a", "/b"])  # a scoped run does not finish a whole-library one
    assert left_unfinished(store)
    run_completed(store, None)
    assert not left_unfinished(store)
    store.close()


def test_a_stopped_run_is_recorded_and_the_next_whole_run_clears_it(tmp_path, tiny_bundle):
    photos = write_photos(tmp_path / "photos", 4)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        stop = threading.Event()
        stop.set()
        report = library.index(cancel=stop)
        assert report.cancelled and library.left_unfinished() and library.status()["unfinished_run"]
        report = library.index()
        assert report.indexed == 4 and not library.left_unfinished()


def test_status_says_when_a_run_has_not_finished(tmp_path, tiny_bundle, capsys):
    from fastslow_desktop.cli import main

    photos = write_photos(tmp_path / "photos", 2)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        stop = threading.Event()
        stop.set()
        library.index(cancel=stop)
    assert main(["status", "--library", str(tmp_path / "library")]) == 0
    assert "an index run has not finished" in capsys.readouterr().out
    assert main(["index", str(photos), "--library", str(tmp_path / "library"), "--models", str(tiny_bundle),
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["status", "--library", str(tmp_path / "library")]) == 0
    assert "has not finished" not in capsys.readouterr().out


def test_ctrl_c_during_index_says_the_rest_is_indexed_later(tmp_path, tiny_bundle, capsys, monkeypatch):
    from fastslow_desktop.cli import main

    photos = write_photos(tmp_path / "photos", 2)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Library, "index", interrupted)
    assert main(["index", str(photos), "--library", str(tmp_path / "library"), "--models", str(tiny_bundle)]) == 130
    assert "the next `fastslow index` (or the app, watching this library) indexes the rest" in capsys.readouterr().err


def test_the_writer_lock_tells_a_holder_in_another_process_from_one_in_this_one(tmp_path):
    """The app's poll: a `fastslow index` between two commits still holds the library, so the app neither calls
    it finished nor starts its own catch-up (it said "Waiting: …" for seconds after each run)."""
    from fastslow_desktop.catalog.locks import WriterLock

    # Two locks on one file stand for two processes: each has its own descriptor, and flock is per descriptor.
    ours, theirs = (WriterLock(tmp_path / "writer.lock", tmp_path / f"writer-{n}.pid") for n in (1, 2))
    assert not ours.held_elsewhere()
    theirs.acquire()
    try:
        assert ours.held_elsewhere() and not theirs.held_elsewhere()
    finally:
        theirs.release()
    assert not ours.held_elsewhere()
    ours.acquire()
    try:
        assert not ours.held_elsewhere()  # this process's own run
    finally:
        ours.release()


def _hold_in_thread(lock, seconds: float):
    """Another 'process' holding the library for `seconds` (its own thread, so it can let go meanwhile)."""
    import threading
    import time

    taken = threading.Event()

    def hold() -> None:
        lock.acquire()
        taken.set()
        time.sleep(seconds)
        lock.release()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(5)
    return thread


def test_a_writer_waits_for_another_process_and_says_so_only_when_it_is_more_than_a_moment(tmp_path):
    """A momentary holder (the app's `held_elsewhere` probe) is waited for without the CLI's "waiting" line;
    a real run is announced once; a writer without a message waits its timeout instead of failing at once."""
    from fastslow_desktop.catalog.locks import QUIET_WAIT_SECONDS, WriterLock

    ours, theirs = (WriterLock(tmp_path / "writer.lock", tmp_path / f"writer-{n}.pid") for n in (1, 2))
    said: list[str] = []
    ours.on_wait = said.append
    for held, announced in ((QUIET_WAIT_SECONDS / 5, 0), (QUIET_WAIT_SECONDS * 3, 1)):
        said.clear()
        holder = _hold_in_thread(theirs, held)
        assert ours.acquire(timeout=10)
        ours.release()
        holder.join()
        assert len(said) == announced, said
    ours.on_wait = None  # the app's writers: wait silently, up to the timeout
    holder = _hold_in_thread(theirs, 0.3)
    assert ours.acquire(timeout=10)
    ours.release()
    holder.join()
