"""SynthScenes: a procedural world of captioned shapes for offline retrieval training and demos."""

from .generate import generate, plan_image_scenes, read_captions
from .render import ClipSpec, render_background, render_clip, render_image, sample_clip
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
    ObjectTerm,
    Query,
    Scene,
    SceneObject,
    canonical_caption,
    evolve_scene,
    is_valid_scene,
    parse_caption,
    relation_between,
    sample_background,
    sample_scene,
    satisfies,
    true_captions,
    twins,
)

__all__ = [
    "COLOURS", "CONVERSE", "COUNTS", "KINDS", "RELATIONS", "SHAPES", "SIZE_RANGES", "SIZES",
    "Background", "ClipSpec", "ObjectTerm", "Query", "Scene", "SceneObject",
    "canonical_caption", "evolve_scene", "generate", "is_valid_scene", "parse_caption",
    "plan_image_scenes", "read_captions", "relation_between", "render_background", "render_clip",
    "render_image", "sample_background", "sample_clip", "sample_scene", "satisfies",
    "true_captions", "twins",
]
