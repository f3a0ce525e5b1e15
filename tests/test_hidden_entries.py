"""Hidden folders and photos are skipped on purpose, and `status` says so (names, not silence)."""

from __future__ import annotations

import json

from PIL import Image

from fastslow_desktop.cli import main as cli_main
from fastslow_desktop.library import Library
from fastslow_desktop.library.walk import WalkReport, walk
from fastslow_desktop.models import load_bundle


def _picture(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (200, 40, 40)).save(path, "JPEG")


def _folder_with_hidden_things(root):
    _picture(root / "beach.jpg")
    _picture(root / ".photos" / "secret.jpg")  # a hidden folder of photos
    _picture(root / ".portrait.jpg")  # a hidden photo
    _picture(root / "._beach.jpg")  # macOS's companion of a copied file: metadata, not a picture
    _picture(root / ".DS_Store")  # system clutter
    (root / ".notes.txt").write_text("not media")
    return root


def test_the_walk_names_hidden_folders_and_media_but_not_clutter(tmp_path):
    root = _folder_with_hidden_things(tmp_path / "Pictures")
    report = WalkReport()
    found = [path for path, _ in walk(root, report=report)]
    assert found == [str(root / "beach.jpg")]
    assert sorted(report.hidden) == [str(root / ".photos"), str(root / ".portrait.jpg")]
    assert report.problems == []
    report = WalkReport()
    list(walk(root, excludes=[".photos"], report=report))
    assert report.hidden == [str(root / ".portrait.jpg")]  # what the user excluded is not mentioned


def test_status_counts_what_was_hidden_and_forgets_it_once_it_is_gone(tmp_path, tiny_bundle, capsys):
    """Photos kept in `.photos` were skipped without a word, as if the folder were empty."""
    root = _folder_with_hidden_things(tmp_path / "Pictures").resolve()
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(root)
        assert library.index().indexed == 1
        assert sorted(library.status()["hidden"]) == [str(root / ".photos"), str(root / ".portrait.jpg")]
        assert library.status()["failed"] == []  # skipped on purpose: not a failure
    assert cli_main(["status", "--library", str(tmp_path / "library")]) == 0
    out = capsys.readouterr().out
    assert ("note: 2 hidden folders or files skipped (names starting with a dot: .photos, .portrait.jpg); "
            "hidden ones are not indexed") in out
    assert "0 failed" in out and "not used" not in out
    (root / ".portrait.jpg").unlink()
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.index()
        assert library.status()["hidden"] == [str(root / ".photos")]
    assert cli_main(["status", "--json", "--library", str(tmp_path / "library")]) == 0
    assert json.loads(capsys.readouterr().out)["hidden"] == [{"path": str(root / ".photos")}]
