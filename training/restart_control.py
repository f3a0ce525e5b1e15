"""The control that the distillation gain needs: the same 300-step branch without a teacher.

    python -m training.restart_control --run runs/synthetic

`fast_distilled` branches off `fast` at step fast_steps and trains fast_extra_steps with its own
learning-rate schedule (warm-up back to the full rate, then cosine), while `fast` finishes its single
long cosine at a small rate. So `fast_distilled − fast` mixes two effects: the teacher, and restarting
the schedule. Here, for the run's seed and every seed under RUN/seeds/, the in-batch distillation stage
is trained again from the same branch point, on the same batches and schedule, with α = 0 (NCE only:
`fast_restart`, under RUN/control/seed<s>/). Then `fast`, `fast_restart` and `fast_distilled` are
evaluated on every test set with the run's own queries, and RUN/control/control.json records R@1 per seed
(mean ± sd) and two paired gains: restart − fast (the schedule alone) and distilled − restart (the teacher
alone). The `fast` and `fast_distilled` values repeat the run's report exactly (same weights, same queries).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from . import evaluate
from .distill import load_splits, make_tokenizer
from .loop import init_distributed
from .params import TrainConfig
from .results import Evaluation
from .seeds import mean_sd
from .stages import FastSpec, run_distill, run_fast, run_slow

logger = logging.getLogger("training.restart_control")

MODELS = ("fast", "fast_restart", "fast_distilled")


def _seed_folders(run: Path, seeds: int) -> dict[int, Path]:
    """Seed index -> the folder holding that seed's stages (the run itself for seed 0)."""
    folders = {s: run if s == 0 else run / "seeds" / f"seed{s}" for s in range(seeds)}
    return {s: folder for s, folder in folders.items() if folder.is_dir()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.restart_control", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished training.distill run folder")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")

    cfg = TrainConfig(**json.loads((args.run / "config.json").read_text()))
    env = init_distributed()
    train, val, test, shifted = load_splits(cfg, args.run, env)  # the run's own data
    tokenizer = make_tokenizer(cfg, args.run, train, env)
    slow, _ = run_slow(cfg, args.run, train, tokenizer, env)  # finished: only loads

    models: dict[int, dict[str, FastSpec]] = {}
    for s, source in _seed_folders(args.run, cfg.seed_runs).items():
        folder = args.run / "control" / f"seed{s}"
        branch = folder / "stages" / "fast_branch"
        if not branch.exists():
            branch.parent.mkdir(parents=True, exist_ok=True)
            branch.symlink_to((source / "stages" / "fast_branch").resolve(), target_is_directory=True)
        sub = replace(cfg, seed=cfg.seed + s, alpha=0.0)  # the seed's batches; no teacher term
        torch.manual_seed(sub.seed + env.rank)
        restart, _ = run_distill(sub, folder, train, tokenizer, slow, env, mode="in_batch")
        seed_cfg = replace(cfg, seed=cfg.seed + s)  # finished stages: run_fast / run_distill only load them
        models[s] = {"fast": run_fast(seed_cfg, source, train, tokenizer, env)[0], "fast_restart": restart,
                     "fast_distilled": run_distill(seed_cfg, source, train, tokenizer, slow, env)[0]}

    tests = {name: items for name, items in (("test", test), ("shifted", shifted)) if items}
    evaluation = Evaluation(cfg, args.run, tokenizer, slow, val, tests, env.device, time.perf_counter())
    r1: dict = {}
    for s, by_name in models.items():
        for name, spec in by_name.items():
            evaluation.add_fast(f"{name}#{s}", spec, {})
    for i, (split, items) in enumerate(evaluation.test_sets.items()):
        gallery = evaluate.Gallery(items, evaluation.scorer, evaluation.encoders)
        queries = evaluate.make_queries(items, cfg.eval_queries, cfg.seed + 2 + 10 * i)  # as the run's report
        values = {label: evaluate.evaluate_fast(gallery, label, queries)["R@1"] for label in evaluation.encoders}
        r1[split] = {name: mean_sd([values[f"{name}#{s}"] for s in models]) for name in MODELS}
    gains = {}
    for what, (a, b) in {"restart_minus_fast": ("fast_restart", "fast"),
                         "distilled_minus_restart": ("fast_distilled", "fast_restart")}.items():
        gains[what] = {split: mean_sd([round(x - y, 2) for x, y in zip(by[a]["values"], by[b]["values"])])
                       for split, by in r1.items()}
    result = {"run": str(args.run), "seeds": [cfg.seed + s for s in models], "R@1": r1, "gain": gains,
              "by": "python -m training.restart_control"}
    (args.run / "control" / "control.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
