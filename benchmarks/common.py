"""Shared pieces of the benchmarks: result rows, sizes, timing, the machine block, caches, models."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THREADS = os.cpu_count() or 1


@dataclass
class Result:
    """One figure. `ratio` is value / baseline unless the row says otherwise in `note`."""

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    goal: str | None = None  # e.g. "≥ 2" (applies to `ratio` when it is set, else to `value`)
    met: bool | None = None
    note: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("value", "baseline", "ratio"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 4)
        return data


def skipped(name: str, unit: str, reason: str, goal: str | None = None) -> Result:
    """A figure that could not be measured in this run: null, with the reason."""
    return Result(name, None, unit, goal=goal, note=reason)


@dataclass
class Sizes:
    """How big each benchmark is; `label`s stay fixed so every mode writes the same names."""

    mode: str
    photos: int  # camera-sized JPEGs for indexing
    photo_megapixels: tuple[float, ...]  # cycled over the photos
    vit_photos: int  # photos indexed with the ViT-B/32-sized encoder
    ceiling_tensors: int  # pre-decoded tensors for the encoder's own rate (demo bundle)
    vit_ceiling_tensors: int
    ann_sizes: tuple[tuple[str, int, int], ...]  # (label, n vectors, n queries)
    ann_dim: int
    ann_centres: int
    query_library: tuple[str, int]  # (label, n vectors) for stage 1
    query_repeats: int
    rerank_images: int  # the library that K re-ranks come from and that the slow model scans
    rerank_queries: int
    exhaustive_label: str
    exhaustive_queries: int
    vit_arch: str  # open_clip architecture for the "ViT-B/32-sized" figures
    rclip: bool
    startup: bool
    subprocesses: bool  # isolate index runs in fresh processes (peak RSS, cold start)


SIZES = {
    "full": Sizes("full", photos=100, photo_megapixels=(3.1, 6.0, 8.0, 12.0), vit_photos=100,
                  ceiling_tensors=512, vit_ceiling_tensors=64,
                  ann_sizes=(("100k", 100_000, 1000), ("1M", 1_000_000, 100)), ann_dim=512,
                  ann_centres=4000, query_library=("100k", 100_000), query_repeats=100, rerank_images=1000,
                  rerank_queries=24, exhaustive_label="1k", exhaustive_queries=2, vit_arch="ViT-B-32",
                  rclip=True, startup=True, subprocesses=True),
    "quick": Sizes("quick", photos=20, photo_megapixels=(3.1, 6.0, 8.0, 12.0), vit_photos=20,
                   ceiling_tensors=256, vit_ceiling_tensors=24,
                   ann_sizes=(("100k", 100_000, 200),), ann_dim=512, ann_centres=2000,
                   query_library=("100k", 100_000), query_repeats=50, rerank_images=1000, rerank_queries=8,
                   exhaustive_label="1k", exhaustive_queries=1, vit_arch="ViT-B-32", rclip=False,
                   startup=True, subprocesses=True),
    # For tests only: the quick run's names at toy sizes, in-process, in seconds.
    "tiny": Sizes("tiny", photos=3, photo_megapixels=(0.3,), vit_photos=2, ceiling_tensors=8,
                  vit_ceiling_tensors=4, ann_sizes=(("100k", 3000, 20),), ann_dim=64, ann_centres=30,
                  query_library=("100k", 3000), query_repeats=5, rerank_images=30,
                  rerank_queries=1, exhaustive_label="1k", exhaustive_queries=1, vit_arch="fast-tiny",
                  rclip=False, startup=False, subprocesses=False),
}


def cache_dir() -> Path:
    """Generated photos, vectors and libraries, kept between runs (FASTSLOW_BENCH_CACHE overrides)."""
    folder = Path(os.environ.get("FASTSLOW_BENCH_CACHE") or Path(tempfile.gettempdir()) / "fastslow-bench")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[pos]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, return value) of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB (Linux reports KiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / (1024 * 1024)


def child_env(threads: int = THREADS) -> dict:
    """The environment for processes we time: thread counts set explicitly, nothing removed."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), FASTSLOW_TORCH_THREADS=str(threads),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def compile_package() -> None:
    """Byte-compile fastslow_desktop, as `pip install` does for an installed copy (rclip, the peer, is
    timed as pip installed it): a process timed from a source tree that never writes bytecode (for
    example under PYTHONDONTWRITEBYTECODE) would otherwise compile every module it imports, each time."""
    import compileall

    compileall.compile_dir(str(REPO / "fastslow_desktop"), quiet=1)


def run_worker(function: str, kwargs: dict, timeout: float = 900) -> dict:
    """Run `benchmarks.worker` FUNCTION(**kwargs) in a fresh Python process; its JSON answer."""
    cmd = [sys.executable, "-m", "benchmarks.worker", function, json.dumps(kwargs)]
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, check=False, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {function} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")


def cpu_flags() -> list[str]:
    """The CPU's instruction-set flags that change inference speed (bf16, VNNI, AVX-512…)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in _FLAGS_OF_INTEREST if f in present]
    except OSError:
        pass
    return []


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, check=False,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    """Where the figures come from: CPU, cores, RAM, library versions, thread settings, GPU, load."""
    import hnswlib  # noqa: F401 - its presence is part of the set-up
    import numpy
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gpu": gpu,
        "git_commit": _git_commit(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": list(os.getloadavg()),
    }


@dataclass
class Context:
    """What every benchmark group gets: sizes, the model bundle spec, the cache and a scratch folder."""

    sizes: Sizes
    models: str
    cache: Path
    scratch: Path
    notes: list[str] = field(default_factory=list)
