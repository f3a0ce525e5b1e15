"""SynthScenes variants of a scene: its next state in a video, and its confusable twins."""

from __future__ import annotations

import random
from dataclasses import replace

from .captions import canonical_caption, pair_relation
from .scenes import (
    _DECIMALS,
    SIZES,
    Scene,
    _extent,
    _new_object,
    _other_attributes,
    _rounded_span,
    _sample_count,
    _with_added,
    sample_scene,
)


def evolve_scene(scene: Scene, rng: random.Random, *, slack: float = 0.0) -> Scene:
    """The next event of a clip: objects appear or disappear, the background stays."""
    n = len(scene.objects)
    for _ in range(20):
        move = rng.choice(
            {
                "single": ("add_other", "add_copy", "replace"),
                "pair": ("drop", "drop", "replace"),
                "count": ("add_copy" if n == 2 else "drop", "drop", "replace"),
            }[scene.kind]
        )
        if move == "replace":
            new = sample_scene(rng, background=scene.background, slack=slack)
        elif move == "drop" and scene.kind == "count" and n == 3:
            keep = rng.sample(range(3), 2)
            new = Scene("count", tuple(scene.objects[i] for i in sorted(keep)), scene.background)
        elif move == "drop":
            new = Scene("single", (rng.choice(scene.objects),), scene.background)
        elif move == "add_copy":
            new = _with_added(rng, scene, scene.objects[0], "count", slack)
        else:
            obj = scene.objects[0]
            shape, colour, size = _other_attributes(rng, obj.shape, obj.colour)
            new = _with_added(
                rng, scene, _new_object(rng, shape, colour, size, slack), "pair", slack
            )
        if new is not None and canonical_caption(new) != canonical_caption(scene):
            return new
    raise RuntimeError("could not evolve scene")  # pragma: no cover - "replace" succeeds quickly


# --- hard negatives ------------------------------------------------------------------------------


def twins(scene: Scene, rng: random.Random) -> list[Scene]:
    """Confusable twins: a scene that differs from `scene` only in what a bag of words misses."""
    if scene.kind == "pair":
        a, b = scene.objects
        horizontal = pair_relation(scene) in ("to the left of", "to the right of")
        # Mirroring the centres reverses the relation and keeps every gap and margin.
        mirrored = tuple(
            replace(o, x=round(1 - o.x, _DECIMALS))
            if horizontal
            else replace(o, y=round(1 - o.y, _DECIMALS))
            for o in (a, b)
        )
        result = [Scene("pair", mirrored, scene.background)]
        if a.colour != b.colour:
            swapped = (
                replace(a, colour=b.colour, rgb=b.rgb),
                replace(b, colour=a.colour, rgb=a.rgb),
            )
            result.append(Scene("pair", swapped, scene.background))
        return result
    if scene.kind == "count":
        if len(scene.objects) == 3:
            keep = sorted(rng.sample(range(3), 2))
            return [Scene("count", tuple(scene.objects[i] for i in keep), scene.background)]
        added = _with_added(rng, scene, scene.objects[0], "count", 0.0)
        return [added or _sample_count(rng, scene.background, 0.0, 3, scene.objects[0])]
    obj = scene.objects[0]
    other_size = SIZES[1 - SIZES.index(obj.size)]
    extent = _extent(rng, other_size)
    low, high = _rounded_span(extent, 0.0)
    resized = replace(
        obj,
        size=other_size,
        extent=extent,
        x=min(max(obj.x, low), high),
        y=min(max(obj.y, low), high),
    )
    return [Scene("single", (resized,), scene.background)]
