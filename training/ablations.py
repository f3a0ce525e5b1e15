"""Variants measured against the default pipeline: attentive region removal, slow-to-fast decomposition.

- Attentive removal (A-CLIP): an EMA copy of the fast image tower scores image regions and training
  keeps the top r of them. The fast tower here is a CNN, so the "CNN equivalent" of attention from
  the pooled token is used: the EMA tower's activation energy on its stride-16 map.
- Decomposition init (VLDeformer): a dual encoder whose image tower is the slow model's visual
  tokenizer (mean-pooled) and whose text tower is the slow model's forward decoder run without
  cross-attention, initialised from the trained slow model or from scratch.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fastslow_desktop.models.preprocess import ImagePreprocess
from fastslow_desktop.models.slow import CaptionDecoder, SlowCaptioner, VisualTokenizer

from . import checkpoint
from .data import PixelSource
from .loop import Dist, train
from .params import TrainConfig
from .stages import FastObjective, FastSpec, new_fast, slow_preprocess

# -- attentive region removal --------------------------------------------------------------------

class RegionScorer:
    """EMA copy of a ModifiedResNet image tower; scores the cells of its stride-16 map."""

    def __init__(self, visual: nn.Module, decay: float = 0.99):
        if not hasattr(visual, "layer3"):
            raise ValueError("attentive removal is implemented for CNN (ModifiedResNet) image towers")
        self.ema = copy.deepcopy(visual).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, visual: nn.Module) -> None:
        for e, p in zip(self.ema.state_dict().values(), visual.state_dict().values()):
            if e.dtype.is_floating_point:
                e.lerp_(p.detach(), 1 - self.decay)
            else:
                e.copy_(p)

    @torch.no_grad()
    def keep_mask(self, pixels: torch.Tensor, ratio: float) -> torch.Tensor:
        """(B, 1, S, S) 1 where the region is kept: the top `ratio` of cells by activation energy."""
        e = self.ema
        fmap = e.layer3(e.layer2(e.layer1(e.stem(pixels))))  # (B, C, S/16, S/16)
        energy = fmap.pow(2).mean(1).flatten(1)  # (B, cells)
        keep = max(1, round(ratio * energy.shape[1]))
        top = energy.topk(keep, dim=1).indices
        mask = torch.zeros_like(energy).scatter_(1, top, 1.0)
        side = fmap.shape[-1]
        return F.interpolate(mask.view(-1, 1, side, side), size=pixels.shape[-2:], mode="nearest")


class AttentiveMaskObjective(FastObjective):
    """InfoNCE with each image reduced to its top-r regions (the rest set to the mean pixel, 0)."""

    def __init__(self, *args, ratio: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = ratio
        self.scorer: RegionScorer | None = None  # made at the first step: after a resume, from the resumed weights

    @property
    def visual(self) -> nn.Module:
        return getattr(self.model, "module", self.model).visual  # unwrap DistributedDataParallel

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        if self.scorer is None:
            self.scorer = RegionScorer(self.visual)
        self.scorer.update(self.visual)  # EMA of the weights after the previous step
        return super().__call__(step)

    def batch_pixels(self, idx: list[int]) -> torch.Tensor:
        x = super().batch_pixels(idx)
        return x * self.scorer.keep_mask(x, self.ratio)


def run_attentive(cfg: TrainConfig, out: Path, items, tokenizer, env: Dist) -> tuple[FastSpec, dict]:
    """The fast model trained like `fast` (same steps and batches) on attentively masked images."""
    folder = out / "stages" / "fast_attentive_mask"
    spec = new_fast(cfg, tokenizer)
    info = checkpoint.done_info(folder)
    if info is None:
        pixels = PixelSource(items, ImagePreprocess(spec.preprocess), workers=2)
        objective = AttentiveMaskObjective(cfg, items, pixels, tokenizer, spec.model, env, ratio=cfg.mask_ratio)
        steps = cfg.fast_steps + cfg.fast_extra_steps
        stats = train(folder.name, folder, {"model": spec.model}, objective, steps, cfg.fast_lr, cfg.warmup,
                      cfg.weight_decay, cfg.checkpoint_every, env)
        info = {"steps": steps, "mask_ratio": cfg.mask_ratio, **stats}
        if env.main:
            checkpoint.mark_done(folder, info)
    checkpoint.load_modules(folder, {"model": spec.model})
    return spec, info


# -- decomposition of the slow model into a dual encoder ------------------------------------------

class DecomposedDualEncoder(nn.Module):
    """Image: the slow visual tokenizer, mean-pooled. Text: the forward decoder without cross-attention."""

    def __init__(self, slow_cfg, embed_dim: int):
        super().__init__()
        self.visual = VisualTokenizer(slow_cfg)
        self.text = CaptionDecoder(slow_cfg)
        self.visual_projection = nn.Linear(slow_cfg.width, embed_dim, bias=False)
        self.text_projection = nn.Parameter(torch.randn(slow_cfg.width, embed_dim) * slow_cfg.width ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @classmethod
    def from_slow(cls, slow: SlowCaptioner, embed_dim: int) -> DecomposedDualEncoder:
        model = cls(slow.cfg, embed_dim)
        model.visual.load_state_dict(slow.visual.state_dict())
        model.text.load_state_dict(slow.fwd.state_dict())
        return model

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.visual(pixels).mean(1))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        dec = self.text
        length = ids.shape[1]
        x = dec.embed(ids) + dec.pos[:, :length]
        causal = dec.causal[:length, :length]
        # Each pre-norm decoder layer's own self-attention and feed-forward blocks (torch's helpers that
        # forward() calls), i.e. the layer's forward() with its cross-attention block left out.
        for layer in dec.layers.layers:
            x = x + layer._sa_block(layer.norm1(x), causal, None, is_causal=True)
            x = x + layer._ff_block(layer.norm3(x))
        x = dec.norm(x)
        return x[torch.arange(len(ids), device=ids.device), ids.argmax(-1)] @ self.text_projection  # EOT

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor):
        return (F.normalize(self.encode_image(pixels), dim=-1), F.normalize(self.encode_text(ids), dim=-1),
                self.logit_scale.exp())


def run_decomposed(cfg: TrainConfig, out: Path, items, tokenizer, slow: SlowCaptioner, env: Dist,
                   from_slow: bool, embed_dim: int) -> tuple[FastSpec, dict]:
    """decomposed_steps of InfoNCE for the decomposed dual encoder, from the slow weights or from scratch."""
    name = "fast_from_slow" if from_slow else "fast_decomposed_scratch"
    folder = out / "stages" / name
    model = DecomposedDualEncoder.from_slow(slow, embed_dim) if from_slow else \
        DecomposedDualEncoder(slow.cfg, embed_dim)
    preprocess = slow_preprocess(slow)
    info = checkpoint.done_info(folder)
    if info is None:
        pixels = PixelSource(items, ImagePreprocess(preprocess), workers=2)
        objective = FastObjective(cfg, items, pixels, tokenizer, model, env)
        stats = train(name, folder, {"model": model}, objective, cfg.decomposed_steps, cfg.fast_lr, cfg.warmup,
                      cfg.weight_decay, cfg.checkpoint_every, env)
        info = {"steps": cfg.decomposed_steps, "init": "slow" if from_slow else "scratch", **stats}
        if env.main:
            checkpoint.mark_done(folder, info)
    checkpoint.load_modules(folder, {"model": model})
    return FastSpec(model.eval(), {"kind": "decomposed"}, preprocess), info
