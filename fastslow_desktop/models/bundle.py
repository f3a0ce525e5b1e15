"""Model bundles: a folder with manifest.json, fast.safetensors and slow.safetensors.

Loading checks the manifest's structure (bundle_check), every weight file's sha256 (checksums, trusted
until a file changes) and every tensor against the model it is loaded into (weights), and refuses
with a message naming the file and what to do. Weights are never unpickled. Named presets
are manifests too: `synthscenes` points at the bundle shipped in resources/, `clip-vit-b-32` at
open_clip models on the hub.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from ..paths import bundled_models_dir
from .bundle_check import FORMAT, FORMAT_VERSION, MANIFEST, check_manifest, inside_bundle, parse_manifest
from .checksums import sha256_file, verify_files
from .errors import BundleError, ModelError
from .fast import FastEncoder, build_clip
from .match import MatchCalibration, MatchJudge, calibration_of
from .preprocess import ImagePreprocess, PreprocessConfig
from .rerank import RerankConfig, Reranker
from .slow import SlowCaptioner, SlowConfig
from .slow_scorer import CaptionerScorer, CocaScorer
from .tokenizer import TextTokenizer
from .weights import check_against_model, load_checked, read_header

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "Models", "list_presets", "load_bundle", "read_manifest",
           "save_bundle", "sha256_file"]
T = TypeVar("T")
FAST_FILE = "fast.safetensors"
SLOW_FILE = "slow.safetensors"

# A new library for a person's own folders (the catalogue's default_for_new_library; issue 14). The
# offline demo and the tests name `synthscenes` themselves (demo.DEMO_MODELS, fixtures).
DEFAULT_PRESET = "balanced"
DEMO_PRESET = "synthscenes"


def _bundled_presets() -> dict[str, Path]:
    root = bundled_models_dir()
    return {p.parent.name: p.parent for p in root.glob(f"*/{MANIFEST}")} if root.is_dir() else {}


def list_presets() -> list[str]:
    from . import presets

    return sorted({*presets.names(), *_bundled_presets()})


def resolve(path_or_preset: str | Path) -> tuple[dict, Path | None]:
    """Read and verify a bundle folder, or look up a preset. Returns (manifest, folder or None)."""
    text = str(path_or_preset)
    from .presets import hub_manifest

    manifest = hub_manifest(text)  # the catalogue (presets.json) knows the hub presets
    if manifest is not None:
        return manifest, None
    presets = _bundled_presets()
    folder = presets[text] if text in presets else Path(text).expanduser()
    if not folder.exists():
        raise BundleError(
            f"No model bundle at {folder}. Give the folder that contains {MANIFEST}, or one of the "
            f"presets: {', '.join(list_presets())}."
        )
    return read_manifest(folder), folder


def read_manifest(folder: Path, verify: bool = True) -> dict:
    """The manifest of a bundle folder, after checking its structure, paths and weight files' sha256."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a FastSlow model bundle: {MANIFEST} is missing.")
    manifest = check_manifest(parse_manifest(path), path)
    files = {name: inside_bundle(Path(folder), name, path) for name in manifest["files"]}
    if verify:
        verify_files(files, manifest["files"])
    return manifest


class Models:
    """A bundle's models, loaded lazily, once, on first use (thread-safe)."""

    def __init__(self, manifest: dict, folder: Path | None, device: str = "auto", spec: str | None = None):
        self.manifest = manifest
        self.folder = folder
        self.device = device
        # What load_bundle was given (a preset name, or the bundle folder made absolute): a library
        # remembers it so that later runs load the same models without --models.
        self.spec = spec
        self.name: str = manifest.get("name", folder.name if folder else "models")
        try:
            self.rerank_config = RerankConfig.from_dict(manifest.get("rerank", {}))
        except (TypeError, ValueError) as exc:
            raise BundleError(f"The re-ranking settings of the bundle {self.name!r} are invalid ({exc}). "
                              "Re-export or re-download the bundle.") from exc
        self.embedding_dim = int(manifest.get("embedding_dim", 0))
        # None: the bundle has no (valid) calibration, and results get no match judgement.
        self.match_calibration: MatchCalibration | None = calibration_of(manifest)
        self._matcher: MatchJudge | None = None
        self._lock = threading.RLock()
        self._fast: FastEncoder | None = None
        self._slow = None
        self._reranker: Reranker | None = None

    @property
    def model_id(self) -> str:
        """Identifies the fast encoder's weights: embeddings are only comparable within one id."""
        spec = self.manifest["fast"]
        if spec["type"] == "open_clip_pretrained":
            return f"open_clip:{spec['model']}:{spec.get('pretrained') or ''}"
        return f"{self.name}:{self.manifest['files'][spec['weights']][:16]}"

    @property
    def fast(self) -> FastEncoder:
        with self._lock:
            if self._fast is None:
                self._fast = _build_fast(self.manifest, self.folder, self.device)
                self._fast.model_id = self.model_id
            return self._fast

    @property
    def slow(self):
        with self._lock:
            if self._slow is None:
                self._slow = _build_slow(self.manifest, self.folder, self.device)
            return self._slow

    @property
    def reranker(self) -> Reranker:
        with self._lock:
            if self._reranker is None:
                self._reranker = Reranker(self.slow, self.rerank_config)
            return self._reranker

    @property
    def matcher(self) -> MatchJudge | None:
        """Judges re-ranked results ("yes" / "maybe" / "no"); None without a calibration."""
        if self.match_calibration is None:
            return None
        with self._lock:
            if self._matcher is None:
                self._matcher = MatchJudge(self.slow, self.match_calibration)
            return self._matcher

    def needs_download(self) -> list[str]:
        """Hub repositories this preset still has to fetch (empty for bundles on disk)."""
        from .hub import hub_repo_for, is_cached

        repos = []
        for part in ("fast", "slow"):
            spec = self.manifest[part]
            if spec["type"].startswith("open_clip_") and spec["type"] != "open_clip":
                repo = hub_repo_for(spec["model"], spec.get("pretrained"))
                if repo and not is_cached(repo):
                    repos.append(repo)
        return repos

    def download(self, progress=None, cancel=None) -> None:
        """Fetch whatever the hub parts need, with progress and cancel; a no-op for local bundles."""
        from .hub import download

        relay = (lambda p: progress(p.done, p.total)) if progress is not None else None
        download(self.needs_download(), relay, cancel, what=self.name)


def _tokenizer(manifest: dict) -> TextTokenizer:
    return TextTokenizer.from_config(manifest["tokenizer"])


def _checked_module(factory: Callable[[], torch.nn.Module], file: Path) -> torch.nn.Module:
    """Build the model the manifest describes and load `file` into it, checking every tensor first.

    The architecture is built once on the meta device (no memory) to learn the tensors it expects, so
    a manifest that describes a huge model is refused by the shape check instead of allocated.
    """
    header = read_header(file)
    with torch.device("meta"):
        expected = factory().state_dict()
    check_against_model(file, header, expected)
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
    tokenizer = _tokenizer(manifest)
    file = inside_bundle(folder, spec["weights"], folder / MANIFEST)
    model = _checked_module(lambda: build_clip(spec["arch"], tokenizer.vocab_size, tokenizer.context_length),
                            file)
    preprocess = ImagePreprocess(PreprocessConfig.from_dict(spec["preprocess"]))
    encoder = FastEncoder(model, tokenizer, preprocess, "bundle", arch=spec["arch"], device=device)
    _check_fast(encoder, manifest, folder, run=True)
    return encoder


def _build_fast(manifest: dict, folder: Path | None, device: str) -> FastEncoder:
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
    tokenizer = _tokenizer(manifest)
    cfg = SlowConfig.from_dict(spec["config"])
    model = _checked_module(lambda: SlowCaptioner(cfg), inside_bundle(folder, spec["weights"], folder / MANIFEST))
    preprocess = ImagePreprocess(PreprocessConfig.from_dict(spec["preprocess"]))
    scorer = CaptionerScorer(model, tokenizer, preprocess, device=device)
    _check_slow(scorer, folder)
    return scorer


def _build_slow(manifest: dict, folder: Path | None, device: str):
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


def spec_of(path_or_preset: str | Path) -> str:
    """The spec a library remembers: a preset's name as is, a bundle folder as an absolute path."""
    text = str(path_or_preset)
    from .presets import entry

    if entry(text) is not None or text in _bundled_presets():
        return text
    return str(Path(text).expanduser().resolve())


def load_bundle(path_or_preset: str | Path = DEFAULT_PRESET, device: str = "auto") -> Models:
    """Open a bundle folder or preset; weights load on first use of `.fast` / `.slow`."""
    manifest, folder = resolve(path_or_preset)
    return Models(manifest, folder, device=device, spec=spec_of(path_or_preset))


def save_bundle(
    out_dir: str | Path,
    *,
    name: str,
    fast_model: torch.nn.Module,
    fast_arch: dict,
    fast_preprocess: PreprocessConfig,
    slow_model: SlowCaptioner,
    slow_preprocess: PreprocessConfig,
    tokenizer: TextTokenizer,
    rerank: RerankConfig,
    provenance: dict,
) -> Path:
    """Write a bundle folder; the manifest records every file's sha256."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fast_sd = {k: v.detach().cpu().contiguous() for k, v in fast_model.state_dict().items()}
    slow_sd = {k: v.detach().cpu().contiguous() for k, v in slow_model.state_dict().items()}
    save_file(fast_sd, str(out / FAST_FILE))
    save_file(slow_sd, str(out / SLOW_FILE))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "embedding_dim": int(fast_arch["embed_dim"]),
        "tokenizer": tokenizer.to_config(),
        "fast": {"type": "open_clip", "arch": fast_arch, "preprocess": fast_preprocess.to_dict(),
                 "weights": FAST_FILE},
        "slow": {"type": "fastslow_captioner", "config": slow_model.cfg.to_dict(),
                 "preprocess": slow_preprocess.to_dict(), "weights": SLOW_FILE},
        "rerank": rerank.to_dict(),
        "provenance": {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **provenance},
        "files": {FAST_FILE: sha256_file(out / FAST_FILE), SLOW_FILE: sha256_file(out / SLOW_FILE)},
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(out / MANIFEST)
    return out
