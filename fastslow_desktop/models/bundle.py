"""Model bundles: a folder with manifest.json, fast.safetensors and slow.safetensors.

Loading verifies the format version and every weight file's sha256 before anything is built, and
refuses with a message naming the file and what to do. Weights are never unpickled. Named presets
are manifests too: `synthscenes` points at the bundle shipped in resources/, `clip-vit-b-32` at
open_clip models on the hub.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..paths import bundled_models_dir
from .errors import BundleError
from .fast import FastEncoder, build_clip
from .preprocess import ImagePreprocess, PreprocessConfig
from .rerank import RerankConfig, Reranker
from .slow import SlowCaptioner, SlowConfig
from .slow_scorer import CaptionerScorer, CocaScorer
from .tokenizer import TextTokenizer

logger = logging.getLogger(__name__)

FORMAT = "fastslow-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FAST_FILE = "fast.safetensors"
SLOW_FILE = "slow.safetensors"

DEFAULT_PRESET = "synthscenes"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """The manifest of a bundle folder, after checking its version and the weight files' sha256."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a FastSlow model bundle: {MANIFEST} is missing.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} cannot be read ({exc}). Re-export or re-download the bundle.") from exc
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path} is not a FastSlow bundle manifest (format {manifest.get('format')!r}).")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format version {version}; this FastSlow reads version {FORMAT_VERSION}. "
            "Update FastSlow, or re-export the bundle with this version's `python -m training.distill`."
        )
    if verify:
        for name, expected in manifest.get("files", {}).items():
            file = Path(folder) / name
            if not file.is_file():
                raise BundleError(f"{file} is missing from the bundle. Re-copy the whole bundle folder.")
            actual = sha256_file(file)
            if actual != expected:
                raise BundleError(
                    f"{file} is damaged or was modified: its sha256 is {actual[:12]}…, the manifest expects "
                    f"{expected[:12]}…. Re-copy or re-download the bundle; FastSlow will not load it."
                )
    return manifest


@dataclass
class _Parts:
    fast: FastEncoder
    slow: object


class Models:
    """A bundle's models, loaded lazily, once, on first use (thread-safe)."""

    def __init__(self, manifest: dict, folder: Path | None, device: str = "auto"):
        self.manifest = manifest
        self.folder = folder
        self.device = device
        self.name: str = manifest.get("name", folder.name if folder else "models")
        self.rerank_config = RerankConfig.from_dict(manifest.get("rerank", {}))
        self.embedding_dim = int(manifest.get("embedding_dim", 0))
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


def _load_weights(module: torch.nn.Module, file: Path) -> None:
    missing, unexpected = module.load_state_dict(load_file(str(file)), strict=False)
    missing = [k for k in missing if not k.endswith("attn_mask")]
    if missing or unexpected:
        raise BundleError(
            f"{file} does not fit the architecture in the manifest (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}). The bundle is inconsistent: re-export it."
        )


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


def _build_fast(manifest: dict, folder: Path | None, device: str) -> FastEncoder:
    spec = manifest["fast"]
    if spec["type"] == "open_clip":
        tokenizer = _tokenizer(manifest)
        model = build_clip(spec["arch"], tokenizer.vocab_size, tokenizer.context_length)
        _load_weights(model, folder / spec["weights"])
        preprocess = ImagePreprocess(PreprocessConfig.from_dict(spec["preprocess"]))
        return FastEncoder(model, tokenizer, preprocess, "bundle", arch=spec["arch"], device=device)
    if spec["type"] == "open_clip_pretrained":
        return FastEncoder.from_open_clip(*_hub_guard(spec), device=device)
    raise BundleError(f"unknown fast model type {spec['type']!r} in the manifest")


def _build_slow(manifest: dict, folder: Path | None, device: str):
    spec = manifest["slow"]
    if spec["type"] == "fastslow_captioner":
        tokenizer = _tokenizer(manifest)
        cfg = SlowConfig.from_dict(spec["config"])
        model = SlowCaptioner(cfg)
        _load_weights(model, folder / spec["weights"])
        preprocess = ImagePreprocess(PreprocessConfig.from_dict(spec["preprocess"]))
        return CaptionerScorer(model, tokenizer, preprocess, device=device)
    if spec["type"] == "open_clip_coca":
        import open_clip

        from .fast import _OpenClipPreprocess, _OpenClipTokenizerAdapter

        name, pretrained = _hub_guard(spec)
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, weights_only=True)
        tokenizer = _OpenClipTokenizerAdapter(open_clip.get_tokenizer(name))
        pp = _OpenClipPreprocess(preprocess, getattr(model.visual, "preprocess_cfg", {}))
        return CocaScorer(model, tokenizer, pp, device=device)
    raise BundleError(f"unknown slow model type {spec['type']!r} in the manifest")


def load_bundle(path_or_preset: str | Path = DEFAULT_PRESET, device: str = "auto") -> Models:
    """Open a bundle folder or preset; weights load on first use of `.fast` / `.slow`."""
    manifest, folder = resolve(path_or_preset)
    return Models(manifest, folder, device=device)


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
