"""Where indexing's CPU time goes per camera photo, and the most `index_model_ceiling_ratio` can be
on this machine: decoding shares the cores with the encoder, so when both are CPU-bound

    bound = cores × encoder wall time per image ÷ (encoder CPU time + decode-side CPU time per image)

(the encoder's CPU time is the whole process's, all its threads). Decode-side steps are timed one
photo at a time on one thread, as the indexer's decode workers run them.

    python -m benchmarks.index_budget [--arch ViT-B-32] [--backend int8] [--photos N] [--out FILE.json]
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

from .common import REPO, SIZES, THREADS, Result, cache_dir, machine_info

STEPS = ("hash", "decode", "thumbnail", "preprocess")


def decode_side_ms(encoder, files: list[Path], scratch: Path) -> tuple[dict[str, float], list]:
    """Mean thread CPU ms per photo of each decode-side step, and the preprocessed tensors."""
    from fastslow_desktop.catalog import write_thumbnail
    from fastslow_desktop.library.indexer import decode_side
    from fastslow_desktop.media import open_image, partial_hash

    side = decode_side(int(encoder.preprocess.config.image_size))
    spent = dict.fromkeys(STEPS, 0.0)
    tensors = []
    for i, path in enumerate(files):
        size = path.stat().st_size
        t0 = time.thread_time()
        partial_hash(str(path), size)
        t1 = time.thread_time()
        image, _ = open_image(str(path), max_side=side)
        t2 = time.thread_time()
        write_thumbnail(scratch, image, str(path), size, 0.0, i)
        t3 = time.thread_time()
        tensors.append(encoder.preprocess(image))
        t4 = time.thread_time()
        for step, seconds in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[step] += seconds
    return {step: 1000 * s / len(files) for step, s in spent.items()}, tensors


def encoder_ms(encoder, tensors: list, n: int, batch: int = 64) -> tuple[float, float]:
    """(wall ms, process CPU ms) per image for `n` images encoded in batches, after a warm-up."""
    import torch

    pixels = torch.stack([tensors[i % len(tensors)] for i in range(n)])
    encoder.encode_image_tensors(pixels[:8], batch)
    wall, cpu = time.perf_counter(), time.process_time()
    encoder.encode_image_tensors(pixels, batch)
    return 1000 * (time.perf_counter() - wall) / n, 1000 * (time.process_time() - cpu) / n


def measure(arch: str, backend: str | None, n_photos: int, n_tensors: int) -> dict:
    from .models import random_encoder
    from .photos import camera_photos

    sizes = SIZES["full"]
    folder = camera_photos(cache_dir(), sizes.photos, sizes.photo_megapixels)
    files = sorted(folder.glob("*.jpg"))[:n_photos]
    encoder = random_encoder(arch)
    if backend:
        encoder.use_backend(backend)
    with tempfile.TemporaryDirectory(prefix="fastslow-budget-") as scratch:
        decode, tensors = decode_side_ms(encoder, files, Path(scratch))
    wall, cpu = encoder_ms(encoder, tensors, n_tensors)
    return {"arch": arch, "backend": encoder.backend.name, "photos": len(files), "tensors": n_tensors,
            "image_size": int(encoder.preprocess.config.image_size), "cores": THREADS,
            "decode_ms": decode, "encoder_wall_ms": wall, "encoder_cpu_ms": cpu}


def results(m: dict) -> list[Result]:
    decode = sum(m["decode_ms"].values())
    bound = m["cores"] * m["encoder_wall_ms"] / (m["encoder_cpu_ms"] + decode)
    steps = ", ".join(f"{k} {v:.1f}" for k, v in m["decode_ms"].items())
    where = f"{m['arch']} on {m['backend']}, {m['photos']} camera JPEGs, {m['cores']} cores"
    return [
        Result(f"index_decode_cpu_ms@{m['arch']}", decode, "ms/photo",
               note=f"{where}; one thread, CPU ms per photo: {steps}"),
        Result(f"index_encoder_cpu_ms@{m['arch']}", m["encoder_cpu_ms"], "ms/image",
               note=f"{where}; whole process, {m['tensors']} pre-decoded tensors; wall "
                    f"{m['encoder_wall_ms']:.1f} ms/image ({1000 / m['encoder_wall_ms']:.2f} images/s)"),
        Result(f"index_ceiling_ratio_bound@{m['arch']}", bound, "×", goal="≥ 0.85 (to make the issue's goal possible)",
               met=bound >= 0.85,
               note=f"cores × encoder wall ÷ (encoder CPU + decode CPU) = {m['cores']} × "
                    f"{m['encoder_wall_ms']:.1f} ÷ ({m['encoder_cpu_ms']:.1f} + {decode:.1f})"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.index_budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="ViT-B-32", help="random-weight open_clip architecture")
    parser.add_argument("--backend", default="int8", help="encoder backend (default int8, the fastest here)")
    parser.add_argument("--photos", type=int, default=50, help="camera photos timed (default 50)")
    parser.add_argument("--tensors", type=int, default=64, help="images encoded (default 64)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "index_budget-result.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("FASTSLOW_CACHE", str(cache_dir() / "fastslow-cache"))  # its ONNX exports
    measured = measure(args.arch, args.backend, args.photos, args.tensors)
    rows = results(measured)
    payload = {"machine": machine_info(), "measured": measured, "results": [r.to_json() for r in rows]}
    args.out.write_text(json.dumps(payload, indent=1))
    print(json.dumps(payload["results"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
