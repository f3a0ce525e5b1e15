"""The benchmark runner writes every figure issue 7 names, as well-formed JSON plus a markdown table.

Benchmarks are not part of the suite: this runs `python -m benchmarks.run --tiny` (the quick run's
code paths and names at toy sizes, in one process) with the tiny random bundle.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import required_names

REPO = Path(__file__).resolve().parent.parent
ISSUE_NAMES = [
    "index_images_per_s", "index_vs_naive_ratio", "index_model_ceiling_ratio", "ann_p50_ms@100k",
    "ann_recall@10@100k", "exact_p50_ms@100k", "query_fast_stage_p50_ms@100k", "rerank_ms@K=10",
    "rerank_ms@K=20", "rerank_ms@K=50", "slow_exhaustive_vs_rerank_ratio@1k", "index_vs_rclip_ratio",
    "cli_query_vs_rclip_ratio",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_bundle) -> Path:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = dict(os.environ, FASTSLOW_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--out", str(out), "--models", str(tiny_bundle),
         "--cache", str(out.parent / "cache")],
        cwd=REPO, env=env, capture_output=True, check=False, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_quick_and_full_runs_promise_every_figure_the_issue_names():
    for mode in ("quick", "full"):
        assert set(ISSUE_NAMES) <= set(required_names(mode))
    assert {"ann_p50_ms@1M", "ann_recall@10@1M", "exact_p50_ms@1M"} <= set(required_names("full"))
    assert not {n for n in required_names("quick") if n.endswith("@1M")}


@pytest.mark.slow
def test_tiny_run_writes_every_quick_figure_as_well_formed_json(tiny_run):
    data = json.loads(tiny_run.read_text())
    names = [row["name"] for row in data["results"]]
    assert set(required_names("quick")) <= set(names)
    assert len(names) == len(set(names))
    for row in data["results"]:
        assert set(row) >= {"name", "value", "unit", "baseline", "ratio"}
        for key in ("value", "baseline", "ratio"):
            assert row[key] is None or (isinstance(row[key], (int, float)) and math.isfinite(row[key]))
        if row["value"] is None:
            assert row["note"], f"{row['name']} is null without a reason"
    machine = data["machine"]
    for key in ("cpu", "cores", "ram_gb", "torch", "torch_threads", "gpu", "load_average_start", "load_average_end"):
        assert key in machine
    assert machine["mode"] == "tiny"


@pytest.mark.slow
def test_tiny_run_measures_the_local_figures_and_writes_the_table(tiny_run):
    rows = {row["name"]: row for row in json.loads(tiny_run.read_text())["results"]}
    for name in ("index_images_per_s", "index_vs_naive_ratio", "index_model_ceiling_ratio", "ann_p50_ms@100k",
                 "ann_recall@10@100k", "exact_p50_ms@100k", "query_fast_stage_p50_ms@100k", "rerank_ms@K=20",
                 "slow_exhaustive_vs_rerank_ratio@1k", "index_peak_rss_mb@ViT-B-32"):
        assert rows[name]["value"] is not None and rows[name]["value"] > 0, name
    assert 0 <= rows["ann_recall@10@100k"]["value"] <= 1
    table = tiny_run.with_suffix(".md").read_text()
    assert "| `index_vs_naive_ratio` |" in table and "cores" in table


def test_gpu_runner_measures_each_group_on_the_device_against_this_machines_cpu(tmp_path, tiny_bundle):
    """`benchmarks.gpu` (run by gpu_check.sh on a lent GPU) at toy sizes on the CPU: every group writes
    its rows with a same-run CPU baseline; without --allow-cpu and no CUDA it says so and measures nothing."""
    env = dict(os.environ, FASTSLOW_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    common = ["--models", str(tiny_bundle), "--cache", str(tmp_path / "cache")]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--tiny", "--allow-cpu",
                           "--out", str(tmp_path / "gpu.json"), *common],
                          cwd=REPO, env=env, capture_output=True, check=False, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert data["machine"]["device"] == "cpu" and data["machine"]["notes"] == []
    rows = {r["name"]: r for r in data["results"]}
    for name in ("encoder_images_per_s@fast-tiny[cpu,torch]", "index_images_per_s[cpu]",
                 "index_images_per_s@fast-tiny[cpu]", "rerank_ms@K=20", "slow_exhaustive_vs_rerank_ratio@1k"):
        assert rows[name]["value"] > 0, name
    assert rows["index_images_per_s[cpu]"]["baseline"] > 0
    assert rows["fp16_min_cosine_vs_fp32@fast-tiny[cpu]"]["value"] is None  # fp16 is CUDA's backend
    assert (tmp_path / "gpu.md").is_file()

    import torch

    if not torch.cuda.is_available():
        proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--tiny", "--out", str(tmp_path / "none.json"),
                               *common], cwd=REPO, env=env, capture_output=True, check=False, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        [row] = json.loads((tmp_path / "none.json").read_text())["results"]
        assert row["value"] is None and "no CUDA" in row["note"]


def test_index_budget_bound_is_cores_times_encoder_wall_over_all_cpu_spent_per_photo():
    from benchmarks.index_budget import results

    measured = {"arch": "ViT-B-32", "backend": "int8", "photos": 50, "tensors": 64, "cores": 2,
                "decode_ms": {"hash": 1.0, "decode": 20.0, "thumbnail": 2.0, "preprocess": 2.0},
                "encoder_wall_ms": 50.0, "encoder_cpu_ms": 100.0}
    rows = {r.name: r for r in results(measured)}
    assert rows["index_decode_cpu_ms@ViT-B-32"].value == 25.0
    bound = rows["index_ceiling_ratio_bound@ViT-B-32"]
    assert bound.value == pytest.approx(2 * 50 / 125) and bound.met is False
    # an encoder that leaves a core idle (CPU = wall) leaves room for decoding
    measured["encoder_cpu_ms"] = 50.0
    assert {r.name: r for r in results(measured)}["index_ceiling_ratio_bound@ViT-B-32"].met is True
