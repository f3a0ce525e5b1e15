"""Fast dual encoder: open_clip image tower f and text tower g, scored by f(x)ᵀg(y).

Three ways to build one: a named JSON architecture (`fast-tiny`, `fast-synth`) with random
weights for training, an open_clip architecture plus pretrained tag from the hub, or a bundle.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .backends import select_backend
from .config import load_arch
from .device import configure_threads, resolve_device
from .preprocess import ImagePreprocess, PreprocessConfig, apply_steps, pil_steps
from .tokenizer import TextTokenizer, TokenizerConfig

logger = logging.getLogger(__name__)


def build_clip(arch: dict, vocab_size: int, context_length: int) -> torch.nn.Module:
    """An open_clip CLIP model (random weights) from an architecture dict."""
    from open_clip.model import CLIP

    text_cfg = dict(arch["text_cfg"], vocab_size=vocab_size, context_length=context_length)
    return CLIP(
        embed_dim=arch["embed_dim"],
        vision_cfg=copy.deepcopy(arch["vision_cfg"]),
        text_cfg=text_cfg,
        quick_gelu=arch.get("quick_gelu", False),
    )


def _embedding_dim(model: torch.nn.Module) -> int:
    """Width of the joint space; CustomTextCLIP (SigLIP2, MobileCLIP2) keeps its projection in `.text`."""
    proj = getattr(model, "text_projection", None)
    if proj is None:
        proj = getattr(getattr(model, "text", None), "text_projection", None)
    if isinstance(proj, torch.nn.Linear):
        return int(proj.out_features)
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[-1])
    return int(model.visual.output_dim)


class FastEncoder:
    """Embeds images and texts into one space; rows are float32 and L2-normalised."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        preprocess: ImagePreprocess,
        model_id: str,
        arch: dict | None = None,
        device: str | torch.device = "auto",
        backend: str | None = None,
    ):
        configure_threads()
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.model_id = model_id
        self.arch = arch
        self.dim = _embedding_dim(model)
        self.backend_request = backend  # None: --backend / FASTSLOW_BACKEND / auto, decided on first use
        self._backend = None
        self._backend_lock = threading.Lock()

    @property
    def backend(self):
        """What the towers run on (`.name`: torch, bf16, fp16 or onnx); chosen and guarded on first use."""
        with self._backend_lock:
            if self._backend is None:
                self._backend = select_backend(self, self.backend_request)
            return self._backend

    def use_backend(self, name: str | None) -> str:
        """Choose again (`name` None: the setting or auto); returns the backend that passed its guard."""
        with self._backend_lock:
            self.backend_request = name
            self._backend = select_backend(self, name)
            return self._backend.name

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_arch(
        cls, arch: str | dict, tokenizer: TextTokenizer, model_id: str = "untrained", device="cpu"
    ) -> FastEncoder:
        """Random weights from a named or inline architecture (training starts here)."""
        arch = load_arch(arch) if isinstance(arch, str) else arch
        model = build_clip(arch, tokenizer.vocab_size, tokenizer.context_length)
        preprocess = ImagePreprocess(PreprocessConfig.from_dict(arch.get("preprocess", {})))
        return cls(model, tokenizer, preprocess, model_id, arch=arch, device=device)

    @classmethod
    def from_open_clip(cls, model_name: str, pretrained: str | None = None, device="auto",
                       cache_dir: str | None = None) -> FastEncoder:
        """An open_clip model by architecture + pretrained tag, or 'hf-hub:org/repo', or 'local-dir:PATH'.

        Weights load through open_clip with torch.load(weights_only=True) or safetensors.
        """
        import open_clip

        model, _, preprocess_val = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, cache_dir=cache_dir, weights_only=True
        )
        tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
        pp = _OpenClipPreprocess(preprocess_val, getattr(model.visual, "preprocess_cfg", {}))
        model_id = f"open_clip:{model_name}:{pretrained or ''}"
        return cls(model, _OpenClipTokenizerAdapter(tokenizer), pp, model_id, device=device)

    # -- encoding -------------------------------------------------------------------------
    def encode_image_tensors(self, pixels: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """(n, 3, S, S) preprocessed pixels -> (n, d) float32 unit rows."""
        out = []
        backend = self.backend
        for start in range(0, len(pixels), batch_size):
            out.append(F.normalize(backend.image(pixels[start : start + batch_size]), dim=-1))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """list of PIL images -> (n, d) float32, rows L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encode_image_tensors(torch.stack([self.preprocess(im) for im in images]), batch_size)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """list of strings -> (n, d) float32, rows L2-normalised."""
        out = []
        backend = self.backend
        for start in range(0, len(texts), batch_size):
            ids = self.tokenizer(list(texts[start : start + batch_size]))
            out.append(F.normalize(backend.text(ids), dim=-1))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)


class _OpenClipPreprocess:
    """Adapts open_clip's torchvision transform to our preprocess interface."""

    def __init__(self, transform, cfg: dict):
        self._transform = transform
        self._geometry = pil_steps(transform)
        size = cfg.get("size", 224)
        self.config = PreprocessConfig(
            image_size=size[0] if isinstance(size, (tuple, list)) else int(size),
            mean=tuple(cfg.get("mean", PreprocessConfig.mean)),
            std=tuple(cfg.get("std", PreprocessConfig.std)),
            resize_mode=cfg.get("resize_mode", "shortest"),
            interpolation=cfg.get("interpolation", "bicubic"),
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self._transform(image)

    def resize(self, image: Image.Image) -> Image.Image:
        """The PIL steps only, as `ImagePreprocess.resize`."""
        return apply_steps(self._geometry, image)

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self(im) for im in images])


class _OpenClipTokenizerAdapter:
    """open_clip's own tokenizer for hub models, with our query normalisation in front."""

    def __init__(self, tokenizer):
        from .tokenizer import normalize_query

        self._tok = tokenizer
        self._normalize = normalize_query
        self.context_length = getattr(tokenizer, "context_length", 77)
        self.config = TokenizerConfig(context_length=self.context_length)

    def __call__(self, texts):
        if isinstance(texts, str):
            texts = [texts]
        return self._tok([self._normalize(t) for t in texts])
