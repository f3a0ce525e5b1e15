"""The models the benchmarks run: the demo bundle (or any bundle/preset given with --models), and
randomly initialised open_clip architectures (ViT-B-32, ViT-B-32-256) for speed-only comparisons."""

from __future__ import annotations

import json
import logging

import torch

from fastslow_desktop.models import (
    FastEncoder,
    ImagePreprocess,
    PreprocessConfig,
    load_bundle,
)
from fastslow_desktop.models.bundle import FORMAT, FORMAT_VERSION, Models
from fastslow_desktop.models.config import list_archs
from fastslow_desktop.models.tokenizer import TextTokenizer, TokenizerConfig

logger = logging.getLogger(__name__)


def bundle(spec: str, device: str = "cpu") -> Models:
    return load_bundle(spec, device=device)


def open_clip_image_size(arch: str) -> int:
    """The input side of an open_clip architecture (ViT-B-32: 224, ViT-B-32-256: 256)."""
    import open_clip

    cfg = open_clip.get_model_config(arch)
    size = cfg["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def random_encoder(arch: str, seed: int = 0, device: str = "cpu") -> FastEncoder:
    """A FastEncoder with random weights: open_clip `create_model(arch)` without pretrained weights
    (nothing is downloaded), or one of our named architectures (`fast-tiny`) for the tiny test run."""
    torch.manual_seed(seed)
    if arch in list_archs():
        tokenizer = TextTokenizer.compact_for(["a red circle left of a blue square"], context_length=16)
        return FastEncoder.from_arch(arch, tokenizer, model_id=f"random-{arch}", device=device)
    import open_clip

    model = open_clip.create_model(arch, pretrained=None)
    size = open_clip_image_size(arch)
    tokenizer = TextTokenizer(TokenizerConfig(context_length=int(model.context_length)))
    preprocess = ImagePreprocess(PreprocessConfig(image_size=size))  # open_clip's: shortest side + centre crop
    return FastEncoder(model, tokenizer, preprocess, f"random-{arch}", device=device)


def random_models(arch: str, seed: int = 0, device: str = "cpu") -> Models:
    """A `Models` whose fast encoder is `random_encoder(arch)` (the library only needs `.fast` to index)."""
    encoder = random_encoder(arch, seed, device)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": f"random-{arch}",
        "embedding_dim": int(encoder.dim),
        "fast": {"type": "open_clip", "weights": "fast.safetensors"},
        "files": {"fast.safetensors": f"random{seed:02d}{arch}".ljust(16, "0")},
        "rerank": {},
        "tokenizer": json.loads(json.dumps(encoder.tokenizer.to_config()))
        if hasattr(encoder.tokenizer, "to_config") else {},
    }
    models = Models(manifest, None, device=device)
    models._fast = encoder  # injected: there is no weight file to load
    encoder.model_id = models.model_id
    return models
