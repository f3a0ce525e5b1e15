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

from fastslow_desktop.models import save_bundle
from fastslow_desktop.models.fast import FastEncoder
from fastslow_desktop.models.preprocess import ImagePreprocess
from fastslow_desktop.models.rerank import RerankConfig
from fastslow_desktop.models.slow_scorer import CaptionerScorer
from fastslow_desktop.models.tokenizer import TextTokenizer, TokenizerConfig

from . import data as datasets
from . import evaluate, report
from .loop import init_distributed
from .params import TrainConfig, add_arguments, config_from_args
from .stages import run_distill, run_fast, run_slow, slow_preprocess

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
    distilled, distill_info = run_distill(cfg, out, train, tokenizer, slow, env)
    if not env.main:
        return 0

    device = env.device
    encoders = {
        "fast": FastEncoder(fast.model, tokenizer, ImagePreprocess(fast.preprocess), "fast", device=device),
        "fast_distilled": FastEncoder(distilled.model, tokenizer, ImagePreprocess(distilled.preprocess),
                                      "fast_distilled", device=device),
    }
    scorer = CaptionerScorer(slow, tokenizer, ImagePreprocess(slow_preprocess(slow)), device=device, batch_size=256)

    logger.info("tuning re-ranking on the validation split")
    val_gallery = evaluate.Gallery(val, scorer, {"fast_distilled": encoders["fast_distilled"]})
    val_queries = evaluate.make_queries(val, cfg.eval_queries, cfg.seed + 1)
    chosen, beta_per_k = evaluate.tune_rerank(val_gallery, "fast_distilled", val_queries, cfg.rerank_ks, cfg.betas)

    logger.info("evaluating on the test split")
    gallery = evaluate.Gallery(test, scorer, encoders)
    queries = evaluate.make_queries(test, cfg.eval_queries, cfg.seed + 2)
    cost = {
        "fast": f"{fast_info['steps']} steps, {fast_info['seconds'] / 60:.1f} min",
        "fast_distilled": f"{cfg.fast_steps} + {distill_info['steps']} distill steps "
                          f"({distill_info.get('teacher_pairs', 0)} teacher pairs), "
                          f"{distill_info['seconds'] / 60:.1f} min after branching",
        "slow": f"{slow_info['steps']} steps, {slow_info['seconds'] / 60:.1f} min",
    }
    results = [
        evaluate.evaluate_fast(gallery, "fast", queries),
        evaluate.evaluate_fast(gallery, "fast_distilled", queries),
        evaluate.evaluate_slow(gallery, queries),
    ]
    for k in cfg.rerank_ks:
        rk = RerankConfig(k=k, beta=beta_per_k[k], normalization=chosen.normalization)
        results.append(evaluate.evaluate_rerank(gallery, "fast_distilled", queries, k, rk))
    for row in results:
        row["training_cost"] = cost.get(row["model"], cost["slow"] if row["model"] == "rerank" else "")
        if row["model"] == "rerank":
            row["training_cost"] = f"{cost['fast_distilled']}; {cost['slow']}"

    bundle = save_bundle(
        out / "bundle",
        name="synthscenes" if cfg.data.startswith("synthscenes") else cfg.preset,
        fast_model=distilled.model, fast_arch=distilled.arch, fast_preprocess=distilled.preprocess,
        slow_model=slow, slow_preprocess=slow_preprocess(slow), tokenizer=tokenizer, rerank=chosen,
        provenance={"data": cfg.data, "preset": cfg.preset, "train_images": len(train),
                    "metrics": {r["model"] + (f"@{r['K']}" if r["K"] else ""): r["R@1"] for r in results},
                    "trained_by": "python -m training.distill"},
    )
    summary = {
        "preset": cfg.preset,
        "data": f"{cfg.data}: {len(train)} train / {len(val)} val / {len(test)} test images, "
                f"{len(queries.texts)} test queries",
        "machine": report.machine(),
        "seconds_total": round(time.perf_counter() - t_start, 1),
        "stages": {"fast": fast_info, "slow": slow_info, "distill": distill_info},
        "slow_visual_tokens_ms_per_image": round(gallery.ms_tokens_per_image, 3),
        "rerank": chosen.to_dict(),
        "bundle": str(bundle),
        "results": results,
    }
    report.write(out, summary)
    logger.info("wrote %s and %s", out / "report.json", bundle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
