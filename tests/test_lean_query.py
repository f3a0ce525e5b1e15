"""The lean one-shot query (issue 15): `fastslow search --no-rerank` embeds text without torch, builds no
slow model and no image tower, and gives the same results as the torch path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fastslow_desktop.cli import main as cli_main
from tests.test_search_engine import build_small_library

REPO = Path(__file__).resolve().parent.parent
QUERIES = ("a red circle", "two small yellow triangles", "a large green star to the left of a blue square")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_bundle):
    root = tmp_path_factory.mktemp("lean-query")
    build_small_library(root, tiny_bundle, n_images=16, n_videos=1).close()
    return {"library": root / "library", "bundle": tiny_bundle}


def _search(indexed, query: str, *extra: str) -> list[str]:
    return ["search", query, "--library", str(indexed["library"]), "--models", str(indexed["bundle"]),
            "--no-rerank", "--json", "--top", "8", *extra]


def _results(out: str) -> list[tuple[str, float]]:
    [obj] = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(r["path"], r["score"]) for r in obj["results"]]


def _export_folder() -> Path | None:
    folders = list((Path(os.environ["FASTSLOW_CACHE"]) / "text-onnx").glob("*/meta.json"))
    return folders[0].parent if folders else None


def test_clip_bpe_gives_open_clip_ids_without_torch():
    from open_clip.tokenizer import SimpleTokenizer

    from fastslow_desktop.models.bpe import ClipBpe

    ours, theirs = ClipBpe(), SimpleTokenizer()
    texts = ["a red circle to the left of a blue square", "Café &amp; crème brûlée!!", "  Two   DOGS\tplaying\n",
             "héllo wörld 😀 日本語のテキスト", "<start_of_text> hi <END_OF_TEXT>", "it's they'll we've I'm",
             "1234 3.14 $5", "", "x" * 200, "Ã©tÃ© mojibake", "&lt;b&gt;bold&lt;/b&gt;", "naïve coöperate"]
    texts += [theirs.decode(list(range(i, i + 7))) for i in range(300, 49000, 997)]  # pieces from all over the table
    assert [ours.encode(t) for t in texts] == [theirs.encode(t) for t in texts]
    assert (ours.sot_token_id, ours.eot_token_id, ours.encoder) == (theirs.sot_token_id, theirs.eot_token_id,
                                                                    theirs.encoder)


def test_the_ascii_shortcut_past_ftfy_changes_nothing_ftfy_would():
    import random
    import string

    import ftfy

    from fastslow_desktop.models.bpe import _fix_text

    rng = random.Random(3)
    alphabet = string.printable.replace("&", "")  # with tab, newline and \r: those go to ftfy
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(2000)]
    texts += ["a dog on the beach", "<b>bold</b> 'quoted' \"double\" `tick`", "1/2 -- x^2 ~ {a|b}", "\x1b[31mred",
              "line\r\nbreak", "ALL CAPS?!", "&amp; goes to ftfy", "caf\u00c3\u00a9"]
    assert [_fix_text(t) for t in texts] == [ftfy.fix_text(t) for t in texts]


def test_no_rerank_search_builds_no_slow_model_and_the_next_one_no_torch_encoder(indexed, capsys, monkeypatch):
    from fastslow_desktop.models import build

    def forbidden(*args, **kwargs):
        raise AssertionError("the slow model was built for a --no-rerank search")

    monkeypatch.setattr(build, "build_slow", forbidden)
    assert _export_folder() is None
    assert cli_main(_search(indexed, QUERIES[0])) == 0  # nothing exported yet: torch embeds, then exports
    first = _results(capsys.readouterr().out)
    assert first and _export_folder() is not None

    monkeypatch.setattr(build, "build_fast", lambda *a, **kw: (_ for _ in ()).throw(
        AssertionError("the torch fast encoder was built although the lean text encoder is exported")))
    assert cli_main(_search(indexed, QUERIES[0])) == 0
    again = _results(capsys.readouterr().out)
    assert [p for p, _ in again] == [p for p, _ in first]
    assert [s for _, s in again] == pytest.approx([s for _, s in first], abs=1e-5)


def test_lean_results_equal_the_torch_results(indexed, capsys, monkeypatch):
    torch_runs = []
    monkeypatch.setenv("FASTSLOW_TEXT_ONNX", "0")
    for query in QUERIES:
        assert cli_main(_search(indexed, query)) == 0
        torch_runs.append(_results(capsys.readouterr().out))
    assert _export_folder() is None  # disabled: nothing exported either
    monkeypatch.delenv("FASTSLOW_TEXT_ONNX")
    assert cli_main(_search(indexed, QUERIES[0])) == 0  # exports
    capsys.readouterr()
    for query, expected in zip(QUERIES, torch_runs):
        assert cli_main(_search(indexed, query)) == 0
        got = _results(capsys.readouterr().out)
        assert [p for p, _ in got] == [p for p, _ in expected], query
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5), query


def test_backend_torch_keeps_text_on_torch(indexed, capsys, monkeypatch):
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.fast import FastEncoder
    from fastslow_desktop.models.text_onnx import LeanTextEncoder, export_text_tower

    models = load_bundle(indexed["bundle"], device="cpu")
    assert export_text_tower(models) is not None
    assert isinstance(load_bundle(indexed["bundle"], device="cpu").text_encoder, LeanTextEncoder)
    monkeypatch.setenv("FASTSLOW_BACKEND", "torch")
    assert isinstance(load_bundle(indexed["bundle"], device="cpu").text_encoder, FastEncoder)


def test_a_damaged_export_is_removed_and_torch_answers(indexed, capsys, caplog):
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.text_onnx import DATA, export_text_tower

    folder = export_text_tower(load_bundle(indexed["bundle"], device="cpu"))
    assert cli_main(_search(indexed, QUERIES[1])) == 0
    expected = _results(capsys.readouterr().out)
    data = folder / DATA
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size: only the checksum can tell
    data.write_bytes(bytes(blob))
    assert cli_main(_search(indexed, QUERIES[1])) == 0
    captured = capsys.readouterr()
    assert [p for p, _ in _results(captured.out)] == [p for p, _ in expected]
    assert "unusable" in caplog.text and "sha256" in caplog.text
    assert (folder / DATA).is_file()  # removed, then exported again by the torch search that followed
    assert (folder / "meta.json").is_file() and bytes(blob) != (folder / DATA).read_bytes()


def test_one_shot_search_imports_neither_torch_nor_open_clip(indexed, tmp_path):
    """In a fresh process, as a person runs it: after the export, a --no-rerank text query leaves torch,
    open_clip and transformers unimported (they cost seconds), and finishes well inside a safety limit."""
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.text_onnx import export_text_tower

    assert export_text_tower(load_bundle(indexed["bundle"], device="cpu")) is not None
    script = ("import sys, json\nfrom fastslow_desktop.cli import main\ncode = main(sys.argv[1:])\n"
              "heavy = sorted(m for m in ('torch', 'open_clip', 'transformers', 'torchvision', 'ftfy') "
              "if m in sys.modules)\n"
              "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", script, *_search(indexed, QUERIES[2])], env=env,
                          capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, proc.stderr
    assert _results(proc.stdout)
    assert wall < 60, f"a one-shot lean query took {wall:.1f} s"  # a safety limit only; benchmarks time it


def test_skipped_init_leaves_torch_init_working_afterwards():
    import torch

    from fastslow_desktop.models.build import skipped_init

    tensor = torch.zeros(64)
    with pytest.raises(RuntimeError):
        with skipped_init():
            torch.nn.init.normal_(tensor)
            assert bool((tensor == 0).all())  # nothing was written inside
            raise RuntimeError("a build that fails")
    torch.nn.init.normal_(tensor)
    assert float(tensor.abs().sum()) > 0  # restored even after the failure


def test_skipped_init_skips_only_in_its_own_thread():
    """The app loads models on a worker thread while other code may build a model to train or test."""
    import threading

    import torch

    from fastslow_desktop.models.build import skipped_init

    inside, leave = threading.Event(), threading.Event()

    def load():
        with skipped_init():
            inside.set()
            leave.wait(30)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        assert inside.wait(30)
        built = torch.nn.Linear(16, 16)
        assert torch.nn.init.constant_(torch.zeros(4), 1.0).tolist() == [1.0] * 4
    finally:
        leave.set()
        loader.join()
    assert float(built.weight.abs().sum()) > 0 and bool(torch.isfinite(built.weight).all())
    with skipped_init(), skipped_init():  # nested blocks
        pass
    assert torch.nn.init.constant_(torch.zeros(2), 1.0).tolist() == [1.0, 1.0]


def test_a_failed_export_is_not_retried_by_every_search(indexed, capsys, monkeypatch):
    from fastslow_desktop.models import text_onnx

    attempts = []

    def failing(encoder, tmp, short):
        attempts.append(tmp)
        raise RuntimeError("the exporter cannot trace this model")

    monkeypatch.setattr(text_onnx, "_write_export", failing)
    for _ in range(2):
        assert cli_main(_search(indexed, QUERIES[0])) == 0
        assert _results(capsys.readouterr().out)
    assert len(set(attempts)) == 1 and _export_folder() is None  # tried once; torch answered both times
    assert list((Path(os.environ["FASTSLOW_CACHE"]) / "text-onnx").glob("*.failed"))


def test_app_startup_answers_its_first_query_with_the_lean_text_tower(indexed, monkeypatch):
    """The desktop app's start-up job warms the lean text tower when one is exported, so the window is
    searchable before torch's fast encoder exists; warm_slow exports the tower when it is missing."""
    import threading

    from fastslow_desktop.models import build, load_bundle
    from fastslow_desktop.models.text_onnx import cache_folder, export_text_tower
    from fastslow_desktop.search import SearchRequest
    from fastslow_desktop.ui.services import ServiceConfig, Services, default_engine_factory
    from fastslow_desktop.ui.workers.startup import load_services, warm_slow

    models = load_bundle(indexed["bundle"], device="cpu")
    assert export_text_tower(models) is not None
    real_build_fast = build.build_fast
    monkeypatch.setattr(build, "build_fast", lambda *a, **kw: (_ for _ in ()).throw(
        AssertionError("start-up built the torch fast encoder although the lean text tower is exported")))
    config = ServiceConfig(library_dir=indexed["library"], models=str(indexed["bundle"]), device="cpu")
    outcome = load_services(config, default_engine_factory, threading.Event(), lambda step: None)
    assert isinstance(outcome, Services), outcome
    try:
        assert outcome.models.has_lean_text and not outcome.models.fast_loaded
        stage1 = outcome.engine.fast(SearchRequest(text=QUERIES[1], top=5, k=0))
        assert stage1.results
        # Without an export, warm_slow (after the app is searchable) makes one for the next start.
        import shutil

        shutil.rmtree(cache_folder(outcome.models))
        monkeypatch.setattr(build, "build_fast", real_build_fast)
        warm_slow(outcome)
        assert (cache_folder(outcome.models) / "meta.json").is_file()
    finally:
        outcome.engine.close()
        outcome.library.close()


def test_a_one_shot_session_skips_weight_prepacking_and_embeds_the_same(indexed, capsys, monkeypatch):
    """`fastslow search TEXT` (one query) starts ONNX Runtime without pre-packed weights; `--queries`
    keeps them. Both give the same embeddings."""
    import numpy as np

    import fastslow_desktop.search.engine as engine_module
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.text_onnx import export_text_tower, load_lean

    models = load_bundle(indexed["bundle"], device="cpu")
    assert export_text_tower(models) is not None
    packed = load_lean(models)
    models.text_prepack = False
    unpacked = load_lean(models)
    assert packed is not None and unpacked is not None
    assert np.allclose(packed.encode_texts(list(QUERIES)), unpacked.encode_texts(list(QUERIES)), atol=1e-5)

    seen = []
    original = engine_module.SearchEngine.__init__

    def spy(self, library, models, *a, **kw):
        seen.append(models.text_prepack)
        original(self, library, models, *a, **kw)

    monkeypatch.setattr(engine_module.SearchEngine, "__init__", spy)
    assert cli_main(_search(indexed, QUERIES[0])) == 0
    assert seen == [False]
    assert _results(capsys.readouterr().out)


def _lean_matches_torch(lean, models, texts) -> float:
    return float(np.min(np.sum(lean.encode_texts(texts) * models.fast.encode_texts(texts), axis=1)))


TEXTS_OF_MANY_LENGTHS = ["red", "a large green star above two small yellow triangles on a white background",
                         "a blue square", "Café crème & a croissant!"]


def test_queries_that_fit_run_the_short_graph_and_embed_as_torch_does(indexed, monkeypatch):
    """A causal tower pooling at the end-of-text token also gets a graph of the first SHORT positions,
    sharing the weight file: a short query runs it (the full graph's session is never made), a long one
    the full graph, and both embed as torch does at full length."""
    from fastslow_desktop.models import load_bundle, text_onnx
    from fastslow_desktop.models.text_onnx import DATA, FILE, META, SHORT_FILE, export_text_tower, load_lean

    monkeypatch.setattr(text_onnx, "SHORT", 4)  # the tiny bundle's context is 16 positions, CLIP's 77

    models = load_bundle(indexed["bundle"], device="cpu")
    folder = export_text_tower(models)
    assert set(json.loads((folder / META).read_text())["sha256"]) == {FILE, DATA, SHORT_FILE}
    import onnx

    graph = onnx.load(str(folder / SHORT_FILE), load_external_data=False).graph
    inline = sum(len(t.raw_data) for t in graph.initializer)
    assert inline < (folder / DATA).stat().st_size / 4  # the weights are read from the full graph's file, not copied
    lean = load_lean(models)
    assert _lean_matches_torch(lean, models, ["red", "blue square"]) >= 0.9999  # 2 and 4 positions
    assert list(lean._sessions) == [SHORT_FILE]
    long_text = " ".join(["red circle"] * 12)
    assert _lean_matches_torch(lean, models, [long_text, *TEXTS_OF_MANY_LENGTHS]) >= 0.9999
    assert set(lean._sessions) == {SHORT_FILE, FILE}


def test_a_tower_that_pools_at_the_last_position_gets_no_short_graph(indexed, monkeypatch):
    from fastslow_desktop.models import load_bundle, text_onnx
    from fastslow_desktop.models.text_onnx import DATA, FILE, META, export_text_tower, load_lean

    monkeypatch.setattr(text_onnx, "SHORT", 4)

    models = load_bundle(indexed["bundle"], device="cpu")
    models.fast.model.text_pool_type = "last"  # the pooled position is now past the short graph's end
    folder = export_text_tower(models)
    assert set(json.loads((folder / META).read_text())["sha256"]) == {FILE, DATA}
    assert _lean_matches_torch(load_lean(models), models, TEXTS_OF_MANY_LENGTHS) >= 0.9999


def test_an_export_of_an_older_version_is_removed_once_the_new_one_is_made(indexed):
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.text_onnx import EXPORT_VERSION, META, export_text_tower

    models = load_bundle(indexed["bundle"], device="cpu")
    older, other_model = (Path(os.environ["FASTSLOW_CACHE"]) / "text-onnx" / name for name in ("old", "other"))
    for folder, model_id in ((older, models.model_id), (other_model, "someone else's model")):
        folder.mkdir(parents=True)
        (folder / META).write_text(json.dumps({"export_version": EXPORT_VERSION - 1, "model_id": model_id}))
    assert export_text_tower(models) is not None
    assert not older.exists() and other_model.is_dir()  # another model's export may still be in use


def test_a_short_context_gets_no_short_graph(indexed):
    """Two sessions of a small tower used in turn cost more than the positions saved."""
    from fastslow_desktop.models import load_bundle
    from fastslow_desktop.models.text_onnx import DATA, FILE, META, export_text_tower

    models = load_bundle(indexed["bundle"], device="cpu")
    assert models.fast.tokenizer.context_length < 64
    assert set(json.loads((export_text_tower(models) / META).read_text())["sha256"]) == {FILE, DATA}
