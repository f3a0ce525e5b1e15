"""training.distill beyond one plain run: two processes under torchrun, several seeds, calibration data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fastslow_desktop.models import load_bundle
from fastslow_desktop.synthscenes import satisfies
from training import calibration
from training.data import read_synthscenes_folder
from training.distill import main

ROOT = Path(__file__).resolve().parents[1]
# A few steps on tiny sets: the contract (files, keys, rows), not accuracy, is under test.
TINY = ["--preset", "smoke", "--fast-steps", "3", "--fast-extra-steps", "2", "--slow-steps", "3",
        "--train-images", "64", "--val-images", "24", "--test-images", "24", "--shifted-test-images", "24",
        "--eval-queries", "8", "--batch-size", "16", "--log-level", "WARNING"]
STUDENTS = ("fast", "fast_distilled_cached", "fast_distilled")


def _contract(run: Path) -> dict:
    """What a run promises, without the numbers: report keys, rows per test set, stage names, bundle files."""
    report = json.loads((run / "report.json").read_text())
    rows = {split: sorted((r["model"], r["K"] or 0, tuple(sorted(r))) for r in report[split])
            for split in ("results", "results_shifted")}
    return {"keys": sorted(report), "rows": rows, "stages": sorted(report["stages"]),
            "calibration": sorted(calibration.read(run / calibration.FILE)["sets"]),
            "bundle": sorted(p.name for p in (run / "bundle").iterdir())}


def test_torchrun_with_two_processes_keeps_the_single_process_contract(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "training.distill", *TINY, "--out", str(tmp_path / "ddp")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*TINY, "--out", str(tmp_path / "single")]) == 0
    assert _contract(tmp_path / "ddp") == _contract(tmp_path / "single")
    bundle = load_bundle(tmp_path / "ddp" / "bundle")
    assert bundle.fast.encode_texts(["a red circle"]).shape == (1, bundle.embedding_dim)
    for stage in ("fast", "slow", "distill", "distill_cached"):
        assert json.loads((tmp_path / "ddp" / "stages" / stage / "done.json").read_text())["steps_run"] > 0


def test_two_seeds_report_mean_and_sd_shifted_rows_and_calibration_arrays(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--seeds", "2", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {r["model"] for r in report["results_shifted"]} == {r["model"] for r in report["results"]}
    assert "24 shifted" in report["data"] and "| slow |" in (out / "report.md").read_text().split("Shifted")[1]

    seeds = report["seeds"]
    assert seeds["seeds"] == [0, 1] and (out / "seeds" / "seed1" / "stages" / "distill" / "done.json").is_file()
    for split in ("test", "shifted"):
        for name in STUDENTS:
            stats = seeds["R@1"][split][name]
            values = stats["values"]
            assert len(values) == 2 and stats["mean"] == round(float(np.mean(values)), 2)
            assert stats["sd"] == round(float(np.std(values, ddof=1)), 2)
        seed0 = {r["model"]: r["R@1"] for r in report["results" if split == "test" else "results_shifted"]}
        assert seeds["R@1"][split]["fast"]["values"][0] == seed0["fast"]  # seed 0 is the main run
        gain = seeds["gain"]["fast_distilled"][split]
        fast, student = seeds["R@1"][split]["fast"], seeds["R@1"][split]["fast_distilled"]
        assert gain["values"] == [round(a - b, 2) for a, b in zip(student["values"], fast["values"])]
        assert gain["gain_vs_2sd"] == (gain["mean"] > 2 * max(fast["sd"], student["sd"]))
    gain_row = next(line for line in (out / "report.md").read_text().splitlines()
                    if line.startswith("| gain fast_distilled − fast |"))
    assert f"paired sd {seeds['gain']['fast_distilled']['test']['paired_sd']})" in gain_row

    # tune_distill from seed 1's branch and batches, with the stage's peak rate as a grid axis.
    from training import tune_distill

    assert tune_distill.main(["--run", str(out), "--seed-index", "1", "--alphas", "0", "--lrs", "5e-4", "2e-3",
                              "--log-level", "WARNING"]) == 0
    tuned = json.loads((out / "tuning" / "seed1" / "tuning.json").read_text())
    assert tuned["seed"] == 1 and [p["lr"] for p in tuned["points"]] == [5e-4, 2e-3]
    branch = out / "tuning" / "seed1" / "alpha0_T1_neg7_lr0.0005" / "stages" / "fast_branch"
    assert branch.resolve() == (out / "seeds" / "seed1" / "stages" / "fast_branch").resolve()

    # query_kinds: R@1 per query kind for every seed's students, on validation.
    from training import query_kinds

    assert query_kinds.main(["--run", str(out), "--log-level", "WARNING"]) == 0
    kinds = json.loads((out / "query_kinds_val.json").read_text())
    assert sorted(kinds["models"]) == sorted(f"{m}#seed{s}" for m in ("fast", "fast_distilled") for s in (0, 1))
    for row in kinds["models"].values():
        assert sum(row["queries"].values()) == kinds["queries"] == 8
        if "pair" in row["R@1"]:
            misses = round(row["queries"]["pair"] * (1 - row["R@1"]["pair"] / 100))
            assert sum(row["pair_misses"].values()) == misses

    data = calibration.read(out / calibration.FILE)
    assert data["depth"] == data["gallery_size"] == 24  # depth = min(largest K, gallery): exhaustive here
    val = read_synthscenes_folder(out / "data" / "val")
    present, removed, absent = (data["sets"][k] for k in ("present", "removed", "absent"))
    assert present["queries"] == removed["queries"] and len(absent["queries"]) == len(present["queries"]) == 8
    for i, text in enumerate(present["queries"]):
        relevant = {j for j, item in enumerate(val) if satisfies(item.scene, text)}
        assert relevant and any(present["relevant"][i])
        assert not relevant & set(removed["candidates"][i]) and not any(removed["relevant"][i])
        assert removed["top_slow"][i] <= present["top_slow"][i]
        assert present["top_slow"][i] == max(present["slow"][i]) and len(present["fast"][i]) == 24
    for text in absent["queries"]:
        assert not any(satisfies(item.scene, text) for item in val)
    assert report["calibration"]["queries"] == {"present": 8, "removed": 8, "absent": 8}


def test_tune_distill_trains_each_grid_point_from_the_runs_branch_and_reports_validation(tmp_path):
    from training import tune_distill

    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    assert tune_distill.main(["--run", str(out), "--alphas", "0.5", "2", "--log-level", "WARNING"]) == 0
    result = json.loads((out / "tuning" / "tuning.json").read_text())
    assert [p["alpha"] for p in result["points"]] == [0.5, 2.0]
    for point in result["points"]:
        name = f"alpha{point['alpha']:g}_T1_neg7"
        assert json.loads((out / "tuning" / name / "stages" / "distill" / "done.json").read_text())["steps_run"] > 0
        assert point["gain_over_fast"] == round(point["val_R@1"] - result["fast_val_R@1"], 2)
    assert result["best"] in result["points"] and result["val_queries"] == 8
    with pytest.raises(SystemExit, match="no finished fast stage"):  # a one-seed run has no seed 1
        tune_distill.main(["--run", str(out), "--seed-index", "1", "--log-level", "WARNING"])


def test_restart_control_trains_the_teacherless_branch_and_repeats_the_reports_students(tmp_path):
    from training import restart_control

    out = tmp_path / "run"
    assert main([*TINY, "--out", str(out)]) == 0
    assert restart_control.main(["--run", str(out), "--log-level", "WARNING"]) == 0
    result = json.loads((out / "control" / "control.json").read_text())
    done = json.loads((out / "control" / "seed0" / "stages" / "distill" / "done.json").read_text())
    assert done["steps_run"] > 0 and done.get("teacher_pairs", 0) == 0  # alpha = 0: the teacher never scored
    report = json.loads((out / "report.json").read_text())
    for split, rows in (("test", report["results"]), ("shifted", report["results_shifted"])):
        reported = {r["model"]: r["R@1"] for r in rows if r["K"] is None}
        for name in ("fast", "fast_distilled"):
            assert result["R@1"][split][name]["values"] == [reported[name]]
        restart = result["R@1"][split]["fast_restart"]["values"][0]
        teacher_alone = result["gain"]["distilled_minus_restart"][split]["values"]
        assert teacher_alone == [round(reported["fast_distilled"] - restart, 2)]


def test_a_pair_miss_is_wrong_relation_only_when_the_scene_holds_the_same_two_objects():
    from fastslow_desktop.synthscenes import Scene, SceneObject
    from training.query_kinds import wrong_relation_only

    def pair(colour_top: str, colour_bottom: str) -> Scene:
        return Scene("pair", (SceneObject("square", colour_top, "large", 0.5, 0.2),
                              SceneObject("circle", colour_bottom, "small", 0.5, 0.8)))

    query = "a red square above a blue circle"
    assert not wrong_relation_only(pair("red", "blue"), query)  # a hit, not a miss
    swapped = Scene("pair", (SceneObject("square", "red", "large", 0.5, 0.8),
                             SceneObject("circle", "blue", "small", 0.5, 0.2)))
    assert wrong_relation_only(swapped, query)  # the twin: same objects, red square below
    assert not wrong_relation_only(pair("green", "blue"), query)  # other objects


def test_swapped_negatives_train_every_fast_stage_and_are_recorded_in_the_config(tmp_path, monkeypatch):
    from training import stages

    seen = []
    original = stages.contrastive_loss

    def spy(*args, **kwargs):
        if kwargs.get("extra_negatives") is not None:  # FastObjective's calls (the cached student has none)
            seen.append(int(torch.isfinite(kwargs["extra_negatives"]).sum()))
        return original(*args, **kwargs)

    monkeypatch.setattr(stages, "contrastive_loss", spy)
    out = tmp_path / "run"
    assert main([*TINY, "--swapped-negatives", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["swapped_negatives"] is True
    assert len(seen) == 5 + 2 and sum(seen) > 0  # every step of `fast` (3 + 2) and of the in-batch student (2)
    for stage in ("fast", "distill"):
        done = json.loads((out / "stages" / stage / "done.json").read_text())
        assert done["steps_run"] > 0 and all(np.isfinite(v) for v in done["last"].values())
