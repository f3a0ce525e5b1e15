"""Writes a SynthScenes dataset folder: images/, videos/ and captions.jsonl."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from .render import render_clip, render_image, sample_clip
from .captions import true_captions
from .scenes import Scene, sample_scene
from .variants import twins as confusable_twins  # `twins` is also generate()'s switch

logger = logging.getLogger(__name__)

CAPTIONS_FILE = "captions.jsonl"
IMAGE_FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "jpg": ("JPEG", ".jpg")}
JPEG_QUALITY = 92
# With twins on, every pair scene gets at least one twin (both twins this often); singles and counts
# get one this often.
BOTH_PAIR_TWINS = 0.35
OTHER_TWIN_RATE = 0.5


def plan_image_scenes(n_images: int, rng: random.Random, with_twins: bool = True) -> list[Scene]:
    """The scenes of an image set, twins included, in a shuffled order."""
    groups: list[list[Scene]] = []
    remaining = n_images
    while remaining > 0:
        # A last free slot gets no pair, whose twin would not fit: every pair keeps its twin.
        kind = rng.choice(("single", "count")) if with_twins and remaining == 1 else None
        scene = sample_scene(rng, kind)
        group = [scene]
        if with_twins:
            candidates = confusable_twins(scene, rng)
            if scene.kind == "pair":
                take = len(candidates) if rng.random() < BOTH_PAIR_TWINS else 1
                group += rng.sample(candidates, take)
            elif rng.random() < OTHER_TWIN_RATE:
                group.append(rng.choice(candidates))
        group = group[:remaining]
        groups.append(group)
        remaining -= len(group)
    scenes = [scene for group in groups for scene in group]
    rng.shuffle(scenes)
    return scenes


def _item_rng(seed: int, what: str, index: int) -> random.Random:
    # One stream per file, so that adding videos never changes the images of the same seed.
    return random.Random(f"synthscenes/{seed}/{what}/{index}")


def _render_images(out: Path, n_images: int, seed: int, twins: bool, pil_format: str, suffix: str,
                   sizes: tuple[int, int]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    min_size, max_size = sizes
    scenes = plan_image_scenes(n_images, random.Random(f"synthscenes/{seed}/plan"), twins)
    for index, scene in enumerate(scenes):
        rng = _item_rng(seed, "image", index)
        size = rng.randint(min_size, max_size)
        name = f"images/{index:06d}{suffix}"
        image = render_image(scene, size, rng)
        options = {"quality": JPEG_QUALITY} if pil_format == "JPEG" else {}
        image.save(out / name, format=pil_format, **options)
        records.append({"file": name, "kind": "image", "captions": true_captions(scene), "scene": scene.to_dict()})
        if (index + 1) % 1000 == 0:
            logger.info("rendered %d/%d images", index + 1, len(scenes))
    return records


def _render_videos(out: Path, n_videos: int, seed: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for index in range(n_videos):
        rng = _item_rng(seed, "video", index)
        clip = sample_clip(rng)
        name = f"videos/{index:06d}.mp4"
        events = render_clip(out / name, list(clip.events), list(clip.durations), clip.fps, clip.size, rng)
        records.append({"file": name, "kind": "video", "fps": clip.fps, "size": clip.size,
                        "duration": round(clip.duration, 4), "events": events})
        if (index + 1) % 50 == 0:
            logger.info("rendered %d/%d videos", index + 1, n_videos)
    return records


def generate(
    out_dir: str | Path,
    n_images: int,
    n_videos: int,
    seed: int,
    twins: bool = True,
    image_format: str = "png",
    sizes: tuple[int, int] = (96, 320),
) -> Path:
    """Writes images, videos and captions.jsonl under `out_dir`; returns the captions.jsonl path."""
    if image_format.lower() not in IMAGE_FORMATS:
        raise ValueError(
            f"image format must be one of {sorted(IMAGE_FORMATS)}, not {image_format!r}"
        )
    pil_format, suffix = IMAGE_FORMATS[image_format.lower()]
    if not 1 <= sizes[0] <= sizes[1]:
        raise ValueError(f"image sizes must satisfy 1 <= min <= max, got {sizes}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "videos").mkdir(parents=True, exist_ok=True)

    records = _render_images(out, n_images, seed, twins, pil_format, suffix, sizes)
    records += _render_videos(out, n_videos, seed)
    captions_path = out / CAPTIONS_FILE
    with captions_path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    logger.info("wrote %d images and %d videos to %s", n_images, n_videos, out)
    return captions_path


def read_captions(path: str | Path) -> list[dict[str, Any]]:
    """The records of a captions.jsonl file (or of the dataset folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / CAPTIONS_FILE
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
