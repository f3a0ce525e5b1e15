"""The shifted SynthScenes renderer: deterministic, other pixels, the same scenes, captions and relevance."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.synthscenes import (
    Scene,
    generate,
    generate_shifted,
    read_captions,
    render_image,
    render_shifted,
    sample_scene,
    satisfies,
    true_captions,
)
from training.synthscenes import main


def test_the_shifted_renderer_is_deterministic_per_seed_and_differs_from_the_standard_one() -> None:
    scene = sample_scene(random.Random(4), "pair")
    first = np.asarray(render_shifted(scene, random.Random("s/1")))
    assert np.array_equal(first, np.asarray(render_shifted(scene, random.Random("s/1"))))
    assert not np.array_equal(first, np.asarray(render_shifted(scene, random.Random("s/2"))))
    standard = render_image(scene, 128, random.Random(0))
    resized = Image.fromarray(first).resize((128, 128), Image.Resampling.BILINEAR)
    difference = np.abs(np.asarray(resized, dtype=np.int16) - np.asarray(standard, dtype=np.int16))
    assert difference.mean() > 3  # not the same picture up to resampling


def test_shifted_images_vary_in_size_and_aspect_and_keep_each_object_where_the_scene_puts_it() -> None:
    shapes = set()
    for seed in range(40):
        scene = sample_scene(random.Random(seed), "single")
        obj = scene.objects[0]
        image = render_shifted(scene, random.Random(f"place/{seed}"))
        width, height = image.size
        shapes.add((width, height))
        assert 96 <= max(width, height) <= 256 and 0.79 <= width / height <= 1.26
        pixels = np.asarray(image, dtype=np.int16)
        # The pixel nearest the object's colour lies inside the object's (generously padded) box.
        distance = np.abs(pixels - np.array(obj.rgb)).sum(-1)
        y, x = np.unravel_index(np.argmin(distance), distance.shape)
        assert abs(x / width - obj.x) <= obj.extent / 2 + 0.06
        assert abs(y / height - obj.y) <= obj.extent / 2 + 0.06
        assert distance.min() < 120  # jitter, cast and noise leave the colour recognisable
    assert len(shapes) > 30


def test_a_shifted_gallery_has_the_standard_scenes_and_captions_with_png_and_jpeg_files(tmp_path: Path) -> None:
    standard = read_captions(generate(tmp_path / "std", 24, 0, seed=9))
    shifted = read_captions(generate_shifted(tmp_path / "shift", 24, seed=9))
    again = generate_shifted(tmp_path / "again", 24, seed=9)
    assert again.read_bytes() == (tmp_path / "shift" / "captions.jsonl").read_bytes()
    assert [r["scene"] for r in shifted] == [r["scene"] for r in standard]
    assert [r["captions"] for r in shifted] == [r["captions"] for r in standard]
    formats = set()
    for record in shifted:
        scene = Scene.from_dict(record["scene"])
        assert record["captions"] == true_captions(scene)
        assert all(satisfies(scene, caption) for caption in record["captions"])
        data = (tmp_path / "shift" / record["file"]).read_bytes()
        assert data == (tmp_path / "again" / record["file"]).read_bytes()
        with Image.open(tmp_path / "shift" / record["file"]) as image:
            formats.add(image.format)
            assert record["file"].endswith({"PNG": ".png", "JPEG": ".jpg"}[image.format])
    assert formats == {"PNG", "JPEG"}
    assert len(list((tmp_path / "shift" / "images").iterdir())) == 24


def test_command_line_writes_a_shifted_gallery_and_refuses_shifted_videos(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path / "cli"), "--images", "5", "--seed", "2", "--shifted"]) == 0
    records = read_captions(tmp_path / "cli")
    assert len(records) == 5 and all(r["renderer"] == "shifted" for r in records)
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "v"), "--images", "1", "--videos", "1", "--seed", "2", "--shifted"])
    assert exit_.value.code == 2
    assert "images only" in capsys.readouterr().err


def test_one_rendering_factor_can_be_switched_on_alone_and_the_others_draw_the_same_pictures() -> None:
    from fastslow_desktop.synthscenes.shifted import Factors

    scene = sample_scene(random.Random(5), "pair")
    plain = np.asarray(render_shifted(scene, random.Random("f/1"), Factors.only(None)), dtype=np.int16)
    cast = np.asarray(render_shifted(scene, random.Random("f/1"), Factors.only("cast")), dtype=np.int16)
    offsets = (cast - plain).reshape(-1, 3)
    inside = ((plain > 10) & (plain < 245)).reshape(-1, 3).all(1)  # away from clipping
    assert plain.shape == cast.shape and inside.mean() > 0.5
    assert (offsets[inside].max(0) - offsets[inside].min(0) <= 1).all()  # one offset per channel
    assert np.abs(offsets[inside]).max() >= 1  # and some channel moved
    assert np.array_equal(np.asarray(render_shifted(scene, random.Random("f/1"), Factors())),
                          np.asarray(render_shifted(scene, random.Random("f/1"))))  # all on: the default
    with pytest.raises(ValueError, match="unknown rendering factor"):
        Factors.only("sepia")


def test_shift_factors_measures_a_bundle_on_one_gallery_per_setting(tiny_bundle) -> None:
    from training.shift_factors import factor_settings, measure

    assert list(factor_settings())[:2] == ["none", "aspect"] and list(factor_settings())[-1] == "all"
    result = measure(tiny_bundle, n_images=12, n_queries=4, names=["none", "cast"])
    assert set(result) == {"none", "cast"}
    assert all(0 <= r["fast"] <= 100 and 0 <= r["slow"] <= 100 for r in result.values())
