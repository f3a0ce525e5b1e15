"""Which rendering choice of the shifted renderer costs a bundle its accuracy: one factor on at a time.

    python -m training.shift_factors --bundle resources/models/synthscenes [--images 500] [--queries 150]

For each rendering factor of `fastslow_desktop.synthscenes.shifted` (aspect, anti-aliasing,
backgrounds, turns, colour jitter, white-balance cast, blur, noise, JPEG), draws the same scenes with
that factor alone on (and once with none and once with all), and measures R@1 of the bundle's fast
model and of its slow model scoring the whole gallery, with the SynthScenes relevance rule. The random
draws of a factor that is off are still made, so two galleries differ in one factor only. A
diagnosis of the evaluation renderer, not a way to choose training settings: those are chosen on the
training renderer's validation split. Scenes come from a seed no training, validation or test set
uses. Writes JSON to --out (default: print only).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from fastslow_desktop.models import load_bundle
from fastslow_desktop.synthscenes.shifted import Factors, generate_shifted

from .data import read_synthscenes_folder
from .evaluate import Gallery, evaluate_fast, evaluate_slow, make_queries

logger = logging.getLogger("training.shift_factors")

SEED = 12  # scenes: not the training (1), validation (2), test (3), shifted test (4) or shifted search (11) seed


def factor_settings() -> dict[str, Factors]:
    """"none", each factor alone, then "all"."""
    return {"none": Factors.only(None), **{f.name: Factors.only(f.name) for f in fields(Factors)}, "all": Factors()}


def measure(bundle: str | Path, n_images: int, n_queries: int, names: Sequence[str] | None = None,
            seed: int = SEED) -> dict[str, dict[str, float]]:
    """{setting: {"fast": R@1, "slow": R@1, "seconds": s}} for the bundle on each setting's gallery."""
    models = load_bundle(bundle, device="cpu")
    settings = factor_settings()
    out: dict[str, dict[str, float]] = {}
    for name in names or settings:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="fastslow-factors-") as tmp:
            generate_shifted(tmp, n_images, seed, twins=True, factors=settings[name])
            items = read_synthscenes_folder(tmp)
            gallery = Gallery(items, models.slow, {"fast": models.fast})
        queries = make_queries(items, n_queries, seed)
        fast, slow = evaluate_fast(gallery, "fast", queries)["R@1"], evaluate_slow(gallery, queries)["R@1"]
        out[name] = {"fast": fast, "slow": slow, "seconds": round(time.perf_counter() - t0, 1)}
        logger.info("%-10s fast R@1 %6.2f  slow R@1 %6.2f", name, fast, slow)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.shift_factors", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--only", nargs="+", choices=sorted(factor_settings()), help="these settings only")
    parser.add_argument("--out", type=Path, help="write the result here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = {"bundle": str(args.bundle), "images": args.images, "queries": args.queries, "seed": SEED,
              "R@1": measure(args.bundle, args.images, args.queries, args.only),
              "by": "python -m training.shift_factors"}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
