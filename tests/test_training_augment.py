"""Training augmentation: off by default, caption-safe, deterministic per seed, and usable by a stage."""

from __future__ import annotations

import argparse

import torch

from fastslow_desktop.models import PreprocessConfig, SlowCaptioner, SlowConfig, TextTokenizer
from fastslow_desktop.models.config import load_arch
from fastslow_desktop.models.preprocess import ImagePreprocess
from training.augment import AugmentedPixels, Strengths, augment, maybe_augment
from training.data import PixelSource, render_synthscenes
from training.loop import Dist
from training.params import PRESETS, TrainConfig, add_arguments, config_from_args
from training.stages import SlowObjective

STRONG = Strengths(colour=0.3, turn=8.0, stretch=0.2, blur=1.2, noise=0.05)


def test_presets_train_without_augmentation_but_the_synthetic_white_balance_cast():
    for name, cfg in PRESETS.items():
        expected = Strengths(cast=0.05) if name == "synthetic" else Strengths()
        assert Strengths.from_config(cfg) == expected and cfg.render_size_max == 0
    source = object()
    assert maybe_augment(source, PreprocessConfig(), TrainConfig(), salt=1) is source
    items = render_synthscenes(6, 0, 96, 0.5)
    assert {it.image.size for it in items} == {(96, 96)}
    sized = render_synthscenes(30, 0, 96, 0.5, max_size=200)
    assert len({it.image.size for it in sized}) > 5 and all(96 <= it.image.width <= 200 for it in sized)


def test_augmentation_changes_pixels_deterministically_and_keeps_a_corner_object_in_the_picture():
    x = torch.full((8, 3, 32, 32), 0.5)
    x[:, 0, 1:7, 1:7] = 1.0  # a red patch touching the corner margin
    x[:, 1:, 1:7, 1:7] = 0.0
    first = augment(x, STRONG, torch.Generator().manual_seed(3))
    again = augment(x, STRONG, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and not torch.equal(first, augment(x, STRONG, torch.Generator().manual_seed(4)))
    assert first.shape == x.shape and first.min() >= 0 and first.max() <= 1
    assert (first - x).abs().mean() > 0.01
    turned = augment(x, Strengths(turn=10.0, stretch=0.25), torch.Generator().manual_seed(0))
    redness = turned[:, 0] - turned[:, 1]  # (B, S, S)
    assert (redness.amax((1, 2)) > 0.6).all()  # the patch survives every turn and stretch
    # the shrink leaves the patch no larger than it was: nothing is zoomed in (and cut)
    assert ((redness > 0.5).sum((1, 2)) <= 36).all()


def test_a_white_balance_cast_tints_a_grey_picture_evenly_and_the_colour_jitter_does_not():
    grey = torch.full((16, 3, 8, 8), 0.5)
    cast = augment(grey, Strengths(cast=0.05), torch.Generator().manual_seed(0))
    offsets = cast - grey
    assert torch.allclose(offsets, offsets[:, :, :1, :1].expand_as(offsets))  # one offset per channel and image
    assert offsets.abs().max() <= 0.05 + 1e-6
    assert (offsets.amax(1) - offsets.amin(1)).amax() > 0.03  # the channels move apart: grey is no longer grey
    jittered = augment(grey, Strengths(colour=0.3), torch.Generator().manual_seed(0))
    assert torch.allclose(jittered, jittered[:, :1].expand_as(jittered))  # brightness etc. keep grey neutral


def test_the_captioner_trains_on_augmented_batches_from_the_command_line_fields():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--augment-colour", "0.2", "--augment-turn", "5", "--augment-blur",
                                              "1", "--augment-noise", "0.03", "--augment-cast", "0.04",
                                              "--batch-size", "8"]))
    assert Strengths.from_config(cfg) == Strengths(colour=0.2, turn=5.0, blur=1.0, noise=0.03, cast=0.04)
    items = render_synthscenes(16, 1, 96, 0.5)
    tokenizer = TextTokenizer.compact_for((c for it in items for c in it.captions), context_length=16)
    slow = SlowCaptioner(SlowConfig.from_dict(dict(load_arch("slow-tiny"), vocab_size=tokenizer.vocab_size,
                                                   context_length=16)))
    preprocess = PreprocessConfig(image_size=slow.cfg.image_size, resize_mode="squash")
    clean = PixelSource(items, ImagePreprocess(preprocess))
    pixels = maybe_augment(clean, preprocess, cfg, salt=2)
    assert isinstance(pixels, AugmentedPixels)
    assert not torch.allclose(pixels[[0, 1]], clean[[0, 1]])
    terms = SlowObjective(cfg, items, pixels, tokenizer, slow, Dist())(0)
    loss = sum(terms.values())
    loss.backward()
    assert torch.isfinite(loss) and slow.fwd.embed.weight.grad is not None


def test_calibration_can_score_a_jittered_copy_of_the_validation_images():
    import numpy as np

    from training.calibrate_bundle import JITTER, augmented_items

    assert not Strengths(*JITTER[:1], blur=JITTER[1], noise=JITTER[2]).active  # off unless asked for
    items = render_synthscenes(4, 0, 96, 0.5)
    jitter = Strengths(colour=0.2, blur=1.0, noise=0.03)
    copies = augmented_items(items, jitter, seed=1)
    assert [c.captions for c in copies] == [it.captions for it in items]
    assert all(c.image.size == it.image.size and c.image.mode == "RGB" for c, it in zip(copies, items))
    moved = [np.abs(np.asarray(c.image, np.int16) - np.asarray(it.image.convert("RGB"), np.int16)).mean()
             for c, it in zip(copies, items)]
    assert all(0 < m < 40 for m in moved)  # changed, yet the same picture
    again = augmented_items(items, jitter, seed=1)
    assert all(np.array_equal(np.asarray(a.image), np.asarray(c.image)) for a, c in zip(again, copies))


def test_the_fast_architecture_is_a_command_line_choice_over_the_preset():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--preset", "synthetic", "--fast-arch", "fast-tiny"]))
    assert (cfg.fast_arch, cfg.slow_arch) == ("fast-tiny", "slow-synth")
    assert config_from_args(parser.parse_args(["--preset", "synthetic"])).fast_arch == "fast-synth"
