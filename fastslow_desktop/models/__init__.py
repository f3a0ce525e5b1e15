"""Models: fast dual encoder, slow bidirectional captioner, re-ranker, and bundle I/O (torch only)."""

from .bundle import DEFAULT_PRESET, Models, list_presets, load_bundle, read_manifest, save_bundle
from .errors import BundleError, DownloadCancelled, ModelError, ModelUnavailableError
from .fast import FastEncoder
from .preprocess import ImagePreprocess, PreprocessConfig
from .rerank import Ranked, RerankConfig, Reranker
from .slow import SlowCaptioner, SlowConfig
from .slow_scorer import CaptionerScorer, CocaScorer
from .tokenizer import TextTokenizer, normalize_query

__all__ = [
    "DEFAULT_PRESET", "Models", "list_presets", "load_bundle", "read_manifest", "save_bundle",
    "BundleError", "DownloadCancelled", "ModelError", "ModelUnavailableError",
    "FastEncoder", "ImagePreprocess", "PreprocessConfig", "Ranked", "RerankConfig", "Reranker",
    "SlowCaptioner", "SlowConfig", "CaptionerScorer", "CocaScorer", "TextTokenizer", "normalize_query",
]
