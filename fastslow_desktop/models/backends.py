"""Inference backends for the fast towers (torch fp32, CPU bf16 autocast, CUDA fp16, ONNX Runtime fp32
and int8).

The choice is per machine: `--backend` / FASTSLOW_BACKEND override it. `auto` uses the choice a
`--backend measure` run remembered for this machine and model (a small JSON file in the cache), else picks by what
the hardware has (CUDA GPU -> fp16; a CPU with AMX-BF16 or AVX512-BF16 -> bf16; otherwise torch fp32).
Measuring is not done silently on a first start: it exports both towers to ONNX (seconds to a minute,
hundreds of MB) and times each backend, which a first query should not wait for; the flags alone get
the large differences right (emulated bf16 on AVX2-only CPUs is ~8x slower, native bf16 ~3x faster).
Every backend other than torch fp32 is guarded on first use: its embeddings of a few probe inputs
must have cosine >= 0.999 with torch fp32's (>= 0.99 for int8, whose weights are rounded on purpose),
else it is not used and the reason is logged. `auto` never picks int8 by flags: a lossy encoder is
used only when asked for, or when `measure` found it fastest on this machine and it passed its guard.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "bf16", "fp16", "onnx", "int8")
CHOICES = ("auto", "measure", *BACKENDS)
ENV = "FASTSLOW_BACKEND"
COSINE_GUARD = 0.999
COSINE_GUARD_INT8 = 0.99  # issue 15's bound for int8
CHOICE_FILE = "backend-choice.json"
MEASURE_IMAGES = 16  # per timed pass: a few batches, seconds even for a ViT-B/32 on 2 cores
MEASURE_ROUNDS = 3
PROBE_IMAGES = 4
PROBE_TEXTS = ("a photo", "a red car parked on a street", "two dogs playing in the snow at sunset",
               "a bowl of fruit on a wooden table")

_override: str | None = None


class BackendUnavailable(RuntimeError):
    """This backend cannot run here (missing package, no GPU, export failed); the message says why."""


def set_override(name: str | None) -> None:
    """The command line's `--backend` (None: back to FASTSLOW_BACKEND or auto)."""
    global _override
    if name is not None and name not in CHOICES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}")
    _override = name


def requested() -> str:
    """`--backend` if given, else FASTSLOW_BACKEND, else auto; an unknown env value is logged and ignored."""
    if _override is not None:
        return _override
    value = os.environ.get(ENV, "").strip().lower()
    if not value:
        return "auto"
    if value not in CHOICES:
        logger.warning("%s=%r is not one of %s; choosing automatically", ENV, value, ", ".join(CHOICES))
        return "auto"
    return value


@lru_cache(maxsize=4)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's ISA flags (Linux); empty where /proc/cpuinfo is not there (macOS, Windows)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_native_bf16(flags: frozenset[str] | set[str]) -> bool:
    """AMX-BF16 or AVX512-BF16: bf16 matmuls in hardware (without them torch emulates bf16, slowly)."""
    return bool({"amx_bf16", "avx512_bf16"} & set(flags))


def torch_threads() -> int:
    """Intra-op threads for inference: FASTSLOW_TORCH_THREADS when set to a number, else every core.

    Torch-free, so that the lean text path (text_onnx) gives ONNX Runtime the count torch would use.
    """
    try:
        wanted = int(os.environ.get("FASTSLOW_TORCH_THREADS", "0"))
    except ValueError:
        wanted = 0
    return max(1, wanted or os.cpu_count() or 1)


def onnx_available() -> bool:
    """ONNX Runtime and onnx (the optional `[onnx]` extra) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def auto_choice(device_type: str, flags: frozenset[str] | set[str]) -> str:
    """The backend `auto` means on this hardware (by flags; see the module docstring for why)."""
    if device_type == "cuda":
        return "fp16"
    if has_native_bf16(flags):
        return "bf16"
    return "torch"


class TorchBackend:
    """The torch module itself, optionally under autocast (bf16 on CPU, fp16 on CUDA)."""

    def __init__(self, model, device, dtype=None, name: str = "torch", text_dtype=None):
        self.model, self.device, self.dtype, self.name = model, device, dtype, name
        self.text_dtype = text_dtype

    def _autocast(self, dtype):
        import contextlib

        import torch

        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def image(self, pixels):
        """(n, 3, S, S) pixels -> (n, d) float32 CPU tensor, not normalised."""
        import torch

        with torch.no_grad(), self._autocast(self.dtype):
            return self.model.encode_image(pixels.to(self.device, non_blocking=True)).float().cpu()

    def text(self, ids):
        """(n, L) token ids -> (n, d) float32 CPU tensor, not normalised."""
        import torch

        with torch.no_grad(), self._autocast(self.text_dtype):
            return self.model.encode_text(ids.to(self.device)).float().cpu()


def build_backend(name: str, encoder) -> TorchBackend:
    """The backend `name` for `encoder`, unguarded; raises BackendUnavailable when it cannot run here."""
    import torch

    device = encoder.device
    if name == "torch":
        return TorchBackend(encoder.model, device)
    if name == "bf16":
        if device.type != "cpu":
            raise BackendUnavailable("bf16 autocast is the CPU backend; the model runs on " + device.type)
        # Text stays fp32: a query is one short text (milliseconds either way), and fp32 gives the scores the
        # lean ONNX text encoder gives, which answers most queries; bf16 pays on the image side (indexing).
        return TorchBackend(encoder.model, device, torch.bfloat16, "bf16")
    if name == "fp16":
        if device.type != "cuda":
            raise BackendUnavailable("fp16 needs a CUDA GPU")
        return TorchBackend(encoder.model, device, torch.float16, "fp16", text_dtype=torch.float16)
    if name in ("onnx", "int8"):
        if device.type != "cpu":
            raise BackendUnavailable(f"the {name} backend runs on the CPU; the model runs on " + device.type)
        if not onnx_available():
            raise BackendUnavailable("onnxruntime is not installed (pip install 'fastslow-desktop[onnx]')")
        from .onnx_backend import OnnxUnavailable, load_or_export, load_or_quantize

        try:
            return load_or_export(encoder) if name == "onnx" else load_or_quantize(encoder)
        except OnnxUnavailable as exc:
            raise BackendUnavailable(str(exc)) from exc
    raise BackendUnavailable(f"unknown backend {name!r}")


def probe_inputs(encoder, n_images: int = PROBE_IMAGES):
    """Fixed pseudo-random pixels and a few captions: the guard's inputs (same on every run)."""
    import torch

    size = int(encoder.preprocess.config.image_size)
    generator = torch.Generator().manual_seed(1234)
    pixels = torch.randn(n_images, 3, size, size, generator=generator)
    return pixels, encoder.tokenizer(list(PROBE_TEXTS))


def guard_cosine(candidate, reference, encoder) -> float:
    """The smallest cosine between `candidate`'s and `reference`'s embeddings of the probe inputs."""
    import torch.nn.functional as F

    pixels, ids = probe_inputs(encoder)
    worst = 1.0
    for a, b in ((candidate.image(pixels), reference.image(pixels)), (candidate.text(ids), reference.text(ids))):
        cos = F.cosine_similarity(a.float(), b.float(), dim=-1)
        worst = min(worst, float(cos.min()))
    return worst


def guarded(name: str, encoder, reference: TorchBackend):
    """Backend `name` if it can run here and passes the cosine guard against `reference`; else None (logged)."""
    try:
        candidate = build_backend(name, encoder)
        cosine = guard_cosine(candidate, reference, encoder)
    except BackendUnavailable as exc:
        logger.warning("backend %s not used: %s; using torch fp32", name, exc)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure of an optional backend falls back, logged
        logger.warning("backend %s not used: it failed on the probe inputs (%s: %s); using torch fp32",
                       name, type(exc).__name__, exc)
        return None
    bound = COSINE_GUARD_INT8 if name == "int8" else COSINE_GUARD
    if not cosine >= bound:  # `not >=` so that NaN fails too
        logger.warning("backend %s not used: its embeddings differ from torch fp32's (cosine %.5f < %.3f); "
                       "using torch fp32", name, cosine, bound)
        return None
    logger.debug("backend %s passes its guard (cosine %.5f)", name, cosine)
    return candidate


def _choice_file() -> Path:
    from ..paths import cache_dir

    return cache_dir() / CHOICE_FILE


def _choice_key(encoder) -> str:
    """This machine (CPU model, flags, cores, torch) and these weights: a measured choice is valid for both."""
    import torch

    from .onnx_backend import weights_digest

    machine = f"{cpu_model()}|{sorted(cpu_flags())}|{os.cpu_count()}|{torch.__version__}|{encoder.device}"
    return hashlib.blake2b(f"{machine}|{weights_digest(encoder.model)}".encode(), digest_size=12).hexdigest()


def remembered(encoder) -> str | None:
    """The backend `--backend measure` found fastest for this machine and model, if it ever ran."""
    try:
        choices = json.loads(_choice_file().read_text())
    except (OSError, ValueError):
        return None  # never measured, or an unreadable file: pick by flags
    entry = choices.get(_choice_key(encoder)) if isinstance(choices, dict) else None
    name = entry.get("backend") if isinstance(entry, dict) else None
    return name if name in BACKENDS else None


def _images_per_s(backend, pixels) -> float:
    backend.image(pixels[:4])  # warm-up: first-call allocations
    start = time.perf_counter()
    backend.image(pixels)
    return len(pixels) / (time.perf_counter() - start)


def _remember(encoder, name: str, speeds: dict[str, float]) -> None:
    file = _choice_file()
    try:
        choices = json.loads(file.read_text()) if file.is_file() else {}
        choices = choices if isinstance(choices, dict) else {}
    except (OSError, ValueError):
        choices = {}
    choices[_choice_key(encoder)] = {"backend": name, "images_per_s": {k: round(v, 2) for k, v in speeds.items()},
                                     "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(choices, indent=1))
        tmp.replace(file)
    except OSError as exc:  # a full or read-only cache: the choice holds for this run only
        logger.warning("could not remember the backend choice in %s: %s", file, exc)


def measure_and_remember(encoder, reference: TorchBackend):
    """Time every backend that can run here and passes its guard; remember and return the fastest."""
    import torch

    candidates = {"torch": reference}
    # emulated bf16 (no AMX / AVX512-BF16) is always far slower: not worth timing
    names = ("fp16",) if encoder.device.type == "cuda" else \
        ("bf16",) * has_native_bf16(cpu_flags()) + ("onnx", "int8")
    for name in names:
        if name in ("onnx", "int8") and not onnx_available():
            continue
        backend = guarded(name, encoder, reference)
        if backend is not None:
            candidates[name] = backend
    size = int(encoder.preprocess.config.image_size)
    pixels = torch.randn(MEASURE_IMAGES, 3, size, size, generator=torch.Generator().manual_seed(5))
    speeds = dict.fromkeys(candidates, 0.0)
    for _ in range(MEASURE_ROUNDS):  # interleaved, best of the rounds: a load spike hits every backend alike
        for name, backend in candidates.items():
            speeds[name] = max(speeds[name], _images_per_s(backend, pixels))
    best = max(speeds, key=speeds.__getitem__)
    logger.info("backend speeds here (images/s): %s; remembering %s",
                ", ".join(f"{k} {v:.1f}" for k, v in speeds.items()), best)
    _remember(encoder, best, speeds)
    return candidates[best]


def select_backend(encoder, name: str | None = None) -> TorchBackend:
    """The backend the fast towers run on: requested or automatic, guarded, else torch fp32 (logged)."""
    import torch

    wanted = name or requested()
    # torch fp32 is the reference; on CUDA the pre-backend default (fp16 autocast) stays `auto`'s pick
    reference = TorchBackend(encoder.model, encoder.device)
    if wanted == "measure":
        chosen = measure_and_remember(encoder, reference)
    else:
        if wanted == "auto":
            wanted = remembered(encoder) or auto_choice(encoder.device.type, cpu_flags())
        chosen = reference if wanted == "torch" else guarded(wanted, encoder, reference) or reference
    logger.info("fast towers: %s on %s (%d threads)", "torch fp32" if chosen.name == "torch" else chosen.name,
                encoder.device, torch.get_num_threads())
    return chosen
