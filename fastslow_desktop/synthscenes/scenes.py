"""The SynthScenes world: vocabulary, objects, layout rules and scene sampling."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, replace
from typing import Any

logger = logging.getLogger(__name__)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 40),
    "purple": (140, 60, 180),
    "orange": (240, 130, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "large")
# Bounding-box side as a fraction of the image side.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.14, 0.22), "large": (0.32, 0.45)}
RELATIONS: tuple[str, ...] = ("to the left of", "to the right of", "above", "below")
CONVERSE: dict[str, str] = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}
COUNTS: dict[str, int] = {"two": 2, "three": 3}
COUNT_WORDS: dict[int, str] = {n: word for word, n in COUNTS.items()}
KINDS: tuple[str, ...] = ("single", "pair", "count")
KIND_WEIGHTS: tuple[float, ...] = (0.3, 0.5, 0.2)

COLOUR_JITTER = 20
MAX_SQUARE_ROTATION = 10.0
MIN_GAP = 0.04  # between bounding boxes, fraction of the side
MIN_SHIFT = 0.15  # between centres on a relation's axis
EDGE_MARGIN = 0.01
# Generated pairs keep the off-axis displacement at most this fraction of the on-axis one, so that
# the relation is obvious to a viewer and survives a few pixels of drift in videos.
CLEAR_RATIO = 0.5
MAX_GRADIENT = 0.15
MAX_NOISE = 6.0  # in 8-bit levels
_PLACEMENT_TRIES = 60
_DECIMALS = 4  # positions and extents are stored rounded, so files and objects agree
_EPS = 1e-9  # tolerance for rounded values sitting exactly on a limit


@dataclass(frozen=True)
class SceneObject:
    """One object: x, y are centre fractions (y grows down), extent its bounding-box side."""

    shape: str
    colour: str
    size: str
    x: float
    y: float
    extent: float = 0.0  # 0 means "middle of the size's range"
    rotation: float = 0.0  # degrees, squares only
    rgb: tuple[int, int, int] | None = None  # jittered colour; None means the listed colour

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.colour not in COLOURS or self.size not in SIZES:
            raise ValueError(f"not a SynthScenes object: {self.size} {self.colour} {self.shape}")
        if not self.extent:
            object.__setattr__(self, "extent", round(sum(SIZE_RANGES[self.size]) / 2, _DECIMALS))
        object.__setattr__(
            self, "rgb", tuple(self.rgb) if self.rgb is not None else COLOURS[self.colour]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": self.size,
            "x": self.x,
            "y": self.y,
            "extent": self.extent,
            "rotation": self.rotation,
            "rgb": list(self.rgb),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneObject:
        return cls(
            shape=data["shape"],
            colour=data["colour"],
            size=data["size"],
            x=float(data["x"]),
            y=float(data["y"]),
            extent=float(data.get("extent", 0.0)),
            rotation=float(data.get("rotation", 0.0)),
            rgb=tuple(data["rgb"]) if data.get("rgb") is not None else None,
        )


@dataclass(frozen=True)
class Background:
    """A neutral grey, optionally a linear gradient from `start` to `end`, plus pixel noise."""

    start: float = 0.5  # grey level at the top (vertical) or left (horizontal) edge
    end: float = 0.5
    axis: str = "none"  # "none" | "vertical" | "horizontal"
    noise: float = 0.0  # Gaussian sigma in 8-bit levels

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "axis": self.axis, "noise": self.noise}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Background:
        if not data:
            return cls()
        return cls(
            float(data["start"]), float(data["end"]), str(data["axis"]), float(data["noise"])
        )


@dataclass(frozen=True)
class Scene:
    kind: str  # "single" | "pair" | "count"
    objects: tuple[SceneObject, ...]
    background: Background = Background()

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        allowed = {"single": (1,), "pair": (2,), "count": (2, 3)}.get(self.kind)
        if allowed is None or len(self.objects) not in allowed:
            raise ValueError(f"a {self.kind!r} scene cannot hold {len(self.objects)} objects")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "objects": [obj.to_dict() for obj in self.objects],
            "background": self.background.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        objects = tuple(SceneObject.from_dict(obj) for obj in data["objects"])
        kind = data.get("kind") or _infer_kind(objects)
        return cls(kind, objects, Background.from_dict(data.get("background")))


def _infer_kind(objects: tuple[SceneObject, ...]) -> str:
    """Kind of a scene written by a renderer that does not store it."""
    if len(objects) == 1:
        return "single"
    if len({(o.shape, o.colour, o.size) for o in objects}) == 1:
        return "count"
    return "pair"


# --- geometry ------------------------------------------------------------------------------------


def relation_between(a: SceneObject, b: SceneObject) -> str | None:
    """How `a` stands to `b` ("a ... {relation} b"), or None when the centres are too close."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        if abs(dx) < MIN_SHIFT:
            return None
        return "to the left of" if dx < 0 else "to the right of"
    if abs(dy) < MIN_SHIFT:
        return None
    return "above" if dy < 0 else "below"


def _inside(obj: SceneObject, slack: float) -> bool:
    low = EDGE_MARGIN + slack + obj.extent / 2 - _EPS
    return low <= obj.x <= 1 - low and low <= obj.y <= 1 - low


def _apart(a: SceneObject, b: SceneObject, slack: float) -> bool:
    half = (a.extent + b.extent) / 2
    gap = MIN_GAP + 2 * slack - _EPS
    return abs(a.x - b.x) - half >= gap or abs(a.y - b.y) - half >= gap


def _clear_relation(a: SceneObject, b: SceneObject, slack: float) -> bool:
    along, across = sorted((abs(a.x - b.x), abs(a.y - b.y)), reverse=True)
    return along >= MIN_SHIFT + 2 * slack and across <= CLEAR_RATIO * along - 2 * slack


def _layout_ok(objects: tuple[SceneObject, ...], slack: float) -> bool:
    if not all(_inside(obj, slack) for obj in objects):
        return False
    return all(_apart(a, b, slack) for i, a in enumerate(objects) for b in objects[i + 1 :])


def is_valid_scene(scene: Scene, slack: float = 0.0) -> bool:
    """Whether a scene obeys the spec: inside the image, no overlap, and its kind's constraints."""
    objs = scene.objects
    if not _layout_ok(objs, slack):
        return False
    if scene.kind == "pair":
        a, b = objs
        return (a.colour, a.shape) != (b.colour, b.shape) and relation_between(a, b) is not None
    if scene.kind == "count":
        return len({(o.shape, o.colour, o.size) for o in objs}) == 1
    return True


# --- sampling ------------------------------------------------------------------------------------


def sample_background(rng: random.Random) -> Background:
    noise = round(rng.uniform(0.0, MAX_NOISE), 2) if rng.random() < 0.7 else 0.0
    # Grey levels in thousandths, so that stored values keep the limits exactly.
    if rng.random() < 0.5:
        level = rng.randint(200, 900) / 1000
        return Background(level, level, "none", noise)
    spread = rng.randint(20, round(MAX_GRADIENT * 1000))
    start = rng.randint(200, 900 - spread)
    ends = (start / 1000, (start + spread) / 1000)
    if rng.random() < 0.5:
        ends = ends[::-1]
    return Background(ends[0], ends[1], rng.choice(("vertical", "horizontal")), noise)


def _jittered_rgb(rng: random.Random, colour: str) -> tuple[int, int, int]:
    return tuple(
        min(255, max(0, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER))) for c in COLOURS[colour]
    )


def _rotation(rng: random.Random, shape: str) -> float:
    return (
        round(rng.uniform(-MAX_SQUARE_ROTATION, MAX_SQUARE_ROTATION), 1)
        if shape == "square"
        else 0.0
    )


def _extent(rng: random.Random, size: str) -> float:
    return round(rng.uniform(*SIZE_RANGES[size]), _DECIMALS)


def _rounded_span(extent: float, slack: float) -> tuple[float, float]:
    """The centre's allowed range, rounded inwards so that rounded centres stay allowed."""
    scale = 10**_DECIMALS
    low = math.ceil((EDGE_MARGIN + slack + extent / 2) * scale) / scale
    return low, math.floor((1 - low) * scale) / scale


def _centre(rng: random.Random, extent: float, slack: float) -> float:
    low, high = _rounded_span(extent, slack)
    return min(max(round(rng.uniform(low, high), _DECIMALS), low), high)


def _new_object(
    rng: random.Random, shape: str, colour: str, size: str, slack: float
) -> SceneObject:
    extent = _extent(rng, size)
    return SceneObject(
        shape,
        colour,
        size,
        _centre(rng, extent, slack),
        _centre(rng, extent, slack),
        extent,
        _rotation(rng, shape),
        _jittered_rgb(rng, colour),
    )


def _moved(rng: random.Random, obj: SceneObject, slack: float) -> SceneObject:
    return replace(
        obj,
        x=_centre(rng, obj.extent, slack),
        y=_centre(rng, obj.extent, slack),
        rotation=_rotation(rng, obj.shape),
    )


def _random_attributes(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(SHAPES), rng.choice(tuple(COLOURS)), rng.choice(SIZES)


def _other_attributes(rng: random.Random, shape: str, colour: str) -> tuple[str, str, str]:
    """Attributes of a pair partner: it must differ in colour or shape."""
    while True:
        attrs = _random_attributes(rng)
        if (attrs[0], attrs[1]) != (shape, colour):
            return attrs


def _sample_single(rng: random.Random, background: Background, slack: float) -> Scene:
    return Scene("single", (_new_object(rng, *_random_attributes(rng), slack),), background)


def _span(extent: float, slack: float) -> tuple[float, float]:
    low = EDGE_MARGIN + slack + extent / 2
    return low, 1 - low


def _sample_pair(rng: random.Random, background: Background, slack: float) -> Scene:
    shape_a, colour_a, size_a = _random_attributes(rng)
    shape_b, colour_b, size_b = _other_attributes(rng, shape_a, colour_a)
    while True:
        a = _new_object(rng, shape_a, colour_a, size_a, slack)
        b = _new_object(rng, shape_b, colour_b, size_b, slack)
        relation = rng.choice(RELATIONS)
        # Along the relation's axis: first the centre with the smaller coordinate, then the other.
        first, second = (a, b) if relation in ("to the left of", "above") else (b, a)
        need = max(MIN_SHIFT, (a.extent + b.extent) / 2 + MIN_GAP) + 2 * slack + 1e-3
        lo1, hi1 = _span(first.extent, slack)
        lo2, hi2 = _span(second.extent, slack)
        hi1 = min(hi1, hi2 - need)
        if hi1 < lo1:
            continue
        c1 = rng.uniform(lo1, hi1)
        c2 = rng.uniform(max(lo2, c1 + need), hi2)
        limit = CLEAR_RATIO * (c2 - c1) - 2 * slack - 1e-3
        lo_a, hi_a = _span(first.extent, slack)
        lo_b, hi_b = _span(second.extent, slack)
        d1 = rng.uniform(lo_a, hi_a)
        lo_b, hi_b = max(lo_b, d1 - limit), min(hi_b, d1 + limit)
        if hi_b < lo_b:
            continue
        d2 = rng.uniform(lo_b, hi_b)
        c1, c2, d1, d2 = (round(v, _DECIMALS) for v in (c1, c2, d1, d2))
        if relation in ("to the left of", "to the right of"):
            first, second = replace(first, x=c1, y=d1), replace(second, x=c2, y=d2)
        else:
            first, second = replace(first, x=d1, y=c1), replace(second, x=d2, y=c2)
        a, b = (first, second) if relation in ("to the left of", "above") else (second, first)
        scene = Scene("pair", (a, b), background)
        if is_valid_scene(scene, slack) and _clear_relation(a, b, slack):
            return scene


def _sample_count(
    rng: random.Random,
    background: Background,
    slack: float,
    n: int | None = None,
    template: SceneObject | None = None,
) -> Scene:
    n = n or rng.choice(tuple(COUNTS.values()))
    if template is None:
        template = _new_object(rng, *_random_attributes(rng), slack)
    while True:
        for _ in range(_PLACEMENT_TRIES // 4):
            # One object at a time, each retried where it lands on another one.
            placed: list[SceneObject] = []
            for _ in range(n):
                for _ in range(_PLACEMENT_TRIES // 4):
                    candidate = _moved(rng, template, slack)
                    if all(_apart(candidate, other, slack) for other in placed):
                        placed.append(candidate)
                        break
                else:
                    break
            if len(placed) == n:
                return Scene("count", tuple(placed), background)
        # Large objects may not fit three times: try a smaller extent in the same size range.
        smallest = SIZE_RANGES[template.size][0]
        template = replace(
            template, extent=round(rng.uniform(smallest, template.extent), _DECIMALS)
        )


def sample_scene(
    rng: random.Random,
    kind: str | None = None,
    *,
    background: Background | None = None,
    slack: float = 0.0,
) -> Scene:
    """A random valid scene; `slack` keeps every constraint true when objects move by that much."""
    kind = kind or rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
    background = background or sample_background(rng)
    if kind == "single":
        return _sample_single(rng, background, slack)
    if kind == "pair":
        return _sample_pair(rng, background, slack)
    if kind == "count":
        return _sample_count(rng, background, slack)
    raise ValueError(f"unknown scene kind {kind!r}; expected one of {KINDS}")


def _with_added(
    rng: random.Random, scene: Scene, new: SceneObject, kind: str, slack: float
) -> Scene | None:
    """`scene` plus `new` somewhere free, or None when no free place turned up."""
    for _ in range(_PLACEMENT_TRIES):
        placed = _moved(rng, new, slack)
        objects = (*scene.objects, placed)
        if kind == "pair" and rng.random() < 0.5:
            objects = objects[::-1]
        if not _layout_ok(objects, slack):
            continue
        if kind == "pair" and not _clear_relation(objects[0], objects[1], slack):
            continue
        return Scene(kind, objects, scene.background)
    return None
