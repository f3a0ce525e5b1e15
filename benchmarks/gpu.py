"""`python -m benchmarks.gpu --out FILE.json`: the CUDA figures of the speed issue, each against a baseline
measured in the same run on the same machine's CPU (all its cores): the fast encoder's rate per backend,
indexing camera JPEGs, re-rank at K = 10/20/50, and slow exhaustive scoring against fast + re-rank.
`benchmarks/gpu_check.sh` runs it on a lent GPU machine; without CUDA it writes every row as null with
the reason (and `--allow-cpu` runs the same code on the CPU, for its test)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .common import SIZES, THREADS, Context, Result, cache_dir, skipped
from .indexing import _fresh

logger = logging.getLogger("benchmarks.gpu")

# Sized to finish in about 4 minutes on a 16-core machine with one GPU (the script's limit is 8).
GPU_SIZES = replace(SIZES["quick"], mode="gpu", photos=48, vit_photos=48, ceiling_tensors=1024,
                    vit_ceiling_tensors=1024, rerank_images=1000, rerank_queries=5, exhaustive_queries=2)
TINY_SIZES = replace(SIZES["tiny"], mode="gpu-tiny", ceiling_tensors=8, vit_ceiling_tensors=4)
CPU_TENSORS = 128  # the CPU baseline of the encoder's rate: enough for a stable figure, seconds long
KS = (10, 20, 50)


def _encoder_rows(ctx: Context, photos: Path, device: str) -> tuple[list[Result], float]:
    """ViT-B-32 (random weights) on pre-decoded tensors: CPU fp32 (baseline), the device in fp32 and in
    fp16 autocast (guarded: cosine against fp32 ≥ 0.999); returns the rows and the fastest guarded rate."""
    from . import worker

    arch = ctx.sizes.vit_arch
    cpu = worker.encoder_rate(str(photos), n_tensors=min(CPU_TENSORS, ctx.sizes.vit_ceiling_tensors), arch=arch,
                              device="cpu", backend="torch")
    rows, best = [], 0.0
    for backend in ("torch", "fp16"):
        out = worker.encoder_rate(str(photos), n_tensors=ctx.sizes.vit_ceiling_tensors, arch=arch, device=device,
                                  backend=backend, batch_size=128)
        used = out["backend"]
        if used != backend:
            rows.append(skipped(f"encoder_images_per_s@{arch}[{device},{backend}]", "images/s",
                                f"{backend} did not pass its guard against fp32 on {device} (ran {used}); see log"))
            continue
        best = max(best, out["images_per_s"])
        rows.append(Result(f"encoder_images_per_s@{arch}[{device},{backend}]", out["images_per_s"], "images/s",
                           cpu["images_per_s"], out["images_per_s"] / cpu["images_per_s"],
                           note=f"{arch} random weights alone on {out['n']} pre-decoded {out['image_size']} px "
                                f"tensors, batches of {out['batch_size']}, backend {used}; baseline = torch fp32 on "
                                f"this machine's CPU, {cpu['threads']} threads: {cpu['images_per_s']:.1f} images/s"))
    return rows, best


def _fp16_cosine_row(arch: str, device: str) -> Result:
    """The backend guard's own figure: the smallest cosine between fp16 and fp32 embeddings of its probes."""
    from fastslow_desktop.models.backends import BackendUnavailable, build_backend, guard_cosine

    from .models import random_encoder

    encoder = random_encoder(arch, device=device)
    try:
        cosine = guard_cosine(build_backend("fp16", encoder), build_backend("torch", encoder), encoder)
    except BackendUnavailable as exc:
        return skipped(f"fp16_min_cosine_vs_fp32@{arch}[{device}]", "cosine", str(exc), goal="≥ 0.999")
    return Result(f"fp16_min_cosine_vs_fp32@{arch}[{device}]", cosine, "cosine", goal="≥ 0.999", met=cosine >= 0.999,
                  note="smallest cosine over the backend guard's probe images and captions")


def _index_rows(ctx: Context, photos: Path, what: str, device: str, vit_best: float) -> list[Result]:
    """`fastslow index` with the bundle on the device against the same command on the CPU; ViT-B-32
    (random weights) indexed on the device against its encoder's fastest guarded rate there."""
    from . import worker

    rows = []
    on_cpu = worker.index_cli(str(photos), str(_fresh(ctx.scratch / "lib-cpu")), ctx.models, device="cpu")
    on_dev = worker.index_cli(str(photos), str(_fresh(ctx.scratch / "lib-dev")), ctx.models, device=device)
    cpu_rate, dev_rate = on_cpu["report"]["files_per_s"], on_dev["report"]["files_per_s"]
    rows.append(Result(f"index_images_per_s[{device}]", dev_rate, "images/s", cpu_rate, dev_rate / cpu_rate,
                       note=f"`fastslow index --device {device}` with {ctx.models}, {what}; model load excluded; "
                            f"baseline = the same command with --device cpu on this machine ({THREADS} cores): "
                            f"{cpu_rate:.1f} images/s"))
    arch = ctx.sizes.vit_arch
    vit = worker.index_random(str(photos), str(_fresh(ctx.scratch / "lib-vit")), arch, device=device)
    vit_rate = vit["report"]["files_per_s"]
    rows.append(Result(f"index_images_per_s@{arch}[{device}]", vit_rate, "images/s", note=(
        f"Library.index, open_clip {arch} random weights on {device} (automatic guarded backend), {what}; "
        f"model build excluded")))
    if vit_best > 0:
        rows.append(Result(f"index_model_ceiling_ratio@{arch}[{device}]", vit_rate / vit_best, "×", vit_best,
                           vit_rate / vit_best,
                           note=f"against the encoder alone at its fastest guarded backend on {device}: "
                                f"{vit_best:.0f} images/s (a ratio well under 1 means decoding, not the GPU, "
                                f"sets the pace)"))
    return rows


def _rerank_rows(ctx: Context, device: str) -> list[Result]:
    """Stage 2 at K = 10/20/50 on the device against the same on this machine's CPU; slow exhaustive
    scoring of the 1 000-photo library against fast + re-rank on the device."""
    from . import rerank
    from .models import bundle

    folder, captions = rerank.photo_library(ctx.cache, bundle(ctx.models, device=device), ctx.sizes.rerank_images)
    texts = captions[: ctx.sizes.rerank_queries + 1]
    cpu = {r.name: r for r in rerank._rerank_rows(ctx, folder, texts, "cpu")}
    rows = []
    for row in rerank._rerank_rows(ctx, folder, texts, device):
        base = cpu.get(row.name.replace(f"[{device}]", ""))
        if base is not None and base.value and row.value:
            row.baseline, row.ratio = base.value, base.value / row.value
            row.note += f"; baseline = the same on this machine's CPU ({THREADS} cores): {base.value:.0f} ms, " \
                        "ratio = CPU / GPU"
        rows.append(row)
    rows.append(rerank._exhaustive_row(ctx, folder, captions[-ctx.sizes.exhaustive_queries:], device))
    return rows


def measure(ctx: Context, device: str) -> list[Result]:
    """Every group in turn; a group that fails leaves a null row with its error, not a lost run."""
    from .photos import camera_photos, photo_stats

    rows: list[Result] = []
    photos = camera_photos(ctx.cache, ctx.sizes.photos, ctx.sizes.photo_megapixels)
    stats = photo_stats(photos)
    for f in photos.glob("*.jpg"):
        f.read_bytes()  # page cache warm for every pipeline
    what = f"{stats['n']} JPEGs, {stats['megapixels'][0]}–{stats['megapixels'][1]} MP, mean {stats['mean_mb']} MB"
    vit_best = 0.0

    def encoders() -> list[Result]:
        nonlocal vit_best
        found, vit_best = _encoder_rows(ctx, photos, device)
        return found + [_fp16_cosine_row(ctx.sizes.vit_arch, device)]

    groups: list[tuple[str, Callable[[], list[Result]]]] = [
        ("encoders", encoders),
        ("indexing", lambda: _index_rows(ctx, photos, what, device, vit_best)),
        ("rerank", lambda: _rerank_rows(ctx, device)),
    ]
    for name, group in groups:
        begin = time.perf_counter()
        logger.info("running %s on %s", name, device)
        try:
            rows += group()
        except Exception as exc:  # noqa: BLE001 - one broken group must not lose the others' figures
            logger.error("%s failed:\n%s", name, traceback.format_exc())
            ctx.notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
        logger.info("%s took %.0f s", name, time.perf_counter() - begin)
    return rows


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    p.add_argument("--out", default="benchmarks/gpu-result.json", metavar="FILE.json", help="results file (+ FILE.md)")
    p.add_argument("--models", default="synthscenes", metavar="B", help="model bundle folder or preset")
    p.add_argument("--cache", metavar="DIR", help="generated photos and libraries (default: $FASTSLOW_BENCH_CACHE)")
    p.add_argument("--allow-cpu", action="store_true", help="without CUDA, run every figure on the CPU (tests)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: toy sizes, seconds
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.cache:
        os.environ["FASTSLOW_BENCH_CACHE"] = args.cache
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .run import _set_threads

    _set_threads()
    import torch

    from . import report
    from .common import machine_info

    machine = machine_info()
    sizes = TINY_SIZES if args.tiny else GPU_SIZES
    machine.update(mode=sizes.mode, models=args.models, cuda=torch.version.cuda)
    device = "cuda" if torch.cuda.is_available() else "cpu" if args.allow_cpu else None
    started = time.perf_counter()
    rows: list[Result] = []
    notes: list[str] = []
    if device is None:
        rows.append(skipped("gpu_check", "", "no CUDA GPU on this machine: nothing measured"))
    else:
        with tempfile.TemporaryDirectory(prefix="fastslow-gpu-") as scratch:
            ctx = Context(sizes, args.models, cache_dir(), Path(scratch))
            rows = measure(ctx, device)
            notes = ctx.notes
    machine.update(load_average_end=list(os.getloadavg()), seconds=round(time.perf_counter() - started, 1),
                   notes=notes, device=device)
    md = report.write(Path(args.out), machine, rows)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
