"""Speed of each hub preset's architecture on this machine, with random weights (no download needed).

Per preset (hub presets by architecture; a shipped bundle preset with its own weights): the fast image
tower's throughput on preprocessed images (batch 32, fp32: decoding is not
included, see `benchmarks.indexing` for that), one query's text encoding, and the slow model's
re-rank of K = 20 candidates from pixels (visual tokens + one caption's likelihood), cold: nothing
cached. The weights are random, so the figures are timings only; accuracy comes from the published
sources the catalogue names. `--write` stores the figures in the preset catalogue
(fastslow_desktop/models/presets.json), with the machine they were measured on.

    python -m benchmarks.preset_speed [--presets balanced,fast] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

from .common import REPO, machine_info

CATALOGUE = REPO / "fastslow_desktop" / "models" / "presets.json"
BATCH = 32
RERANK_K = 20


def _best_of(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _image_size(model) -> int:
    size = model.visual.image_size if hasattr(model, "visual") else 224
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def fast_figures(name: str, budget_s: float) -> dict:
    """images/s of the image tower and ms per query of the text tower, for open_clip model `name`."""
    import open_clip
    import torch

    model = open_clip.create_model(name, pretrained=None).eval()
    size = _image_size(model)
    context = int(open_clip.get_model_config(name)["text_cfg"].get("context_length", 77))
    vocab = int(open_clip.get_model_config(name)["text_cfg"].get("vocab_size", 49408))
    ids = torch.randint(1, vocab - 1, (1, context))
    with torch.inference_mode():
        start = time.perf_counter()
        model.encode_image(torch.randn(2, 3, size, size))  # a first look at the cost picks the batch
        per_image = (time.perf_counter() - start) / 2
        batch = max(2, min(BATCH, int(budget_s / 3 / max(per_image, 1e-3))))
        pixels = torch.randn(batch, 3, size, size)
        image_s = _best_of(lambda: model.encode_image(pixels), repeats=2)
        text_s = _best_of(lambda: model.encode_text(ids), repeats=10)
    return {"images_per_s": round(batch / image_s, 2), "text_ms": round(text_s * 1000, 1), "image_size": size,
            "batch": batch}


def rerank_ms(name: str) -> float:
    """Cold re-rank of K candidates by a CoCa: visual tokens of K images, then one caption's score."""
    import open_clip
    import torch

    model = open_clip.create_model(name, pretrained=None).eval()
    size = _image_size(model)
    ids = open_clip.get_tokenizer(name)(["a dog running on a beach at sunset"])

    from fastslow_desktop.models.slow_scorer import CocaScorer

    scorer = CocaScorer.__new__(CocaScorer)  # the product's scoring path, without its preprocessing
    scorer.model = model

    def once(k: int) -> None:
        _, tokens = model._encode_image(torch.randn(k, 3, size, size))
        scorer._score(ids.expand(k, -1), tokens)

    with torch.inference_mode():
        once(2)  # warm-up on two candidates: a large CoCa takes seconds per K = 20 pass
        start = time.perf_counter()
        once(RERANK_K)
        return round((time.perf_counter() - start) * 1000, 1)


def bundle_figures(name: str) -> dict:
    """The same figures for a shipped bundle preset (its own towers, loaded as the app loads them)."""
    import numpy as np
    import torch
    from PIL import Image

    from fastslow_desktop.models import load_bundle

    models = load_bundle(name, device="cpu")
    fast = models.fast
    size = int(fast.preprocess.config.image_size)
    pixels = torch.randn(BATCH, 3, size, size)
    image_s = _best_of(lambda: fast.encode_image_tensors(pixels), repeats=3)
    text_s = _best_of(lambda: fast.encode_texts(["a red circle to the left of a blue square"]), repeats=10)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(RERANK_K)]
    rerank_s = _best_of(lambda: models.slow.score("a red circle to the left of a blue square", images), repeats=3)
    return {"images_per_s": round(BATCH / image_s, 2), "text_ms": round(text_s * 1000, 1), "image_size": size,
            "batch": BATCH, "rerank_ms_k20": round(rerank_s * 1000, 1)}


def measure(names: list[str], budget_s: float) -> dict:
    import torch

    catalogue = json.loads(CATALOGUE.read_text())
    out, slow_done = {}, {}
    for name in names:
        spec = catalogue["presets"][name]
        if "bundle" in spec:
            out[name] = bundle_figures(name)
            print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
            continue
        if "fast" not in spec or not spec["fast"].get("model"):
            continue
        figures = fast_figures(spec["fast"]["model"], budget_s)
        slow = spec.get("slow", {}).get("model")
        if slow:
            if slow not in slow_done:
                slow_done[slow] = rerank_ms(slow)
            figures["rerank_ms_k20"] = slow_done[slow]
        out[name] = figures
        print(f"{name}: {figures}", file=sys.stderr, flush=True)
    return {"threads": torch.get_num_threads(), "presets": out}


def write_catalogue(measured: dict, machine: dict) -> None:
    """Store the figures in each preset's `speed`, naming the machine and the date. The catalogue is
    formatted by hand, so only each preset's one-line `"speed": {...}` is rewritten."""
    import re

    flags = " ".join(machine.get("cpu_flags") or []) or "none of avx2/avx512/amx"
    where = (f"{machine.get('cpu', 'unknown CPU')} ({machine.get('cores')} cores; {flags}), "
             f"{measured['threads']} torch threads, fp32, random weights; "
             f"{datetime.date.today().isoformat()} (benchmarks/preset_speed.py)")
    text = CATALOGUE.read_text()
    for name, figures in measured["presets"].items():
        speed = json.dumps({"images_per_s": figures["images_per_s"], "text_ms": figures["text_ms"],
                            "rerank_ms_k20": figures.get("rerank_ms_k20"), "note": where}, ensure_ascii=False)
        start = text.index(f'\n    "{name}": {{', text.index('"presets"'))  # a preset key, not a "fast" part
        line = re.compile(r'"speed": \{[^\n]*\}').search(text, start)
        text = text[:line.start()] + f'"speed": {speed}' + text[line.end():]
    json.loads(text)  # still valid
    CATALOGUE.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.preset_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", help="comma-separated names (default: every hub preset that is not legacy)")
    p.add_argument("--budget", type=float, default=30.0, help="rough seconds per image-tower measurement")
    p.add_argument("--write", action="store_true", help="store the figures in the preset catalogue")
    p.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    catalogue = json.loads(CATALOGUE.read_text())["presets"]
    names = args.presets.split(",") if args.presets else [
        n for n, s in catalogue.items() if ("fast" in s or "bundle" in s) and not s.get("legacy")]
    machine = machine_info()
    result = {"machine": machine, **measure(names, args.budget)}
    if args.write:
        write_catalogue(result, machine)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
