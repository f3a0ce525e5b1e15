"""Stage 2's match judgement applied to results: fills SearchResult.match and match_probability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from typing import TYPE_CHECKING

from ..models.rerank import caption_tokens
from .types import SearchResult

if TYPE_CHECKING:  # torch arrives with the slow model; a fast-only query never imports it
    import torch


def judge_results(results: list[SearchResult], matcher, texts: list[tuple[float, str]],
                  memory_of: Callable[[SearchResult], torch.Tensor] | None = None) -> list[SearchResult]:
    """The re-ranked results (those with a slow score) judged together, the others left unjudged.

    Judged together because a feature may compare a result with the best other one (the margin).
    `memory_of(result)` gives a result's visual tokens (1, T, D), for calibrations that use the
    worst-token features (their decoder pass reuses the tokens stage 2 has just computed).
    """
    scored = [i for i, r in enumerate(results) if r.slow_score is not None]
    if matcher is None or not scored or not texts:
        return results
    total = sum(w for w, _ in texts) or 1.0
    n_tokens = sum(w * caption_tokens(matcher.slow.tokenizer, t) for w, t in texts) / total
    worst = None
    if matcher.needs_worst_token and memory_of is not None:
        memories = [memory_of(results[i]) for i in scored]
        worst = sum(w * matcher.slow.worst_token(t, memories) for w, t in texts) / total
    verdicts = matcher.judge([results[i].slow_score for i in scored], texts, n_tokens, worst)
    out = list(results)
    for i, (label, p) in zip(scored, verdicts):
        out[i] = replace(results[i], match=label, match_probability=p)
    return out
