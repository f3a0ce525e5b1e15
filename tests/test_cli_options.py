"""One parser for every command (shared options before or after it) and one error boundary in `main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fastslow_desktop import cli
from fastslow_desktop.cli import build_parser, main


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(3):
        Image.new("RGB", (40, 32), (n * 60, 90, 30)).save(folder / f"p{n}.jpg")
    return folder


def _model_of(library: Path, capsys) -> str:
    assert main(["status", "--library", str(library), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["model"]


@pytest.mark.parametrize("order", ["before", "after"])
def test_models_before_or_after_index_indexes_with_that_bundle(order, photos, tmp_path, tiny_bundle, capsys):
    from fastslow_desktop.models import load_bundle

    library = tmp_path / "lib"
    shared = ["--models", str(tiny_bundle), "--library", str(library)]
    command = ["index", str(photos), "--json"]
    argv = shared + command if order == "before" else command + shared
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["indexed"] == 3
    assert _model_of(library, capsys) == load_bundle(tiny_bundle).model_id


@pytest.mark.parametrize("command", [["status"], ["index", "P"], ["search", "q"], ["demo"]])
def test_every_shared_option_means_the_same_before_and_after_every_command(command):
    parser = build_parser()
    options = ["--library", "L", "--models", "B", "--device", "cpu", "-v"]
    before, after = parser.parse_args(options + command), parser.parse_args(command + options)
    for args in (before, after):
        assert (args.library, args.models, args.device, args.verbose) == ("L", "B", "cpu", 1)
    # Given nowhere, the subcommand's copy does not invent a value over the global default.
    plain = parser.parse_args(command)
    assert (plain.library, plain.models, plain.device, plain.verbose) == (None, None, None, 0)


def test_status_accepts_models_and_device_after_the_command(tmp_path, tiny_bundle, capsys):
    code = main(["status", "--models", str(tiny_bundle), "--device", "cpu", "--library", str(tmp_path / "l")])
    assert code == 0
    assert str(tmp_path / "l") in capsys.readouterr().out


def test_status_counts_one_video_in_the_singular(tmp_path, monkeypatch, capsys):
    import fastslow_desktop.library as library_module

    class OneVideo:
        @classmethod
        def open(cls, folder, models=None):
            return cls()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def status(self):
            return {"roots": [], "media": 2, "images": 1, "videos": 1, "segments": 1, "model": "m", "failed": [],
                    "unfinished_run": False, "hidden": []}

    (tmp_path / "library.db").write_bytes(b"")
    monkeypatch.setattr(library_module, "Library", OneVideo)
    assert main(["status", "--library", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 files indexed (1 photo, 1 video, 1 segment), 0 failed" in out


def _failing_status(monkeypatch, exc: BaseException) -> None:
    def run(args):
        raise exc
    monkeypatch.setitem(cli.COMMANDS, "status", (cli.COMMANDS["status"][0], run))


@pytest.mark.parametrize("make", [
    lambda: __import__("fastslow_desktop.library", fromlist=["LibraryError"]).LibraryError("the library is locked"),
    lambda: __import__("fastslow_desktop.models", fromlist=["ModelError"]).ModelError("the library is locked"),
    lambda: __import__("fastslow_desktop.search.types", fromlist=["SearchError"]).SearchError("the library is locked"),
])
def test_project_errors_become_one_sentence_and_exit_1(make, monkeypatch, tmp_path, capsys):
    _failing_status(monkeypatch, make())
    assert main(["status", "--library", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == ["fastslow: the library is locked"]


def test_os_errors_name_the_problem_and_the_file(monkeypatch, tmp_path, capsys):
    _failing_status(monkeypatch, PermissionError(13, "Permission denied", "/some/file"))
    assert main(["status", "--library", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == ["fastslow: Permission denied (/some/file)"]


def test_a_programming_error_prints_a_short_message_and_logs_the_traceback(monkeypatch, tmp_path, capsys):
    _failing_status(monkeypatch, ZeroDivisionError("division by zero in the planner"))
    library = tmp_path / "lib"
    assert main(["status", "--library", str(library)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "unexpected error (ZeroDivisionError" in err
    log = library / "logs" / "fastslow.log"
    assert str(log) in err
    text = log.read_text()
    assert "Traceback" in text and "division by zero in the planner" in text and "in run" in text


def test_demo_refuses_library_instead_of_ignoring_it(tmp_path, capsys):
    assert main(["demo", "--library", str(tmp_path / "elsewhere"), "--dir", str(tmp_path / "demo"), "--no-gui"]) == 2
    assert "--library does not apply" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists() and not (tmp_path / "elsewhere").exists()


def test_console_log_follows_stderr_when_it_is_replaced_and_the_old_one_closed(monkeypatch):
    import io
    import logging
    import sys

    from fastslow_desktop.options import configure_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(0)
    first.close()  # what pytest does to a test's captured stderr once the test ends
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("fastslow_desktop.test").warning("still heard")
    assert "WARNING fastslow_desktop.test: still heard" in second.getvalue()


def test_a_reader_that_stops_early_is_not_an_error(monkeypatch, capsys):
    from fastslow_desktop import cli

    def closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")  # what print() raises under `fastslow search … | head -1`

    monkeypatch.setitem(cli.COMMANDS, "status", (cli.COMMANDS["status"][0], closed_pipe))
    assert cli.main(["status"]) == 0
    assert capsys.readouterr().err == ""
