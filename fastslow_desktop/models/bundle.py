"""Model bundles: a folder with manifest.json, fast.safetensors and slow.safetensors.

Loading checks the manifest's structure (bundle_check), every weight file's sha256 (checksums, trusted
until a file changes) and every tensor against the model it is loaded into (weights), and refuses
with a message naming the file and what to do. Weights are never unpickled. Named presets
are manifests too: `synthscenes` points at the bundle shipped in resources/, `clip-vit-b-32` at
open_clip models on the hub. This module imports no torch: models are built by build.py on first use,
and text queries may be answered by the lean ONNX text tower (text_onnx) without torch at all.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..paths import bundled_models_dir
from .bundle_check import FORMAT, FORMAT_VERSION, MANIFEST, check_manifest, inside_bundle, parse_manifest
from .checksums import sha256_file, verify_files
from .errors import BundleError
from .match import MatchCalibration, MatchJudge, calibration_of
from .rerank import RerankConfig, Reranker

if TYPE_CHECKING:  # torch is imported only when a model is built (build.py) or saved
    import torch

    from .fast import FastEncoder
    from .preprocess import PreprocessConfig
    from .slow import SlowCaptioner
    from .text_onnx import LeanTextEncoder
    from .tokenizer import TextTokenizer

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "Models", "list_presets", "load_bundle", "read_manifest",
           "save_bundle", "sha256_file"]
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
        inside = Path(folder) / "bundle" / MANIFEST
        hint = f" It looks like a training run folder: its bundle is {inside.parent}." if inside.is_file() else ""
        raise BundleError(f"{folder} is not a FastSlow model bundle: {MANIFEST} is missing.{hint}")
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
        self._text_lock = threading.Lock()  # not _lock: the slow model's build holds that one for seconds
        self._text: LeanTextEncoder | FastEncoder | None = None
        # False for a one-shot command: ONNX Runtime then skips pre-packing the text tower's weights,
        # which halves its session start (0.31 -> 0.14 s for ViT-B-32-256) and costs ~10 % per query.
        self.text_prepack = True

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
                from .build import build_fast

                self._fast = build_fast(self.manifest, self.folder, self.device)
                self._fast.model_id = self.model_id
            return self._fast

    @property
    def text_encoder(self) -> LeanTextEncoder | FastEncoder:
        """What embeds text queries: the lean ONNX text tower when one is exported for these weights
        (no torch, no image tower; text_onnx), else the fast encoder."""
        with self._text_lock:
            if self._text is None:
                from .text_onnx import load_lean

                self._text = load_lean(self) or self.fast
            return self._text

    @property
    def fast_loaded(self) -> bool:
        """Whether the torch fast encoder has been built in this process."""
        return self._fast is not None

    @property
    def has_lean_text(self) -> bool:
        """Whether text queries run without torch (the lean text encoder is loaded)."""
        return self._text is not None and self._text is not self._fast

    @property
    def slow(self):
        with self._lock:
            if self._slow is None:
                from .build import build_slow

                self._slow = build_slow(self.manifest, self.folder, self.device)
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
    from safetensors.torch import save_file

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
    write_manifest(out, manifest)
    return out


def write_manifest(folder: str | Path, manifest: dict) -> None:
    """Write a bundle's manifest.json atomically (a temporary file, then a rename)."""
    tmp = Path(folder) / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(Path(folder) / MANIFEST)
