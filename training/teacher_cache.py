"""Cached teacher: slow-model scores for each cached caption against its image and M mined hard negatives.

TinyViT stores a teacher's outputs once and reuses them every epoch; here the stored outputs are
h(x_j, y_i) for caption y_i of an anchor image and the M training images the fast model confuses
with it most. Training batches are then whole neighbourhoods (anchor + its negatives), so the
in-batch InfoNCE sees hard negatives too, and the distillation term costs no teacher calls.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .data import Item, PixelSource

logger = logging.getLogger(__name__)


@dataclass
class TeacherCache:
    """Rows of (anchor item, its caption, candidates [anchor, M negatives], teacher scores)."""

    anchors: torch.Tensor  # (A,) int64 item indices
    captions: list[str]  # (A,) the cached caption of each anchor
    candidates: torch.Tensor  # (A, M+1) int32 item indices; column 0 is the anchor itself
    scores: torch.Tensor  # (A, M+1) float16 h(x_candidate, y_anchor)
    pairs: int  # teacher pair evaluations spent building it
    seconds: float

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"anchors": self.anchors, "candidates": self.candidates, "scores": self.scores},
                  str(folder / "cache.safetensors"),
                  metadata={"pairs": str(self.pairs), "seconds": f"{self.seconds:.3f}"})
        (folder / "captions.txt").write_text("\n".join(self.captions) + "\n")

    @classmethod
    def load(cls, folder: Path) -> TeacherCache | None:
        path = folder / "cache.safetensors"
        if not path.is_file():
            return None
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
        t = load_file(str(path))
        captions = (folder / "captions.txt").read_text().splitlines()
        return cls(t["anchors"], captions, t["candidates"], t["scores"], int(meta["pairs"]), float(meta["seconds"]))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.anchors, self.candidates, self.scores))


def positives_by_caption(items: Sequence[Item]) -> dict[str, set[int]]:
    """caption -> items that carry it among their true captions (those can never be negatives)."""
    index: dict[str, set[int]] = defaultdict(set)
    for i, item in enumerate(items):
        for caption in item.captions:
            index[caption].add(i)
    return index


@torch.no_grad()
def mine_hard_negatives(student, items: Sequence[Item], pixels: PixelSource, tokenizer, anchors: Sequence[int],
                        captions: Sequence[str], m: int, device: torch.device, chunk: int = 512) -> torch.Tensor:
    """(A, m+1): each anchor, then the m training images the student scores highest for its caption."""
    student.eval()
    img = torch.cat([F.normalize(student.encode_image(pixels[list(range(s, min(s + chunk, len(items))))]
                                                      .to(device)).float(), dim=-1)
                     for s in range(0, len(items), chunk)])  # (N, d)
    positives = positives_by_caption(items)
    out = torch.empty(len(anchors), m + 1, dtype=torch.int32)
    for s in range(0, len(anchors), chunk):
        caps = list(captions[s:s + chunk])
        txt = F.normalize(student.encode_text(tokenizer(caps).to(device)).float(), dim=-1)  # (c, d)
        sims = txt @ img.T  # (c, N)
        for row, caption in enumerate(caps):
            sims[row, list(positives.get(caption, ())) or [anchors[s + row]]] = float("-inf")
        out[s:s + len(caps), 0] = torch.as_tensor(anchors[s:s + chunk], dtype=torch.int32)
        out[s:s + len(caps), 1:] = sims.topk(m, dim=1).indices.to(torch.int32).cpu()
    return out


@torch.no_grad()
def score_candidates(teacher, teacher_pixels: PixelSource, tokenizer, captions: Sequence[str],
                     candidates: torch.Tensor, device: torch.device, chunk: int = 64) -> torch.Tensor:
    """Teacher scores h(x_j, y_i) for every (caption row, candidate) pair. (A, M+1) float16"""
    teacher.eval()
    a, m1 = candidates.shape
    out = torch.empty(a, m1, dtype=torch.float16)
    for s in range(0, a, chunk):
        cand = candidates[s:s + chunk].long()  # (c, M+1)
        unique, inverse = torch.unique(cand.reshape(-1), return_inverse=True)
        memory = teacher.visual_tokens(teacher_pixels[unique.tolist()].to(device))  # (u, T, D)
        ids = tokenizer(list(captions[s:s + chunk])).to(device)  # (c, L)
        pair_ids = ids[:, None, :].expand(-1, m1, -1).reshape(-1, ids.shape[1])
        scores = teacher.score_tokens(pair_ids, memory[inverse.to(device)])
        out[s:s + len(cand)] = scores.view(len(cand), m1).half().cpu()
    return out


def build(student, teacher, items: Sequence[Item], pixels: PixelSource, teacher_pixels: PixelSource, tokenizer,
          size: int, m: int, seed: int, device: torch.device) -> TeacherCache:
    """Pick `size` anchors (one caption each), mine m negatives with the student, score all with the teacher."""
    t0 = time.perf_counter()
    rng = random.Random(f"teacher-cache/{seed}")
    anchors = sorted(rng.sample(range(len(items)), min(size, len(items))))
    captions = [rng.choice(items[i].captions) for i in anchors]
    candidates = mine_hard_negatives(student, items, pixels, tokenizer, anchors, captions, m, device)
    t_mined = time.perf_counter()
    scores = score_candidates(teacher, teacher_pixels, tokenizer, captions, candidates, device)
    cache = TeacherCache(torch.as_tensor(anchors, dtype=torch.int64), captions, candidates, scores,
                         pairs=candidates.numel(), seconds=time.perf_counter() - t0)
    logger.info("teacher cache: %d anchors x %d candidates, mined in %.1f s, scored in %.1f s, %.1f KiB",
                len(anchors), m + 1, t_mined - t0, time.perf_counter() - t_mined, cache.nbytes() / 1024)
    return cache


class CacheBatcher:
    """Batches of whole neighbourhoods: A anchors per step, each with its cached candidates.

    Anchors are walked in a per-epoch shuffled order, so every cached score is used once per epoch;
    a batch depends only on (seed, step), so a resumed run sees the batches it would have seen.
    """

    def __init__(self, cache: TeacherCache, batch_size: int, seed: int):
        self.cache = cache
        self.per_step = max(1, batch_size // cache.candidates.shape[1])
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def epoch_order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.cache.anchors)))
            random.Random(f"{self.seed}/epoch/{epoch}").shuffle(order)
            self._orders = {epoch: order}  # one epoch at a time is all a step needs
        return self._orders[epoch]

    def __call__(self, step: int) -> tuple[list[int], random.Random]:
        n = len(self.cache.anchors)
        start = step * self.per_step
        rows = [self.epoch_order((start + k) // n)[(start + k) % n] for k in range(self.per_step)]
        return rows, random.Random(f"{self.seed}/{step}")
