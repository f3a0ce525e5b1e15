"""`fastslow index` and `fastslow status`: the JSON of shared/DESIGN.md, throughput, clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fastslow_desktop.cli import main

REPO = Path(__file__).resolve().parent.parent
INDEX_KEYS = {"indexed", "moved", "unchanged", "removed", "failed", "seconds"}
STATUS_KEYS = {"roots", "media", "images", "videos", "segments", "model", "failed", "unfinished_run", "hidden"}


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "raw").mkdir(parents=True)
    for n in range(6):
        Image.new("RGB", (48, 40), (n * 40, 100, 200 - n * 30)).save(folder / f"p{n}.jpg")
    Image.new("RGB", (48, 40)).save(folder / "raw" / "skip-me.png")
    (folder / "broken.png").write_bytes(b"not a png at all")
    return folder


def test_index_prints_the_design_json_and_ends_with_its_throughput(photos, tmp_path, tiny_bundle, capsys):
    library = tmp_path / "lib"
    code = main(["index", str(photos), "--library", str(library), "--models", str(tiny_bundle), "--json",
                 "--exclude", "raw"])
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert INDEX_KEYS <= set(report)
    assert (report["indexed"], report["failed"], report["moved"], report["removed"]) == (6, 1, 0, 0)
    last_line = err.strip().splitlines()[-1]
    assert "files/s" in last_line and "segments/s" in last_line

    assert main(["status", "--library", str(library), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert set(status) == STATUS_KEYS
    assert (status["media"], status["images"], status["videos"], status["segments"]) == (6, 6, 0, 6)
    assert status["failed"] == [{"path": str((photos / "broken.png").resolve()), "error": "not an image"}]
    assert status["roots"][0]["path"] == str(photos.resolve())

    assert main(["--library", str(library), "index", str(photos), "--models", str(tiny_bundle), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["indexed"] == 0 and again["unchanged"] == 7


def test_status_counts_failed_files_apart_from_entries_the_walk_could_not_use(photos, tmp_path, tiny_bundle,
                                                                              capsys):
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # a broken link: a status row, not a file
    library = tmp_path / "lib"
    assert main(["index", str(photos), "--library", str(library), "--models", str(tiny_bundle)]) == 0
    err = capsys.readouterr().err
    assert "indexed 7 files (7 segments)" in err and "files/s with the failed ones" in err
    assert main(["status", "--library", str(library)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].endswith("1 failed, 1 other entry not used (listed below)")
    assert lines[3].endswith(": 7 indexed, 1 failed")
    assert sum(line.startswith("  ! ") for line in lines) == 2


def test_status_of_an_empty_library_and_the_environment_default(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTSLOW_LIBRARY", str(tmp_path / "from-env"))
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {"roots": [], "media": 0, "images": 0, "videos": 0, "segments": 0, "model": None,
                      "failed": [], "unfinished_run": False, "hidden": []}
    assert main(["status"]) == 0
    out, err = capsys.readouterr()
    assert str(tmp_path / "from-env") in out and "no library at" in err
    (tmp_path / "a file").write_text("")
    assert main(["status", "--library", str(tmp_path / "a file")]) == 2
    assert "is a file, not a library folder" in capsys.readouterr().err


def test_missing_models_or_folder_exit_with_code_two_and_a_message(photos, tmp_path, capsys):
    assert main(["index", str(photos), "--library", str(tmp_path / "l"), "--models", str(tmp_path / "nope")]) == 2
    assert "cannot use models" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "no-such-folder"), "--library", str(tmp_path / "l")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_every_command_is_registered_and_library_goes_before_or_after_it(tmp_path):
    from fastslow_desktop.cli import build_parser

    parser = build_parser()
    for argv in (["--library", "X", "status"], ["status", "--library", "X"]):
        assert parser.parse_args(argv).library == "X"
    for command in ("index", "status", "search", "demo"):
        assert command in parser._subparsers._group_actions[0].choices


def test_python_dash_m_runs_the_same_command(photos, tmp_path, tiny_bundle):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "fastslow_desktop", "index", str(photos), "--library", str(tmp_path / "lib"),
         "--models", str(tiny_bundle), "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["indexed"] == 7
    assert "files/s" in proc.stderr.strip().splitlines()[-1]


def test_retry_failed_tries_an_unchanged_bad_file_again(photos, tmp_path, tiny_bundle, capsys):
    library = tmp_path / "lib"
    argv = ["index", str(photos), "--library", str(library), "--models", str(tiny_bundle), "--json"]
    runs = []
    for extra in ([], [], ["--retry-failed"], []):
        assert main(argv + extra) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert [r["failed"] for r in runs] == [1, 0, 1, 0], "a content failure waits for a change unless asked"
    assert runs[2]["unchanged"] == runs[1]["unchanged"] - 1


def test_a_relative_library_folder_works_for_every_command(photos, tmp_path, tiny_bundle, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["index", str(photos), "--library", "lib", "--models", str(tiny_bundle), "--exclude", "raw"]) == 0
    assert main(["index", str(photos), "--library", "lib", "--json"]) == 0  # the library's own models
    capsys.readouterr()
    monkeypatch.setenv("FASTSLOW_LIBRARY", "lib")
    assert main(["search", "a photo", "--no-rerank", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 6


def test_a_folder_its_parent_excludes_gets_a_note_and_status_lists_the_patterns(photos, tmp_path, tiny_bundle,
                                                                                 capsys):
    library = ["--library", str(tmp_path / "lib"), "--models", str(tiny_bundle)]
    assert main(["index", str(photos), "--exclude", "raw", *library]) == 0
    capsys.readouterr()
    assert main(["index", str(photos / "raw"), *library]) == 0
    err = capsys.readouterr().err
    assert f"note: {photos / 'raw'} is inside {photos.resolve()}" in err and "(raw) skip it" in err
    assert main(["status", *library]) == 0
    assert "(skipping raw)" in capsys.readouterr().out


_HOLD_LOCK = """
import sys
from pathlib import Path
from fastslow_desktop.catalog.locks import WriterLock
root = Path(sys.argv[1])
root.mkdir(parents=True, exist_ok=True)
lock = WriterLock(root / "writer.lock", root / "writer.pid")
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_index_says_it_waits_while_another_process_indexes_and_then_does_its_run(photos, tmp_path, tiny_bundle):
    """Not a silent 30 s wait ending in an error: it names the other process and waits for its turn."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    library = tmp_path / "lib"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(library)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        cli = subprocess.Popen([sys.executable, "-m", "fastslow_desktop", "index", str(photos), "--library",
                                str(library), "--models", str(tiny_bundle), "--json"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = []
        for line in cli.stderr:  # every line up to the notice; the run cannot go on before the holder lets go
            seen.append(line)
            if "waiting for it to finish" in line:
                break
        assert f"another FastSlow process (pid {holder.pid}) is indexing this library" in seen[-1], seen
        assert cli.poll() is None
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(30)
    out, _ = cli.communicate(timeout=120)
    assert cli.returncode == 0
    assert json.loads(out)["indexed"] == 7
