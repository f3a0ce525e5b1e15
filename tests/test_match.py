"""The match judgement (issue 17): PMI against the caption's prior, the manifest's calibration, the
engine's match fields, and `fastslow search --json / --only-matches`."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from fastslow_desktop.cli import main as cli_main
from fastslow_desktop.library import Library
from fastslow_desktop.media import load_image
from fastslow_desktop.models import load_bundle
from fastslow_desktop.models.match import LABELS, MatchCalibration, MatchJudge, match_features
from fastslow_desktop.search import SearchEngine, SearchRequest
from tests import test_hub
from training.calibrate_bundle import fit_logistic, write_manifest

hub_cache = test_hub.hub_cache  # the fixture: a tiny CoCa in an offline hub cache

QUERY = "a red circle to the left of a blue square"
# p ≈ 1 for the result whose PMI is above every other one, ≈ 0 below: exactly one "yes" per query.
TOP_ONLY = MatchCalibration(prior="blank", features=("margin",), coef=(1e4,), intercept=0.0, t_yes=0.5, t_maybe=0.2)
NOTHING = MatchCalibration(prior="zeros", features=("pmi",), coef=(0.0,), intercept=-30.0, t_yes=0.9, t_maybe=0.5)


def _image(colour: tuple[int, int, int]):
    from PIL import Image

    return Image.new("RGB", (64, 64), colour)


def _calibrated(tiny_bundle: Path, folder: Path, cal: MatchCalibration | None) -> Path:
    shutil.copytree(tiny_bundle, folder)
    if cal is not None:
        write_manifest(folder, cal)
    return folder


def _cli(capsys, library: Path, bundle: Path, *args: str) -> tuple[int, str, str]:
    code = cli_main(["search", "--library", str(library), "--models", str(bundle), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_calibration_round_trips_through_the_manifest(tiny_bundle, tmp_path):
    cal = MatchCalibration(prior="zeros", features=("pmi", "margin"), coef=(0.5, 2.0), intercept=-1.25,
                           t_yes=0.8, t_maybe=0.3, fitted={"data": "test"})
    bundle = _calibrated(tiny_bundle, tmp_path / "b", cal)
    stored = json.loads((bundle / "manifest.json").read_text())["match"]
    assert stored["prior"] == "zeros" and stored["coef"] == [0.5, 2.0] and stored["fitted"] == {"data": "test"}
    loaded = load_bundle(bundle).match_calibration
    assert loaded == cal and loaded.fitted == {"data": "test"}


def test_bundle_without_calibration_judges_nothing_and_does_not_crash(tiny_bundle, indexed_library):
    models = load_bundle(tiny_bundle)
    assert models.match_calibration is None and models.matcher is None
    with Library.open(indexed_library, models) as library:
        engine = SearchEngine(library, models)
        result = engine.search(SearchRequest(text=QUERY, top=10, k=5))
        engine.close()
    assert result.stage == 2 and sum(r.slow_score is not None for r in result.results) == 5
    assert all(r.match is None and r.match_probability is None for r in result.results)
    assert result.any_match is None and result.to_json()["any_match"] is None


def test_invalid_calibration_is_ignored_with_a_warning(tiny_bundle, tmp_path, caplog):
    bundle = _calibrated(tiny_bundle, tmp_path / "b", None)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["match"] = {"prior": "moon", "features": ["pmi"], "coef": [1.0]}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        models = load_bundle(bundle)
    assert models.match_calibration is None and "invalid match calibration" in caplog.text


def test_judge_scores_pmi_against_the_null_image_prior(tiny_bundle):
    models = load_bundle(tiny_bundle)
    judge = MatchJudge(models.slow, MatchCalibration(prior="blank", features=("pmi",), coef=(1.0,), intercept=0.0))
    prior = judge.prior(QUERY)
    verdicts = judge.judge([prior, prior + 2.0, prior - 3.0], [(1.0, QUERY)], n_tokens=8)
    # p = σ(h − log p(y)): 0.5 exactly at the prior.
    sigmoid = [1 / (1 + np.exp(-d)) for d in (0.0, 2.0, -3.0)]
    assert np.allclose([p for _, p in verdicts], sigmoid, atol=1e-6)
    assert [label for label, _ in verdicts] == ["yes", "yes", "no"]
    assert judge.prior_forwards == 1


def test_margin_feature_compares_with_the_best_other_result():
    f = match_features([5.0, 9.0, 1.0], n_tokens=4)
    assert f["margin"].tolist() == [-4.0, 4.0, -8.0] and f["pmi_per_token"].tolist() == [1.25, 2.25, 0.25]
    assert match_features([3.0], 4)["margin"].tolist() == [0.0]


def test_worst_token_is_the_lowest_caption_position(tiny_bundle):
    import torch

    slow = load_bundle(tiny_bundle).slow
    tokens = slow.visual_tokens([_image((200, 30, 30)), _image((30, 30, 200))])
    worst = slow.worst_token(QUERY, [tokens[:1], tokens[1:]])
    ids = slow.tokenizer([QUERY]).expand(2, -1)
    with torch.no_grad():
        per = slow.model.token_logprobs(ids, tokens, "fwd") + slow.model.token_logprobs(ids, tokens, "bwd")
    real = ids[0] != 0
    assert np.allclose(worst, per[:, real].min(1).values.numpy(), atol=1e-4)
    # the lowest of the 12 positions times 12 is at most their sum h(x, y)
    assert (worst < 0).all() and (worst * real.sum().item() <= slow.score_tokens(QUERY, tokens) + 1e-3).all()


def test_engine_feeds_worst_token_features_to_the_judge(tiny_bundle, indexed_library, tmp_path):
    cal = MatchCalibration(prior="blank", features=("worst_token_margin",), coef=(1e4,), intercept=0.0, t_yes=0.5)
    models = load_bundle(_calibrated(tiny_bundle, tmp_path / "b", cal))
    with Library.open(indexed_library, models) as library:
        engine = SearchEngine(library, models)
        result = engine.search(SearchRequest(text=QUERY, top=10, k=6, kind="image"))
        engine.close()
    judged = [r for r in result.results if r.slow_score is not None]
    images = [load_image(r.path) for r in judged]
    tokens = models.slow.visual_tokens(images)
    worst = models.slow.worst_token(QUERY, [tokens[i:i + 1] for i in range(len(judged))])
    # The one "yes" is the result whose worst word the image explains best.
    assert [r.match for r in judged].count("yes") == 1
    assert judged[int(np.argmax(worst))].match == "yes"


def test_prior_is_computed_once_per_query_text(tiny_bundle, indexed_library, tmp_path):
    models = load_bundle(_calibrated(tiny_bundle, tmp_path / "b", TOP_ONLY))
    with Library.open(indexed_library, models) as library:
        engine = SearchEngine(library, models)
        engine.search(SearchRequest(text=QUERY, top=10, k=8))
        assert models.matcher.prior_forwards == 1  # one forward for the 8 candidates, not 8
        engine.search(SearchRequest(text=QUERY, top=5, k=4))
        assert models.matcher.prior_forwards == 1  # cached
        engine.search(SearchRequest(text="a large green star", top=5, k=4))
        engine.close()
    assert models.matcher.prior_forwards == 2


def test_engine_judges_every_reranked_result(tiny_bundle, indexed_library, tmp_path):
    models = load_bundle(_calibrated(tiny_bundle, tmp_path / "b", TOP_ONLY))
    with Library.open(indexed_library, models) as library:
        engine = SearchEngine(library, models)
        result = engine.search(SearchRequest(text=QUERY, top=12, k=6))
        only = engine.search(SearchRequest(text=QUERY, top=12, k=6, only_matches=True))
        engine.close()
    judged = [r for r in result.results if r.slow_score is not None]
    assert len(judged) >= 5 and all(r.match in LABELS and 0.0 <= r.match_probability <= 1.0 for r in judged)
    assert all(r.match is None for r in result.results if r.slow_score is None)
    assert [r.match for r in judged].count("yes") == 1 and result.any_match is True
    assert [r.path for r in only.results] == [r.path for r in judged if r.match == "yes"]


def test_cli_json_has_match_fields_and_only_matches_filters(tiny_bundle, indexed_library, tmp_path, capsys):
    bundle = _calibrated(tiny_bundle, tmp_path / "b", TOP_ONLY)
    code, out, _ = _cli(capsys, indexed_library, bundle, QUERY, "--json", "--top", "10", "--k", "6")
    obj = json.loads(out)
    assert code == 0 and obj["any_match"] is True
    judged = [r for r in obj["results"] if r["slow_score"] is not None]
    assert judged and all(r["match"] in LABELS and isinstance(r["match_probability"], float) for r in judged)
    code, out, _ = _cli(capsys, indexed_library, bundle, QUERY, "--json", "--top", "10", "--k", "6", "--only-matches")
    kept = json.loads(out)["results"]
    assert code == 0 and [r["path"] for r in kept] == [r["path"] for r in judged if r["match"] == "yes"]
    assert len(kept) == 1 and kept[0]["match"] == "yes"


def test_cli_no_rerank_leaves_match_null_and_refuses_only_matches(tiny_bundle, indexed_library, tmp_path, capsys):
    bundle = _calibrated(tiny_bundle, tmp_path / "b", TOP_ONLY)
    code, out, _ = _cli(capsys, indexed_library, bundle, QUERY, "--json", "--no-rerank")
    obj = json.loads(out)
    assert code == 0 and obj["results"] and obj["any_match"] is None
    assert all(r["match"] is None and r["match_probability"] is None for r in obj["results"])
    code, out, err = _cli(capsys, indexed_library, bundle, QUERY, "--no-rerank", "--only-matches")
    assert code == 2 and out == "" and "--only-matches needs re-ranking" in err


def test_cli_only_matches_without_calibration_says_why(tiny_bundle, indexed_library, capsys):
    code, out, err = _cli(capsys, indexed_library, tiny_bundle, QUERY, "--only-matches")
    assert code == 2 and out == "" and "no match calibration" in err


def test_table_shows_the_judgement_and_says_when_nothing_matches(tiny_bundle, indexed_library, tmp_path, capsys):
    bundle = _calibrated(tiny_bundle, tmp_path / "yes", TOP_ONLY)
    code, out, _ = _cli(capsys, indexed_library, bundle, QUERY, "--top", "5", "--k", "5")
    assert code == 0 and " match " in out.splitlines()[1] and re.search(r"yes [01]\.\d\d", out)
    assert "shows exactly that" not in out
    bundle = _calibrated(tiny_bundle, tmp_path / "none", NOTHING)
    code, out, _ = _cli(capsys, indexed_library, bundle, QUERY, "--top", "5", "--k", "5")
    assert code == 0 and "no 0.00" in out and "yes " not in out
    assert "\nNo photo shows exactly that — closest results below.\n" in out  # the library holds photos only
    code, out, _ = _cli(capsys, indexed_library, bundle, QUERY, "--json", "--only-matches")
    assert code == 0 and json.loads(out)["results"] == [] and json.loads(out)["any_match"] is False


def test_fit_logistic_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2))
    y = (rng.random(20000) < 1 / (1 + np.exp(-(2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5)))).astype(float)
    coef, intercept = fit_logistic(x, y)
    assert np.allclose(coef, [2.0, -1.0], atol=0.15) and abs(intercept - 0.5) < 0.15


def test_a_coca_slow_model_gets_the_same_judgement(hub_cache):
    from fastslow_desktop.models.bundle import Models
    cal = MatchCalibration(prior="blank", features=("pmi", "worst_token"), coef=(1.0, 0.5), intercept=0.0)
    models = Models({**test_hub._hub_manifest(), "match": cal.to_dict()}, None, device="cpu")
    slow, judge = models.slow, models.matcher
    tokens = slow.visual_tokens([_image((200, 30, 30)), _image((30, 30, 200))])
    h = slow.score_tokens("a photo of a dog", tokens)
    worst = slow.worst_token("a photo of a dog", [tokens[:1], tokens[1:]])
    n = int((slow.tokenizer(["a photo of a dog"]) != 0).sum()) - 1  # positions a forward decoder predicts
    assert worst.shape == (2,) and (worst < 0).all() and (worst * n <= h + 1e-3).all()
    verdicts = judge.judge(h, [(1.0, "a photo of a dog")], n, worst)
    expected = 1 / (1 + np.exp(-((h - judge.prior("a photo of a dog")) + 0.5 * worst)))
    assert np.allclose([p for _, p in verdicts], expected, atol=1e-5) and judge.prior_forwards == 1
