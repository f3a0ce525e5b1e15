"""SynthScenes: a procedural world of captioned shapes for offline retrieval training and demos."""

from .generate import generate, plan_image_scenes, read_captions
from .render import ClipSpec, render_background, render_clip, render_image, sample_clip
from .captions import ObjectTerm, Query, canonical_caption, parse_caption, satisfies, true_captions
from .scenes import (
    COLOURS,
    CONVERSE,
    COUNTS,
    KINDS,
    RELATIONS,
    SHAPES,
    SIZE_RANGES,
    SIZES,
    Background,
    Scene,
    SceneObject,
    is_valid_scene,
    relation_between,
    sample_background,
    sample_scene,
)
from .shifted import generate_shifted, render_shifted
from .variants import evolve_scene, twins

__all__ = [
    "COLOURS",
    "CONVERSE",
    "COUNTS",
    "KINDS",
    "RELATIONS",
    "SHAPES",
    "SIZE_RANGES",
    "SIZES",
    "Background",
    "ClipSpec",
    "ObjectTerm",
    "Query",
    "Scene",
    "SceneObject",
    "canonical_caption",
    "evolve_scene",
    "generate",
    "generate_shifted",
    "is_valid_scene",
    "parse_caption",
    "plan_image_scenes",
    "read_captions",
    "relation_between",
    "render_background",
    "render_clip",
    "render_image",
    "render_shifted",
    "sample_background",
    "sample_clip",
    "sample_scene",
    "satisfies",
    "true_captions",
    "twins",
]
