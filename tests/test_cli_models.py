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
    assert "\r" not in err and "Error)" not in err  # no bar in a pipe; the reason in words, not ConnectionRefusedError
    assert any(line.startswith("fastslow: FastSlow could not download") for line in err.splitlines())
    assert "the connection was refused" in err


def test_models_download_of_an_unknown_name_is_a_usage_error_with_the_names(capsys):
    assert main(["models", "download", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert "no preset named 'no-such-preset'" in err and "balanced" in err and "downloading" not in err


def test_index_without_models_on_a_new_library_downloads_balanced_indexes_and_searches(test_hub, tmp_path,
                                                                                        capsys):
    photos = _photos(tmp_path / "Pictures")
    library = ["--library", str(tmp_path / "lib")]
    assert main(["index", str(photos), "--json", *library]) == 0  # no --models: a person's first run
    out, err = capsys.readouterr()
    assert json.loads(out)["indexed"] == 4
    assert "'balanced'" in err and "downloading balanced" in err and "downloaded and checked" in err
    assert sum(test_hub.sent.values()) > 0
    assert main(["search", "a red photo", "--json", "--top", "2", *library]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2
    from fastslow_desktop.library.models_spec import stored_spec

    assert stored_spec(tmp_path / "lib") == "balanced"


def test_an_existing_library_keeps_the_models_it_was_indexed_with(tmp_path, tiny_bundle, capsys):
    photos = _photos(tmp_path / "Pictures")
    library = ["--library", str(tmp_path / "lib")]
    assert main(["index", str(photos), "--json", *library, "--models", str(tiny_bundle)]) == 0
    capsys.readouterr()
    (photos / "p0.jpg").unlink()
    Image.new("RGB", (48, 40), (1, 2, 3)).save(photos / "new.jpg")
    # Without --models: the tiny bundle again (offline, no download of `balanced`), not a re-embed.
    assert main(["index", str(photos), "--json", *library]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["indexed"] == 1 and report.get("reembedded", 0) == 0
    assert "downloading" not in err and "new library" not in err
    assert main(["search", "a photo", "--json", "--top", "2", *library]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 2


def test_a_library_of_unknown_models_asks_for_them(tmp_path, tiny_bundle, capsys):
    """An old library whose models were never remembered, made with a bundle no preset names."""
    import sqlite3

    photos = _photos(tmp_path / "Pictures", 1)
    library = ["--library", str(tmp_path / "lib")]
    assert main(["index", str(photos), *library, "--models", str(tiny_bundle)]) == 0
    with sqlite3.connect(tmp_path / "lib" / "library.db") as conn:
        conn.execute("DELETE FROM meta WHERE key LIKE 'models_spec%'")
    capsys.readouterr()
    assert main(["index", str(photos), *library]) == 2
    assert "--models PATH" in capsys.readouterr().err


def test_an_unreachable_hub_is_reported_within_seconds_by_a_fresh_process(tmp_path):
    """The reachability check runs before torch is imported: a fresh `fastslow index` says so fast."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    photos = _photos(tmp_path / "Pictures", 1)
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "PYTHONPATH": str(repo)}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("FASTSLOW_PRESETS", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fastslow_desktop", "index", str(photos),
                           "--library", str(tmp_path / "lib")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=repo)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert "fastslow demo" in done.stderr and "--models PATH" in done.stderr
    assert seconds < 5, f"a fresh process took {seconds:.1f} s to say the hub is unreachable"


def test_indexing_an_existing_library_with_other_models_re_embeds_and_says_so(test_hub, tmp_path, tiny_bundle,
                                                                             capsys):
    from fastslow_desktop.library.models_spec import stored_spec

    photos = _photos(tmp_path / "Pictures", 3)
    library = ["--library", str(tmp_path / "lib")]
    assert main(["index", str(photos), "--json", *library, "--models", str(tiny_bundle)]) == 0
    capsys.readouterr()
    assert main(["index", str(photos), "--json", *library, "--models", "balanced"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["reembedded"] == 3
    assert "embedded again with 'balanced'" in err
    assert stored_spec(tmp_path / "lib") == "balanced"
    assert main(["search", "a photo", "--json", "--top", "3", *library]) == 0  # no --models: balanced
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3


def test_the_demo_still_uses_synthscenes_offline_and_its_library_remembers_it(tmp_path, monkeypatch, capsys):
    from fastslow_desktop.library.models_spec import stored_spec

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any network use would fail
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--no-gui", "--images", "3", "--videos", "0"]) == 0
    library = tmp_path / "demo" / "library"
    assert stored_spec(library) == "synthscenes"
    capsys.readouterr()
    assert main(["search", "a red circle", "--json", "--library", str(library)]) == 0  # no --models
    assert json.loads(capsys.readouterr().out)["results"]


def test_a_library_from_before_specs_were_remembered_is_recognised_by_its_serving_model():
    from fastslow_desktop.library.models_spec import inferred_spec

    assert inferred_spec("open_clip:ViT-B-32-256:datacomp_s34b_b86k") == "balanced"
    assert inferred_spec("open_clip:ViT-B-32:laion2b_s34b_b79k") == "clip-vit-b-32"
    assert inferred_spec("synthscenes:0123456789abcdef") == "synthscenes"
    assert inferred_spec("tiny:0123456789abcdef") is None  # a bundle folder of one's own: ask for it
    assert inferred_spec(None) is None
