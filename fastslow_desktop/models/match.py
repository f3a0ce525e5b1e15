"""The match judgement: does a re-ranked result show what the query describes? ("yes" | "maybe" | "no")

A slow score h(x, y) is a caption log-likelihood: long or rare captions score low for every image, so
one threshold on h fails across queries. Subtracting the caption's prior log p(y) — the same captioner's
likelihood of the caption given a *null* image — gives the pointwise mutual information
PMI(x, y) = h(x, y) − h(null, y), which is comparable across queries (as in VisualGPTScore). A logistic
model fitted on validation queries (`python -m training.calibrate_bundle`) turns PMI features into a
probability, and two thresholds into the label. The fit lives in the bundle manifest under "match".
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is imported by the slow model that MatchJudge is given, never by the manifest reader
    import torch

logger = logging.getLogger(__name__)

PRIORS = ("blank", "zeros")  # null image: a mid-grey picture's visual tokens, or all-zero tokens
FEATURES = ("pmi", "pmi_per_token", "margin", "worst_token", "worst_token_margin")
LABELS = ("yes", "maybe", "no")
PRIOR_CACHE_SIZE = 512


@dataclass(frozen=True)
class MatchCalibration:
    """The manifest's "match" object: p = σ(intercept + Σ coef·feature); yes if p ≥ t_yes, maybe if ≥ t_maybe."""

    prior: str = "blank"  # which null image gives log p(y): see PRIORS
    features: tuple[str, ...] = ("pmi",)  # see match_features
    coef: tuple[float, ...] = (1.0,)
    intercept: float = 0.0
    t_yes: float = 0.5
    t_maybe: float = 0.2
    fitted: dict = field(default_factory=dict, compare=False)  # provenance: data, queries, command

    def to_dict(self) -> dict:
        data = asdict(self)
        data["features"], data["coef"] = list(self.features), list(self.coef)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> MatchCalibration:
        """Parse and check the manifest object; raises ValueError with what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("'match' must be an object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            cal = cls(**{**known, "features": tuple(known.get("features", ("pmi",))),
                         "coef": tuple(float(c) for c in known.get("coef", (1.0,))),
                         "intercept": float(known.get("intercept", 0.0)),
                         "t_yes": float(known.get("t_yes", 0.5)), "t_maybe": float(known.get("t_maybe", 0.2))})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'match' has a value of the wrong type ({exc})") from exc
        if cal.prior not in PRIORS:
            raise ValueError(f"unknown match prior {cal.prior!r}; expected one of {PRIORS}")
        unknown = [f for f in cal.features if f not in FEATURES]
        if unknown or not cal.features or len(cal.coef) != len(cal.features):
            raise ValueError(f"'match' features must be some of {FEATURES}, one coefficient each")
        if not (0.0 <= cal.t_maybe <= cal.t_yes <= 1.0) or not np.isfinite([*cal.coef, cal.intercept]).all():
            raise ValueError("'match' needs 0 ≤ t_maybe ≤ t_yes ≤ 1 and finite coefficients")
        return cal

    def probability(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated P(match) for each row of the named feature arrays."""
        z = self.intercept + sum(c * np.asarray(features[name], np.float64)
                                 for name, c in zip(self.features, self.coef))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def label(self, p: float) -> str:
        return "yes" if p >= self.t_yes else "maybe" if p >= self.t_maybe else "no"


def _margin(values: np.ndarray) -> np.ndarray:
    """How far each value is above the best *other* one (the rank-1 margin for the top); 0 if alone."""
    if len(values) < 2:
        return np.zeros_like(values)
    order = np.argsort(-values, kind="stable")
    best, second = values[order[0]], values[order[1]]
    return values - np.where(np.arange(len(values)) == order[0], second, best)


def match_features(pmi: Sequence[float], n_tokens: float,
                   worst: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Every feature the calibration may use, for the judged results of one query: pmi, pmi_per_token,
    margin (of pmi), and with `worst` (SlowScorerBase.worst_token) worst_token and its margin."""
    pmi = np.asarray(pmi, np.float64)
    out = {"pmi": pmi, "pmi_per_token": pmi / max(1.0, float(n_tokens)), "margin": _margin(pmi)}
    if worst is not None:
        worst = np.asarray(worst, np.float64)
        out.update(worst_token=worst, worst_token_margin=_margin(worst))
    return out


def null_memory(slow, prior: str) -> torch.Tensor:
    """The visual tokens of the null image (1, N, D) that log p(y) is read from."""
    size = int(getattr(getattr(slow.preprocess, "config", None), "image_size", 64) or 64)
    blank = slow.visual_tokens([Image.new("RGB", (size, size), (128, 128, 128))])
    import torch

    return torch.zeros_like(blank) if prior == "zeros" else blank


class MatchJudge:
    """Judges one query's re-ranked results; the caption prior costs one forward per text (cached)."""

    def __init__(self, slow, calibration: MatchCalibration):
        self.slow = slow
        self.calibration = calibration
        self._lock = threading.Lock()
        self._memory: torch.Tensor | None = None
        self._priors: OrderedDict[str, float] = OrderedDict()
        self.prior_forwards = 0  # how many priors were computed (not served from the cache)

    def prior(self, text: str) -> float:
        """log p(y) ≈ h(null, y): the caption's score given the null image, cached per text."""
        with self._lock:
            if text in self._priors:
                self._priors.move_to_end(text)
                return self._priors[text]
            if self._memory is None:
                self._memory = null_memory(self.slow, self.calibration.prior)
            value = float(self.slow.score_tokens(text, self._memory)[0])
            self.prior_forwards += 1
            self._priors[text] = value
            while len(self._priors) > PRIOR_CACHE_SIZE:
                self._priors.popitem(last=False)
            return value

    @property
    def needs_worst_token(self) -> bool:
        """The calibration uses the worst-token features: the caller must pass `worst`."""
        return any(f.startswith("worst_token") for f in self.calibration.features)

    def judge(self, slow_scores: Sequence[float], texts: Sequence[tuple[float, str]], n_tokens: float,
              worst: Sequence[float] | None = None) -> list[tuple[str, float]]:
        """(label, probability) per slow score; `texts` are the (weight, text) pairs the scores mix,
        `worst` the matching worst-token log-probabilities (needed when `needs_worst_token`)."""
        if len(slow_scores) == 0:
            return []
        if self.needs_worst_token and worst is None:
            raise ValueError("this calibration needs the worst-token scores of the results")
        total = sum(w for w, _ in texts) or 1.0
        prior = sum(w * self.prior(text) for w, text in texts) / total
        pmi = np.asarray(slow_scores, np.float64) - prior
        p = self.calibration.probability(match_features(pmi, n_tokens, worst))
        return [(self.calibration.label(float(v)), float(v)) for v in p]


def calibration_of(manifest: dict) -> MatchCalibration | None:
    """The manifest's calibration, or None when it has none (or an unreadable one, logged)."""
    data = manifest.get("match")
    if data is None:
        return None
    try:
        return MatchCalibration.from_dict(data)
    except ValueError as exc:
        logger.warning("the bundle %r has an invalid match calibration (%s): results get no match judgement",
                       manifest.get("name"), exc)
        return None
