"""Tests for SynthScenes: grammar, relevance rule, twins, rendering, dataset files and CLI."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.synthscenes import (
    COLOURS,
    COUNTS,
    RELATIONS,
    SHAPES,
    SIZE_RANGES,
    SIZES,
    Scene,
    SceneObject,
    canonical_caption,
    generate,
    is_valid_scene,
    parse_caption,
    plan_image_scenes,
    read_captions,
    relation_between,
    render_image,
    sample_clip,
    sample_scene,
    satisfies,
    true_captions,
    twins,
)
from training.synthscenes import main

_WORDS = {
    "colour": "|".join(COLOURS),
    "shape": "|".join(SHAPES),
    "size": "|".join(SIZES),
    "relation": "|".join(RELATIONS),
    "count": "|".join(COUNTS),
}
_NOUN = "(a|an) ({colour}) ({shape})".format(**_WORDS)
_GRAMMAR = re.compile(
    "|".join(
        [
            "(a|an) ({size}) ({colour}) ({shape})".format(**_WORDS),
            _NOUN,
            f"{_NOUN} ({_WORDS['relation']}) {_NOUN}",
            "({count}) ({size}) ({colour}) ({shape})s".format(**_WORDS),
        ]
    )
)


def _scenes(n: int, seed: int = 0, kind: str | None = None) -> list[Scene]:
    rng = random.Random(seed)
    return [sample_scene(rng, kind) for _ in range(n)]


def _pair(first: SceneObject, second: SceneObject) -> Scene:
    return Scene("pair", (first, second))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, n_images=40, n_videos=2, seed=11, sizes=(96, 160))
    return out


# --- captions and the relevance rule -------------------------------------------------------------


def test_captions_follow_the_grammar_with_the_right_article() -> None:
    for scene in _scenes(600):
        for caption in true_captions(scene):
            assert _GRAMMAR.fullmatch(caption), caption
            for article, word in re.findall(r"\b(a|an) (\w+)", caption):
                assert article == ("an" if word[0] in "aeiou" else "a"), caption


def test_an_orange_object_takes_the_article_an() -> None:
    star = SceneObject("star", "orange", "small", 0.2, 0.5)
    square = SceneObject("square", "red", "large", 0.7, 0.5)
    scene = _pair(star, square)
    assert canonical_caption(scene) == "an orange star to the left of a red square"
    assert true_captions(scene)[1] == "a red square to the right of an orange star"
    assert canonical_caption(Scene("single", (star,))) == "a small orange star"


def test_parse_is_case_insensitive_ignores_a_final_full_stop_and_accepts_either_article() -> None:
    expected = parse_caption("an orange circle to the left of a blue square")
    assert expected is not None
    for variant in (
        "An Orange Circle to the LEFT of a blue square.",
        "a orange circle to the left of an blue square",
        "  an orange  circle to the left of a blue square .  ",
    ):
        assert parse_caption(variant) == expected
    assert expected.text == "an orange circle to the left of a blue square"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a red circle next to a blue square",
        "a pink circle",
        "two red circles",
        "four small red circles",
        "a red circle..",
        "the red circle",
        "a small red circle to the left of a blue square",
    ],
)
def test_text_outside_the_grammar_parses_to_none_and_matches_nothing(text: str) -> None:
    assert parse_caption(text) is None
    assert not any(satisfies(scene, text) for scene in _scenes(30))


def test_every_true_caption_satisfies_its_scene_and_round_trips_through_parsing() -> None:
    for scene in _scenes(800, seed=1):
        for caption in true_captions(scene):
            query = parse_caption(caption)
            assert query is not None and query.text == caption
            assert satisfies(scene, caption), caption
            assert satisfies(scene, caption.upper() + ".")


def test_a_single_query_without_size_matches_both_sizes_but_only_single_scenes() -> None:
    small = Scene("single", (SceneObject("circle", "red", "small", 0.5, 0.5),))
    large = Scene("single", (SceneObject("circle", "red", "large", 0.5, 0.5),))
    assert satisfies(small, "a red circle") and satisfies(large, "a red circle")
    assert satisfies(small, "a small red circle") and not satisfies(large, "a small red circle")
    two = Scene(
        "count",
        (
            SceneObject("circle", "red", "small", 0.2, 0.5),
            SceneObject("circle", "red", "small", 0.7, 0.5),
        ),
    )
    assert not satisfies(two, "a red circle")
    assert satisfies(two, "two small red circles")
    assert not satisfies(two, "three small red circles") and not satisfies(
        two, "two large red circles"
    )


def test_a_pair_query_holds_in_either_phrasing_and_needs_the_stated_relation() -> None:
    circle = SceneObject("circle", "red", "small", 0.2, 0.45)
    square = SceneObject("square", "blue", "large", 0.7, 0.55)
    for scene in (_pair(circle, square), _pair(square, circle)):
        assert satisfies(scene, "a red circle to the left of a blue square")
        assert satisfies(scene, "a blue square to the right of a red circle")
        assert not satisfies(scene, "a red circle to the right of a blue square")
        assert not satisfies(scene, "a blue circle to the left of a red square")
        assert not satisfies(scene, "a red circle above a blue square")


def test_scenes_written_by_another_renderer_are_read_and_judged() -> None:
    foreign = {
        "objects": [
            {"shape": "star", "colour": "green", "size": "large", "x": 0.5, "y": 0.25},
            {"shape": "circle", "colour": "green", "size": "small", "x": 0.5, "y": 0.8},
        ]
    }
    scene = Scene.from_dict(foreign)
    assert scene.kind == "pair"
    assert satisfies(scene, "a green star above a green circle")
    assert Scene.from_dict(scene.to_dict()) == scene


# --- sampling and twins --------------------------------------------------------------------------


def test_sampled_scenes_obey_the_layout_rules_and_the_kind_mix() -> None:
    scenes = _scenes(3000, seed=2)
    for scene in scenes:
        assert is_valid_scene(scene)
        for obj in scene.objects:
            low, high = SIZE_RANGES[obj.size]
            assert low <= obj.extent <= high
            assert all(
                abs(c - base) <= 20 for c, base in zip(obj.rgb, COLOURS[obj.colour], strict=True)
            )
            assert obj.shape == "square" or obj.rotation == 0
            assert abs(obj.rotation) <= 10
        if scene.kind == "pair":
            a, b = scene.objects
            assert (a.colour, a.shape) != (b.colour, b.shape)
            assert max(abs(a.x - b.x), abs(a.y - b.y)) >= 0.15
        assert 0.2 <= scene.background.start <= 0.9 and 0.2 <= scene.background.end <= 0.9
        assert (
            abs(scene.background.start - scene.background.end) <= 0.15 + 1e-9
            and scene.background.noise <= 6
        )
    share = Counter(scene.kind for scene in scenes)
    assert abs(share["single"] / 3000 - 0.3) < 0.05
    assert abs(share["pair"] / 3000 - 0.5) < 0.05
    assert abs(share["count"] / 3000 - 0.2) < 0.05
    relations = Counter(relation_between(*s.objects) for s in scenes if s.kind == "pair")
    assert set(relations) == set(RELATIONS)


def test_pair_twins_reverse_the_relation_or_swap_colours_and_fail_the_original_caption() -> None:
    rng = random.Random(3)
    for scene in _scenes(400, seed=3, kind="pair"):
        caption = canonical_caption(scene)
        a, b = scene.objects
        found = twins(scene, rng)
        assert len(found) == (2 if a.colour != b.colour else 1)
        reversed_, *swapped = found
        assert (
            relation_between(*reversed_.objects)
            == {
                "to the left of": "to the right of",
                "to the right of": "to the left of",
                "above": "below",
                "below": "above",
            }[relation_between(a, b)]
        )
        for twin in found:
            assert is_valid_scene(twin)
            assert not satisfies(twin, caption)
            assert sorted(o.shape for o in twin.objects) == sorted((a.shape, b.shape))
        for twin in swapped:
            assert [o.colour for o in twin.objects] == [b.colour, a.colour]
            assert [o.shape for o in twin.objects] == [a.shape, b.shape]


def test_count_twins_change_the_count_and_single_twins_change_the_size() -> None:
    rng = random.Random(4)
    for scene in _scenes(300, seed=4, kind="count") + _scenes(300, seed=5, kind="single"):
        (twin,) = twins(scene, rng)
        assert is_valid_scene(twin)
        assert not satisfies(twin, canonical_caption(scene))
        if scene.kind == "count":
            assert {len(scene.objects), len(twin.objects)} == {2, 3}
            assert twin.objects[0].colour == scene.objects[0].colour
        else:
            assert twin.objects[0].size != scene.objects[0].size
            assert satisfies(twin, true_captions(scene)[1])


def test_at_least_half_of_the_pair_scenes_have_a_twin_in_the_set() -> None:
    scenes = plan_image_scenes(300, random.Random(6), with_twins=True)
    assert len(scenes) == 300
    pairs = [s for s in scenes if s.kind == "pair"]

    def has_twin(scene: Scene) -> bool:
        caption = canonical_caption(scene)
        shapes = sorted(o.shape for o in scene.objects)
        colours = sorted(o.colour for o in scene.objects)
        return any(
            other.kind == "pair"
            and sorted(o.shape for o in other.objects) == shapes
            and sorted(o.colour for o in other.objects) == colours
            and not satisfies(other, caption)
            for other in pairs
            if other is not scene
        )

    assert sum(has_twin(s) for s in pairs) >= len(pairs) / 2
    counts = [s for s in scenes if s.kind == "count"]
    assert any(
        satisfies(o, f"two {s.objects[0].size} {s.objects[0].colour} {s.objects[0].shape}s")
        for s in counts
        if len(s.objects) == 3
        for o in counts
    )


# --- rendering -----------------------------------------------------------------------------------


def test_a_rendered_object_has_its_colour_on_a_grey_background() -> None:
    rng = random.Random(7)
    for shape in SHAPES:
        obj = SceneObject(shape, "blue", "large", 0.5, 0.5, extent=0.4)
        image = render_image(Scene("single", (obj,)), 128, rng)
        assert image.mode == "RGB" and image.size == (128, 128)
        pixels = np.asarray(image).astype(int)
        assert np.abs(pixels[64, 64] - np.array(COLOURS["blue"])).max() <= 3
        corner = pixels[2, 2]
        assert corner.max() - corner.min() <= 3  # neutral grey
        # The object stays inside its bounding box.
        outside = np.ones((128, 128), bool)
        outside[36:93, 36:93] = False
        assert (np.abs(pixels[outside] - pixels[outside].mean(0)).max(1) < 40).all()


def test_triangles_point_up_and_stars_have_five_points() -> None:
    rng = random.Random(8)
    mask = {}
    for shape in ("triangle", "star"):
        obj = SceneObject(shape, "red", "large", 0.5, 0.5, extent=0.45)
        pixels = np.asarray(render_image(Scene("single", (obj,)), 256, rng)).astype(int)
        mask[shape] = pixels[:, :, 0] - pixels[:, :, 1] > 100
    rows = mask["triangle"].sum(1)
    assert rows[80] < rows[120] < rows[160]  # widens downwards: apex up
    star = mask["star"].astype(np.uint8)
    contours, _ = cv2.findContours(star, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(contours[0], returnPoints=False)
    defects = cv2.convexityDefects(contours[0], hull)
    assert (
        defects.reshape(-1, 4)[:, 3] > 256 * 4
    ).sum() == 5  # five deep notches between five points


def test_rendering_a_small_image_takes_a_few_milliseconds() -> None:
    scenes = _scenes(300, seed=9)
    rng = random.Random(9)
    start = time.perf_counter()
    for scene in scenes:
        render_image(scene, 128, rng)
    assert (time.perf_counter() - start) / len(scenes) < 0.005


# --- dataset folders and the command line --------------------------------------------------------


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    paths = [
        generate(tmp_path / name, 12, 1, seed=seed, sizes=(96, 128))
        for name, seed in (("a", 5), ("b", 5), ("c", 6))
    ]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    for record in read_captions(paths[0]):
        if record["kind"] == "image":
            first = np.asarray(Image.open(tmp_path / "a" / record["file"]))
            second = np.asarray(Image.open(tmp_path / "b" / record["file"]))
            assert np.array_equal(first, second)


def test_generated_folder_holds_exactly_the_listed_files_with_valid_records(dataset: Path) -> None:
    lines = (dataset / "captions.jsonl").read_text().splitlines()
    records = read_captions(dataset)
    assert len(lines) == len(records) == 42
    listed = {r["file"] for r in records}
    on_disk = {str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file()} - {
        "captions.jsonl"
    }
    assert listed == on_disk
    for record in (r for r in records if r["kind"] == "image"):
        with Image.open(dataset / record["file"]) as image:
            assert (
                image.format == "PNG" and image.width == image.height and 96 <= image.width <= 160
            )
        scene = Scene.from_dict(record["scene"])
        assert record["captions"][0] == canonical_caption(scene)
        assert all(satisfies(scene, caption) for caption in record["captions"])
        assert {"shape", "colour", "size", "x", "y"} <= set(record["scene"]["objects"][0])


def test_videos_open_with_the_annotated_frame_count_and_events(dataset: Path) -> None:
    videos = [r for r in read_captions(dataset) if r["kind"] == "video"]
    assert len(videos) == 2
    for record in videos:
        capture = cv2.VideoCapture(str(dataset / record["file"]))
        try:
            assert capture.isOpened()
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(record["fps"], abs=0.01)
            assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == record["size"]
            ok, _ = capture.read()
            assert ok
        finally:
            capture.release()
        assert 8 <= record["fps"] <= 15 and 128 <= record["size"] <= 256
        assert 4 - 0.2 <= record["duration"] <= 12 + 0.2
        assert frames == round(record["duration"] * record["fps"])
        events = record["events"]
        assert events[0]["t_start"] == 0 and events[-1]["t_end"] == pytest.approx(
            record["duration"], abs=1e-3
        )
        for before, after in zip(events, events[1:], strict=False):
            assert before["t_end"] == after["t_start"] and before["caption"] != after["caption"]
        for event in events:
            assert event["t_end"] - event["t_start"] >= 1.5 - 1e-3
            assert event["caption"] == canonical_caption(Scene.from_dict(event["scene"]))


def test_sampled_clips_keep_their_constraints_while_objects_drift() -> None:
    rng = random.Random(10)
    for _ in range(60):
        clip = sample_clip(rng)
        assert 4 - 0.2 <= clip.duration <= 12 + 0.2 and len(clip.events) >= 2
        assert len({scene.background for scene in clip.events}) == 1
        for before, after in zip(clip.events, clip.events[1:], strict=False):
            assert canonical_caption(before) != canonical_caption(after)
        for scene in clip.events:
            assert is_valid_scene(scene, slack=0.015)


def test_command_line_writes_a_jpeg_set_without_twins(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "--out",
                str(out),
                "--images",
                "6",
                "--videos",
                "0",
                "--seed",
                "3",
                "--no-twins",
                "--format",
                "jpeg",
                "--min-size",
                "100",
                "--max-size",
                "110",
            ]
        )
        == 0
    )
    records = read_captions(out / "captions.jsonl")
    assert len(records) == 6
    for record in records:
        assert record["file"].endswith(".jpg")
        with Image.open(out / record["file"]) as image:
            assert image.format == "JPEG" and 100 <= image.width <= 110


def test_generate_rejects_an_unknown_image_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image format"):
        generate(tmp_path, 1, 0, seed=0, image_format="gif")
