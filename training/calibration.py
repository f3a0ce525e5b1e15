"""Calibration data: slow and fast scores of validation queries in galleries with and without a relevant image.

A later step fits a threshold ("is the best re-ranked result relevant at all?") from OUT/calibration.json.
The product re-ranks the fast model's top K with the slow model, so for every query the file keeps the
scores of the fast model's top `depth` candidates (depth = the largest re-rank K, or the whole
gallery if smaller), in fast order, and which of them are relevant. Three sets of queries, all on the
validation gallery (training renderer):

- "present": the validation queries (canonical captions of gallery images) against the whole gallery:
  each has at least one relevant image;
- "removed": the same queries against the gallery without their relevant images: none is relevant;
- "absent": captions of freshly sampled scenes that no gallery image satisfies, against the whole
  gallery (SynthScenes only).

Format (JSON; lists of equal length Q per set, inner lists of length ≤ depth):

    {"format": "fastslow-calibration/1", "split": "val", "gallery_size": N, "depth": D,
     "fast_model": "fast_distilled", "slow_score": "sum of token log-probabilities h(x, y)",
     "sets": {"present" | "removed" | "absent": {
         "queries": [str], "n_tokens": [int],       # tokens the slow model predicts (for per-token normalising)
         "candidates": [[int]],                     # gallery indices, fast order
         "fast": [[float]], "slow": [[float]],      # cosine f(x)ᵀg(y); slow h(x, y)
         "relevant": [[bool]],
         "top_fast": [float], "top_slow": [float]}}}   # the maxima over the candidates

"top_slow" of "present" vs "removed"/"absent" is the top slow score in a gallery where the query has
a relevant image vs one where it has none.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from fastslow_desktop.models.rerank import caption_tokens
from fastslow_desktop.synthscenes import canonical_caption, sample_scene, satisfies

from .evaluate import Gallery, Queries

FILE = "calibration.json"
FORMAT = "fastslow-calibration/1"


def _scored(gallery: Gallery, name: str, texts: list[str], relevant: list[np.ndarray], depth: int,
            drop_relevant: bool) -> dict:
    """Fast top-`depth` candidates of each query with their fast and slow scores."""
    out: dict = {key: [] for key in ("queries", "n_tokens", "candidates", "fast", "slow", "relevant",
                                     "top_fast", "top_slow")}
    with torch.no_grad():
        for text, rel in zip(texts, relevant, strict=True):
            order, scores = gallery.fast_rank(name, text)
            if drop_relevant:
                order = order[~np.isin(order, rel)]
            head = order[:depth]
            slow = gallery.slow.score_tokens(text, gallery.tokens[head]) if len(head) else np.zeros(0)
            out["queries"].append(text)
            out["n_tokens"].append(caption_tokens(gallery.slow.tokenizer, text))
            out["candidates"].append(head.tolist())
            out["fast"].append([round(float(v), 5) for v in scores[head]])
            out["slow"].append([round(float(v), 4) for v in slow])
            out["relevant"].append(np.isin(head, rel).tolist())
            out["top_fast"].append(round(float(scores[head].max()), 5) if len(head) else None)
            out["top_slow"].append(round(float(slow.max()), 4) if len(head) else None)
    return out


def absent_queries(items, n: int, seed: int) -> list[str]:
    """Canonical captions of sampled scenes that no item satisfies (unique; [] without scenes)."""
    if not items or items[0].scene is None:
        return []
    rng = random.Random(f"calibration-absent/{seed}")
    texts: list[str] = []
    for _ in range(50 * n):
        if len(texts) >= n:
            break
        text = canonical_caption(sample_scene(rng))
        if text not in texts and not any(satisfies(item.scene, text) for item in items):
            texts.append(text)
    return texts


def collect(gallery: Gallery, queries: Queries, name: str, seed: int, depth: int | None = None) -> dict:
    """The three sets for the fast model `name` and the gallery's slow model (see the module doc)."""
    depth = min(depth or len(gallery.items), len(gallery.items))
    absent = absent_queries(gallery.items, len(queries.texts), seed)
    none = [np.zeros(0, dtype=np.int64)] * len(absent)
    return {
        "format": FORMAT, "split": "val", "gallery_size": len(gallery.items), "depth": depth,
        "fast_model": name, "slow_score": "sum of token log-probabilities h(x, y)",
        "sets": {
            "present": _scored(gallery, name, queries.texts, queries.relevant, depth, False),
            "removed": _scored(gallery, name, queries.texts, queries.relevant, depth, True),
            "absent": _scored(gallery, name, absent, none, depth, False),
        },
    }


def brief(data: dict) -> dict:
    """For report.json: queries per set and the mean top slow score of each."""
    sets = data["sets"]
    return {"depth": data["depth"], "queries": {k: len(v["queries"]) for k, v in sets.items()},
            "mean_top_slow": {k: round(float(np.mean(v["top_slow"])), 3) if v["top_slow"] else None
                              for k, v in sets.items()}}


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data) + "\n")


def read(path: str | Path) -> dict:
    """The calibration file, checked for its format."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return data
