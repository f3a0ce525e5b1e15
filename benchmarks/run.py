"""`python -m benchmarks.run [--quick] --out FILE.json`: every speed figure of issue 7, each against a
baseline measured in the same run, plus FILE.md (the README's table). The full run takes about an hour
on a 2-core machine; `--quick` about ten minutes (no @1M figures, no rclip)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from .common import SIZES, THREADS, Context, Result, cache_dir, skipped

logger = logging.getLogger("benchmarks")

GROUPS = ("indexing", "ann", "query", "rerank", "rclip_peer", "startup", "watch_add")

BASE_NAMES = (
    "index_images_per_s", "index_vs_naive_ratio", "index_model_ceiling_ratio", "index_peak_rss_mb",
    "index_images_per_s@ViT-B-32", "index_model_ceiling_ratio@ViT-B-32", "index_peak_rss_mb@ViT-B-32",
    "query_fast_stage_p50_ms@100k",
    "rerank_ms@K=10", "rerank_ms@K=20", "rerank_ms@K=50",
    "rerank_ms@K=10[cuda]", "rerank_ms@K=20[cuda]", "rerank_ms@K=50[cuda]",
    "slow_exhaustive_vs_rerank_ratio@1k", "index_vs_rclip_ratio", "cli_query_vs_rclip_ratio",
    "app_start_to_window_ms", "app_start_to_first_results_ms", "first_query_after_start_ms", "cli_query_rerank_s",
)


def required_names(mode: str) -> list[str]:
    """Every figure a run of this mode writes (a value, or null with the reason)."""
    labels = [label for label, _, _ in SIZES[mode].ann_sizes]
    ann = [f"{fig}@{label}" for label in labels for fig in ("ann_p50_ms", "ann_recall@10", "exact_p50_ms")]
    return list(BASE_NAMES[:7]) + ann + list(BASE_NAMES[7:])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes, ≤ 10 minutes, no @1M and no rclip")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: toy sizes, seconds
    p.add_argument("--out", default="benchmarks/results.json", metavar="FILE.json", help="results file (+ FILE.md)")
    p.add_argument("--models", default="synthscenes", metavar="B", help="model bundle folder or preset")
    p.add_argument("--only", metavar="GROUPS", help=f"comma-separated subset of {','.join(GROUPS)}")
    p.add_argument("--cache", metavar="DIR", help="where generated photos, vectors and indexes are kept "
                                                  "(default: $FASTSLOW_BENCH_CACHE or the temp folder)")
    return p


def _set_threads() -> None:
    """Explicit thread counts, recorded in the machine block (set before torch is imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "FASTSLOW_TORCH_THREADS"):
        os.environ.setdefault(var, str(THREADS))
    # As the app's entry point does (fastslow_desktop/cli.py main): in-process groups then run the
    # engine and library the way `fastslow` and the desktop app run them.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(int(os.environ["FASTSLOW_TORCH_THREADS"]))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    if args.cache:
        os.environ["FASTSLOW_BENCH_CACHE"] = args.cache
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _set_threads()
    from . import report
    from .common import machine_info

    sizes = SIZES[mode]
    machine = machine_info()
    machine.update(mode=mode, models=args.models)
    groups = GROUPS if not args.only else tuple(g.strip() for g in args.only.split(","))
    rows: list[Result] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fastslow-bench-") as scratch:
        ctx = Context(sizes, args.models, cache_dir(), Path(scratch))
        for group in groups:
            begin = time.perf_counter()
            logger.info("running %s (%s)", group, mode)
            try:
                module = __import__(f"benchmarks.{group}", fromlist=["run"])
                rows += module.run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken group must not lose the others' figures
                logger.error("%s failed:\n%s", group, traceback.format_exc())
                ctx.notes.append(f"{group} failed: {type(exc).__name__}: {exc}")
            logger.info("%s took %.0f s", group, time.perf_counter() - begin)
    have = {r.name for r in rows}
    if not args.only:
        for name in required_names(mode):
            if name not in have:
                rows.append(skipped(name, "", "not measured: its benchmark group failed (see notes)"))
    machine.update(load_average_end=list(os.getloadavg()), seconds=round(time.perf_counter() - started, 1),
                   notes=ctx.notes, sizes={k: v for k, v in vars(sizes).items() if k != "mode"})
    md = report.write(Path(args.out), machine, rows)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
