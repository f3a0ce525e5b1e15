"""Pixel augmentation for training batches: colour jitter, white-balance cast, small turns and stretches, blur, noise.

Every operation keeps a SynthScenes caption true: no flips (they would swap left and right), no hue
changes beyond a small cast (they would change colour words), no crops (they could cut an object out);
a turn is at most a few degrees and shrinks the picture so that nothing leaves it. All strengths
default to 0 (off), so that a preset without them trains exactly as before. Applied to the student's
(or the captioner's) batch only; a teacher scores clean pixels. The random draws come from a generator seeded once per
stage, so a resumed run draws other augmentations than an uninterrupted one would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .params import TrainConfig


@dataclass(frozen=True)
class Strengths:
    """How strong each augmentation is; 0 turns it off."""

    colour: float = 0.0  # brightness, contrast and saturation factors in [1 - c, 1 + c]
    turn: float = 0.0  # degrees, either way
    stretch: float = 0.0  # width / height changed by a factor in [exp(-s), exp(s)]
    blur: float = 0.0  # largest Gaussian sigma in input pixels (half of the images get some blur)
    noise: float = 0.0  # largest Gaussian noise sigma, in [0, 1] pixel units
    cast: float = 0.0  # white-balance error: one offset per channel in [-cast, cast], [0, 1] pixel units

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Strengths:
        return cls(cfg.augment_colour, cfg.augment_turn, cfg.augment_stretch, cfg.augment_blur, cfg.augment_noise,
                   cfg.augment_cast)

    @property
    def active(self) -> bool:
        return any((self.colour, self.turn, self.stretch, self.blur, self.noise, self.cast))


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _colour(x: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x * _uniform(n, 1 - c, 1 + c, gen).view(n, 1, 1, 1)
    grey = x.mean(1, keepdim=True)  # (B, 1, S, S)
    x = grey + (x - grey) * _uniform(n, 1 - c, 1 + c, gen).view(n, 1, 1, 1)  # saturation
    level = grey.mean((2, 3), keepdim=True)
    return level + (x - level) * _uniform(n, 1 - c, 1 + c, gen).view(n, 1, 1, 1)  # contrast


def _cast(x: torch.Tensor, most: float, gen: torch.Generator) -> torch.Tensor:
    """The same offset on every pixel of a channel, as a camera's white-balance error.

    The colour jitter above scales all channels alike, so a neutral grey background stays neutral; a
    model trained only on neutral backgrounds can learn "has chroma" as "is an object", and then a cast
    of 8 levels per channel cost the captioner trained without this 15 R@1 points (README, issue 16).
    """
    n = x.shape[0]
    return x + _uniform(n * 3, -most, most, gen).view(n, 3, 1, 1).to(x)


def _geometry(x: torch.Tensor, turn: float, stretch: float, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    angle = torch.deg2rad(_uniform(n, -turn, turn, gen))
    log_aspect = _uniform(n, -stretch, stretch, gen)
    # Output point -> input point. Sampling a larger input area (factor cos + sin, and the stretch's
    # larger side) shrinks the picture, so a turned corner never cuts an object.
    grow = (torch.cos(angle) + torch.sin(angle.abs())) * torch.exp(log_aspect.abs())
    sx, sy = grow * torch.exp(-log_aspect), grow * torch.exp(log_aspect)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy, torch.zeros(n)], 1),
                         torch.stack([sin * sx, cos * sy, torch.zeros(n)], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur(x: torch.Tensor, most: float, gen: torch.Generator) -> torch.Tensor:
    """Half of the images blurred, each with its own sigma: one grouped convolution per axis for the batch.

    (A loop of per-image convolutions cost more than the training step itself.) Images left sharp get
    a one-tap kernel.
    """
    n, c, h, w = x.shape
    sigmas = _uniform(n, 0.3, most, gen)
    chosen = torch.rand(n, generator=gen) < 0.5
    radius = max(1, math.ceil(2 * most))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    taps = torch.exp(-0.5 * (offsets[None, :] / sigmas[:, None].to(x.dtype)) ** 2)  # (B, 2r + 1)
    taps = torch.where(chosen[:, None], taps, (offsets == 0).to(x.dtype)[None, :])
    taps = (taps / taps.sum(1, keepdim=True)).repeat_interleave(c, 0).to(x.device)  # (B·C, 2r + 1)
    image = F.pad(x.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    image = F.conv2d(image, taps.view(n * c, 1, 1, -1), groups=n * c)
    image = F.conv2d(image, taps.view(n * c, 1, -1, 1), groups=n * c)
    return image.view(n, c, h, w)


def augment(x: torch.Tensor, strengths: Strengths, gen: torch.Generator) -> torch.Tensor:
    """Augmented copies of (B, 3, S, S) pixels in [0, 1]."""
    if strengths.colour:
        x = _colour(x, strengths.colour, gen)
    if strengths.cast:
        x = _cast(x, strengths.cast, gen)
    if strengths.turn or strengths.stretch:
        x = _geometry(x, strengths.turn, strengths.stretch, gen)
    if strengths.blur:
        x = _blur(x, strengths.blur, gen)
    if strengths.noise:
        sigma = _uniform(x.shape[0], 0.0, strengths.noise, gen).view(-1, 1, 1, 1).to(x)
        x = x + sigma * torch.randn(x.shape, generator=gen).to(x)
    return x.clamp(0, 1)


class AugmentedPixels:
    """A PixelSource whose batches come out augmented (the preprocess's normalisation undone and redone)."""

    def __init__(self, source, mean: Sequence[float], std: Sequence[float], strengths: Strengths, seed: int):
        self.source, self.strengths = source, strengths
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.gen = torch.Generator().manual_seed(seed)

    def __getitem__(self, idx: Sequence[int]) -> torch.Tensor:
        x = self.source[idx]
        pixels = augment(x * self.std + self.mean, self.strengths, self.gen)
        return (pixels - self.mean) / self.std


def maybe_augment(source, preprocess_config, cfg: TrainConfig, salt: int):
    """`source` itself when every strength is 0 (the default), an AugmentedPixels view otherwise."""
    strengths = Strengths.from_config(cfg)
    if not strengths.active:
        return source
    return AugmentedPixels(source, preprocess_config.mean, preprocess_config.std, strengths, cfg.seed * 1000 + salt)
