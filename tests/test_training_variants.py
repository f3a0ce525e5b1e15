"""training variants: the cached teacher, attentive region removal, the slow-to-fast decomposition, initial weights."""

from __future__ import annotations

import pytest
import torch

from fastslow_desktop.models import (
    PreprocessConfig,
    SlowCaptioner,
    SlowConfig,
    TextTokenizer,
)
from fastslow_desktop.models.config import load_arch
from fastslow_desktop.models.fast import build_clip
from fastslow_desktop.models.preprocess import ImagePreprocess
from training import teacher_cache
from training.ablations import DecomposedDualEncoder, RegionScorer
from training.data import PixelSource, render_synthscenes


def _world(n: int = 48, seed: int = 0):
    torch.manual_seed(seed)
    items = render_synthscenes(n, seed, 96, twin_share=0.5)
    tokenizer = TextTokenizer.compact_for((c for it in items for c in it.captions), context_length=16)
    arch = load_arch("fast-tiny-cnn")
    fast = build_clip(arch, tokenizer.vocab_size, tokenizer.context_length).eval()
    slow = SlowCaptioner(SlowConfig.from_dict(dict(load_arch("slow-tiny"), vocab_size=tokenizer.vocab_size,
                                                   context_length=tokenizer.context_length))).eval()
    pixels = PixelSource(items, ImagePreprocess(PreprocessConfig.from_dict(arch["preprocess"])))
    slow_pixels = PixelSource(items, ImagePreprocess(PreprocessConfig(image_size=slow.cfg.image_size,
                                                                      resize_mode="squash")))
    return items, tokenizer, fast, slow, pixels, slow_pixels


def test_mined_negatives_never_satisfy_the_anchor_caption_and_scores_match_the_teacher(tmp_path):
    items, tokenizer, fast, slow, pixels, slow_pixels = _world()
    cache = teacher_cache.build(fast, slow, items, pixels, slow_pixels, tokenizer, size=12, m=5, seed=3,
                                device=torch.device("cpu"))
    assert cache.candidates.shape == cache.scores.shape == (12, 6) and cache.pairs == 72
    assert cache.scores.dtype == torch.float16 and cache.candidates.dtype == torch.int32
    for row, caption in enumerate(cache.captions):
        anchor, *negatives = cache.candidates[row].tolist()
        assert anchor == int(cache.anchors[row]) and caption in items[anchor].captions
        assert len(set(negatives)) == 5 and all(caption not in items[j].captions for j in negatives)
    # the stored value is h(x_j, y_i) itself (to fp16 precision), for any row and column
    row, col = 7, 3
    j = int(cache.candidates[row, col])
    with torch.no_grad():
        h = slow.score_tokens(tokenizer([cache.captions[row]]), slow.visual_tokens(slow_pixels[[j]]))
    assert torch.allclose(cache.scores[row, col].float(), h.float(), rtol=2e-3)  # fp16: 11-bit mantissa

    cache.save(tmp_path / "cache")
    again = teacher_cache.TeacherCache.load(tmp_path / "cache")
    assert again.captions == cache.captions and again.pairs == cache.pairs
    assert torch.equal(again.candidates, cache.candidates) and torch.equal(again.scores, cache.scores)
    assert teacher_cache.TeacherCache.load(tmp_path / "missing") is None


def test_cache_batcher_uses_every_anchor_once_per_epoch_and_is_deterministic():
    cache = teacher_cache.TeacherCache(torch.arange(10), [f"c{i}" for i in range(10)],
                                       torch.zeros(10, 4, dtype=torch.int32), torch.zeros(10, 4).half(), 40, 0.0)
    batcher = teacher_cache.CacheBatcher(cache, batch_size=8, seed=1)  # 8 // 4 = 2 anchors per step
    assert batcher.per_step == 2
    epoch = [r for step in range(5) for r in batcher(step)[0]]
    assert sorted(epoch) == list(range(10))
    assert batcher(3)[0] == teacher_cache.CacheBatcher(cache, 8, 1)(3)[0]  # a resumed run sees the same batch


def test_attentive_mask_keeps_the_top_share_of_regions():
    _, _, fast, *_ = _world(8)
    scorer = RegionScorer(fast.visual)
    pixels = torch.randn(4, 3, 32, 32)
    mask = scorer.keep_mask(pixels, 0.5)  # 32 px at stride 16: 2 x 2 cells, keep 2
    assert mask.shape == (4, 1, 32, 32)
    assert torch.all(mask.sum((1, 2, 3)) == 2 * 16 * 16)
    before = [p.clone() for p in scorer.ema.parameters()]
    with torch.no_grad():
        for p in fast.visual.parameters():
            p.add_(1.0)
    scorer.update(fast.visual)  # EMA moves 1 % of the way towards the new weights
    for old, new in zip(before, scorer.ema.parameters()):
        assert torch.allclose(new, old + 0.01, atol=1e-5)


def test_decomposed_encoder_starts_from_the_slow_weights_and_ignores_the_image_in_the_text_tower():
    _, tokenizer, _, slow, _, slow_pixels = _world(8)
    model = DecomposedDualEncoder.from_slow(slow, embed_dim=24).eval()
    for name, value in slow.visual.state_dict().items():
        assert torch.equal(model.visual.state_dict()[name], value)
    for name, value in slow.fwd.state_dict().items():
        assert torch.equal(model.text.state_dict()[name], value)
    ids = tokenizer(["a red circle", "two small blue squares"])
    with torch.no_grad():
        img, txt, _ = model(slow_pixels[[0, 1]], ids)
        assert img.shape == txt.shape == (2, 24) and torch.isfinite(txt).all()
        tokens = slow.visual_tokens(slow_pixels[[0]])
        assert torch.allclose(model.encode_image(slow_pixels[[0]]), model.visual_projection(tokens.mean(1)))
        # the text tower reads only the caption: swapping the images leaves it unchanged
        assert torch.allclose(model(slow_pixels[[1, 0]], ids)[1], txt)
    scratch = DecomposedDualEncoder(slow.cfg, 24)
    assert not torch.equal(scratch.visual.proj.weight, model.visual.proj.weight)



def test_slow_twin_negatives_pair_only_confusable_twins_with_captions_false_for_the_image():
    from training.loop import Dist
    from training.params import TrainConfig
    from training.stages import SlowObjective

    items, tokenizer, _, slow, _, slow_pixels = _world(40)
    objective = SlowObjective(TrainConfig(batch_size=16), items, slow_pixels, tokenizer, slow, Dist())
    idx, rng = objective.batches(0)
    captions = [rng.choice(items[i].captions) for i in idx]
    rows, false = objective.twin_negatives(idx, captions)
    assert rows, "a batch keeps twin groups together, so it has twin pairs"
    for row, caption in zip(rows, false):
        assert caption not in items[idx[row]].captions
        partner = [r for r in range(len(idx)) if r != row and items[idx[r]].group == items[idx[row]].group]
        assert caption in [captions[r] for r in partner]
    terms = objective(0)
    assert set(terms) == {"caption_fwd", "caption_bwd", "twin_rank"} and terms["twin_rank"] > 0
    terms["twin_rank"].backward()
    assert slow.fwd.embed.weight.grad is not None


def test_an_architecture_can_start_its_residual_blocks_switched_on():
    """fast-synth-bn1 states residual_bn_weight 1; open_clip itself starts every residual block at zero."""
    from dataclasses import replace

    from training.params import PRESETS
    from training.stages import apply_init, new_fast

    def last_bn(model):
        return [p for n, p in model.visual.named_parameters() if n.startswith("layer") and n.endswith("bn3.weight")]

    tokenizer = TextTokenizer.compact_for(["a red circle"], context_length=16)
    switched_on = new_fast(replace(PRESETS["synthetic"], fast_arch="fast-synth-bn1"), tokenizer).model
    assert len(last_bn(switched_on)) == 4 and all(bool((p == 1).all()) for p in last_bn(switched_on))
    preset = new_fast(replace(PRESETS["synthetic"]), tokenizer).model
    assert all(bool((p == 0).all()) for p in last_bn(preset))
    vit = build_clip(load_arch("fast-tiny"), tokenizer.vocab_size, 16)
    with pytest.raises(ValueError, match="ModifiedResNet"):  # a ViT tower has no residual BatchNorm to set
        apply_init(vit, {"residual_bn_weight": 1.0})
