"""Choose the distillation settings on validation: α, teacher temperature, the teacher's negatives, the rate.

    python -m training.tune_distill --run runs/synthetic --alphas 1 4 --teacher-temperatures 1 4
    python -m training.tune_distill --run runs/synthetic --seed-index 2 --alphas 0 1 --lrs 5e-4 1e-3

Reuses a finished `training.distill` run: its fast model at the branch point, its slow teacher and its
training data. Each grid point trains the in-batch distillation stage (fast_extra_steps steps, the same
batches as the run's `fast`, at peak rate --lrs or the run's fast_lr) under RUN/tuning/<point>/, then
measures validation R@1 of the student next to the run's `fast` (the NCE-only continuation at equal
steps). `fast` does not restart its learning-rate schedule at the branch point and the students do, so
include α = 0 in --alphas: that point is the same branch without a teacher, the fair baseline (see
training/restart_control.py). --seed-index S tunes from seed S of a `--seeds` run instead (its branch
and batches, RUN/seeds/seedS; results under RUN/tuning/seedS/), so that a setting can be checked on
more than one seed. Writes tuning.json there; the test sets are never touched. A preset takes the best
point's values by hand, with the table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from . import evaluate
from .distill import load_splits, make_tokenizer, synthscenes_run_config
from .loop import init_distributed
from .results import Evaluation
from .stages import run_distill, run_fast, run_slow

logger = logging.getLogger("training.tune_distill")


def _point_name(alpha: float, temperature: float, negatives: int, lr: float | None = None) -> str:
    return f"alpha{alpha:g}_T{temperature:g}_neg{negatives}" + (f"_lr{lr:g}" if lr is not None else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tune_distill", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished training.distill run folder")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0])
    parser.add_argument("--teacher-temperatures", type=float, nargs="+", default=[1.0])
    parser.add_argument("--negatives", type=int, nargs="+", default=[7])
    parser.add_argument("--lrs", type=float, nargs="+", default=None,
                        help="peak learning rates of the distillation stage (default: the run's fast_lr)")
    parser.add_argument("--seed-index", type=int, default=0,
                        help="tune from seed S's branch and batches (RUN/seeds/seedS; 0 = the run itself)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")

    cfg = synthscenes_run_config(args.run, "tune_distill")
    env = init_distributed()
    train, val, _, _ = load_splits(cfg, args.run, env)  # the run's own data: regenerated, or read back
    tokenizer = make_tokenizer(cfg, args.run, train, env)
    slow, _ = run_slow(cfg, args.run, train, tokenizer, env)  # finished stages: these only load
    seed_cfg = replace(cfg, seed=cfg.seed + args.seed_index)
    source = args.run if args.seed_index == 0 else args.run / "seeds" / f"seed{args.seed_index}"
    tuning = args.run / "tuning" if args.seed_index == 0 else args.run / "tuning" / f"seed{args.seed_index}"
    if not (source / "stages" / "fast_branch").is_dir():
        raise SystemExit(f"{source} has no finished fast stage: run training.distill with --seeds first")
    fast, _ = run_fast(seed_cfg, source, train, tokenizer, env)

    evaluation = Evaluation(cfg, args.run, tokenizer, slow, val, {"test": []}, env.device, time.perf_counter())
    evaluation.add_fast("fast", fast, {})
    queries = evaluate.make_queries(val, cfg.eval_queries, cfg.seed + 1)  # the run's own validation queries
    gallery = evaluate.Gallery(val, evaluation.scorer, dict(evaluation.encoders))
    baseline = evaluate.evaluate_fast(gallery, "fast", queries)["R@1"]
    rows = []
    grid = itertools.product(args.alphas, args.teacher_temperatures, args.negatives, args.lrs or [None])
    for alpha, temperature, negatives, lr in grid:
        name = _point_name(alpha, temperature, negatives, lr)
        folder = tuning / name
        (folder / "stages").mkdir(parents=True, exist_ok=True)
        branch = folder / "stages" / "fast_branch"
        if not branch.exists():
            branch.symlink_to((source / "stages" / "fast_branch").resolve(), target_is_directory=True)
        point = replace(seed_cfg, alpha=alpha, teacher_temperature=temperature, distill_negatives=negatives,
                        fast_lr=seed_cfg.fast_lr if lr is None else lr)
        torch.manual_seed(point.seed + env.rank)  # every point starts from the same random state
        spec, info = run_distill(point, folder, train, tokenizer, slow, env, mode="in_batch")
        evaluation.add_fast(name, spec, info)
        gallery.add_fast(name, evaluation.encoders[name])
        r1 = evaluate.evaluate_fast(gallery, name, queries)["R@1"]
        rows.append({"alpha": alpha, "teacher_temperature": temperature, "distill_negatives": negatives,
                     "lr": point.fast_lr,
                     "val_R@1": r1, "gain_over_fast": round(r1 - baseline, 2),
                     "minutes": round(info.get("seconds", 0) / 60, 1), "teacher_pairs": info.get("teacher_pairs")})
        logger.info("%s: validation R@1 %.2f (fast %.2f)", name, r1, baseline)
    best = max(rows, key=lambda r: r["val_R@1"])
    result = {"run": str(args.run), "seed": seed_cfg.seed, "val_images": len(val), "val_queries": len(queries.texts),
              "fast_val_R@1": baseline, "points": rows, "best": best}
    (tuning / "tuning.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
