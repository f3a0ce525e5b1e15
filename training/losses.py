"""Losses: symmetric InfoNCE for the fast model, caption NLL for the slow one, and distillation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def same_caption_mask(captions: Sequence[str]) -> torch.Tensor:
    """(B, B) True where two rows carry the identical caption: those are not negatives of each other."""
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    codes = torch.tensor([ids[c] for c in captions])
    return codes[:, None] == codes[None, :]


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                     captions: Sequence[str], also_true: torch.Tensor | None = None,
                     extra_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch; duplicate captions are masked out instead of pushed apart.

    `also_true` (B images, B captions), where known, marks other pairs that are true (an image
    that satisfies another row's caption); they are masked out too. `extra_negatives` (B,) are
    cosines of each image with one more false caption of its own (-inf where it has none): one
    more column of the image-to-text rows.
    """
    logits = logit_scale * image_emb @ text_emb.T  # (B, B)
    dup = same_caption_mask(captions).to(logits.device)
    if also_true is not None:
        dup = dup | also_true.to(logits.device)
    dup.fill_diagonal_(False)
    logits = logits.masked_fill(dup, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    image_rows = logits
    if extra_negatives is not None:
        none = ~torch.isfinite(extra_negatives)  # scale · -inf would give the scale a NaN gradient: mask after
        column = (logit_scale * extra_negatives.masked_fill(none, 0.0)).masked_fill(none, float("-inf"))
        image_rows = torch.cat([logits, column[:, None]], 1)
    return (F.cross_entropy(image_rows, target) + F.cross_entropy(logits.T, target)) / 2


def hardest_others(student_scores: torch.Tensor, captions: Sequence[str], m: int) -> torch.Tensor:
    """For caption i: its own image, then the m other images the student ranks highest. (B, m+1)

    Images whose caption is identical to caption i are skipped: they are positives, not negatives.
    """
    scores = student_scores.detach().clone()  # (B captions, B images)
    dup = same_caption_mask(captions).to(scores.device)
    scores = scores.masked_fill(dup, float("-inf"))
    m = min(m, len(scores) - 1)
    others = scores.topk(m, dim=1).indices  # (B, m)
    own = torch.arange(len(scores), device=scores.device)[:, None]
    return torch.cat([own, others], dim=1)


def distillation_loss(student_logits: torch.Tensor, teacher_scores: torch.Tensor,
                      student_temperature: float, teacher_temperature: float) -> torch.Tensor:
    """H(p, q): cross-entropy from the teacher's softmax over Bᵢ to the student's. Inputs (B, |Bᵢ|)."""
    p = torch.softmax(teacher_scores / teacher_temperature, dim=-1)
    log_q = torch.log_softmax(student_logits / student_temperature, dim=-1)
    return -(p * log_q).sum(-1).mean()
