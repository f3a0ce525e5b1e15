"""`fastslow search`: the JSON contract of shared/DESIGN.md, --queries, --no-rerank, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fastslow_desktop.models as models_module
from fastslow_desktop.cli import main as cli_main
from tests.test_search_engine import build_small_library

RESULT_KEYS = {"path", "kind", "score", "fast_score", "slow_score", "t_start", "t_end", "captured_at",
               "captured_source", "match", "match_probability"}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_bundle):
    root = tmp_path_factory.mktemp("cli-search")
    build_small_library(root, tiny_bundle, n_images=24, n_videos=2).close()
    return {"library": root / "library", "media": root / "media", "bundle": tiny_bundle}


def _search(indexed, *args: str) -> list[str]:
    return ["search", "--library", str(indexed["library"]), "--models", str(indexed["bundle"]), *args]


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _check_contract(obj: dict, query: str) -> None:
    assert set(obj) == {"query", "results", "timing", "any_match", "notes"} and obj["query"] == query
    assert set(obj["timing"]) == {"fast_ms", "slow_ms"} and obj["timing"]["fast_ms"] > 0
    for r in obj["results"]:
        assert set(r) == RESULT_KEYS and r["kind"] in ("image", "video") and Path(r["path"]).is_file()
        assert isinstance(r["score"], float) and isinstance(r["fast_score"], float)
        if r["kind"] == "image":
            assert r["t_start"] is None and r["t_end"] is None
        else:
            assert 0 <= r["t_start"] < r["t_end"]


def test_search_json_follows_the_design_contract(indexed, capsys):
    assert cli_main(_search(indexed, "a red circle", "--json", "--top", "7", "--k", "4", "--type", "image")) == 0
    [obj] = _json_lines(capsys.readouterr().out)
    _check_contract(obj, "a red circle")
    assert len(obj["results"]) == 7 and obj["timing"]["slow_ms"] > 0
    # K counts re-scored segments; photos have one each, so exactly K photos carry a slow score.
    assert sum(r["slow_score"] is not None for r in obj["results"]) == 4
    scores = [r["score"] for r in obj["results"][:4]]
    assert scores == sorted(scores, reverse=True)


def test_words_the_models_cannot_read_are_named_not_searched_silently(indexed, capsys):
    assert cli_main(_search(indexed, "a red circle", "--json", "--no-rerank")) == 0
    assert _json_lines(capsys.readouterr().out)[0]["notes"] == []  # every word known: nothing to say
    queries = ["a red 🐱 circle", "猫", "a red circle to the left of a blue square above a large green star"]
    notes = []
    for query in queries:
        assert cli_main(_search(indexed, query, "--json", "--no-rerank")) == 0
        notes.append(_json_lines(capsys.readouterr().out)[0]["notes"])
    assert notes[0] == ["These models do not know “🐱”: the results match the rest of the query."]
    assert notes[1] == ["These models know none of the words of “猫”: the results are not about it."]
    assert notes[2] == ["The query is longer than these models read: “star” was left out."]
    assert cli_main(_search(indexed, "a red 🐱 circle", "--top", "2", "--no-rerank")) == 0
    assert "\nnote: These models do not know “🐱”" in capsys.readouterr().out


def test_no_rerank_leaves_slow_score_null(indexed, capsys):
    assert cli_main(_search(indexed, "a large green star", "--json", "--no-rerank")) == 0
    [obj] = _json_lines(capsys.readouterr().out)
    _check_contract(obj, "a large green star")
    assert obj["results"] and all(r["slow_score"] is None for r in obj["results"])
    assert obj["timing"]["slow_ms"] is None
    assert all(r["score"] == r["fast_score"] for r in obj["results"])


def test_queries_file_prints_one_line_per_query_in_order_with_one_model_load(indexed, capsys, monkeypatch, tmp_path):
    loads = []
    real = models_module.load_bundle
    monkeypatch.setattr(models_module, "load_bundle", lambda *a, **kw: loads.append(a) or real(*a, **kw))
    photo = sorted((indexed["media"] / "images").iterdir())[2]
    queries = ["a red circle", "", "two small yellow triangles", '"a blue square" - "red"', str(photo)]
    file = tmp_path / "queries.txt"
    file.write_text("\n".join(queries) + "\n")
    assert cli_main(_search(indexed, "--queries", str(file), "--json", "--top", "3", "--type", "image")) == 0
    objs = _json_lines(capsys.readouterr().out)
    assert [o["query"] for o in objs] == [q for q in queries if q]
    for obj, query in zip(objs, [q for q in queries if q]):
        _check_contract(obj, query)
        assert all(r["kind"] == "image" for r in obj["results"])
    assert objs[-1]["results"][0]["path"] == str(photo.resolve())
    assert len(loads) == 1


def test_image_flag_searches_with_a_picture(indexed, capsys):
    photo = min((indexed["media"] / "images").iterdir())
    assert cli_main(_search(indexed, "--image", str(photo), "--json", "--top", "3")) == 0
    [obj] = _json_lines(capsys.readouterr().out)
    _check_contract(obj, str(photo))
    assert obj["results"][0]["path"] == str(photo.resolve()) and obj["results"][0]["slow_score"] is None


def test_video_type_gives_one_result_per_video_with_its_moment(indexed, capsys):
    assert cli_main(_search(indexed, "an orange star", "--type", "video", "--json")) == 0
    [obj] = _json_lines(capsys.readouterr().out)
    _check_contract(obj, "an orange star")
    paths = [r["path"] for r in obj["results"]]
    assert len(paths) == 2 == len(set(paths))


def test_without_json_prints_a_readable_table(indexed, capsys):
    assert cli_main(_search(indexed, "a red circle", "--top", "3", "--k", "2", "--type", "image")) == 0
    out = capsys.readouterr().out
    assert out.startswith("a red circle  (3 results; fast ") and "score" in out and "path" in out
    rows = [line.split() for line in out.splitlines() if str(indexed["media"]) in line]
    assert len(rows) == 3
    # Two re-ranked rows carry a final score; the third (outside K) shows none, only its fast score.
    assert [row[1] != "-" for row in rows] == [True, True, False] and rows[2][2] != "-"
    assert "no longer on disk" not in out


def test_the_table_keeps_each_result_on_one_line_and_marks_files_gone_since_indexing():
    from fastslow_desktop.search.cli import _shown_path

    assert _shown_path("/photos/two\nlines.jpg") == "/photos/two\\nlines.jpg  (no longer on disk)"
    assert _shown_path("/photos/\udcff.jpg").startswith("/photos/\\xff.jpg")
    assert _shown_path(__file__) == __file__


@pytest.mark.parametrize("case, message", [
    ("no-library", "no library at"),
    ("missing-model", "cannot use models"),
    ("bad-image", "Cannot search with the picture"),
    ("no-query", "give a QUERY"),
    ("bad-queries-file", "cannot read the queries file"),
    ("bad-top", "--top must be at least 1 (got -3)"),
    ("bad-k", "--k must be at least 0 (got -1; 0 turns re-ranking off)"),
])
def test_errors_print_one_clear_line_and_exit_with_2(indexed, capsys, tmp_path, case, message):
    args = {
        "no-library": ["search", "--library", str(tmp_path / "none"), "--models", str(indexed["bundle"]), "x"],
        "missing-model": _search(indexed, "x")[:3] + ["--models", str(tmp_path / "no-bundle"), "x"],
        "bad-image": _search(indexed, "--image", str(tmp_path / "missing.jpg")),
        "no-query": _search(indexed),
        "bad-queries-file": _search(indexed, "--queries", str(tmp_path / "none.txt")),
        "bad-top": _search(indexed, "x", "--top", "-3"),
        "bad-k": _search(indexed, "x", "--k", "-1"),
    }[case]
    assert cli_main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], captured.err


def _search_in_thread(argv: list[str]) -> int | None:
    """Runs the CLI in a thread: a blocked open() leaves it alive, and the test fails instead of hanging."""
    import threading

    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(cli_main(argv)), daemon=True)
    thread.start()
    thread.join(30)
    return codes[0] if codes else None


def test_a_fifo_as_queries_file_is_refused_at_once(indexed, capsys, tmp_path):
    import os

    fifo = tmp_path / "queries.fifo"
    os.mkfifo(fifo)
    code = _search_in_thread(_search(indexed, "--queries", str(fifo)))
    assert code == 2, "the search blocked on the FIFO (no writer) or did not refuse it"
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = [line for line in captured.err.splitlines() if line.strip()]
    assert "cannot read the queries file" in line and "not a regular file" in line


def test_a_folder_as_queries_file_is_refused(indexed, capsys, tmp_path):
    assert cli_main(_search(indexed, "--queries", str(tmp_path))) == 2
    assert "cannot read the queries file" in capsys.readouterr().err


def test_bad_image_or_queries_arguments_are_refused_before_any_model_loads(indexed, capsys, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("models were loaded for a command line that cannot run")

    monkeypatch.setattr(models_module, "load_bundle", no_loading)
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "one.txt").write_text("red\n")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    cases = [(["--image", str(tmp_path)], "a folder, not a file"),
             (["--image", str(tmp_path / "missing.png")], "No such file"),
             (["--image", str(tmp_path / "broken.png")], "Cannot search with the picture"),
             (["--queries", str(tmp_path / "empty.txt")], "has no queries"),
             (["red", "--queries", str(tmp_path / "one.txt")], "not both")]
    for args, message in cases:
        assert cli_main(_search(indexed, *args)) == 2, args
        [line] = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert line.startswith("fastslow: ") and message in line and "Errno" not in line, line


def test_queries_from_stdin_print_json_lines_without_the_json_flag(indexed, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a red circle\n\na large green star\n"))
    assert cli_main(_search(indexed, "--queries", "-", "--top", "2")) == 0
    objs = _json_lines(capsys.readouterr().out)
    assert [o["query"] for o in objs] == ["a red circle", "a large green star"]
    for obj, query in zip(objs, ["a red circle", "a large green star"]):
        _check_contract(obj, query)
