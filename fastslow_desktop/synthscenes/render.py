"""Draws SynthScenes as images, and sequences of scenes (events) as SynthClips videos."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .captions import canonical_caption
from .scenes import Background, Scene, SceneObject, sample_background, sample_scene
from .variants import evolve_scene

logger = logging.getLogger(__name__)

SUPERSAMPLE = 2  # shapes are drawn at this scale and box-filtered down, for antialiased edges
STAR_INNER_RATIO = (
    0.45  # inner/outer radius; a regular pentagram has 0.38, a little fatter reads better
)
DRIFT_AMPLITUDE = 0.015  # objects in clips sway by at most this fraction of the side
FOURCC = "mp4v"
CLIP_SECONDS = (4.0, 12.0)
CLIP_FPS = (8, 15)
CLIP_SIZES = tuple(range(128, 257, 16))  # multiples of 16 suit MPEG-4 encoders
MIN_EVENT_SECONDS = 1.5
MAX_EVENTS = 4


def _unit_star() -> list[tuple[float, float]]:
    """Five-pointed star, point up, scaled so its bounding box is 1 wide and centred on (0, 0)."""
    points = []
    for i in range(10):
        radius = 1.0 if i % 2 == 0 else STAR_INNER_RATIO
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    width, middle = max(xs) - min(xs), (max(ys) + min(ys)) / 2
    return [(x / width, (y - middle) / width) for x, y in points]


_STAR = _unit_star()


def _numpy_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(64))


def render_background(background: Background, size: int, rng: random.Random) -> np.ndarray:
    """The background as a (size, size, 3) uint8 array."""
    ramp = np.linspace(background.start, background.end, size, dtype=np.float32) * 255.0
    if background.axis == "vertical":
        grey = np.broadcast_to(ramp[:, None], (size, size))
    elif background.axis == "horizontal":
        grey = np.broadcast_to(ramp[None, :], (size, size))
    else:
        grey = np.full((size, size), background.start * 255.0, dtype=np.float32)
    if background.noise > 0:
        grey = (
            grey
            + _numpy_rng(rng).standard_normal((size, size), dtype=np.float32) * background.noise
        )
    grey = np.clip(grey + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _draw_object(
    draw: ImageDraw.ImageDraw, obj: SceneObject, side: int, dx: float = 0.0, dy: float = 0.0
) -> None:
    """Draws `obj` on a canvas `side` pixels wide, shifted by (dx, dy) fractions of the side."""
    cx, cy = (obj.x + dx) * side, (obj.y + dy) * side
    half = obj.extent * side / 2
    if obj.shape == "circle":
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=obj.rgb)
    elif obj.shape == "square":
        theta = math.radians(obj.rotation)
        cos, sin = math.cos(theta), math.sin(theta)
        # The rotated square's bounding box, not the square's side, is the object's extent.
        s = half / (abs(cos) + abs(sin))
        corners = [(-s, -s), (s, -s), (s, s), (-s, s)]
        draw.polygon(
            [(cx + u * cos - v * sin, cy + u * sin + v * cos) for u, v in corners], fill=obj.rgb
        )
    elif obj.shape == "triangle":
        draw.polygon(
            [(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=obj.rgb
        )
    else:
        width = 2 * half
        draw.polygon([(cx + u * width, cy + v * width) for u, v in _STAR], fill=obj.rgb)


def _compose(
    canvas: Image.Image,
    objects: tuple[SceneObject, ...],
    offsets: list[tuple[float, float]] | None = None,
) -> Image.Image:
    """Draws objects on a supersampled background copy and returns the downsampled frame."""
    frame = canvas.copy()
    draw = ImageDraw.Draw(frame)
    for i, obj in enumerate(objects):
        dx, dy = offsets[i] if offsets else (0.0, 0.0)
        _draw_object(draw, obj, frame.width, dx, dy)
    return frame.reduce(SUPERSAMPLE)


def _canvas(background: np.ndarray) -> Image.Image:
    size = background.shape[0] * SUPERSAMPLE
    # Nearest upsampling then box reduction gives back the background pixels exactly.
    return Image.fromarray(background).resize((size, size), Image.Resampling.NEAREST)


def render_image(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """The scene drawn as a size x size RGB image; `rng` only draws the background noise."""
    return _compose(_canvas(render_background(scene.background, size, rng)), scene.objects)


@dataclass(frozen=True)
class ClipSpec:
    """What a SynthClips video shows: a sequence of event scenes and how long each lasts."""

    events: tuple[Scene, ...]
    durations: tuple[float, ...]  # seconds, whole numbers of frames
    fps: int
    size: int

    @property
    def duration(self) -> float:
        return sum(self.durations)


def sample_clip(rng: random.Random) -> ClipSpec:
    """A random clip: 4-12 s, 8-15 fps, 128-256 px, 2-4 events of at least 1.5 s each."""
    fps = rng.randint(*CLIP_FPS)
    size = rng.choice(CLIP_SIZES)
    total = round(rng.uniform(*CLIP_SECONDS) * fps)
    shortest = math.ceil(MIN_EVENT_SECONDS * fps)
    most = min(MAX_EVENTS, total // shortest)
    n_events = rng.randint(min(2, most), most)
    cuts = sorted(rng.randint(0, total - n_events * shortest) for _ in range(n_events - 1))
    extra = [b - a for a, b in zip([0, *cuts], [*cuts, total - n_events * shortest], strict=True)]
    frames = [shortest + e for e in extra]

    background = sample_background(rng)
    scene = sample_scene(rng, background=background, slack=DRIFT_AMPLITUDE)
    events = [scene]
    for _ in range(n_events - 1):
        scene = evolve_scene(scene, rng, slack=DRIFT_AMPLITUDE)
        events.append(scene)
    return ClipSpec(tuple(events), tuple(f / fps for f in frames), fps, size)


def render_clip(
    path: str | Path,
    events: list[Scene],
    durations: list[float],
    fps: int,
    size: int,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Writes an .mp4 of the events and returns their annotations (t_start, t_end, caption, scene).

    The background is that of the first event and stays constant. An object that persists from one
    event to the next (the same SceneObject) sways smoothly across the boundary.
    """
    if len(events) != len(durations) or not events:
        raise ValueError("a clip needs one duration per event, and at least one event")
    canvas = _canvas(render_background(events[0].background, size, rng))
    sway: dict[SceneObject, tuple[float, ...]] = {}
    for scene in events:
        for obj in scene.objects:
            if obj not in sway:
                # amplitude x, y (fraction of side), angular speed x, y (rad/s), phase x, y
                sway[obj] = (
                    rng.uniform(0.3, 1.0) * DRIFT_AMPLITUDE,
                    rng.uniform(0.3, 1.0) * DRIFT_AMPLITUDE,
                    rng.uniform(1.5, 3.0),
                    rng.uniform(1.5, 3.0),
                    rng.uniform(0, 2 * math.pi),
                    rng.uniform(0, 2 * math.pi),
                )
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), float(fps), (size, size))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {FOURCC} video to {path}")
    annotations = []
    frame_index = 0
    try:
        for scene, seconds in zip(events, durations, strict=True):
            n_frames = round(seconds * fps)
            if n_frames < 1:
                raise ValueError(f"event of {seconds} s is shorter than one frame at {fps} fps")
            start = frame_index
            for _ in range(n_frames):
                t = frame_index / fps
                offsets = []
                for obj in scene.objects:
                    ax, ay, wx, wy, px, py = sway[obj]
                    offsets.append((ax * math.sin(wx * t + px), ay * math.sin(wy * t + py)))
                frame = np.asarray(_compose(canvas, scene.objects, offsets))
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # RGB -> BGR
                frame_index += 1
            annotations.append(
                {
                    "t_start": round(start / fps, 4),
                    "t_end": round(frame_index / fps, 4),
                    "caption": canonical_caption(scene),
                    "scene": scene.to_dict(),
                }
            )
    finally:
        writer.release()
    return annotations
