"""Where a run's fast students miss: R@1 by query kind, and how many pair misses only get the relation wrong.

    python -m training.query_kinds --run runs/synthetic            # validation (the default)
    python -m training.query_kinds --run runs/synthetic --split test

For every seed of a finished `training.distill` run (RUN, RUN/seeds/seed<s>) and every fast student
it has (`fast`, `fast_distilled`, and `fast_restart` where training.restart_control ran), on the run's
own queries: R@1 per SynthScenes query kind (single object, pair with a relation, count), and for the
pair queries that miss at rank 1, how many of those top-1 images hold the same two objects in another
relation (the confusable twin) rather than other objects. Writes RUN/query_kinds_<split>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from fastslow_desktop.models.fast import FastEncoder
from fastslow_desktop.models.preprocess import ImagePreprocess
from fastslow_desktop.synthscenes import RELATIONS
from fastslow_desktop.synthscenes.captions import parse_caption, satisfies

from . import checkpoint, evaluate
from .distill import load_splits, make_tokenizer, synthscenes_run_config
from .loop import init_distributed
from .results import Evaluation
from .stages import new_fast, run_slow

logger = logging.getLogger("training.query_kinds")

STAGES = {"fast": "fast", "fast_distilled": "distill"}
# The queries the run itself draws per split: validation as training.results and tune_distill, the test
# sets as the report (cfg.seed + 2 + 10 · i over test, shifted).
QUERY_SEEDS = {"val": 1, "test": 2, "shifted": 12}


def _students(run: Path, seeds: int) -> dict[str, Path]:
    """'<model>#seed<s>' -> its finished stage folder, for every seed and student the run holds."""
    found = {}
    for s in range(seeds):
        base = run if s == 0 else run / "seeds" / f"seed{s}"
        folders = {name: base / "stages" / stage for name, stage in STAGES.items()}
        folders["fast_restart"] = run / "control" / f"seed{s}" / "stages" / "distill"
        found.update({f"{name}#seed{s}": f for name, f in folders.items() if (f / "done.json").is_file()})
    return found


def wrong_relation_only(scene, text: str) -> bool:
    """True when `scene` holds the pair query's two objects, in another relation than the query's."""
    query = parse_caption(text)
    return not satisfies(scene, query) and any(
        satisfies(scene, replace(query, relation=r)) for r in RELATIONS if r != query.relation)


def by_kind(gallery: evaluate.Gallery, label: str, queries: evaluate.Queries, items) -> dict:
    """R@1 per query kind and the pair misses split into wrong relation / other objects."""
    kinds: dict[str, list[bool]] = {}
    relation_only = other = 0
    for text, relevant in zip(queries.texts, queries.relevant):
        kind = parse_caption(text).kind
        top = int(gallery.fast_rank(label, text)[0][0])
        hit = bool(np.isin(top, relevant))
        kinds.setdefault(kind, []).append(hit)
        if kind == "pair" and not hit:
            if wrong_relation_only(items[top].scene, text):
                relation_only += 1
            else:
                other += 1
    return {"R@1": {k: round(100.0 * float(np.mean(v)), 2) for k, v in sorted(kinds.items())},
            "queries": {k: len(v) for k, v in sorted(kinds.items())},
            "pair_misses": {"wrong_relation_only": relation_only, "other_objects": other}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.query_kinds", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished training.distill run folder")
    parser.add_argument("--split", choices=("val", "test", "shifted"), default="val")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")

    cfg = synthscenes_run_config(args.run, "query_kinds", ": other data has no scene to check")
    env = init_distributed()
    train, val, test, shifted = load_splits(cfg, args.run, env)
    items = {"val": val, "test": test, "shifted": shifted}[args.split]
    tokenizer = make_tokenizer(cfg, args.run, train, env)
    slow, _ = run_slow(cfg, args.run, train, tokenizer, env)  # finished: only loads (the gallery wants one)
    evaluation = Evaluation(cfg, args.run, tokenizer, slow, items, {"test": []}, env.device, time.perf_counter())
    queries = evaluate.make_queries(items, cfg.eval_queries, cfg.seed + QUERY_SEEDS[args.split])
    gallery = evaluate.Gallery(items, evaluation.scorer, {})
    rows = {}
    for label, folder in _students(args.run, cfg.seed_runs).items():
        spec = new_fast(cfg, tokenizer)
        checkpoint.load_modules(folder, {"model": spec.model})
        gallery.add_fast(label, FastEncoder(spec.model, tokenizer, ImagePreprocess(spec.preprocess), label,
                                            device=env.device, backend="torch"))
        rows[label] = by_kind(gallery, label, queries, items)
        logger.info("%s: %s", label, rows[label])
    result = {"run": str(args.run), "split": args.split, "queries": len(queries.texts), "models": rows}
    (args.run / f"query_kinds_{args.split}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
