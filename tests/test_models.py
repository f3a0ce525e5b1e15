"""Models core: fast encoder, slow captioner, re-ranker and bundles (CPU, seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fastslow_desktop.models import BundleError, RerankConfig, Reranker, load_bundle
from fastslow_desktop.models.slow import SlowCaptioner, SlowConfig, reverse_sequences
from tests.helpers import make_tiny_bundle


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


def test_tiny_fast_and_slow_build_from_config_and_produce_contract_shapes(tiny_bundle):
    models = load_bundle(tiny_bundle)
    imgs = _images(3)
    emb = models.fast.encode_images(imgs)
    txt = models.fast.encode_texts(["a red circle", "two small yellow triangles"])
    assert emb.shape == (3, models.embedding_dim) and txt.shape == (2, models.embedding_dim)
    assert models.slow.score("a red circle", imgs).shape == (3,)


def test_embeddings_are_float32_and_unit_length(tiny_bundle):
    models = load_bundle(tiny_bundle)
    for arr in (models.fast.encode_images(_images(5)), models.fast.encode_texts(["a", "a large green star"])):
        assert arr.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)


def test_bundle_round_trip_gives_identical_outputs(tmp_path):
    a = load_bundle(make_tiny_bundle(tmp_path / "a", seed=3))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = load_bundle(tmp_path / "b")
    imgs = _images(4, seed=1)
    np.testing.assert_array_equal(a.fast.encode_images(imgs), b.fast.encode_images(imgs))
    np.testing.assert_array_equal(a.slow.score("a large green star", imgs), b.slow.score("a large green star", imgs))
    assert a.model_id == b.model_id


def test_flipped_byte_in_a_weight_file_is_refused(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b")
    weights = bundle / "slow.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="slow.safetensors.*damaged"):
        load_bundle(bundle)


def test_unknown_bundle_version_is_refused_with_advice(tmp_path):
    bundle = make_tiny_bundle(tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="version 99.*Update FastSlow"):
        load_bundle(bundle)


def test_missing_bundle_names_the_path_and_the_presets(tmp_path):
    with pytest.raises(BundleError, match="No model bundle at .*nowhere.*presets"):
        load_bundle(tmp_path / "nowhere")


def test_batched_slow_scores_equal_one_at_a_time_scores(tiny_bundle):
    slow = load_bundle(tiny_bundle).slow
    imgs = _images(7, seed=2)
    batched = slow.score("an orange star above a purple circle", imgs)
    single = np.array([slow.score("an orange star above a purple circle", [im])[0] for im in imgs])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-4)


def test_visual_tokens_are_reusable_across_texts(tiny_bundle):
    slow = load_bundle(tiny_bundle).slow
    imgs = _images(3)
    tokens = slow.visual_tokens(imgs)
    for text in ["a red circle", "three large red squares"]:
        np.testing.assert_allclose(slow.score_tokens(text, tokens), slow.score(text, imgs), rtol=1e-5)


def _tiny_slow(vocab: int = 20) -> SlowCaptioner:
    torch.manual_seed(0)
    cfg = SlowConfig(image_size=32, stem_width=8, stage_widths=[8, 16, 16, 16], token_stride=8,
                     pyramid_dim=16, width=32, layers=1, heads=2, vocab_size=vocab, context_length=8)
    return SlowCaptioner(cfg).eval()


def test_scores_decoded_without_the_padding_columns_equal_the_full_context_ones():
    from fastslow_desktop.models.slow_scorer import CaptionerScorer, trim_padding

    model = _tiny_slow()
    ids = torch.tensor([[18, 3, 4, 5, 19, 0, 0, 0]])  # SOT a b c EOT, then padding to the context length
    assert trim_padding(ids).shape == (1, 5)
    memory = torch.randn(4, 16, 32)
    scorer = CaptionerScorer.__new__(CaptionerScorer)  # the decoding methods only; no preprocessing needed
    scorer.model, scorer.bidirectional = model, True
    rows = ids.expand(4, -1)
    with torch.no_grad():
        full = model.token_logprobs(rows, memory, "fwd") + model.token_logprobs(rows, memory, "bwd")
        trimmed = scorer._token_scores(rows, memory)
        torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(scorer._score(rows, memory), model.score_tokens(rows, memory), rtol=1e-5, atol=1e-5)


def test_folding_batchnorm_leaves_the_visual_tokens_unchanged():
    model = _tiny_slow()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = model.visual_tokens(pixels)
        model.fuse_batchnorm()
        after = model.visual_tokens(pixels)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_one_decoder_pass_gives_the_score_and_the_worst_token(tiny_bundle):
    slow = load_bundle(tiny_bundle).slow
    tokens = slow.visual_tokens(_images(5, seed=3))
    both = slow.score_and_worst("a red circle left of a blue square", tokens)
    np.testing.assert_allclose(both[:, 0], slow.score_tokens("a red circle left of a blue square", tokens),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(both[:, 1], slow.worst_token("a red circle left of a blue square",
                                                            [tokens[i:i + 1] for i in range(5)]), atol=1e-5)


@pytest.mark.parametrize("mode", ["squash", "shortest", "longest"])
def test_preprocessing_a_resized_image_gives_the_same_tensor(mode):
    from fastslow_desktop.models.preprocess import ImagePreprocess, PreprocessConfig

    preprocess = ImagePreprocess(PreprocessConfig(image_size=48, resize_mode=mode))
    for image in _images(2, seed=4) + [Image.new("RGBA", (300, 90), (10, 200, 30, 255))]:
        small = preprocess.resize(image)
        assert small.mode == "RGB" and max(small.size) <= max(image.size)
        torch.testing.assert_close(preprocess(small), preprocess(image))


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_squash_preprocessing_without_open_clip_matches_open_clips_transform_pixel_for_pixel(interpolation):
    from open_clip.transform import image_transform

    from fastslow_desktop.models.preprocess import ImagePreprocess, PreprocessConfig

    config = PreprocessConfig(image_size=48, resize_mode="squash", interpolation=interpolation)
    preprocess = ImagePreprocess(config)
    assert preprocess._transform is None  # the PIL-only path
    reference = image_transform(48, is_train=False, mean=config.mean, std=config.std, resize_mode="squash",
                                interpolation=interpolation)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in ((100, 80), (48, 48), (31, 97))]
    grey = Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8))
    images += [grey, grey.convert("P"), grey.convert("1"), Image.fromarray(rng.integers(0, 255, (40, 60, 4), dtype=np.uint8))]
    for image in images:
        assert torch.equal(preprocess(image), reference(image)), image.mode
    assert torch.equal(preprocess.batch(images), torch.stack([reference(im) for im in images]))


def test_loading_a_squash_bundles_slow_model_imports_neither_open_clip_nor_torch_dynamo():
    import subprocess
    import sys

    code = ("import sys; from fastslow_desktop.models import load_bundle; "
            "m = load_bundle('resources/models/synthscenes'); m.slow; m.matcher; "
            "print(sorted(n for n in ('open_clip', 'torchvision', 'transformers', 'torch._dynamo') if n in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=root)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("mode", ["squash", "shortest", "longest"])
def test_a_batch_of_resized_images_is_normalised_in_bulk_exactly_as_one_by_one(mode):
    from fastslow_desktop.models.preprocess import ImagePreprocess, PreprocessConfig

    preprocess = ImagePreprocess(PreprocessConfig(image_size=48, resize_mode=mode))
    assert preprocess._normalize is not None  # the bulk path applies to open_clip's transforms
    images = _images(3, seed=6) + [Image.new("RGBA", (300, 90), (10, 200, 30, 255)), Image.new("L", (48, 48), 90)]
    one_by_one = torch.stack([preprocess(im) for im in images])
    assert torch.equal(preprocess.batch([preprocess.resize(im) for im in images]), one_by_one)
    assert torch.equal(preprocess.batch(images), one_by_one)  # not yet resized: resized first, same tensors


def test_the_eval_decoder_layers_compute_what_nn_transformer_decoder_computes():
    model = _tiny_slow()
    ids = torch.tensor([[18, 3, 4, 5, 19, 0, 0, 0], [18, 7, 19, 0, 0, 0, 0, 0]])
    memory = torch.randn(2, 16, 32)
    with torch.no_grad():
        fast = model.fwd(ids, memory)  # eval mode: slow.eval_layer
        model.fwd.train()  # the nn.TransformerDecoder path (dropout is 0 in this config)
        reference = model.fwd(ids, memory)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)


def test_the_slow_visual_tokens_run_on_onnx_runtime_only_when_they_match_torch(monkeypatch):
    pytest.importorskip("onnxruntime")
    from fastslow_desktop.models import slow_onnx

    model = _tiny_slow().fuse_batchnorm()
    tokens = slow_onnx.onnx_visual_tokens(model, torch.device("cpu"))
    assert tokens is not None
    pixels = torch.randn(5, 3, 32, 32)
    assert tokens.accepts(pixels) and not tokens.accepts(torch.randn(2, 3, 40, 40))
    with torch.no_grad():
        torch.testing.assert_close(tokens(pixels), model.visual_tokens(pixels), rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(slow_onnx, "TOKEN_GUARD", -1.0)  # any difference fails the guard: torch is kept
    assert slow_onnx.onnx_visual_tokens(model, torch.device("cpu")) is None
    monkeypatch.setattr(slow_onnx, "TOKEN_GUARD", 1e-3)
    monkeypatch.setenv(slow_onnx.ENV, "0")
    assert slow_onnx.onnx_visual_tokens(model, torch.device("cpu")) is None


def test_hub_models_preprocess_resizes_the_same_way():
    """Hub presets wrap open_clip's own transform (`_OpenClipPreprocess`); re-ranking resizes with it too."""
    from open_clip.transform import image_transform

    from fastslow_desktop.models.fast import _OpenClipPreprocess

    preprocess = _OpenClipPreprocess(image_transform(64, is_train=False), {"size": 64})
    image = Image.new("RGB", (200, 120), (200, 40, 40))
    small = preprocess.resize(image)
    assert small.size == (64, 64)
    torch.testing.assert_close(preprocess(small), preprocess(image))


def test_dropped_models_are_freed_without_the_cycle_collector(tiny_bundle):
    """The app exempts its start-up heap from the cyclic GC (ui/workers/startup.settle_heap): models it
    lets go of on a switch must then be freed by reference counting alone, i.e. hold no cycles."""
    import gc
    import weakref

    models = load_bundle(tiny_bundle)
    refs = [weakref.ref(x) for x in (models, models.fast, models.slow, models.slow.model, models.reranker)]
    gc.disable()
    try:
        del models
        assert [r() is None for r in refs] == [True] * len(refs)
    finally:
        gc.enable()


def test_reverse_sequences_reverses_only_the_real_tokens():
    ids = torch.tensor([[18, 3, 4, 5, 19, 0, 0, 0]])
    assert reverse_sequences(ids).tolist() == [[19, 5, 4, 3, 18, 0, 0, 0]]


def test_backward_decoder_reads_right_to_left():
    model = _tiny_slow()
    memory = model.visual_tokens(torch.randn(1, 3, 32, 32)).expand(2, -1, -1)
    # Two captions that differ only in their first word.
    ids = torch.tensor([[18, 3, 4, 5, 6, 19, 0, 0], [18, 7, 4, 5, 6, 19, 0, 0]])
    with torch.no_grad():
        bwd = model.token_logprobs(ids, memory, "bwd")
        fwd = model.token_logprobs(ids, memory, "fwd")
    # Backward: p(y_l | y_>l) for the later words never sees the first word.
    torch.testing.assert_close(bwd[0, 2:5], bwd[1, 2:5])
    # Forward does see it, so the later words' log-probs change.
    assert not torch.allclose(fwd[0, 2:5], fwd[1, 2:5])
    # And backward predictions of the first word's position differ (different target), as they must.
    assert not torch.allclose(bwd[0, 1], bwd[1, 1])


def _scene(left_colour: str, right_colour: str) -> Image.Image:
    im = Image.new("RGB", (32, 32), (128, 128, 128))
    d = ImageDraw.Draw(im)
    d.ellipse([2, 10, 14, 22], fill=left_colour)  # circle on the left
    d.rectangle([18, 10, 30, 22], fill=right_colour)  # square on the right
    return im


def test_slow_model_learns_to_prefer_true_caption_over_swapped_twin():
    from fastslow_desktop.models import PreprocessConfig, TextTokenizer
    from fastslow_desktop.models.preprocess import ImagePreprocess

    captions = ["a red circle to the left of a blue square", "a blue circle to the left of a red square"]
    images = [_scene("red", "blue"), _scene("blue", "red")]
    tok = TextTokenizer.compact_for(captions, context_length=12)
    pre = ImagePreprocess(PreprocessConfig(image_size=32, resize_mode="squash"))
    torch.manual_seed(0)
    cfg = SlowConfig(image_size=32, stem_width=8, stage_widths=[8, 16, 16, 16], token_stride=8,
                     pyramid_dim=16, width=32, layers=1, heads=2, vocab_size=tok.vocab_size, context_length=12)
    model = SlowCaptioner(cfg)
    pixels, ids = pre.batch(images), tok(captions)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        loss = sum(model.caption_loss(ids, pixels).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        memory = model.visual_tokens(pixels)
        true = model.score_tokens(ids, memory)
        twin = model.score_tokens(ids.flip(0), memory)
    assert (true > twin + 1.0).all(), (true, twin)


class _FakeSlow:
    """Scores by a fixed table so the re-ranker's arithmetic can be checked exactly."""

    def __init__(self, table):
        self.table = table
        from fastslow_desktop.models import TextTokenizer

        self.tokenizer = TextTokenizer.compact_for(["a b"])

    def score_groups(self, text, groups):
        return np.array([self.table[g[0]] for g in groups], np.float32)


def test_reranker_reorders_only_top_k_and_keeps_fast_scores():
    table = {"a": 0.0, "b": 5.0, "c": 1.0, "d": 100.0}
    rr = Reranker(_FakeSlow(table), RerankConfig(k=3, beta=0.0, normalization="zscore"))
    out = rr.rerank("q", ["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.1], load_frames=lambda key: [key])
    assert [r.key for r in out] == ["b", "c", "a", "d"]  # d is outside K: slow never saw it
    assert out[-1].slow_score is None and out[0].slow_score == 5.0
    assert [r.fast_score for r in out] == [0.8, 0.7, 0.9, 0.1]


def test_reranker_keeps_an_unreadable_candidate_at_its_fast_rank():
    def load(key):
        if key == "b":
            raise OSError("file vanished")
        return [key]

    rr = Reranker(_FakeSlow({"a": 0.0, "b": 9.0, "c": 1.0}), RerankConfig(k=3, beta=0.0))
    out = rr.rerank("q", ["a", "b", "c"], [0.9, 0.8, 0.7], load_frames=load)
    assert [r.key for r in out] == ["c", "a", "b"] and out[-1].slow_score is None


def test_public_api_works_on_the_committed_demo_bundle():
    import random

    from fastslow_desktop.synthscenes import canonical_caption, render_image, sample_scene, twins

    models = load_bundle("synthscenes")
    rng = random.Random(7)
    scenes = [sample_scene(rng, "pair") for _ in range(6)]
    images = [render_image(s, 128, rng) for s in scenes]
    emb = models.fast.encode_images(images)
    txt = models.fast.encode_texts([canonical_caption(s) for s in scenes])
    assert emb.dtype == np.float32 and emb.shape == (6, models.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1, atol=1e-5)
    # The trained slow model binds colours to shapes: it prefers each scene's own caption to the
    # caption of its colour-swapped twin. (Relations are its weak point: see README, "Results".)
    wins = tried = 0
    for scene, image in zip(scenes, images):
        objects = {(o.shape, o.colour) for o in scene.objects}
        for twin in twins(scene, rng):
            if {(o.shape, o.colour) for o in twin.objects} != objects:
                tried += 1
                own = models.slow.score(canonical_caption(scene), [image])[0]
                rival = models.slow.score(canonical_caption(twin), [image])[0]
                wins += own > rival
    assert tried >= 3 and wins == tried
