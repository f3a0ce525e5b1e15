"""Builders used by several test modules."""

from __future__ import annotations

from pathlib import Path

import torch

from fastslow_desktop.models import PreprocessConfig, RerankConfig, SlowCaptioner, SlowConfig, TextTokenizer, save_bundle
from fastslow_desktop.models.config import load_arch
from fastslow_desktop.models.fast import build_clip

TINY_WORDS = [
    "a red circle to the left of a blue square", "a large green star", "two small yellow triangles",
    "an orange star above a purple circle", "three large red squares",
]


def tiny_models(seed: int = 0):
    torch.manual_seed(seed)
    tokenizer = TextTokenizer.compact_for(TINY_WORDS, context_length=16)
    fast_arch = load_arch("fast-tiny")
    fast = build_clip(fast_arch, tokenizer.vocab_size, tokenizer.context_length)
    slow_cfg = SlowConfig.from_dict(
        dict(load_arch("slow-tiny"), vocab_size=tokenizer.vocab_size, context_length=tokenizer.context_length)
    )
    slow = SlowCaptioner(slow_cfg)
    return tokenizer, fast_arch, fast, slow


def make_tiny_bundle(out: Path, seed: int = 0) -> Path:
    tokenizer, fast_arch, fast, slow = tiny_models(seed)
    return save_bundle(
        out,
        name="tiny",
        fast_model=fast,
        fast_arch=fast_arch,
        fast_preprocess=PreprocessConfig.from_dict(fast_arch["preprocess"]),
        slow_model=slow.eval(),
        slow_preprocess=PreprocessConfig(image_size=slow.cfg.image_size, resize_mode="squash"),
        tokenizer=tokenizer,
        rerank=RerankConfig(k=10, beta=1.0, normalization="zscore"),
        provenance={"data": "none (random weights)", "preset": "test"},
    )
