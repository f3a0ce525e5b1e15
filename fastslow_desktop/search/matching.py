"""Stage 2's match judgement applied to results: fills SearchResult.match and match_probability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..models.rerank import caption_tokens
from .types import SearchResult


def judge_results(results: list[SearchResult], matcher, texts: list[tuple[float, str]],
                  worst_of: Callable[[str, list[SearchResult]], np.ndarray] | None = None) -> list[SearchResult]:
    """The re-ranked results (those with a slow score) judged together, the others left unjudged.

    Judged together because a feature may compare a result with the best other one (the margin).
    `worst_of(text, results)` gives the results' worst-token log-probabilities, for calibrations
    that use those features (stage 2 keeps them from its own scoring pass).
    """
    scored = [i for i, r in enumerate(results) if r.slow_score is not None]
    if matcher is None or not scored or not texts:
        return results
    total = sum(w for w, _ in texts) or 1.0
    n_tokens = sum(w * caption_tokens(matcher.slow.tokenizer, t) for w, t in texts) / total
    worst = None
    if matcher.needs_worst_token and worst_of is not None:
        judged = [results[i] for i in scored]
        worst = sum(w * worst_of(t, judged) for w, t in texts) / total
    verdicts = matcher.judge([results[i].slow_score for i in scored], texts, n_tokens, worst)
    out = list(results)
    for i, (label, p) in zip(scored, verdicts):
        out[i] = replace(results[i], match=label, match_probability=p)
    return out
