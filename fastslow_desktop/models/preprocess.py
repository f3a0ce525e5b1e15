"""Image preprocessing shared by both models: PIL image -> normalised tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

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
        from open_clip.transform import image_transform

        self.config = config
        self._transform = image_transform(
            config.image_size,
            is_train=False,
            mean=config.mean,
            std=config.std,
            resize_mode=config.resize_mode,
            interpolation=config.interpolation,
        )
        self._geometry = pil_steps(self._transform)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self._transform(image)

    def resize(self, image: Image.Image) -> Image.Image:
        """Only the PIL steps (resize, crop, mode), for decode threads: making the tensors there too
        was slower than on the model's thread. Calling the preprocess on the result gives the same
        tensor as on `image` (each step leaves an image of its output size unchanged)."""
        return apply_steps(self._geometry, image)

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self(im) for im in images])  # (B, 3, S, S)


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
