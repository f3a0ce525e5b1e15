"""`fastslow demo`: builds an offline SynthScenes library, reuses it on a re-run, and opens the app on it."""

from __future__ import annotations

import json
import socket
import sys
import types

import pytest

from fastslow_desktop.cli import main as cli_main
from fastslow_desktop.demo import default_demo_dir


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _demo(tmp_path, bundle, *extra: str) -> list[str]:
    return ["demo", "--dir", str(tmp_path / "demo"), "--images", "12", "--videos", "1",
            "--models", str(bundle), *extra]


def test_demo_builds_and_indexes_a_library_offline_then_reuses_it(tmp_path, tiny_bundle, no_network, capsys):
    assert cli_main(_demo(tmp_path, tiny_bundle, "--no-gui")) == 0
    library = tmp_path / "demo" / "library"
    media = tmp_path / "demo" / "media"
    assert (library / "library.db").is_file() and (media / "captions.jsonl").is_file()
    capsys.readouterr()
    assert cli_main(["status", "--json", "--library", str(library)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["images"], status["videos"], status["failed"]) == (12, 1, [])

    stamps = {p: p.stat().st_mtime_ns for p in media.rglob("*") if p.is_file()}
    assert cli_main(_demo(tmp_path, tiny_bundle, "--no-gui")) == 0  # re-run: nothing regenerated
    assert {p: p.stat().st_mtime_ns for p in media.rglob("*") if p.is_file()} == stamps
    capsys.readouterr()
    assert cli_main(["search", "--library", str(library), "--models", str(tiny_bundle), "a red circle",
                     "--json", "--top", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3


def test_demo_opens_the_app_on_the_demo_library(tmp_path, tiny_bundle, monkeypatch):
    calls = []
    fake_app = types.ModuleType("fastslow_desktop.ui.app")
    fake_app.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fastslow_desktop.ui", types.ModuleType("fastslow_desktop.ui"))
    monkeypatch.setitem(sys.modules, "fastslow_desktop.ui.app", fake_app)
    assert cli_main(_demo(tmp_path, tiny_bundle)) == 0
    assert calls == [["--library", str(tmp_path / "demo" / "library"), "--models", str(tiny_bundle)]]


def test_demo_defaults_to_a_folder_in_the_user_data_folder():
    assert default_demo_dir().name == "demo" and "FastSlow" in str(default_demo_dir())
