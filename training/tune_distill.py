"""Choose the distillation settings on validation: α, teacher temperature and the teacher's negatives.

    python -m training.tune_distill --run runs/synthetic --alphas 1 4 --teacher-temperatures 1 4

Reuses a finished `training.distill` run: its fast model at the branch point, its slow teacher and its
training data. Each grid point trains the in-batch distillation stage (fast_extra_steps steps, the same
batches as the run's `fast`) under RUN/tuning/<point>/, then measures validation R@1 of the student
next to the run's `fast` (the NCE-only continuation at equal steps). `fast` does not restart its
learning-rate schedule at the branch point and the students do, so include α = 0 in --alphas: that
point is the same branch without a teacher, the fair baseline (see training/restart_control.py,
which measured the schedule restart alone at +6.0 R@1 and the teacher at +1.45). Writes RUN/tuning/tuning.json;
the test sets are never touched. A preset takes the best point's values by hand, with the table.
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

from . import evaluate
from .distill import load_splits, make_tokenizer
from .loop import init_distributed
from .params import TrainConfig
from .results import Evaluation
from .stages import run_distill, run_fast, run_slow

logger = logging.getLogger("training.tune_distill")


def _point_name(alpha: float, temperature: float, negatives: int) -> str:
    return f"alpha{alpha:g}_T{temperature:g}_neg{negatives}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tune_distill", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished training.distill run folder")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0])
    parser.add_argument("--teacher-temperatures", type=float, nargs="+", default=[1.0])
    parser.add_argument("--negatives", type=int, nargs="+", default=[7])
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")

    cfg = TrainConfig(**json.loads((args.run / "config.json").read_text()))
    if not cfg.data.startswith("synthscenes") or ":" in cfg.data:
        raise SystemExit("tune_distill reads generated SynthScenes runs only")
    env = init_distributed()
    train, val, _, _ = load_splits(cfg, args.run, env)  # the run's own data: regenerated, or read back
    tokenizer = make_tokenizer(cfg, args.run, train, env)
    fast, _ = run_fast(cfg, args.run, train, tokenizer, env)  # finished stages: these only load
    slow, _ = run_slow(cfg, args.run, train, tokenizer, env)

    evaluation = Evaluation(cfg, args.run, tokenizer, slow, val, {"test": []}, env.device, time.perf_counter())
    evaluation.add_fast("fast", fast, {})
    queries = evaluate.make_queries(val, cfg.eval_queries, cfg.seed + 1)  # the run's own validation queries
    gallery = evaluate.Gallery(val, evaluation.scorer, dict(evaluation.encoders))
    baseline = evaluate.evaluate_fast(gallery, "fast", queries)["R@1"]
    rows = []
    for alpha, temperature, negatives in itertools.product(args.alphas, args.teacher_temperatures, args.negatives):
        name = _point_name(alpha, temperature, negatives)
        folder = args.run / "tuning" / name
        (folder / "stages").mkdir(parents=True, exist_ok=True)
        branch = folder / "stages" / "fast_branch"
        if not branch.exists():
            branch.symlink_to((args.run / "stages" / "fast_branch").resolve(), target_is_directory=True)
        point = replace(cfg, alpha=alpha, teacher_temperature=temperature, distill_negatives=negatives)
        spec, info = run_distill(point, folder, train, tokenizer, slow, env, mode="in_batch")
        evaluation.add_fast(name, spec, info)
        gallery.add_fast(name, evaluation.encoders[name])
        r1 = evaluate.evaluate_fast(gallery, name, queries)["R@1"]
        rows.append({"alpha": alpha, "teacher_temperature": temperature, "distill_negatives": negatives,
                     "val_R@1": r1, "gain_over_fast": round(r1 - baseline, 2),
                     "minutes": round(info.get("seconds", 0) / 60, 1), "teacher_pairs": info.get("teacher_pairs")})
        logger.info("%s: validation R@1 %.2f (fast %.2f)", name, r1, baseline)
    best = max(rows, key=lambda r: r["val_R@1"])
    result = {"run": str(args.run), "val_images": len(val), "val_queries": len(queries.texts),
              "fast_val_R@1": baseline, "points": rows, "best": best}
    (args.run / "tuning" / "tuning.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
