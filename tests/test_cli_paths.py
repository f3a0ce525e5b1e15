"""File names that are not UTF-8 on the command line: printed escaped on one line (not a UnicodeEncodeError),
and in JSON with their exact bytes in "path_bytes"."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from fastslow_desktop.cli import main
from fastslow_desktop.library import Library
from fastslow_desktop.models import load_bundle
from fastslow_desktop.path_text import path_fields, printable_path

REPO = Path(__file__).resolve().parent.parent


def test_path_fields_and_printable_path():
    assert path_fields("/photos/a.jpg") == {"path": "/photos/a.jpg"}
    odd = os.fsdecode(b"/photos/caf\xe9.jpg")
    assert base64.b64decode(path_fields(odd)["path_bytes"]) == b"/photos/caf\xe9.jpg"
    assert printable_path(odd) == "/photos/caf\\xe9.jpg"
    assert printable_path("/photos/two\nlines\u00e9.jpg") == "/photos/two\\nlines\u00e9.jpg"


def test_status_and_search_with_a_name_that_is_not_utf8(tmp_path, tiny_bundle, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    good = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    Image.new("RGB", (32, 32), (200, 10, 10)).save(good, "PNG")
    bad = os.path.join(os.fsencode(folder), b"br\xfbl\xe9.jpg")
    with open(bad, "wb") as file:
        file.write(b"not a picture")
    library_dir = tmp_path / "library"
    with Library.open(library_dir, load_bundle(tiny_bundle)) as library:
        library.add_root(folder)
        assert (library.index().indexed, len(library.status()["failed"])) == (1, 1)
    # A terminal whose encoding is strict UTF-8 (a usual desktop locale): the old print stopped the command.
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", PYTHONUTF8="0",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-m", "fastslow_desktop", "status", "--library", str(library_dir)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "br\\xfbl\\xe9.jpg" in run.stdout
    run = subprocess.run([sys.executable, "-m", "fastslow_desktop", "status", "--json", "--library", str(library_dir)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    [failure] = json.loads(run.stdout)["failed"]
    assert base64.b64decode(failure["path_bytes"]) == bad
    assert os.fsencode(failure["path"]) == bad  # Python readers get the bytes back from "path" too
    assert main(["search", "a red square", "--library", str(library_dir), "--models", str(tiny_bundle),
                 "--no-rerank", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)["results"]
    assert base64.b64decode(result["path_bytes"]) == good
