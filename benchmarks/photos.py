"""Test media: camera-sized JPEGs (3–12 MP, quality 90) and a folder of small SynthScenes photos.

Both are cached under the benchmark cache folder: generating 100 camera photos takes minutes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

logger = logging.getLogger(__name__)

JPEG_QUALITY = 90
ASPECT = 4 / 3
PHOTOS_VERSION = 1


def _camera_photo(index: int, megapixels: float) -> Image.Image:
    """A SynthScenes scene rendered at camera size, with sensor-like grain and fine texture so the
    JPEG is as big (and as slow to decode) as a real photo of that size."""
    from fastslow_desktop.synthscenes import render_image, sample_scene

    rng = random.Random(f"bench-photo/{index}")
    width = int(round(math.sqrt(megapixels * 1e6 * ASPECT) / 16) * 16)
    height = int(round(width / ASPECT / 16) * 16)
    scene = sample_scene(rng)
    base = render_image(scene, 512, rng).resize((width, height), Image.Resampling.BILINEAR)
    nprng = np.random.default_rng(index)
    # Texture: smooth noise at two scales (foliage, fabric), then per-pixel grain.
    texture = Image.fromarray(nprng.integers(0, 256, (height // 8, width // 8), dtype=np.uint8), "L")
    texture = texture.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(1.5))
    pixels = np.asarray(base, dtype=np.int16)
    pixels += ((np.asarray(texture, dtype=np.int16) - 128) // 6)[..., None]
    pixels += nprng.integers(-11, 12, pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _write_camera_photo(job: tuple[Path, int, float]) -> None:
    out, index, megapixels = job
    tmp = out.with_suffix(".tmp")
    _camera_photo(index, megapixels).save(tmp, "JPEG", quality=JPEG_QUALITY)
    tmp.replace(out)


def camera_photos(cache: Path, n: int, megapixels: tuple[float, ...]) -> Path:
    """A folder holding exactly `n` camera-sized JPEGs (sizes cycling over `megapixels`)."""
    key = f"camera-v{PHOTOS_VERSION}-{n}-" + "-".join(f"{m:g}" for m in megapixels)
    folder = cache / key
    done = folder / "done.json"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(folder / f"IMG_{i:04d}.jpg", i, megapixels[i % len(megapixels)]) for i in range(n)]
    todo = [job for job in todo if not job[0].is_file()]
    # Each photo is independent: one process per core (seconds on a 16-core GPU machine, not a minute).
    with ProcessPoolExecutor(max(1, min(len(todo), os.cpu_count() or 1))) as pool:
        for done_count, _ in enumerate(pool.map(_write_camera_photo, todo), 1):
            if done_count % 10 == 0:
                logger.info("generated %d/%d camera photos", done_count, len(todo))
    sizes = [p.stat().st_size for p in folder.glob("*.jpg")]
    done.write_text(json.dumps({"n": n, "megapixels": list(megapixels), "mean_bytes": float(np.mean(sizes))}))
    return folder


def photo_stats(folder: Path) -> dict:
    files = sorted(folder.glob("*.jpg"))
    sizes = [p.stat().st_size for p in files]
    mps = []
    for p in files:
        with Image.open(p) as im:
            mps.append(im.width * im.height / 1e6)
    return {"n": len(files), "mean_mb": round(float(np.mean(sizes)) / 1e6, 2),
            "megapixels": [round(min(mps), 1), round(max(mps), 1)]}


def scene_photos(cache: Path, n: int, side: int = 480) -> tuple[Path, list[str]]:
    """`n` small SynthScenes JPEGs (side × side) and the captions to query them with."""
    from fastslow_desktop.synthscenes import render_image, sample_scene, true_captions

    folder = cache / f"scenes-v{PHOTOS_VERSION}-{n}-{side}"
    done = folder / "captions.json"
    if done.is_file():
        return folder, json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    captions = []
    for i in range(n):
        rng = random.Random(f"bench-scene/{i}")
        scene = sample_scene(rng)
        render_image(scene, side, rng).save(folder / f"scene_{i:05d}.jpg", "JPEG", quality=JPEG_QUALITY)
        captions.append(true_captions(scene)[0])
    unique = sorted(set(captions))
    done.write_text(json.dumps(unique))
    return folder, unique
