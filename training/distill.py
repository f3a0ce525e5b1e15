"""`python -m training.distill`: fast → slow → distill → evaluate → export, each stage resumable.

    python -m training.distill --preset smoke --out runs/smoke
    python -m training.distill --preset synthetic --out runs/synthetic
    torchrun --nproc_per_node 8 -m training.distill --preset coco --data coco:/data/coco --out runs/coco
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from fastslow_desktop.models.tokenizer import TextTokenizer, TokenizerConfig

from . import data as datasets
from .ablations import run_attentive, run_decomposed
from .loop import init_distributed
from .params import TrainConfig, add_arguments, config_from_args
from .results import DISTILLED_NAMES, Evaluation
from .stages import run_distill, run_fast, run_slow

logger = logging.getLogger("training.distill")


def load_splits(cfg: TrainConfig, out: Path) -> tuple[list, list, list]:
    """Train, validation and test items for cfg.data (disjoint seeds for SynthScenes)."""
    kind, _, where = cfg.data.partition(":")
    if kind == "synthscenes":
        from fastslow_desktop.synthscenes import generate

        def folder(split: str, n: int) -> list:
            path = out / "data" / split
            if not (path / "captions.jsonl").is_file():
                generate(path, n, 0, seed=cfg.seeds[split], twins=True)
            return datasets.read_synthscenes_folder(path)

        train = (datasets.read_synthscenes_folder(where) if where else
                 datasets.render_synthscenes(cfg.train_images, cfg.seeds["train"], cfg.render_size,
                                             cfg.twins_per_batch))
        return train, folder("val", cfg.val_images), folder("test", cfg.test_images)
    if kind == "jsonl":
        items = datasets.read_jsonl_manifest(where)
        n_eval = max(1, len(items) // 10)
        return items[2 * n_eval:], items[:n_eval], items[n_eval:2 * n_eval]
    if kind == "coco":
        root = Path(where)
        train = datasets.read_coco_captions(root / "annotations" / "captions_train2017.json", root / "train2017")
        held = datasets.read_coco_captions(root / "annotations" / "captions_val2017.json", root / "val2017")
        return train, held[: len(held) // 2], held[len(held) // 2:]
    if kind == "flickr30k":
        return tuple(datasets.read_flickr30k_karpathy(where, s) for s in ("train", "val", "test"))
    raise SystemExit(f"unknown --data {cfg.data!r}: use synthscenes[:FOLDER], jsonl:FILE, coco:DIR or flickr30k:FILE")


def make_tokenizer(cfg: TrainConfig, out: Path, train: list) -> TextTokenizer:
    """Compact vocabulary for models trained from scratch; the full BPE for pretrained open_clip."""
    path = out / "tokenizer.json"
    if path.is_file():  # a resumed run must keep the exact same ids
        return TextTokenizer.from_config(json.loads(path.read_text()))
    if cfg.fast_arch.startswith("open_clip:"):
        tokenizer = TextTokenizer(TokenizerConfig(context_length=cfg.context_length))
    else:
        tokenizer = TextTokenizer.compact_for((c for it in train for c in it.captions), cfg.context_length)
    path.write_text(json.dumps(tokenizer.to_config()))
    return tokenizer


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    cfg = config_from_args(args)
    env = init_distributed()
    torch.manual_seed(cfg.seed + env.rank)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    t_start = time.perf_counter()

    train, val, test = load_splits(cfg, out)
    logger.info("data: %d train, %d val, %d test images", len(train), len(val), len(test))
    tokenizer = make_tokenizer(cfg, out, train)

    fast, fast_info = run_fast(cfg, out, train, tokenizer, env)
    slow, slow_info = run_slow(cfg, out, train, tokenizer, env)
    distilled = {mode: run_distill(cfg, out, train, tokenizer, slow, env, mode=mode) for mode in cfg.distill_modes}
    run = None
    if env.main:  # evaluate and export what ships before any variant is trained: its wall time is the budget
        run = Evaluation(cfg, out, tokenizer, slow, val, test, env.device, t_start)
        run.add_fast("fast", fast, fast_info)
        run.add_slow_info("slow", slow_info)
        for mode, (spec, info) in distilled.items():
            run.add_fast(DISTILLED_NAMES[mode], spec, info)
        run.core(distilled, train)
    if cfg.ablations:
        variants = train_ablations(cfg, out, train, tokenizer, slow, env, fast)
        if run is not None:
            run.ablations(variants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
