"""Choosing the torch device and thread counts once, sensibly for small machines."""

from __future__ import annotations

import contextlib
import logging

import torch

from .backends import torch_threads

logger = logging.getLogger(__name__)

_threads_configured = False


def configure_threads() -> None:
    """Use every core for intra-op work but keep inter-op threads low: on 2-core laptops
    oversubscription (decode threads + torch pools) costs more than it gains."""
    global _threads_configured
    if _threads_configured:
        return
    _threads_configured = True
    torch.set_num_threads(torch_threads())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once parallel work started; harmless
        pass


def resolve_device(name: str | None = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; 'cuda' without a GPU falls back with a warning."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA was requested but no CUDA GPU is available; using the CPU")
        return torch.device("cpu")
    return torch.device(name)


def inference_autocast(device: torch.device):
    """fp16 autocast on CUDA (half the memory traffic; log-softmax stays fp32), plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
