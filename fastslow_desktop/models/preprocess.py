"""Image preprocessing shared by both models: PIL image -> normalised tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class PreprocessConfig:
    """How pixels become a model input; stored in every bundle manifest."""

    image_size: int = 224  # square input side in pixels
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    resize_mode: str = "shortest"  # open_clip: 'shortest' (resize + centre crop), 'longest' (pad), 'squash'
    interpolation: str = "bicubic"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


class ImagePreprocess:
    """Callable PIL.Image -> (3, S, S) float tensor; thread-safe, so decode workers can run it."""

    def __init__(self, config: PreprocessConfig):
        self.config = config
        if config.resize_mode == "squash":
            # open_clip's squash transform rebuilt from PIL calls (tests/test_models.py compares them pixel for
            # pixel): importing open_clip brings torchvision, transformers and torch._dynamo, 6 of the
            # 12 s a one-shot `fastslow search` with re-ranking took on a 2-core EPYC.
            self._transform = None
            self._geometry = [_Squash(config.image_size, config.interpolation), _to_rgb]
            self._normalize = (torch.tensor(config.mean, dtype=torch.float32).view(3, 1, 1),
                               torch.tensor(config.std, dtype=torch.float32).view(3, 1, 1))
            return
        from open_clip.transform import image_transform

        self._transform = image_transform(
            config.image_size,
            is_train=False,
            mean=config.mean,
            std=config.std,
            resize_mode=config.resize_mode,
            interpolation=config.interpolation,
        )
        self._geometry = pil_steps(self._transform)
        self._normalize = _plain_normalize(self._transform, len(self._geometry))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if self._transform is None:
            return self.batch([image])[0]
        return self._transform(image)

    def resize(self, image: Image.Image) -> Image.Image:
        """Only the PIL steps (resize, crop, mode), for decode threads: making the tensors there too
        was slower than on the model's thread. Calling the preprocess on the result gives the same
        tensor as on `image` (each step leaves an image of its output size unchanged)."""
        return apply_steps(self._geometry, image)

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, 3, S, S): each image as `self(image)` gives it. Images the geometry steps leave at S×S
        RGB (the decode threads resized them) are normalised together in a few tensor ops, with
        ToTensor's and Normalize's arithmetic: 1 ms for 20 instead of 8 through the transform."""
        if self._normalize is None or not images:
            return torch.stack([self(im) for im in images])
        shaped = [apply_steps(self._geometry, im) for im in images]
        side = (self.config.image_size, self.config.image_size)
        if any(im.mode != "RGB" or im.size != side for im in shaped):  # never for squash: it always makes S×S RGB
            return torch.stack([self._transform(im) for im in images])
        pixels = torch.from_numpy(np.stack([np.asarray(im) for im in shaped])).permute(0, 3, 1, 2)
        mean, std = self._normalize
        return pixels.float().div(255).sub_(mean).div_(std).contiguous()


class _Squash:
    """torchvision's Resize((S, S)) of a PIL image, as open_clip's squash mode calls it."""

    def __init__(self, side: int, interpolation: str):
        self.size = (side, side)
        # open_clip: "bilinear" is bilinear, anything else ("bicubic", "random") bicubic
        self.resample = Image.Resampling.BILINEAR if interpolation == "bilinear" else Image.Resampling.BICUBIC

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.size == self.size else image.resize(self.size, self.resample)


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")  # open_clip's MaybeConvertMode, after the resize as there


def _plain_normalize(transform, n_geometry: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(mean, std) as (3, 1, 1) tensors when `transform` is its PIL steps, ToTensor and one Normalize
    and nothing else (the case `ImagePreprocess.batch` can do in bulk); otherwise None."""
    steps = list(getattr(transform, "transforms", []))[n_geometry:]
    if len(steps) != 2 or not type(steps[0]).__name__.endswith("ToTensor") or type(steps[1]).__name__ != "Normalize" \
            or getattr(steps[1], "inplace", False):
        return None
    mean = torch.as_tensor(steps[1].mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.as_tensor(steps[1].std, dtype=torch.float32).view(3, 1, 1)
    return mean, std


def pil_steps(transform) -> list:
    """The steps of a torchvision Compose before its ToTensor (resize, crop, mode: PIL only); none
    when `transform` is not a Compose or has no ToTensor, so that resizing first is simply skipped."""
    steps = list(getattr(transform, "transforms", []))
    end = next((i for i, t in enumerate(steps) if type(t).__name__.endswith("ToTensor")), 0)
    return steps[:end]


def apply_steps(steps: list, image: Image.Image) -> Image.Image:
    """`image` through `steps` (from `pil_steps`), in order."""
    for step in steps:
        image = step(image)
    return image
