"""A second SynthScenes renderer for evaluation only: the same scenes drawn with other rendering choices.

Models are trained on `render.render_image` pixels; a gallery drawn by this renderer measures what is
left of their accuracy off those pixels. The scene grammar, captions and relevance rule are unchanged
(the records hold the same `scene` dicts); only the drawing differs:

- image sides 96-256 px and aspect ratios 0.8-1.25 (the scene is stretched with the canvas, so
  positions stay fractions of width and height and every relation keeps its dominant axis);
- anti-aliasing by supersampling 1x (aliased), 3x or 4x with a Lanczos reduction (not 2x box);
- textured (value noise, stripes) and gradient (diagonal, radial) grey backgrounds;
- each object turned by up to ±8 degrees, then the whole layout by up to ±3 degrees about the centre
  (shrunk so that nothing leaves the frame);
- colour jitter (brightness, contrast, saturation, a small white-balance cast), Gaussian blur and
  per-channel sensor noise;
- files are PNG or JPEG at quality 60-95.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from .captions import true_captions
from .generate import CAPTIONS_FILE, plan_image_scenes
from .scenes import Background, Scene, SceneObject

SIZES = (96, 256)
ASPECTS = (0.8, 1.25)
SUPERSAMPLES = (1, 3, 4)
MAX_OBJECT_TURN = 8.0  # degrees, every shape (the standard renderer turns squares only)
MAX_LAYER_TURN = 3.0
JPEG_QUALITY = (60, 95)
PNG_SHARE = 0.3
BLUR_SIGMA = (0.0, 1.2)  # pixels, drawn for this share of images:
BLUR_SHARE = 0.6
SENSOR_NOISE = (2.0, 9.0)  # per-channel Gaussian sigma in 8-bit levels
CAST = 8  # white-balance cast: up to this many levels per channel, the same on every pixel
BACKGROUNDS = ("value_noise", "stripes", "diagonal", "radial")
_POINTS = 10  # star outline


@dataclass(frozen=True)
class Factors:
    """Which rendering choices are on. All are by default; `only` turns a single one on for diagnosis.

    A factor that is off still draws its random numbers, so every other factor draws what it would
    have: the pictures differ in that factor alone.
    """

    aspect: bool = True  # aspect ratios 0.8-1.25 (off: square)
    antialias: bool = True  # 1x / 3x / 4x supersampling (off: always 4x)
    background: bool = True  # textured and gradient backgrounds (off: flat, at the scene's mean level)
    turn: bool = True  # per-object and whole-layout turns
    colour: bool = True  # brightness, contrast and saturation
    cast: bool = True  # white-balance cast
    blur: bool = True
    noise: bool = True  # sensor noise
    jpeg: bool = True  # JPEG at quality 60-95 for most files (off: every file PNG)

    @classmethod
    def only(cls, name: str | None) -> Factors:
        """Every factor off except `name` (None: every factor off, the closest to the standard renderer)."""
        names = [f.name for f in fields(cls)]
        if name is not None and name not in names:
            raise ValueError(f"unknown rendering factor {name!r}: one of {', '.join(names)}")
        return cls(**{n: n == name for n in names})


ALL = Factors()


def _rotate(points: list[tuple[float, float]], degrees: float) -> list[tuple[float, float]]:
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    return [(u * c - v * s, u * s + v * c) for u, v in points]


def _outline(obj: SceneObject, turn: float) -> list[tuple[float, float]] | None:
    """Unit outline (bounding box side 1, centred) turned by `turn` degrees; None for a circle."""
    if obj.shape == "circle":
        return None
    if obj.shape == "square":
        points = _rotate([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)], obj.rotation + turn)
    elif obj.shape == "triangle":
        points = _rotate([(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)], turn)
    else:
        # A thinner star than the standard renderer's (inner radius 0.38, a regular pentagram).
        points = [((1.0 if i % 2 == 0 else 0.38) * math.cos(-math.pi / 2 + i * math.pi / 5),
                   (1.0 if i % 2 == 0 else 0.38) * math.sin(-math.pi / 2 + i * math.pi / 5))
                  for i in range(_POINTS)]
        points = _rotate(points, turn)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    # The turned outline's bounding box, not the shape's own side, is the object's extent.
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    side = max(width, height)
    return [((u - cx) / side, (v - cy) / side) for u, v in points]


def _background(background: Background, width: int, height: int, rng: random.Random, on: bool = True) -> np.ndarray:
    """A neutral grey (H, W) float array in [0, 255]: textured or a gradient, around the scene's level."""
    nrng = np.random.default_rng(rng.getrandbits(64))
    level = 255.0 * (background.start + background.end) / 2
    style = rng.choice(BACKGROUNDS)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys, xs = ys / max(1, height - 1), xs / max(1, width - 1)
    if style == "value_noise":
        cells = nrng.uniform(-1, 1, (rng.randint(3, 8), rng.randint(3, 8))).astype(np.float32)
        field = np.asarray(Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC))
        grey = level + rng.uniform(10, 25) * field
    elif style == "stripes":
        period, angle = rng.uniform(0.04, 0.15), rng.uniform(0, math.pi)
        phase = (xs * math.cos(angle) + ys * math.sin(angle)) / period
        grey = level + rng.uniform(5, 15) * np.sin(2 * math.pi * phase)
    elif style == "diagonal":
        grey = level + rng.uniform(-40, 40) * ((xs + ys) / 2 - 0.5)
    else:
        r = np.sqrt((xs - rng.uniform(0.2, 0.8)) ** 2 + (ys - rng.uniform(0.2, 0.8)) ** 2)
        grey = level + rng.uniform(-45, 45) * (r - 0.5)
    return np.clip(grey if on else np.full_like(grey, level), 0, 255)


def _polygon(obj: SceneObject, width: int, height: int, rng: random.Random,
             turns: bool = True) -> list[tuple[float, float]]:
    """The object's outline in pixels (circles as 48-gons), turned by up to MAX_OBJECT_TURN."""
    turn = rng.uniform(-MAX_OBJECT_TURN, MAX_OBJECT_TURN)
    outline = _outline(obj, turn if turns else 0.0)
    if outline is None:
        outline = [(0.5 * math.cos(2 * math.pi * i / 48), 0.5 * math.sin(2 * math.pi * i / 48)) for i in range(48)]
    cx, cy, side_w, side_h = obj.x * width, obj.y * height, obj.extent * width, obj.extent * height
    return [(cx + u * side_w, cy + v * side_h) for u, v in outline]


def _draw_objects(canvas: Image.Image, scene: Scene, factor: int, rng: random.Random,
                  turns: bool = True) -> Image.Image:
    """Objects drawn on a copy `factor` times the size, the whole layout turned a little, reduced back."""
    width, height = canvas.size
    big = canvas.resize((width * factor, height * factor), Image.Resampling.NEAREST) if factor > 1 else canvas.copy()
    draw = ImageDraw.Draw(big)
    turn = math.radians(rng.uniform(-MAX_LAYER_TURN, MAX_LAYER_TURN))
    turn = turn if turns else 0.0
    # Shrink towards the centre so that the turned layout stays inside: 1 / (cos + sin) keeps the corners in.
    scale = 1.0 / (math.cos(turn) + abs(math.sin(turn)))
    c, s = scale * math.cos(turn), scale * math.sin(turn)
    mx, my = big.width / 2, big.height / 2
    for obj in scene.objects:
        points = _polygon(obj, big.width, big.height, rng, turns)
        turned = [(mx + (x - mx) * c - (y - my) * s, my + (x - mx) * s + (y - my) * c) for x, y in points]
        draw.polygon(turned, fill=obj.rgb)
    return big.resize((width, height), Image.Resampling.LANCZOS) if factor > 1 else big


def _camera(image: Image.Image, rng: random.Random, factors: Factors = ALL) -> Image.Image:
    """Colour jitter, white-balance cast, blur and sensor noise."""
    for enhance, low, high in ((ImageEnhance.Brightness, 0.85, 1.15), (ImageEnhance.Contrast, 0.8, 1.2),
                               (ImageEnhance.Color, 0.8, 1.2)):
        amount = rng.uniform(low, high)
        if factors.colour:
            image = enhance(image).enhance(amount)
    if rng.random() < BLUR_SHARE:
        sigma = rng.uniform(*BLUR_SIGMA)
        if factors.blur:
            image = image.filter(ImageFilter.GaussianBlur(sigma))
    pixels = np.asarray(image, dtype=np.float32)
    nrng = np.random.default_rng(rng.getrandbits(64))
    cast = np.array([rng.uniform(-CAST, CAST) for _ in range(3)], dtype=np.float32) * factors.cast
    noise = nrng.standard_normal(pixels.shape, dtype=np.float32) * rng.uniform(*SENSOR_NOISE) * factors.noise
    return Image.fromarray(np.clip(pixels + cast + noise + 0.5, 0, 255).astype(np.uint8))


def render_shifted(scene: Scene, rng: random.Random, factors: Factors = ALL) -> Image.Image:
    """The scene drawn by the shifted renderer: size, aspect and every rendering choice drawn from `rng`."""
    side = rng.randint(*SIZES)
    aspect = math.exp(rng.uniform(math.log(ASPECTS[0]), math.log(ASPECTS[1])))  # width / height
    aspect = aspect if factors.aspect else 1.0
    width, height = (side, max(1, round(side / aspect))) if aspect >= 1 else (max(1, round(side * aspect)), side)
    grey = _background(scene.background, width, height, rng, factors.background)
    canvas = Image.fromarray((grey + 0.5).astype(np.uint8)).convert("RGB")
    supersample = rng.choice(SUPERSAMPLES)
    supersample = supersample if factors.antialias else max(SUPERSAMPLES)
    return _camera(_draw_objects(canvas, scene, supersample, rng, factors.turn), rng, factors)


def encode_shifted(image: Image.Image, rng: random.Random, factors: Factors = ALL) -> tuple[bytes, str]:
    """The file bytes and suffix: PNG for some images, JPEG at quality 60-95 for the rest."""
    buffer = io.BytesIO()
    if rng.random() < PNG_SHARE or not factors.jpeg:
        image.save(buffer, format="PNG")
        return buffer.getvalue(), ".png"
    image.save(buffer, format="JPEG", quality=rng.randint(*JPEG_QUALITY))
    return buffer.getvalue(), ".jpg"


def generate_shifted(out_dir: str | Path, n_images: int, seed: int, twins: bool = True,
                     factors: Factors = ALL) -> Path:
    """Writes a shifted image gallery (images/ and captions.jsonl, same record format); returns the file."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    # Same scene plan as `generate` for the seed: the two renderers draw the same scenes.
    scenes = plan_image_scenes(n_images, random.Random(f"synthscenes/{seed}/plan"), twins)
    records: list[dict[str, Any]] = []
    for index, scene in enumerate(scenes):
        rng = random.Random(f"synthscenes-shifted/{seed}/image/{index}")
        data, suffix = encode_shifted(render_shifted(scene, rng, factors), rng, factors)
        name = f"images/{index:06d}{suffix}"
        (out / name).write_bytes(data)
        records.append({"file": name, "kind": "image", "captions": true_captions(scene),
                        "scene": scene.to_dict(), "renderer": "shifted"})
    path = out / CAPTIONS_FILE
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path
