"""Seed comparison: `fast` and each distilled student over several seeds, R@1 mean ± sd on every test set.

Seed 0 is the main run; seed s > 0 retrains the students under OUT/seeds/seed{s}/ with cfg.seed + s
(other initial weights, other batches, another teacher cache), each against the same frozen teacher.
Within a seed, `fast` and a distilled student take equal student steps (fast_steps + fast_extra_steps)
at the same batch size; `fast_distilled` even sees the very same batches as `fast`.

In report.json, "seeds" holds:
    {"seeds": [0, 1, 2],
     "R@1": {test set: {model: {"values": [per seed], "mean": m, "sd": s}}},
     "gain": {student: {test set: {"values": [per-seed student − fast], "mean": g,
                                   "sd": max(sd(fast), sd(student)), "paired_sd": sd(values),
                                   "gain_vs_2sd": g > 2 · sd}}}}
sd is the sample standard deviation (n − 1), 0 for one seed (and gain_vs_2sd is then None).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fastslow_desktop.models.fast import FastEncoder
from fastslow_desktop.models.preprocess import ImagePreprocess

from . import evaluate
from .loop import Dist
from .params import TrainConfig
from .results import DISTILLED_NAMES, Evaluation
from .stages import FastSpec, run_distill, run_fast

logger = logging.getLogger(__name__)


def train_seeds(cfg: TrainConfig, out: Path, train: list, tokenizer, slow, env: Dist, fast: FastSpec,
                distilled: dict) -> dict[int, dict[str, FastSpec]]:
    """{seed index: {"fast": spec, student name: spec}}, seed 0 being the main run's models."""
    models = {0: {"fast": fast, **{DISTILLED_NAMES[m]: spec for m, (spec, _) in distilled.items()}}}
    for s in range(1, cfg.seed_runs):
        sub = replace(cfg, seed=cfg.seed + s)
        folder = out / "seeds" / f"seed{s}"
        torch.manual_seed(sub.seed + env.rank)
        logger.info("seed %d of %d: training fast and the distilled students", s + 1, cfg.seed_runs)
        models[s] = {"fast": run_fast(sub, folder, train, tokenizer, env)[0]}
        for mode in cfg.distill_modes:
            models[s][DISTILLED_NAMES[mode]] = run_distill(sub, folder, train, tokenizer, slow, env, mode=mode)[0]
    return models


def mean_sd(values: list[float]) -> dict:
    """{"values", "mean", "sd"} of per-seed figures (sd: sample, 0 for one seed)."""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"values": values, "mean": round(float(np.mean(values)), 2), "sd": round(sd, 2)}


def _r1(run: Evaluation, split: str, model: str, seed: int, spec: FastSpec) -> float:
    """R@1 of one seed's model on one test set (seed 0's rows are already in the report)."""
    if seed == 0:
        return next(r["R@1"] for r in run.rows[split] if r["model"] == model and r["K"] is None)
    label = f"{model}#seed{seed}"
    gallery = run.galleries[split]
    if label not in gallery.encoders:
        gallery.add_fast(label, FastEncoder(spec.model, run.tokenizer, ImagePreprocess(spec.preprocess), label,
                                            device=run.device, backend="torch"))  # fp32 figures, as results.py
    return evaluate.evaluate_fast(gallery, label, run.queries[split])["R@1"]


def summarize(run: Evaluation, models: dict[int, dict[str, FastSpec]]) -> dict:
    """R@1 per seed, model and test set, and each student's gain over `fast` (see the module doc)."""
    seeds = sorted(models)
    names = list(models[0])
    r1 = {split: {name: mean_sd([_r1(run, split, name, s, models[s][name]) for s in seeds]) for name in names}
          for split in run.galleries}
    gain: dict = {}
    for name in names[1:]:
        gain[name] = {}
        for split, by_model in r1.items():
            values = [round(a - b, 2) for a, b in zip(by_model[name]["values"], by_model["fast"]["values"])]
            paired = mean_sd(values)
            sd = max(by_model["fast"]["sd"], by_model[name]["sd"])
            gain[name][split] = {"values": values, "mean": paired["mean"], "sd": sd, "paired_sd": paired["sd"],
                                 "gain_vs_2sd": bool(paired["mean"] > 2 * sd) if len(seeds) > 1 else None}
    return {"seeds": [run.cfg.seed + s for s in seeds], "R@1": r1, "gain": gain}
