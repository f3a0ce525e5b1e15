"""`fastslow search --queries FILE` prints JSON lines even without --json (as the README says), and
`fastslow status` counts one video as "1 video"."""

from __future__ import annotations

import json

from fastslow_desktop.cli import main as cli_main
from tests.test_search_engine import build_small_library


def test_a_queries_file_prints_json_lines_without_the_json_flag(tmp_path, tiny_bundle, capsys):
    build_small_library(tmp_path, tiny_bundle, n_images=6, n_videos=1).close()
    file = tmp_path / "queries.txt"
    file.write_text("a red circle\n\ntwo small yellow triangles\n")
    common = ["--library", str(tmp_path / "library"), "--models", str(tiny_bundle)]
    assert cli_main(["search", *common, "--queries", str(file), "--top", "2", "--no-rerank"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [json.loads(line)["query"] for line in lines] == ["a red circle", "two small yellow triangles"]

    assert cli_main(["status", *common]) == 0
    out = capsys.readouterr().out
    assert "1 video" in out and "1 videos" not in out
