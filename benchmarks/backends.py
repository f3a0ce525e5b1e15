"""`python -m benchmarks.backends [--quick] [--out FILE.json]`: the fast towers on every inference
backend against torch fp32 in the same run, with the same threads (issue 15 item 2).

Per model (the shipped SynthScenes bundle; a random-weight open_clip ViT-B-32) and backend:
- `encoder_speedup_vs_torch_fp32[B]@M`: images/s of B / images/s of torch fp32 (preprocessed tensors,
  so decoding is left out; backends interleaved, best of the repeats, so a load spike hits all alike);
- `encoder_cosine_min[B]@M`: the smallest cosine between B's and torch fp32's embeddings of every image
  and query (guard: >= 0.999), and whether the backend's own first-use guard accepted it;
- `synthscenes_test_R@1[B]`: R@1 of the SynthScenes test queries with B's embeddings (guard: within 0.5
  point of torch fp32's). Random weights have no meaningful R@1, so ViT-B-32 gets the cosine only.
The machine block records the CPU model, its flags, the threads and what `auto` picks here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import REPO, Result, cache_dir, machine_info, skipped

logger = logging.getLogger("benchmarks.backends")

COSINE_GOAL = 0.999
R1_POINTS = 0.5
SIZES = {"quick": {"scenes": 200, "vit": 24, "repeats": 2}, "full": {"scenes": 500, "vit": 96, "repeats": 3},
         "tiny": {"scenes": 12, "vit": 4, "repeats": 1}}


def _backend_names() -> list[str]:
    import torch

    return ["torch", "bf16", "onnx", "int8"] + (["fp16"] if torch.cuda.is_available() else [])


def _embed_images(backend, pixels, batch: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    out = [F.normalize(backend.image(pixels[i : i + batch]), dim=-1) for i in range(0, len(pixels), batch)]
    return torch.cat(out).numpy()


def _embed_texts(backend, encoder, texts: list[str]) -> np.ndarray:
    import torch.nn.functional as F

    return F.normalize(backend.text(encoder.tokenizer(texts)), dim=-1).numpy()


def scenes_test_set(n_images: int) -> tuple[list, list[str], list[np.ndarray]]:
    """SynthScenes test photos (held-out seed 99, as the acceptance test), their unique canonical captions
    and, per caption, the photos that satisfy it."""
    from PIL import Image

    from fastslow_desktop.synthscenes import Scene, generate, read_captions, satisfies

    folder = cache_dir() / f"synthscenes-test-{n_images}"
    if not (folder / "captions.jsonl").is_file():
        generate(folder, n_images, 0, seed=99, twins=True)
    records = [r for r in read_captions(folder) if r["kind"] == "image"]
    images = [Image.open(folder / r["file"]).convert("RGB") for r in records]
    scenes = [Scene.from_dict(r["scene"]) for r in records]
    texts = list(dict.fromkeys(r["captions"][0] for r in records))
    relevant = [np.array([j for j, s in enumerate(scenes) if satisfies(s, t)]) for t in texts]
    return images, texts, relevant


def recall_at_1(image_vecs: np.ndarray, text_vecs: np.ndarray, relevant: list[np.ndarray]) -> float:
    """Percent of queries whose best-scoring photo satisfies them."""
    top = (text_vecs @ image_vecs.T).argmax(axis=1)
    return 100.0 * float(np.mean([t in rel for t, rel in zip(top, relevant)]))


def _speed(backend, pixels, batch: int) -> float:
    _embed_images(backend, pixels[:batch], batch)  # warm-up: first-call allocations, ORT arena
    start = time.perf_counter()
    _embed_images(backend, pixels, batch)
    return len(pixels) / (time.perf_counter() - start)


def _build_all(encoder) -> dict:
    """{name: backend object or the reason it cannot run}, unguarded: the benchmark measures the guard."""
    from fastslow_desktop.models.backends import BackendUnavailable, build_backend

    built = {}
    for name in _backend_names():
        try:
            built[name] = build_backend(name, encoder)
        except BackendUnavailable as exc:
            built[name] = str(exc)
    return built


def measure_model(encoder, label: str, images, texts, relevant, repeats: int, batch: int) -> dict:
    """Speed, cosine, R@1 and the first-use guard's verdict of every backend on one model."""
    from fastslow_desktop.models.backends import select_backend

    pixels = encoder.preprocess.batch(images) if hasattr(encoder.preprocess, "batch") else None
    if pixels is None:
        import torch

        pixels = torch.stack([encoder.preprocess(im) for im in images])
    built = _build_all(encoder)
    runnable = {n: b for n, b in built.items() if not isinstance(b, str)}
    speeds: dict[str, float] = {}
    for _ in range(repeats):  # interleaved: a load spike on this shared machine hits every backend
        for name, backend in runnable.items():
            speeds[name] = max(speeds.get(name, 0.0), _speed(backend, pixels, batch))
    out = {"label": label, "n_images": len(pixels), "n_texts": len(texts), "unavailable": {}, "backends": {}}
    ref_img = _embed_images(runnable["torch"], pixels, batch)
    ref_txt = _embed_texts(runnable["torch"], encoder, texts)
    for name, backend in built.items():
        if isinstance(backend, str):
            out["unavailable"][name] = backend
            continue
        img, txt = _embed_images(backend, pixels, batch), _embed_texts(backend, encoder, texts)
        cos = float(min((img * ref_img).sum(1).min(), (txt * ref_txt).sum(1).min()))
        row = {"images_per_s": speeds[name], "cosine_min": cos,
               "guard_accepts": select_backend(encoder, name).name == name}
        if relevant is not None:
            row["R@1"] = recall_at_1(img, txt, relevant)
        out["backends"][name] = row
    return out


def results_of(model: dict) -> list[Result]:
    """The result rows of one `measure_model` answer."""
    label, rows, fp32 = model["label"], model["backends"], model["backends"]["torch"]
    results = []
    for name, row in rows.items():
        guards = row["cosine_min"] >= COSINE_GOAL and (
            "R@1" not in row or abs(row["R@1"] - fp32["R@1"]) <= R1_POINTS)
        results.append(Result(f"encoder_speedup_vs_torch_fp32[{name}]@{label}", row["images_per_s"], "images/s",
                              baseline=fp32["images_per_s"], ratio=row["images_per_s"] / fp32["images_per_s"],
                              goal="guards met", met=guards,
                              note=f"{model['n_images']} images; first-use guard "
                                   f"{'accepts' if row['guard_accepts'] else 'refuses'} it"))
        results.append(Result(f"encoder_cosine_min[{name}]@{label}", row["cosine_min"], "cosine",
                              goal=f"≥ {COSINE_GOAL}", met=row["cosine_min"] >= COSINE_GOAL,
                              note=f"vs torch fp32, {model['n_images']} images + {model['n_texts']} queries"))
        if "R@1" in row:
            delta = row["R@1"] - fp32["R@1"]
            results.append(Result(f"synthscenes_test_R@1[{name}]", row["R@1"], "%", baseline=fp32["R@1"],
                                  goal=f"|Δ| ≤ {R1_POINTS} point", met=abs(delta) <= R1_POINTS,
                                  note=f"Δ {delta:+.2f} points vs torch fp32, {model['n_texts']} queries"))
    for name, why in model["unavailable"].items():
        results.append(skipped(f"encoder_speedup_vs_torch_fp32[{name}]@{label}", "images/s", why, "guards met"))
    return results


def run(mode: str, models: str = "synthscenes", vit_arch: str = "ViT-B-32") -> tuple[list[Result], list[dict]]:
    """Every figure of this benchmark; also the raw per-model answers."""
    from . import models as bench_models

    size = SIZES[mode]
    images, texts, relevant = scenes_test_set(size["scenes"])
    answers = [measure_model(bench_models.bundle(models).fast, "synthscenes", images, texts, relevant,
                             size["repeats"], batch=64)]
    vit = bench_models.random_encoder(vit_arch)
    answers.append(measure_model(vit, vit_arch, images[: size["vit"]], texts[:32], None, size["repeats"],
                                 batch=16))
    return [r for answer in answers for r in results_of(answer)], answers


def _markdown(results: list[Result], machine: dict) -> str:
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores, flags {' '.join(machine['cpu_flags'])}, "
             f"torch threads {machine['torch_threads']}, auto picks `{machine['auto_backend']}`, "
             f"load average at start {machine['load_average_start']}", "",
             "| figure | value | baseline | ratio | goal | met | note |", "|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [r.name, r.value, r.baseline, r.ratio, r.goal or "", r.met, r.note]
        lines.append("| " + " | ".join(f"{c:.6g}" if isinstance(c, float) else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images (a few minutes on 2 cores)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (tests)")
    parser.add_argument("--models", default="synthscenes", help="bundle or preset (default: synthscenes)")
    parser.add_argument("--vit-arch", default="ViT-B-32", help="random-weight open_clip architecture")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "backends-result.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # ONNX exports of the benchmark's models go to the benchmark's cache, not the person's own
    os.environ.setdefault("FASTSLOW_CACHE", str(cache_dir() / "fastslow-cache"))
    from fastslow_desktop.models.backends import auto_choice, cpu_flags

    machine = machine_info()
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    results, answers = run(mode, args.models, args.vit_arch)
    machine.update(auto_backend=auto_choice("cpu", cpu_flags()), load_average_end=list(os.getloadavg()),
                   onnx_threads=machine["torch_threads"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"mode": mode, "machine": machine, "results": [r.to_json() for r in results], "raw": answers}
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as tmp:
        json.dump(payload, tmp, indent=1)
    Path(tmp.name).replace(args.out)
    args.out.with_suffix(".md").write_text(_markdown(results, machine))
    print(_markdown(results, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
