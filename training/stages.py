"""The training stages: fast dual encoder (InfoNCE), slow captioner, and distillation into the fast one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from fastslow_desktop.models.config import load_arch
from fastslow_desktop.models.fast import build_clip
from fastslow_desktop.models.preprocess import ImagePreprocess, PreprocessConfig
from fastslow_desktop.models.slow import SlowCaptioner, SlowConfig
from fastslow_desktop.models.tokenizer import TextTokenizer

from . import checkpoint, teacher_cache
from .augment import maybe_augment
from .data import GroupBatcher, Item, PixelSource, pick_captions, shard, swapped_objects
from .loop import Dist, train
from .losses import contrastive_loss, distillation_loss, hardest_others
from .params import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class FastSpec:
    """A fast model to train, with what its bundle needs to rebuild it."""

    model: torch.nn.Module
    arch: dict
    preprocess: PreprocessConfig


def new_fast(cfg: TrainConfig, tokenizer: TextTokenizer) -> FastSpec:
    """Random weights from a named architecture, or a pretrained open_clip model ('open_clip:NAME:TAG')."""
    if cfg.fast_arch.startswith("open_clip:"):
        import open_clip

        _, name, tag = cfg.fast_arch.split(":", 2)
        model = open_clip.create_model(name, pretrained=tag or None, weights_only=True)
        arch = dict(open_clip.get_model_config(name))
        pp = getattr(model.visual, "preprocess_cfg", {})
        size = pp.get("size", arch["vision_cfg"].get("image_size", 224))
        preprocess = PreprocessConfig(
            image_size=size[0] if isinstance(size, (list, tuple)) else size,
            mean=tuple(pp.get("mean", PreprocessConfig.mean)), std=tuple(pp.get("std", PreprocessConfig.std)),
            resize_mode=pp.get("resize_mode", "shortest"),
        )
        return FastSpec(model, arch, preprocess)
    arch = load_arch(cfg.fast_arch)
    model = build_clip(arch, tokenizer.vocab_size, tokenizer.context_length)
    apply_init(model, arch.get("init", {}))
    return FastSpec(model, arch, PreprocessConfig.from_dict(arch.get("preprocess", {})))


def apply_init(model: torch.nn.Module, init: dict) -> None:
    """Initial-weight choices an architecture states beyond open_clip's defaults (random-weight training only).

    "residual_bn_weight": the scale of each residual block's last BatchNorm in a ModifiedResNet image
    tower (fast-synth-bn1 sets 1). open_clip sets 0, so each block starts by passing only its shortcut;
    from that start the synthetic preset's student learns two-object relations late, at a step its initial
    weights decide (README, "Where the seed spread comes from").
    """
    weight = init.get("residual_bn_weight")
    if weight is None:
        return
    layers = [getattr(model.visual, f"layer{i}", None) for i in range(1, 5)]
    if any(layer is None for layer in layers):
        raise ValueError("init.residual_bn_weight applies to ModifiedResNet image towers only")
    with torch.no_grad():
        for layer in layers:
            for name, param in layer.named_parameters():
                if name.endswith("bn3.weight"):
                    param.fill_(float(weight))


def new_slow(cfg: TrainConfig, tokenizer: TextTokenizer, **overrides) -> SlowCaptioner:
    arch = dict(load_arch(cfg.slow_arch), vocab_size=tokenizer.vocab_size,
                context_length=tokenizer.context_length, **overrides)
    return SlowCaptioner(SlowConfig.from_dict(arch))


def slow_preprocess(model: SlowCaptioner) -> PreprocessConfig:
    return PreprocessConfig(image_size=model.cfg.image_size, resize_mode="squash")


def _wrap(module: torch.nn.Module, env: Dist) -> torch.nn.Module:
    """DistributedDataParallel under torchrun; the module itself otherwise."""
    module.to(env.device)
    if env.world > 1:
        return DistributedDataParallel(module, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    return module


class FastObjective:
    """Symmetric InfoNCE on a batch; optionally plus α·H(p_teacher, q_student) over Bᵢ."""

    def __init__(self, cfg: TrainConfig, items: list[Item], pixels: PixelSource, tokenizer: TextTokenizer,
                 model: torch.nn.Module, env: Dist, step_offset: int = 0,
                 teacher: SlowCaptioner | None = None, teacher_pixels: PixelSource | None = None):
        self.cfg, self.items, self.pixels, self.tokenizer = cfg, items, pixels, tokenizer
        self.model, self.env, self.offset = _wrap(model, env), env, step_offset
        self.teacher, self.teacher_pixels = teacher, teacher_pixels
        self.batches = GroupBatcher(items, cfg.batch_size, cfg.seed)
        self.teacher_pairs = 0

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        # Same batches for `fast` and `fast_distilled`: the extra steps differ only in the loss.
        idx, rng = self.batches(self.offset + step)
        captions = pick_captions(self.items, idx, rng)
        idx = shard(idx, self.env.rank, self.env.world)
        captions = shard(captions, self.env.rank, self.env.world)
        dev = self.env.device
        swapped = [swapped_objects(c) for c in captions] if self.cfg.swapped_negatives else []
        rows = [i for i, c in enumerate(swapped) if c is not None]
        texts = captions + [swapped[i] for i in rows]
        # Through forward() so DistributedDataParallel sees the call and syncs gradients.
        img, txt, scale = self.model(self.batch_pixels(idx), self.tokenizer(texts).to(dev))[:3]
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)  # (B, d), (B + swapped, d)
        txt, txt_swapped = txt[:len(captions)], txt[len(captions):]
        scale = scale.clamp(max=100)
        extra = None
        if swapped:
            extra = torch.full((len(captions),), float("-inf"), device=dev)
            if rows:
                extra[rows] = (img[rows] * txt_swapped).sum(-1)
        terms = {"nce": contrastive_loss(img, txt, scale, captions, extra_negatives=extra)}
        if self.teacher is not None and self.cfg.alpha > 0:
            terms["distill"] = self.cfg.alpha * self._distill(idx, captions, img, txt)
        return terms

    def batch_pixels(self, idx: list[int]) -> torch.Tensor:
        """The student's input pixels for these items (variants override it to alter them)."""
        return self.pixels[idx].to(self.env.device)

    def _distill(self, idx, captions, img, txt) -> torch.Tensor:
        cfg = self.cfg
        candidates = hardest_others(txt @ img.T, captions, cfg.distill_negatives)  # (B, M+1)
        with torch.no_grad():
            memory = self.teacher.visual_tokens(self.teacher_pixels[idx].to(self.env.device))  # (B, N, D)
            ids = self.tokenizer(captions).to(self.env.device)
            b, m1 = candidates.shape
            pair_ids = ids[:, None, :].expand(b, m1, -1).reshape(b * m1, -1)
            pair_mem = memory[candidates.reshape(-1)]
            teacher = self.teacher.score_tokens(pair_ids, pair_mem).view(b, m1)  # h(x_j, y_i)
        self.teacher_pairs += b * m1
        student = (txt[:, None, :] * img[candidates]).sum(-1)  # (B, M+1) cosine f(x_j)ᵀg(y_i)
        return distillation_loss(student, teacher, cfg.student_temperature, cfg.teacher_temperature)


class CachedDistillObjective:
    """InfoNCE over cached neighbourhoods plus α·H(p, q) against stored teacher scores (no teacher calls)."""

    def __init__(self, cfg: TrainConfig, items: list[Item], pixels: PixelSource, tokenizer: TextTokenizer,
                 model: torch.nn.Module, env: Dist, cache: teacher_cache.TeacherCache):
        self.cfg, self.items, self.pixels, self.tokenizer, self.cache = cfg, items, pixels, tokenizer, cache
        self.model, self.env = _wrap(model, env), env
        self.batches = teacher_cache.CacheBatcher(cache, cfg.batch_size, cfg.seed + 2000)
        self.teacher_pairs = 0

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rows, rng = self.batches(step)
        rows = shard(rows, self.env.rank, self.env.world)
        cand = self.cache.candidates[rows].long()  # (A, M+1), column 0 = the anchor
        images = list(dict.fromkeys(cand.reshape(-1).tolist()))  # each image once in the batch
        where = {item: k for k, item in enumerate(images)}
        anchor_caption = {int(self.cache.anchors[r]): self.cache.captions[r] for r in rows}
        captions = [anchor_caption.get(i) or rng.choice(self.items[i].captions) for i in images]
        also_true = torch.tensor([[c in self.items[i].captions for c in captions] for i in images])
        dev = self.env.device
        img, txt, scale = self.model(self.pixels[images].to(dev), self.tokenizer(captions).to(dev))[:3]
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
        terms = {"nce": contrastive_loss(img, txt, scale.clamp(max=100), captions, also_true)}
        if self.cfg.alpha > 0:
            pos = torch.tensor([[where[i] for i in row] for row in cand.tolist()], device=dev)  # (A, M+1)
            student = (txt[pos[:, 0]][:, None, :] * img[pos]).sum(-1)  # f(x_j)ᵀg(y_anchor)
            teacher = self.cache.scores[rows].float().to(dev)
            terms["distill"] = self.cfg.alpha * distillation_loss(
                student, teacher, self.cfg.student_temperature, self.cfg.teacher_temperature)
        return terms


class SlowObjective:
    """Forward + backward captioning NLL with teacher forcing."""

    def __init__(self, cfg: TrainConfig, items: list[Item], pixels: PixelSource, tokenizer: TextTokenizer,
                 model: SlowCaptioner, env: Dist):
        self.items, self.pixels, self.tokenizer, self.env = items, pixels, tokenizer, env
        self.model = _wrap(model, env)
        self.batches = GroupBatcher(items, cfg.batch_size, cfg.seed + 1000)
        self.twin_weight = cfg.slow_twin_weight

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        idx, rng = self.batches(step)
        captions = pick_captions(self.items, idx, rng)
        idx = shard(idx, self.env.rank, self.env.world)
        captions = shard(captions, self.env.rank, self.env.world)
        dev = self.env.device
        rows, false = self.twin_negatives(idx, captions) if self.twin_weight > 0 else ([], [])
        extra = (self.tokenizer(false).to(dev), torch.tensor(rows, device=dev)) if rows else (None, None)
        terms = self.model(self.tokenizer(captions).to(dev), self.pixels[idx].to(dev), *extra)
        if "twin_rank" in terms:
            terms["twin_rank"] = self.twin_weight * terms["twin_rank"]
        return terms

    def twin_negatives(self, idx: list[int], captions: list[str]) -> tuple[list[int], list[str]]:
        """(row, caption) pairs where the caption belongs to the row's confusable twin and is false for it."""
        by_group: dict[int, list[int]] = {}
        for row, i in enumerate(idx):
            by_group.setdefault(self.items[i].group, []).append(row)
        rows, false = [], []
        for members in by_group.values():
            for a in members:
                for b in members:
                    if a != b and captions[b] not in self.items[idx[a]].captions:
                        rows.append(a)
                        false.append(captions[b])
        return rows, false


def run_fast(cfg: TrainConfig, out: Path, items, tokenizer, env: Dist) -> tuple[FastSpec, dict]:
    """NCE for fast_steps + fast_extra_steps; the weights at fast_steps are kept for distillation."""
    folder, branch = out / "stages" / "fast", out / "stages" / "fast_branch"
    spec = new_fast(cfg, tokenizer)
    info = checkpoint.done_info(folder)
    if info is None:
        if cfg.fast_steps == 0 and env.main:
            checkpoint.save(branch, {"model": spec.model}, None, 0)
        pixels = PixelSource(items, ImagePreprocess(spec.preprocess), workers=2)
        pixels = maybe_augment(pixels, spec.preprocess, cfg, salt=1)
        objective = FastObjective(cfg, items, pixels, tokenizer, spec.model, env)
        stats = train("fast", folder, {"model": spec.model}, objective, cfg.fast_steps + cfg.fast_extra_steps,
                      cfg.fast_lr, cfg.warmup, cfg.weight_decay, cfg.checkpoint_every, env,
                      snapshots={cfg.fast_steps: branch})
        info = {"steps": cfg.fast_steps + cfg.fast_extra_steps, **stats}
        if env.main:
            checkpoint.mark_done(folder, info)
        env.barrier()  # the main process has written the last checkpoint that every rank loads next
    checkpoint.load_modules(folder, {"model": spec.model})
    return spec, info


def run_slow(cfg: TrainConfig, out: Path, items, tokenizer, env: Dist, name: str = "slow",
             **overrides) -> tuple[SlowCaptioner, dict]:
    folder = out / "stages" / name
    model = new_slow(cfg, tokenizer, **overrides)
    info = checkpoint.done_info(folder)
    if info is None:
        pixels = PixelSource(items, ImagePreprocess(slow_preprocess(model)), workers=2)
        pixels = maybe_augment(pixels, slow_preprocess(model), cfg, salt=2)
        stats = train(name, folder, {"model": model}, SlowObjective(cfg, items, pixels, tokenizer, model, env),
                      cfg.slow_steps, cfg.slow_lr, cfg.warmup, cfg.weight_decay, cfg.checkpoint_every, env)
        info = {"steps": cfg.slow_steps, **stats}
        if env.main:
            checkpoint.mark_done(folder, info)
        env.barrier()  # the main process has written the last checkpoint that every rank loads next
    checkpoint.load_modules(folder, {"model": model})
    return model.eval(), info


def run_distill(cfg: TrainConfig, out: Path, items, tokenizer, teacher: SlowCaptioner, env: Dist,
                mode: str = "in_batch") -> tuple[FastSpec, dict]:
    """Start from the fast model at fast_steps; fast_extra_steps of L_NCE + α·H(p, q) with a frozen teacher.

    mode "in_batch": the teacher scores each caption against its image and the student's hardest
    others in the batch, every step. mode "cached": the teacher scores a cache of captions against
    mined hard negatives once (teacher_cache.py); the steps reuse those scores.
    """
    folder = out / "stages" / ("distill" if mode == "in_batch" else "distill_cached")
    spec = new_fast(cfg, tokenizer)
    info = checkpoint.done_info(folder)
    if info is None:
        checkpoint.load_modules(out / "stages" / "fast_branch", {"model": spec.model})
        teacher.to(env.device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        pixels = PixelSource(items, ImagePreprocess(spec.preprocess), workers=2)
        teacher_pixels = PixelSource(items, ImagePreprocess(slow_preprocess(teacher)), workers=2)
        cache_info = {}
        if mode == "cached":
            cache = load_or_build_cache(cfg, out, items, tokenizer, spec, teacher, pixels, teacher_pixels, env)
            student_pixels = maybe_augment(pixels, spec.preprocess, cfg, salt=3)  # the cache was mined on clean ones
            objective = CachedDistillObjective(cfg, items, student_pixels, tokenizer, spec.model, env, cache)
            cache_info = {"teacher_pairs": cache.pairs, "teacher_seconds": round(cache.seconds, 1),
                          "cache_anchors": len(cache.anchors), "cache_bytes": cache.nbytes(),
                          "anchors_per_step": objective.batches.per_step}
        else:
            objective = FastObjective(cfg, items, maybe_augment(pixels, spec.preprocess, cfg, salt=4), tokenizer,
                                      spec.model, env, step_offset=cfg.fast_steps,
                                      teacher=teacher, teacher_pixels=teacher_pixels)
        stats = train(folder.name, folder, {"model": spec.model}, objective, cfg.fast_extra_steps, cfg.fast_lr,
                      cfg.warmup, cfg.weight_decay, cfg.checkpoint_every, env)
        info = {"steps": cfg.fast_extra_steps, "teacher_pairs": getattr(objective, "teacher_pairs", 0),
                **cache_info, **stats}
        if env.main:
            checkpoint.mark_done(folder, info)
        env.barrier()  # the main process has written the last checkpoint that every rank loads next
    checkpoint.load_modules(folder, {"model": spec.model})
    return spec, info


def load_or_build_cache(cfg: TrainConfig, out: Path, items, tokenizer, student: FastSpec, teacher: SlowCaptioner,
                        pixels: PixelSource, teacher_pixels: PixelSource, env: Dist) -> teacher_cache.TeacherCache:
    """The teacher cache of this run (built once, by the main process; others wait and read it)."""
    folder = out / "stages" / "teacher_cache"
    if env.main and teacher_cache.TeacherCache.load(folder) is None:
        anchors_per_step = max(1, cfg.batch_size // (cfg.distill_negatives + 1))
        size = max(1, cfg.fast_extra_steps * anchors_per_step // max(1, cfg.cache_epochs))
        cache = teacher_cache.build(student.model.to(env.device), teacher, items, pixels, teacher_pixels, tokenizer,
                                    size, cfg.distill_negatives, cfg.seed, env.device)
        cache.save(folder)
    env.barrier()
    return teacher_cache.TeacherCache.load(folder)
