"""The peer most people use today, rclip (PyPI, in its own virtual environment), against FastSlow on
the same camera photos with the same architecture: open_clip ViT-B-32-256, randomly initialised on
both sides (rclip loads ONNX files from RCLIP_DATADIR; we export ours there). Only speed is compared.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastslow_desktop.models.backends import CHOICE_FILE

from .common import REPO, THREADS, Context, Result, child_env, compile_package, skipped
from .photos import camera_photos

logger = logging.getLogger(__name__)

ARCH = "ViT-B-32-256"
RCLIP_MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # where rclip looks (rclip/model_download.py)
INDEX_GOAL = 3.0  # issue 15 (was 1.5)
QUERY_GOAL = 1.5  # issue 15: one-shot `fastslow search --no-rerank` against `rclip`
QUERY = "a red circle to the left of a blue square"


def default_venv() -> Path:
    return Path(os.environ.get("FASTSLOW_BENCH_RCLIP_VENV") or Path(tempfile.gettempdir()) / "rclip-venv")


def export_venv() -> Path:
    """A venv that sees this interpreter's packages (torch, open_clip) plus `onnx`, which torch's ONNX
    exporter needs and the app does not: the app's own environment stays as it is."""
    venv = Path(os.environ.get("FASTSLOW_BENCH_EXPORT_VENV") or Path(tempfile.gettempdir()) / "onnx-export-venv")
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    probe = subprocess.run([str(python), "-c", "import onnx"], capture_output=True, check=False, timeout=120)
    if probe.returncode != 0:
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "onnx"], check=True, timeout=900)
    return python


def ensure_rclip(venv: Path) -> Path:
    """rclip's executable, installing it into `venv` with pip when it is not there yet."""
    exe = venv / "bin" / "rclip"
    if not exe.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "rclip"], check=True, timeout=900)
    return exe


def random_bundle(cache: Path) -> Path:
    """A FastSlow bundle whose fast model is open_clip ViT-B-32-256 with random weights (seed 0) and
    whose slow model is the tiny captioner (never used here); cached."""
    import open_clip
    import torch

    from fastslow_desktop.models import (
        PreprocessConfig,
        RerankConfig,
        SlowCaptioner,
        SlowConfig,
        save_bundle,
    )
    from fastslow_desktop.models.config import load_arch
    from fastslow_desktop.models.fast import build_clip
    from fastslow_desktop.models.tokenizer import TextTokenizer, TokenizerConfig

    folder = cache / f"bundle-random-{ARCH}"
    if (folder / "manifest.json").is_file():
        return folder
    torch.manual_seed(0)
    tokenizer = TextTokenizer(TokenizerConfig(context_length=77))
    arch = dict(open_clip.get_model_config(ARCH))
    size = arch["vision_cfg"]["image_size"]
    arch["preprocess"] = {"image_size": int(size), "resize_mode": "shortest", "interpolation": "bicubic"}
    fast = build_clip(arch, tokenizer.vocab_size, tokenizer.context_length)
    slow = SlowCaptioner(SlowConfig.from_dict(dict(load_arch("slow-tiny"), vocab_size=tokenizer.vocab_size,
                                                   context_length=tokenizer.context_length)))
    return save_bundle(folder, name=f"random-{ARCH}", fast_model=fast, fast_arch=arch,
                       fast_preprocess=PreprocessConfig.from_dict(arch["preprocess"]), slow_model=slow.eval(),
                       slow_preprocess=PreprocessConfig(image_size=slow.cfg.image_size, resize_mode="squash"),
                       tokenizer=tokenizer, rerank=RerankConfig(k=20),
                       provenance={"data": "none (random weights, speed benchmarks only)", "preset": "bench"})


def export_onnx(bundle_dir: Path, datadir: Path) -> None:
    """The bundle's image and text towers as rclip's visual.onnx / textual.onnx (input 'input',
    output 'output', dynamic batch), plus the BPE vocabulary rclip's tokenizer reads."""
    import open_clip
    import torch

    from fastslow_desktop.models import load_bundle

    out = datadir / RCLIP_MODEL_SUBDIR
    if (out / "visual.onnx").is_file() and (out / "textual.onnx").is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    model = load_bundle(bundle_dir, device="cpu").fast.model.eval()

    class Visual(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, pixels):  # (B, 3, 256, 256) -> (B, 512)
            return self.clip.encode_image(pixels)

    class Textual(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, ids):  # (B, 77) int64 -> (B, 512)
            return self.clip.encode_text(ids)

    size = int(open_clip.get_model_config(ARCH)["vision_cfg"]["image_size"])
    common = {"input_names": ["input"], "output_names": ["output"], "opset_version": 17,
              "dynamic_axes": {"input": {0: "batch"}, "output": {0: "batch"}}, "dynamo": False}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX export
    try:
        with torch.no_grad():
            torch.onnx.export(Visual(model), (torch.randn(2, 3, size, size),), str(out / "visual.onnx"), **common)
            torch.onnx.export(Textual(model), (torch.zeros(2, 77, dtype=torch.long),), str(out / "textual.onnx"),
                              **common)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    (datadir / "tokenizer").mkdir(parents=True, exist_ok=True)
    shutil.copy(vocab, datadir / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz")


def _wall(cmd: list[str], cwd: Path, env: dict, timeout: float = 1800) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}… exited {proc.returncode}: {proc.stderr[-1500:]}")
    return wall, proc.stdout


def _remembered(cache: Path) -> str:
    """The backend and speeds `--backend measure` wrote into `cache`."""
    try:
        [entry] = json.loads((cache / CHOICE_FILE).read_text()).values()
    except (OSError, ValueError) as exc:
        return f"unknown ({type(exc).__name__})"
    speeds = ", ".join(f"{k} {v:g}" for k, v in entry["images_per_s"].items())
    return f"{entry['backend']} (encoder alone, images/s: {speeds})"


def run(ctx: Context) -> list[Result]:
    compile_package()  # timed as an installed copy is
    names = (("index_vs_rclip_ratio", "×"), ("index_vs_rclip_ratio@auto", "×"), ("cli_query_vs_rclip_ratio", "×"))
    if not ctx.sizes.rclip:
        return [skipped(n, u, "full run only (rclip is installed and run in its own venv)",
                        goal=f"≥ {INDEX_GOAL:g}" if n.startswith("index") else None) for n, u in names]
    try:
        exe = ensure_rclip(default_venv())
    except (OSError, subprocess.SubprocessError) as exc:
        return [skipped(n, u, f"rclip could not be installed from PyPI: {exc}") for n, u in names]
    photos = camera_photos(ctx.cache, ctx.sizes.photos, ctx.sizes.photo_megapixels)
    n = len(list(photos.glob("*.jpg")))
    bundle_dir = random_bundle(ctx.cache)
    datadir = ctx.cache / "rclip-data"
    try:
        subprocess.run([str(export_venv()), "-m", "benchmarks.rclip_peer", "export", str(bundle_dir), str(datadir)],
                       cwd=REPO, env=child_env(), check=True, timeout=1800)
    except (OSError, subprocess.SubprocessError) as exc:
        return [skipped(n_, u, f"could not export ViT-B-32-256 to ONNX for rclip: {exc}") for n_, u in names]
    env = child_env()
    env.update(RCLIP_DATADIR=str(datadir), HF_HUB_OFFLINE="1")
    for f in photos.glob("*.jpg"):
        f.read_bytes()  # both tools read from the page cache

    # rclip: index from scratch (+ one query), then the same query without indexing.
    (datadir / "db.sqlite3").unlink(missing_ok=True)
    try:
        rclip_index_wall, _ = _wall([str(exe), "-t", "10", "-f", QUERY], photos, env)
        rclip_query = min(_wall([str(exe), "--no-indexing", "-t", "10", "-f", QUERY], photos, env)[0]
                          for _ in range(3))
    except (RuntimeError, subprocess.SubprocessError) as exc:
        return [skipped(n_, u, f"rclip did not run offline with the exported ONNX files: {exc}") for n_, u in names]
    rclip_rate = n / max(1e-9, rclip_index_wall - rclip_query)

    # FastSlow: `fastslow index` into a fresh library, then `fastslow search --no-rerank` (rclip has no stage 2).
    library = ctx.scratch / "lib-rclip-peer"
    shutil.rmtree(library, ignore_errors=True)
    fs = [sys.executable, "-m", "fastslow_desktop"]
    ours_index_wall, out = _wall(fs + ["index", str(photos), "--library", str(library), "--models", str(bundle_dir),
                                       "--json"], photos, env)
    report = json.loads(out.strip().splitlines()[-1])
    ours_rate = report["files_per_s"]
    ours_query = min(_wall(fs + ["search", QUERY, "--library", str(library), "--models", str(bundle_dir),
                                 "--no-rerank", "--top", "10", "--json"], photos, env)[0] for _ in range(3))
    # The same with `--backend measure`: the fastest guarded backend on this machine (what `auto` uses once
    # a measurement is remembered), in a cache of its own so the user's remembered choice is untouched.
    measured_env = dict(env, FASTSLOW_CACHE=str(ctx.scratch / "rclip-peer-cache"))
    shutil.rmtree(library, ignore_errors=True)
    _, out = _wall(fs + ["index", str(photos), "--library", str(library), "--models", str(bundle_dir),
                         "--backend", "measure", "--json"], photos, measured_env)
    best_rate = json.loads(out.strip().splitlines()[-1])["files_per_s"]
    best = _remembered(ctx.scratch / "rclip-peer-cache")
    index_ratio, auto_ratio = best_rate / rclip_rate, ours_rate / rclip_rate
    what = f"{n} camera photos, {ARCH} random weights on both sides ({THREADS} threads)"
    rclip_note = (f"rclip {rclip_rate:.2f} images/s (its index run's wall {rclip_index_wall:.1f} s minus a "
                  f"no-indexing query run {rclip_query:.1f} s)")
    return [
        Result("index_vs_rclip_ratio", index_ratio, "×", rclip_rate, index_ratio, goal=f"≥ {INDEX_GOAL:g}",
               met=index_ratio >= INDEX_GOAL,
               note=f"{what}: FastSlow {best_rate:.2f} images/s with `fastslow index --backend measure` (fastest "
                    f"guarded backend here: {best}; measuring and model load excluded) vs {rclip_note}"),
        Result("index_vs_rclip_ratio@auto", auto_ratio, "×", rclip_rate, auto_ratio,
               note=f"{what}: FastSlow {ours_rate:.2f} images/s with `fastslow index` as installed (`auto`, nothing "
                    f"measured yet; model load excluded; wall {ours_index_wall:.1f} s) vs {rclip_note}"),
        Result("cli_query_vs_rclip_ratio", rclip_query / ours_query, "×", rclip_query, rclip_query / ours_query,
               goal=f"≥ {QUERY_GOAL:g}", met=rclip_query / ours_query >= QUERY_GOAL,
               note=f"one command-line query, wall (import, load, search), best of 3: `fastslow search "
                    f"--no-rerank` {ours_query:.2f} s vs `rclip --no-indexing` {rclip_query:.2f} s; ratio = rclip / "
                    f"FastSlow (> 1: FastSlow is faster)"),
    ]


if __name__ == "__main__":  # `python -m benchmarks.rclip_peer export BUNDLE DATADIR` (in the export venv)
    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit("usage: python -m benchmarks.rclip_peer export BUNDLE DATADIR")
    export_onnx(Path(sys.argv[2]), Path(sys.argv[3]))
