"""A library written by two processes: the app sees what `fastslow index` writes while it runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fastslow_desktop.catalog.store import Store

REPO = Path(__file__).resolve().parents[1]


def test_a_store_counts_only_the_other_writers_commits(tmp_path):
    mine, theirs = Store(tmp_path / "library.db"), Store(tmp_path / "library.db")
    assert not mine.changed_elsewhere()
    mine.set_meta("a", "1")
    mine.add_root("/photos")
    assert not mine.changed_elsewhere()  # its own writes are not news
    assert theirs.changed_elsewhere()  # they are to the other one …
    assert not theirs.changed_elsewhere()  # … once
    theirs.set_meta("b", "2")
    mine.set_meta("c", "3")  # interleaved: the other's commit is still seen
    assert mine.changed_elsewhere()
    with pytest.raises(RuntimeError):
        with mine.transaction() as conn:
            conn.execute("INSERT INTO meta(key, value) VALUES ('d', '4')")
            raise RuntimeError("rolled back")
    theirs.set_meta("e", "5")  # takes the generation the rolled-back write had counted as its own
    assert mine.changed_elsewhere()
    mine.close()
    theirs.close()


def _in_another_process(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _index_in_another_process(library: Path, folder: Path, bundle: Path) -> None:
    _in_another_process(f"""
        from fastslow_desktop.library import Library
        from fastslow_desktop.models import load_bundle
        with Library.open({str(library)!r}, load_bundle({str(bundle)!r})) as library:
            library.add_root({str(folder)!r})
            report = library.index()
            assert report.indexed == {len(list(folder.iterdir()))}, report
    """)


def _remove_in_another_process(library: Path, folder: Path) -> None:
    _in_another_process(f"""
        from fastslow_desktop.library import Library
        with Library.open({str(library)!r}) as library:
            library.remove_root({str(folder)!r})
    """)


def test_searches_see_what_another_process_indexed_and_the_watcher_its_folder(tmp_path, tiny_bundle):
    from tests.ui_helpers import write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = write_photos(tmp_path / "photos", 3)
    library = Library.open(tmp_path / "library", load_bundle(tiny_bundle))
    library.add_root(photos)
    library.index()
    library.watch(on_batch=lambda paths: None)
    try:
        assert len(library.ann()) == 3  # opened: the copy in memory that must take in the news
        assert not library.changed_elsewhere()
        more = write_photos(tmp_path / "more", 4, seed=7)
        _index_in_another_process(tmp_path / "library", more, tiny_bundle)
        assert library.changed_elsewhere()
        assert not library.changed_elsewhere()
        assert len(library.ann()) == 7
        ids, _ = library.vectors()
        found, _ = library.query(library.vectors(ids=ids[-1:])[1][0], 1)
        assert found.tolist() == [ids[-1]]  # the other process's vector, found through the graph
        assert str(more.resolve()) in library._watcher.roots
        # A file the other process forgets leaves this one's graph too.
        _remove_in_another_process(tmp_path / "library", more)
        assert library.changed_elsewhere()
        assert len(library.ann()) == 3
        assert str(more.resolve()) not in library._watcher.roots
    finally:
        library.close()


def test_the_window_shows_a_folder_another_process_indexed_and_runs_the_query_again(qtbot, ui_settings, tmp_path,
                                                                                    tiny_bundle):
    from tests.ui_helpers import indexed_photos, open_window, write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = indexed_photos(tmp_path / "library", tiny_bundle, tmp_path / "photos", 3)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.stage1, timeout=60_000):
        window.run_query("a large green star")
    assert window.results_model.rowCount() == 3
    more = write_photos(tmp_path / "more", 4, seed=7)
    elsewhere, shown = [], []
    window.controller.written_elsewhere.connect(elsewhere.append)
    window.controller.status_changed.connect(lambda _status: shown.append(window.status.message.text()))
    # Another library object has its own database connection and write count: to this window it is
    # another writer, as `fastslow index` in a terminal is.
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as other:
        other.add_root(more)
        other.index()
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(more.resolve())) == "4 / 4 indexed", timeout=30_000)
    assert elsewhere[0] is True and elsewhere[-1] is False
    # while the other process's writes come the status bar names it, not this app's old "up to date"
    assert any("another FastSlow process is indexing it" in text for text in shown), shown
    qtbot.waitUntil(lambda: window.results_model.rowCount() == 7, timeout=30_000)
    paths = {window.results_model.result(r).path for r in range(7)}
    assert {str(p) for p in more.resolve().iterdir()} <= paths
    done = "7 photos and 0 videos in 2 folders · Library is up to date"  # not the app's own, older report
    qtbot.waitUntil(lambda: window.status.message.text() == done, timeout=30_000)


def test_another_writers_news_waits_while_this_process_writes(tmp_path, tiny_bundle):
    """A vector this process adds after the ids were read must not look stale: no sync while it writes."""
    import threading

    from tests.ui_helpers import write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    models = load_bundle(tiny_bundle)
    with Library.open(tmp_path / "library", models) as library:
        library.add_root(write_photos(tmp_path / "photos", 3))
        library.index()
        assert len(library.ann()) == 3
        with Library.open(tmp_path / "library", models) as other:
            other.add_root(write_photos(tmp_path / "more", 2, seed=3))
            other.index()
        seen = []
        with library.catalog.writing():  # this process is writing (the poll runs on another thread)
            poll = threading.Thread(target=lambda: seen.append(library.changed_elsewhere()))
            poll.start()
            poll.join(30)
        assert seen == [False] and len(library.ann()) == 3
        assert library.changed_elsewhere() and len(library.ann()) == 5  # taken in once the writer is done


def test_a_run_that_finds_the_library_busy_waits_its_turn_instead_of_being_dropped(qtbot, ui_settings, tmp_path,
                                                                                   tiny_bundle, monkeypatch):
    """A photo the watcher saw while `fastslow index` held the library was never indexed (the run gave up
    after the writer lock's wait, with a banner that stayed): the run now says it waits, and runs later."""
    from tests.ui_helpers import open_window, write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.ui import library_control

    monkeypatch.setattr(library_control, "OTHER_WRITER_RETRY_MS", 200)
    photos = write_photos(tmp_path / "photos", 3)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)  # known, nothing indexed yet
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    window.controller.library.catalog._writer.wait = 0.3  # the lock's wait, 30 s in the app
    waiting, errors = [], []
    window.controller.waiting_for_writer.connect(waiting.append)
    window.controller.index_error.connect(errors.append)
    with Library.open(tmp_path / "library") as other, other.catalog.writing():  # another writer holds it
        window.controller.index(None)
        qtbot.waitUntil(lambda: bool(waiting), timeout=30_000)
    assert "is indexing this library" in waiting[0] and "once it has finished" in waiting[0]
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(photos.resolve())) == "3 / 3 indexed", timeout=30_000)
    assert errors == []  # no "Indexing stopped" banner


def test_the_window_follows_models_another_process_moved_the_library_to(qtbot, ui_settings, tmp_path, tiny_bundle):
    """`fastslow index --models B` while the app runs with A: the app switched the library back to A at its
    next run (re-embedding everything), and the two undid each other. Now the app follows B."""
    from tests.helpers import make_tiny_bundle
    from tests.ui_helpers import indexed_photos, open_window

    from fastslow_desktop.library import Library
    from fastslow_desktop.library.models_spec import stored_spec
    from fastslow_desktop.models import load_bundle

    indexed_photos(tmp_path / "library", tiny_bundle, tmp_path / "photos", 3)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.stage1, timeout=60_000):
        window.run_query("a large green star")
    other_bundle = make_tiny_bundle(tmp_path / "other-models", seed=5)
    with Library.open(tmp_path / "library", load_bundle(other_bundle)) as other:
        other.index()  # re-embeds everything with the other models, which now serve
        their_id = other.serving_model_id
    with qtbot.waitSignal(window.controller.models_chosen_elsewhere, timeout=30_000) as chosen:
        pass
    assert chosen.args == [str(other_bundle.resolve())]
    qtbot.waitUntil(lambda: window.controller.is_ready and window.controller.services.models.model_id == their_id,
                    timeout=60_000)
    assert ui_settings.models == str(other_bundle.resolve())
    with qtbot.waitSignal(window.controller.stage1, timeout=60_000) as stage1:
        window.run_query("a blue square")
    assert len(stage1.args[0].results) == 3
    window.controller.index(None)  # the app's own next run keeps the library on the other models
    qtbot.waitUntil(lambda: not window.controller.indexing, timeout=60_000)
    assert stored_spec(tmp_path / "library") == str(other_bundle.resolve())
    with Library.open(tmp_path / "library") as reader:
        assert reader.serving_model_id == their_id


def test_the_window_finishes_a_run_another_process_left_unfinished(qtbot, ui_settings, tmp_path, tiny_bundle):
    """`fastslow index` killed (or stopped) while the app watches: the files it had not reached were never
    indexed and the folder said "0 / 0 indexed"; no file event would ever bring them. The app finishes it."""
    from tests.ui_helpers import indexed_photos, open_window, write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    photos = indexed_photos(tmp_path / "library", tiny_bundle, tmp_path / "photos", 3)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        window.controller.set_watching(True)  # its catch-up run is over before the other process starts
    more = write_photos(tmp_path / "more", 5, seed=7)

    class Killed(Exception):
        pass

    def killed(event) -> None:
        if event.phase == "scanning":
            raise Killed  # as SIGKILL would: nothing after this point runs
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as other:
        other.add_root(more)
        with pytest.raises(Killed):
            other.index(progress=killed)
        assert other.left_unfinished()
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(more.resolve())) == "5 / 5 indexed", timeout=60_000)
    with Library.open(tmp_path / "library") as reader:
        assert not reader.left_unfinished()


def test_the_window_waits_for_a_run_still_going_before_it_finishes_it(qtbot, ui_settings, tmp_path, tiny_bundle):
    """A `fastslow index` between two commits (loading models, a slow video) holds the library: the app took the
    quiet for its end, started its own catch-up and showed "Waiting: another process…" until well after."""
    from tests.ui_helpers import indexed_photos, open_window, write_photos

    from fastslow_desktop.library import Library
    from fastslow_desktop.library.unfinished import run_started
    from fastslow_desktop.models import load_bundle

    indexed_photos(tmp_path / "library", tiny_bundle, tmp_path / "photos", 3)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    with qtbot.waitSignal(window.controller.index_finished, timeout=60_000):
        window.controller.set_watching(True)
    more = write_photos(tmp_path / "more", 4, seed=7)
    started, waiting = [], []
    window.controller.index_started.connect(lambda: started.append(True))
    window.controller.waiting_for_writer.connect(waiting.append)
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as other:
        other.add_root(more)
        with other.catalog.writing():
            run_started(other.catalog.store, None)  # a run has begun and writes nothing for a while
            qtbot.wait(3 * 2000 + 500)  # three of the app's polls
            assert (started, waiting) == ([], [])
    # the lock is let go without the run completing, as when its process is killed: the app finishes it
    qtbot.waitUntil(lambda: window.sidebar.state_of(str(more.resolve())) == "4 / 4 indexed", timeout=60_000)


def test_the_models_label_says_another_process_re_embeds_while_it_does(qtbot, ui_settings, tmp_path, tiny_bundle):
    """The app follows `fastslow index --models B` while that run is still going: the label said the app itself
    was "re-embedding with B…" while it only waited for the other process."""
    import threading

    from tests.helpers import make_tiny_bundle
    from tests.ui_helpers import indexed_photos, open_window

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    indexed_photos(tmp_path / "library", tiny_bundle, tmp_path / "photos", 3)
    window = open_window(qtbot, ui_settings, tmp_path / "library", tiny_bundle)
    other_bundle = make_tiny_bundle(tmp_path / "other-models", seed=5)
    started, finish, failures = threading.Event(), threading.Event(), []

    def paused(event) -> None:
        if event.phase == "indexing" and not started.is_set():
            started.set()  # the target models are recorded and the lock held: hold it until the label is read
            finish.wait(120)

    def other_run() -> None:
        try:
            with Library.open(tmp_path / "library", load_bundle(other_bundle)) as other:
                other.index(progress=paused)
        except Exception as exc:  # noqa: BLE001 - reported by the test's thread
            failures.append(exc)
            started.set()
    worker = threading.Thread(target=other_run)
    worker.start()
    try:
        assert started.wait(60) and not failures
        with qtbot.waitSignal(window.controller.reembedding, timeout=60_000) as reembedding:
            pass
        assert reembedding.args[2] is True
        label = window.status.models.text()
        assert "another FastSlow process is re-embedding with" in label, label
    finally:
        finish.set()
        worker.join(120)
    assert not failures
    qtbot.waitUntil(lambda: not window.controller.indexing, timeout=60_000)
