"""`python -m training.distill`: fast → slow → distill → evaluate → export, each stage resumable.

    python -m training.distill --preset smoke --out runs/smoke
    python -m training.distill --preset synthetic --out runs/synthetic
    python -m training.distill --preset synthetic --seeds 3 --out runs/synthetic   # + students for seeds 1, 2
    torchrun --nproc_per_node 8 -m training.distill --preset coco --data coco:/data/coco --out runs/coco

Every row is reported on the standard test set ("results") and, for SynthScenes, on a gallery drawn by
the shifted renderer ("results_shifted"; fastslow_desktop/synthscenes/shifted.py). OUT/calibration.json
holds validation scores with and without a relevant image (training/calibration.py); --seeds N adds
R@1 mean ± sd per student (training/seeds.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import torch

from fastslow_desktop.models.tokenizer import TextTokenizer, TokenizerConfig

from . import data as datasets
from . import seeds
from .ablations import run_attentive, run_decomposed
from .loop import Dist, finish_distributed, init_distributed
from .params import TrainConfig, add_arguments, config_from_args, config_problems
from .results import DISTILLED_NAMES, Evaluation
from .stages import run_distill, run_fast, run_slow

logger = logging.getLogger("training.distill")


def synthscenes_galleries(cfg: TrainConfig, out: Path, env: Dist) -> tuple[list, list, list]:
    """Validation, test and shifted test galleries, written once by the main process (others wait)."""
    from fastslow_desktop.synthscenes import generate, generate_shifted

    wanted = {"val": cfg.val_images, "test": cfg.test_images, "shifted": cfg.shifted_test_images}
    for split, n in wanted.items():
        path = out / "data" / split
        if env.main and n and not (path / "captions.jsonl").is_file():
            write = generate_shifted if split == "shifted" else partial(generate, n_videos=0)
            write(path, n_images=n, seed=cfg.seeds[split], twins=True)
    env.barrier()  # every rank reads complete folders
    return tuple(datasets.read_synthscenes_folder(out / "data" / split) if n else []
                 for split, n in wanted.items())


def synthscenes_run_config(run: Path, tool: str, why: str = "") -> TrainConfig:
    """The config of a finished run that generated its SynthScenes data; a clear exit for any other run."""
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    if not cfg.data.startswith("synthscenes") or ":" in cfg.data:
        raise SystemExit(f"{tool} reads generated SynthScenes runs only{why}")
    return cfg


def load_splits(cfg: TrainConfig, out: Path, env: Dist) -> tuple[list, list, list, list]:
    """Train, validation, test and shifted test items for cfg.data (disjoint seeds for SynthScenes).

    The shifted test set (another renderer, evaluation only) exists for SynthScenes only; [] otherwise.
    """
    kind, _, where = cfg.data.partition(":")
    if kind == "synthscenes":
        train = (datasets.read_synthscenes_folder(where) if where else
                 datasets.render_synthscenes(cfg.train_images, cfg.seeds["train"], cfg.render_size,
                                             cfg.twins_per_batch, cfg.render_size_max))
        return (train, *synthscenes_galleries(cfg, out, env))
    if kind == "jsonl":
        items = datasets.read_jsonl_manifest(where)
        n_eval = max(1, len(items) // 10)
        return items[2 * n_eval:], items[:n_eval], items[n_eval:2 * n_eval], []
    if kind == "coco":
        root = Path(where)
        train = datasets.read_coco_captions(root / "annotations" / "captions_train2017.json", root / "train2017")
        held = datasets.read_coco_captions(root / "annotations" / "captions_val2017.json", root / "val2017")
        return train, held[: len(held) // 2], held[len(held) // 2:], []
    if kind == "flickr30k":
        return (*(datasets.read_flickr30k_karpathy(where, s) for s in ("train", "val", "test")), [])
    raise SystemExit(f"unknown --data {cfg.data!r}: use synthscenes[:FOLDER], jsonl:FILE, coco:DIR or flickr30k:FILE")


def make_tokenizer(cfg: TrainConfig, out: Path, train: list, env: Dist) -> TextTokenizer:
    """Compact vocabulary for models trained from scratch; the full BPE for pretrained open_clip.

    The main process writes tokenizer.json; the others wait and read it, so every rank has the same ids.
    """
    path = out / "tokenizer.json"
    if env.main and not path.is_file():  # a resumed run must keep the exact same ids
        if cfg.fast_arch.startswith("open_clip:"):
            tokenizer = TextTokenizer(TokenizerConfig(context_length=cfg.context_length))
        else:
            tokenizer = TextTokenizer.compact_for((c for it in train for c in it.captions), cfg.context_length)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(tokenizer.to_config()))
        tmp.replace(path)
    env.barrier()
    return TextTokenizer.from_config(json.loads(path.read_text()))


def train_ablations(cfg: TrainConfig, out: Path, train: list, tokenizer, slow, env, fast) -> dict:
    """The measured alternatives: attentive region removal, decomposition init (and its scratch twin), coarse grid."""
    embed_dim = int(fast.model.text_projection.shape[-1])
    return {
        "fast_attentive_mask": run_attentive(cfg, out, train, tokenizer, env),
        "fast_from_slow": run_decomposed(cfg, out, train, tokenizer, slow, env, True, embed_dim),
        "fast_decomposed_scratch": run_decomposed(cfg, out, train, tokenizer, slow, env, False, embed_dim),
        "slow_coarse": run_slow(cfg, out, train, tokenizer, env, name="slow_coarse", token_stride=32),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="run folder (re-running resumes it)")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


# Settings a finished run folder may be resumed with changed: each only adds models or runs beside the others.
RESUMABLE_CHANGES = frozenset({"seed_runs", "ablations", "num_workers"})


def run_folder_problem(out: Path, cfg: TrainConfig) -> str | None:
    """Why `out` cannot hold this run: not a folder, or made with other settings (its finished stages would
    be reused as if they had been trained with these)."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a run folder"
    try:
        old = json.loads((out / "config.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"cannot read {out / 'config.json'}: {exc}"
    new = asdict(cfg)
    changed = sorted(k for k in new if k in old and old[k] != new[k] and k not in RESUMABLE_CHANGES)
    if not changed:
        return None
    listed = ", ".join(f"{k}={old[k]!r} (now {new[k]!r})" for k in changed)
    return (f"--out {out} holds a run made with {listed}; re-running resumes it, so its finished stages would "
            "be reused with the new settings. Use another --out for this configuration.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    cfg = config_from_args(args)
    problems = config_problems(cfg)
    problem = run_folder_problem(args.out, cfg)
    if problems or problem:
        for line in [*problems, *([problem] if problem else [])]:
            print(f"python -m training.distill: error: {line}", file=sys.stderr)
        return 2
    env = init_distributed()
    torch.manual_seed(cfg.seed + env.rank)
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        if env.main:
            (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    except OSError as exc:
        print(f"python -m training.distill: error: cannot write the run folder {out}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    t_start = time.perf_counter()

    train, val, test, shifted = load_splits(cfg, out, env)
    logger.info("data: %d train, %d val, %d test, %d shifted test images", len(train), len(val), len(test),
                len(shifted))
    tokenizer = make_tokenizer(cfg, out, train, env)

    fast, fast_info = run_fast(cfg, out, train, tokenizer, env)
    slow, slow_info = run_slow(cfg, out, train, tokenizer, env)
    distilled = {mode: run_distill(cfg, out, train, tokenizer, slow, env, mode=mode) for mode in cfg.distill_modes}
    run = None
    if env.main:  # evaluate and export what ships before any variant is trained: its wall time is the budget
        run = Evaluation(cfg, out, tokenizer, slow, val, {"test": test, "shifted": shifted}, env.device, t_start)
        run.add_fast("fast", fast, fast_info)
        run.add_slow_info("slow", slow_info)
        for mode, (spec, info) in distilled.items():
            run.add_fast(DISTILLED_NAMES[mode], spec, info)
        run.core(distilled, train)
    if cfg.seed_runs > 1:
        models = seeds.train_seeds(cfg, out, train, tokenizer, slow, env, fast, distilled)
        if run is not None:
            run.summary["seeds"] = seeds.summarize(run, models)
            run.summary["seconds_total"] = round(time.perf_counter() - t_start, 1)
            run.write()
    if cfg.ablations:
        variants = train_ablations(cfg, out, train, tokenizer, slow, env, fast)
        if run is not None:
            run.ablations(variants)
    finish_distributed(env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
