"""Models: fast dual encoder, slow bidirectional captioner, re-ranker, and bundle I/O (torch only).

Names load on first use (PEP 562): `fastslow status` or the window can start without paying the
seconds that importing torch and open_clip costs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import BundleError, DownloadCancelled, ModelError, ModelUnavailableError

_LAZY = {
    "DEFAULT_PRESET": "bundle", "DEMO_PRESET": "bundle", "Models": "bundle", "list_presets": "bundle",
    "load_bundle": "bundle", "read_manifest": "bundle", "save_bundle": "bundle",
    "FastEncoder": "fast",
    "ImagePreprocess": "preprocess", "PreprocessConfig": "preprocess",
    "Ranked": "rerank", "RerankConfig": "rerank", "Reranker": "rerank",
    "SlowCaptioner": "slow", "SlowConfig": "slow",
    "CaptionerScorer": "slow_scorer", "CocaScorer": "slow_scorer",
    "TextTokenizer": "tokenizer", "normalize_query": "tokenizer",
}

__all__ = ["BundleError", "DownloadCancelled", "ModelError", "ModelUnavailableError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # for type checkers and IDEs
    from .bundle import DEFAULT_PRESET, DEMO_PRESET, Models, list_presets, load_bundle, read_manifest, save_bundle
    from .fast import FastEncoder
    from .preprocess import ImagePreprocess, PreprocessConfig
    from .rerank import Ranked, RerankConfig, Reranker
    from .slow import SlowCaptioner, SlowConfig
    from .slow_scorer import CaptionerScorer, CocaScorer
    from .tokenizer import TextTokenizer, normalize_query
