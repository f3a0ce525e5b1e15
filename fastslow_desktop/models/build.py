"""Building a bundle's models from its manifest and weight files (torch and open_clip are imported here).

bundle.py reads manifests and hands out `Models` without importing torch; this module is imported
only when a model is actually built, so a query answered by the lean text encoder never loads it.
Every tensor is checked against the model before it is loaded (weights), and modules are built with
their weight initialisation skipped: every parameter is overwritten by the file right after.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from .bundle_check import MANIFEST, inside_bundle
from .errors import BundleError, ModelError
from .fast import FastEncoder, build_clip
from .preprocess import ImagePreprocess, PreprocessConfig
from .slow import SlowCaptioner, SlowConfig
from .slow_onnx import onnx_visual_tokens
from .slow_scorer import CaptionerScorer, CocaScorer
from .tokenizer import TextTokenizer
from .weights import check_against_model, load_checked, read_header

T = TypeVar("T")
_skipping = threading.local()  # per thread: how many skipped_init blocks it is inside
_install_lock = threading.Lock()
_installed = False


def _skippable(function: Callable) -> Callable:
    @functools.wraps(function)
    def init(tensor, *args, **kwargs):
        return tensor if getattr(_skipping, "depth", 0) else function(tensor, *args, **kwargs)
    return init


def _install_skippable_init() -> None:
    """Wrap torch.nn.init's functions once per process so that each thread can skip them on its own."""
    global _installed
    import torch.nn.init as init

    with _install_lock:
        if _installed:
            return
        for name in [n for n in vars(init) if n.endswith("_") and not n.startswith("_")]:
            if callable(getattr(init, name)):
                setattr(init, name, _skippable(getattr(init, name)))
        _installed = True


@contextlib.contextmanager
def skipped_init() -> Iterator[None]:
    """Module constructors built in this thread allocate their tensors but leave them unfilled (torch.nn.init's
    functions do nothing): random initialisation of a ViT-B/32 costs a second that loading the file then
    discards. Only this thread skips: swapping the functions process-wide (as transformers' no_init_weights
    does) left a model built meanwhile in another thread with uninitialised memory, NaN included."""
    _install_skippable_init()
    _skipping.depth = getattr(_skipping, "depth", 0) + 1
    try:
        yield
    finally:
        _skipping.depth -= 1


def tokenizer_of(manifest: dict) -> TextTokenizer:
    return TextTokenizer.from_config(manifest["tokenizer"])


def _checked_module(factory: Callable[[], torch.nn.Module], file: Path) -> torch.nn.Module:
    """Build the model the manifest describes and load `file` into it, checking every tensor first.

    The architecture is built once on the meta device (no memory) to learn the tensors it expects, so
    a manifest that describes a huge model is refused by the shape check instead of allocated.
    """
    header = read_header(file)
    # skipped_init on the meta device too: arithmetic on meta tensors runs torch's Python decompositions,
    # whose first use imports torch._dynamo (2.7 s of a one-shot `fastslow search` on a 2-core EPYC).
    with torch.device("meta"), skipped_init():
        expected = factory().state_dict()
    check_against_model(file, header, expected)
    with skipped_init():
        module = factory()
    load_checked(module, file)
    return module


def _guarded(part: str, folder: Path | None, build: Callable[[], T]) -> T:
    """Run the build of a bundle's model: a fault other than a ModelError means the manifest describes
    a model this FastSlow cannot build or run, and becomes a sentence instead of a traceback."""
    try:
        return build()
    except (ModelError, MemoryError, torch.OutOfMemoryError):
        raise  # already a sentence, or a machine limit rather than a bundle defect
    except Exception as exc:
        raise BundleError(
            f"The {part} model of the bundle {folder} cannot be built from its manifest "
            f"({type(exc).__name__}: {exc}). Re-export or re-download the bundle; FastSlow will not load it."
        ) from exc


def _probe_image() -> Image.Image:
    return Image.new("RGB", (32, 32), (128, 128, 128))


def _check_fast(encoder: FastEncoder, manifest: dict, folder: Path | None, run: bool) -> None:
    """The fast model must produce finite vectors of the manifest's embedding_dim (the index's width)."""
    dim = manifest["embedding_dim"]
    if encoder.dim != dim:
        raise BundleError(f"The bundle {folder or manifest.get('name')} declares embedding_dim {dim}, but its "
                          f"fast model produces {encoder.dim}-dimensional embeddings. Re-export the bundle.")
    if run:
        images, texts = encoder.encode_images([_probe_image()]), encoder.encode_texts(["a photo"])
        if images.shape != (1, dim) or texts.shape != (1, dim):
            raise BundleError(f"The fast model of the bundle {folder} produces embeddings of shape "
                              f"{images.shape[1:]}, not ({dim},). Re-export the bundle.")
        if not (np.isfinite(images).all() and np.isfinite(texts).all()):
            raise BundleError(f"The fast model of the bundle {folder} produces NaN or infinite embeddings. "
                              "Re-export or re-download the bundle; FastSlow will not load it.")


def _check_slow(scorer: CaptionerScorer, folder: Path | None) -> None:
    scores = scorer.score("a photo", [_probe_image()])
    if scores.shape != (1,) or not np.isfinite(scores).all():
        raise BundleError(f"The slow model of the bundle {folder} produces invalid scores ({scores!r}). "
                          "Re-export or re-download the bundle; FastSlow will not load it.")


def _hub_guard(spec: dict) -> tuple[str, str | None]:
    """Fail fast and clearly when hub weights are not on disk and cannot be fetched.

    Returns what open_clip should load: the verified local snapshot (sha256 checked), never the network.
    """
    from .hub import ensure_downloaded, hub_repo_for

    repo = hub_repo_for(spec["model"], spec.get("pretrained"))
    if not repo:
        return spec["model"], spec.get("pretrained")
    folder = ensure_downloaded(repo, what=f"{spec['model']} {spec.get('pretrained') or ''}".strip())
    return f"local-dir:{folder}", None


def _build_bundle_fast(manifest: dict, folder: Path, device: str) -> FastEncoder:
    spec = manifest["fast"]
    tokenizer = tokenizer_of(manifest)
    file = inside_bundle(folder, spec["weights"], folder / MANIFEST)
    model = _checked_module(lambda: build_clip(spec["arch"], tokenizer.vocab_size, tokenizer.context_length),
                            file)
    preprocess = ImagePreprocess(PreprocessConfig.from_dict(spec["preprocess"]))
    encoder = FastEncoder(model, tokenizer, preprocess, "bundle", arch=spec["arch"], device=device)
    _check_fast(encoder, manifest, folder, run=True)
    return encoder


def build_fast(manifest: dict, folder: Path | None, device: str) -> FastEncoder:
    spec = manifest["fast"]
    if spec["type"] == "open_clip":
        return _guarded("fast", folder, lambda: _build_bundle_fast(manifest, folder, device))
    if spec["type"] == "open_clip_pretrained":
        encoder = FastEncoder.from_open_clip(*_hub_guard(spec), device=device)
        _check_fast(encoder, manifest, folder, run=False)
        return encoder
    raise BundleError(f"unknown fast model type {spec['type']!r} in the manifest")


def _build_bundle_slow(manifest: dict, folder: Path, device: str) -> CaptionerScorer:
    spec = manifest["slow"]
    tokenizer = tokenizer_of(manifest)
    cfg = SlowConfig.from_dict(spec["config"])
    model = _checked_module(lambda: SlowCaptioner(cfg), inside_bundle(folder, spec["weights"], folder / MANIFEST))
    preprocess = ImagePreprocess(PreprocessConfig.from_dict(spec["preprocess"]))
    scorer = CaptionerScorer(model.fuse_batchnorm(), tokenizer, preprocess, device=device)
    scorer.onnx_tokens = onnx_visual_tokens(scorer.model, scorer.device)
    _check_slow(scorer, folder)
    return scorer


def build_slow(manifest: dict, folder: Path | None, device: str):
    spec = manifest["slow"]
    if spec["type"] == "fastslow_captioner":
        return _guarded("slow", folder, lambda: _build_bundle_slow(manifest, folder, device))
    if spec["type"] == "open_clip_coca":
        import open_clip

        from .fast import _OpenClipPreprocess, _OpenClipTokenizerAdapter

        name, pretrained = _hub_guard(spec)
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, weights_only=True)
        tokenizer = _OpenClipTokenizerAdapter(open_clip.get_tokenizer(name))
        pp = _OpenClipPreprocess(preprocess, getattr(model.visual, "preprocess_cfg", {}))
        return CocaScorer(model, tokenizer, pp, device=device)
    raise BundleError(f"unknown slow model type {spec['type']!r} in the manifest")
