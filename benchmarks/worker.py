"""Measurements that must run in a fresh process (peak RSS, a cold start): `python -m benchmarks.worker
FUNCTION JSON_KWARGS` prints one JSON object on its last line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path

from .common import THREADS, peak_rss_mb


def index_cli(photos: str, library: str, models: str, device: str | None = None) -> dict:
    """`fastslow index PHOTOS --library L --models B [--device D] --json`, in this process; its report
    and peak RSS."""
    from fastslow_desktop.cli import main

    out = io.StringIO()
    start = time.perf_counter()
    argv = ["index", photos, "--library", library, "--models", models, "--json"]
    with contextlib.redirect_stdout(out):
        code = main(argv + (["--device", device] if device else []))
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"fastslow index exited {code}")
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    return {"report": report, "wall_s": wall, "peak_rss_mb": peak_rss_mb()}


def index_random(photos: str, library: str, arch: str, device: str = "cpu", backend: str | None = None) -> dict:
    """Library.index with a randomly initialised open_clip architecture (no bundle on disk to name);
    `backend` forces one, as `encoder_rate` does."""
    from fastslow_desktop.library import Library

    from .models import random_models

    start = time.perf_counter()
    models = random_models(arch, device=device)
    if backend:
        models.fast.use_backend(backend)
    load = time.perf_counter() - start
    with Library.open(library, models) as lib:
        lib.add_root(photos)
        report = lib.index()
    return {"report": report.to_json(), "model_build_s": load, "peak_rss_mb": peak_rss_mb()}


def _encoder(models: str | None, arch: str | None, device: str = "cpu"):
    from .models import bundle, random_encoder

    return bundle(models, device=device).fast if models else random_encoder(arch, device=device)


def _decode_side(encoder) -> int:
    from fastslow_desktop.library.indexer import decode_side

    return decode_side(int(encoder.preprocess.config.image_size))


def encoder_rate(photos: str, n_tensors: int, models: str | None = None, arch: str | None = None,
                 threads: int = THREADS, batch_size: int = 64, device: str = "cpu",
                 backend: str | None = None) -> dict:
    """The encoder's own rate on pre-decoded, preprocessed tensors (the model ceiling), images/s;
    `backend` forces one (torch, bf16, fp16, onnx) instead of the automatic, guarded choice."""
    import torch

    from fastslow_desktop.media import load_image

    torch.set_num_threads(threads)
    encoder = _encoder(models, arch, device)
    if backend:
        encoder.use_backend(backend)
    files = sorted(Path(photos).glob("*.jpg"))
    side = _decode_side(encoder)
    base = [encoder.preprocess(load_image(f, max_side=side)) for f in files[: min(len(files), n_tensors)]]
    pixels = torch.stack([base[i % len(base)] for i in range(n_tensors)])
    encoder.encode_image_tensors(pixels[: min(8, n_tensors)], batch_size)  # warm-up
    start = time.perf_counter()
    encoder.encode_image_tensors(pixels, batch_size)
    seconds = time.perf_counter() - start
    return {"images_per_s": n_tensors / seconds, "seconds": seconds, "threads": threads, "n": n_tensors,
            "batch_size": batch_size, "image_size": int(encoder.preprocess.config.image_size),
            "backend": encoder.backend.name}


def naive_index(photos: str, db: str, models: str | None = None, arch: str | None = None,
                batch_size: int = 64) -> dict:
    """The naive pipeline: one thread; full-size decode, preprocess, embed in batches, insert into SQLite.
    Torch keeps its default intra-op threads (what a script that sets nothing gets)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    encoder = _encoder(models, arch)
    files = sorted(Path(photos).glob("*.jpg"))
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS embeddings(path TEXT PRIMARY KEY, vector BLOB)")
    start = time.perf_counter()
    batch: list[tuple[str, torch.Tensor]] = []

    def flush() -> None:
        vectors = encoder.encode_image_tensors(torch.stack([t for _, t in batch]), batch_size)
        with conn:
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                             [(p, np.ascontiguousarray(v).tobytes()) for (p, _), v in zip(batch, vectors)])
        batch.clear()

    for f in files:
        with Image.open(f) as im:
            image = ImageOps.exif_transpose(im).convert("RGB")  # full-size decode
        batch.append((str(f), encoder.preprocess(image)))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    seconds = time.perf_counter() - start
    conn.close()
    return {"images_per_s": len(files) / seconds, "seconds": seconds, "n": len(files),
            "torch_threads": torch.get_num_threads(), "peak_rss_mb": peak_rss_mb()}


FUNCTIONS = {f.__name__: f for f in (index_cli, index_random, encoder_rate, naive_index)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = FUNCTIONS[argv[0]](**json.loads(argv[1]))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
