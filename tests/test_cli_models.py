"""`fastslow models`: the catalogue as a table and as JSON; `models download` and `index --models PRESET`
through the loopback test hub, and a clear exit code 2 when the hub cannot be reached."""

from __future__ import annotations

import json
import time

from PIL import Image

from fastslow_desktop.cli import main
from tests.hubserver import test_hub  # noqa: F401  (fixture)

ROW_KEYS = {"name", "description", "languages", "download_bytes", "downloaded", "accuracy", "speed", "default"}


def test_models_json_lists_every_preset_with_size_languages_speed_and_state(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {row["name"]: row for row in rows}
    assert {"balanced", "fast", "multilingual", "accurate", "synthscenes"} <= set(by_name)
    assert all(ROW_KEYS <= set(row) for row in rows)
    assert [row["name"] for row in rows if row["default"]] == ["balanced"]
    assert by_name["synthscenes"]["downloaded"] is True and by_name["balanced"]["downloaded"] is False
    assert by_name["balanced"]["download_bytes"] > 100_000_000  # a real ViT-B/32 + CoCa, not a stub
    assert "en" in by_name["balanced"]["languages"] and len(by_name["multilingual"]["languages"]) >= 1


def test_models_table_names_each_preset_and_marks_the_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "balanced *" in out and "synthscenes" in out and "shipped" in out


def _photos(folder, n=4):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (48, 40), (60 * i, 90, 200 - 40 * i)).save(folder / f"p{i}.jpg")
    return folder


def test_index_with_a_hub_preset_downloads_it_then_indexes_and_searches(test_hub, tmp_path, capsys):
    photos = _photos(tmp_path / "Pictures")
    library = ["--library", str(tmp_path / "lib"), "--models", "balanced"]
    assert main(["index", str(photos), "--json", *library]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["indexed"] == 4
    assert "downloading balanced" in err and "downloaded and checked" in err  # the progress bar ran
    assert main(["search", "a red photo", "--json", "--top", "3", *library]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 3 and all(r["path"].startswith(str(photos)) for r in results)
    assert main(["models", "--json"]) == 0
    assert {r["name"]: r["downloaded"] for r in json.loads(capsys.readouterr().out)}["balanced"] is True


def test_models_download_fetches_a_preset_once(test_hub, capsys):
    assert main(["models", "download", "balanced"]) == 0
    first = sum(test_hub.sent.values())
    assert first > 0
    assert main(["models", "download", "balanced"]) == 0
    assert sum(test_hub.sent.values()) == first, "a downloaded preset is not fetched again"
    assert "downloaded and checked" in capsys.readouterr().err


def test_an_unreachable_hub_fails_index_quickly_with_exit_2_and_the_way_out(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    photos = _photos(tmp_path / "Pictures", 1)
    started = time.monotonic()
    code = main(["index", str(photos), "--library", str(tmp_path / "lib"), "--models", "balanced"])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2
    assert "fastslow demo" in err and "--models PATH" in err
    assert seconds < 5, f"took {seconds:.1f} s to say the hub is unreachable"
    assert not (tmp_path / "lib" / "library.db").exists(), "nothing is written for a run that cannot start"
