"""Data readers and training sets: SynthScenes (generated or a folder), JSONL, COCO and Flickr30K.

Every reader returns a list of `Item`s; images on disk are decoded by the app's own decoder so
training sees exactly the pixels the app will see.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from fastslow_desktop.synthscenes import (
    Scene,
    parse_caption,
    read_captions,
    render_image,
    sample_scene,
    true_captions,
    twins,
)

logger = logging.getLogger(__name__)


@dataclass
class Item:
    """One training or evaluation image and its captions (the first is the canonical one)."""

    image: Path | Image.Image
    captions: list[str]
    scene: Scene | None = None  # SynthScenes ground truth, for the relevance rule
    group: int = 0  # items of one group are confusable twins: batched together

    def load(self) -> Image.Image:
        if isinstance(self.image, Image.Image):
            return self.image
        from fastslow_desktop.media import load_image

        return load_image(self.image)


# -- readers ---------------------------------------------------------------------------------

def read_synthscenes_folder(folder: str | Path) -> list[Item]:
    """Images of a generated SynthScenes folder (videos are skipped: training is on images)."""
    folder = Path(folder)
    items = []
    for row in read_captions(folder):
        if row.get("kind") != "image":
            continue
        scene = Scene.from_dict(row["scene"]) if row.get("scene") else None
        captions = list(row["captions"])
        if scene is not None:
            captions += [c for c in true_captions(scene) if c not in captions]
        items.append(Item(folder / row["file"], captions, scene, group=len(items)))
    return items


def read_jsonl_manifest(path: str | Path) -> list[Item]:
    """Lines of {"image": path (relative to the file), "captions": [...]}."""
    path = Path(path)
    items = []
    for n, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        row = json.loads(line)
        image = Path(row["image"])
        items.append(Item(image if image.is_absolute() else path.parent / image, list(row["captions"]), group=n))
    return items


def read_coco_captions(annotations: str | Path, image_dir: str | Path | None = None) -> list[Item]:
    """COCO captions JSON (captions_train2017.json): images + annotations joined by image id."""
    annotations = Path(annotations)
    data = json.loads(annotations.read_text())
    image_dir = Path(image_dir) if image_dir else annotations.parent
    captions: dict[int, list[str]] = defaultdict(list)
    for ann in data["annotations"]:
        captions[ann["image_id"]].append(ann["caption"].strip())
    return [
        Item(image_dir / img["file_name"], captions[img["id"]], group=n)
        for n, img in enumerate(data["images"]) if captions.get(img["id"])
    ]


def read_flickr30k_karpathy(path: str | Path, split: str = "train", image_dir: str | Path | None = None) -> list[Item]:
    """Karpathy-split JSON (dataset_flickr30k.json): images with 'split' and 'sentences'."""
    path = Path(path)
    image_dir = Path(image_dir) if image_dir else path.parent / "images"
    splits = {"train": {"train", "restval"}, "val": {"val"}, "test": {"test"}}[split]
    data = json.loads(path.read_text())
    return [
        Item(image_dir / img["filename"], [s["raw"].strip() for s in img["sentences"]], group=n)
        for n, img in enumerate(data["images"]) if img.get("split") in splits
    ]


def render_synthscenes(n: int, seed: int, size: int, twin_share: float, max_size: int = 0) -> list[Item]:
    """Training scenes rendered in memory; about `twin_share` of them are twins of a neighbour.

    With max_size > size each image gets a random side in [size, max_size] (other anti-aliasing once
    the model's preprocess scales it); otherwise every image is `size` wide and the draws are as before.
    """
    rng = random.Random(f"synthscenes-train/{seed}")
    items: list[Item] = []
    group = 0
    while len(items) < n:
        scene = sample_scene(rng)
        members = [scene]
        if rng.random() < twin_share:
            members.append(rng.choice(twins(scene, rng)))
        for member in members[: n - len(items)]:
            side = rng.randint(size, max_size) if max_size > size else size
            items.append(Item(render_image(member, side, rng), true_captions(member), member, group))
        group += 1
    return items


# -- tensors for training ----------------------------------------------------------------------

class PixelSource:
    """Preprocessed pixels by item index.

    Small sets (SynthScenes) are decoded once and kept in half precision: decode once, train many
    epochs. Large sets (COCO) are decoded per batch by a thread pool instead.
    """

    CACHE_LIMIT = 60_000

    def __init__(self, items: Sequence[Item], preprocess, workers: int = 2):
        from concurrent.futures import ThreadPoolExecutor

        self.items = items
        self.preprocess = preprocess
        self.pool = ThreadPoolExecutor(max(1, workers))
        self.pixels = None
        if len(items) <= self.CACHE_LIMIT:
            tensors = list(self.pool.map(lambda it: preprocess(it.load()).half(), items))
            self.pixels = torch.stack(tensors)  # (N, 3, S, S) float16

    def __getitem__(self, idx: Sequence[int]) -> torch.Tensor:
        if self.pixels is not None:
            return self.pixels[list(idx)].float()
        return torch.stack(list(self.pool.map(lambda i: self.preprocess(self.items[i].load()), idx)))


class GroupBatcher:
    """Batches of indices that keep each twin group together (hard negatives in-batch).

    A batch depends only on (seed, step), so a resumed run sees the batches it would have seen.
    """

    def __init__(self, items: Sequence[Item], batch_size: int, seed: int):
        groups: dict[int, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[item.group].append(i)
        self.groups = list(groups.values())
        self.batch_size = min(batch_size, len(items))
        self.seed = seed

    def __call__(self, step: int) -> tuple[list[int], random.Random]:
        rng = random.Random(f"{self.seed}/{step}")
        batch: list[int] = []
        seen: set[int] = set()
        while len(batch) < self.batch_size:
            g = rng.randrange(len(self.groups))
            if g not in seen:
                seen.add(g)
                batch.extend(self.groups[g])
        return batch[: self.batch_size], rng


def swapped_objects(caption: str) -> str | None:
    """A two-object SynthScenes caption with its objects swapped, same relation: false where the caption holds.

    "a blue square below a purple square" -> "a purple square below a blue square"; None for other captions.
    """
    query = parse_caption(caption)
    if query is None or query.kind != "pair":
        return None
    return dataclasses.replace(query, subject=query.other, other=query.subject).text


def pick_captions(items: Sequence[Item], idx: Sequence[int], rng: random.Random) -> list[str]:
    """One caption per item: any of its true captions, so the models see every phrasing."""
    return [rng.choice(items[i].captions) for i in idx]


def shard(indices: list, rank: int, world: int) -> list:
    """This process's share of a batch under torchrun: a contiguous block, so twin groups stay together."""
    if world <= 1:
        return indices
    n = len(indices)
    return indices[rank * n // world:(rank + 1) * n // world]

