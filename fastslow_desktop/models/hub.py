"""Model hub access: offline detection that fails in seconds, downloads with progress and cancel.

open_clip resolves an architecture + pretrained tag to a Hugging Face repository; we fetch that
repository's files ourselves first (so the UI sees progress and can cancel), then let open_clip load
them from the local cache.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlparse

from .errors import DownloadCancelled, ModelUnavailableError

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)

OFFLINE_HELP = (
    "FastSlow could not download the model {what!r}: {why}. Use a model bundle on disk instead "
    "(fastslow --models PATH, or choose a bundle folder in Settings), or try `fastslow demo`, which "
    "works offline with the bundled SynthScenes model."
)

_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def hub_repo_for(model_name: str, pretrained: str | None) -> str | None:
    """The Hugging Face repository that holds an open_clip model's weights, if it lives on the hub."""
    if model_name.startswith("hf-hub:"):
        return model_name[len("hf-hub:") :]
    if model_name.startswith("local-dir:") or not pretrained or os.path.exists(pretrained):
        return None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    repo = (cfg or {}).get("hf_hub", "")
    return repo.strip("/") or None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _cached_files(repo: str) -> list[str]:
    from huggingface_hub import try_to_load_from_cache

    found = []
    for name in ("open_clip_config.json", *_WEIGHT_FILES):
        path = try_to_load_from_cache(repo, name)
        if isinstance(path, str):
            found.append(name)
    return found


def is_cached(repo: str) -> bool:
    return any(name in _cached_files(repo) for name in _WEIGHT_FILES)


def check_reachable(timeout: float = 3.0) -> None:
    """Raise ModelUnavailableError within `timeout` seconds when the hub cannot be reached.

    huggingface_hub's own retries can take a minute without network; one TCP connect tells us first.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ModelUnavailableError(
            OFFLINE_HELP.format(what=endpoint, why=f"the model hub is unreachable ({exc.__class__.__name__})")
        ) from exc


def _progress_tqdm(progress: ProgressCallback | None, cancel: threading.Event | None):
    from tqdm.auto import tqdm

    class ProgressTqdm(tqdm):
        def update(self, n=1):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("model download cancelled")
            out = super().update(n)
            if progress is not None and self.total:
                progress(int(self.n), int(self.total))
            return out

    return ProgressTqdm


def ensure_downloaded(
    repo: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    what: str | None = None,
) -> None:
    """Make sure a hub repository's open_clip files are in the local cache, downloading if needed."""
    what = what or repo
    if is_cached(repo):
        return
    if _offline():
        raise ModelUnavailableError(
            OFFLINE_HELP.format(what=what, why="it is not on this computer and HF_HUB_OFFLINE is set")
        )
    check_reachable()
    from huggingface_hub import snapshot_download

    patterns = ["open_clip_config.json", "open_clip_model.safetensors"]
    try:
        snapshot_download(repo, allow_patterns=patterns, tqdm_class=_progress_tqdm(progress, cancel),
                          etag_timeout=5)
        if not is_cached(repo):  # older repositories only publish the torch file
            snapshot_download(repo, allow_patterns=["open_clip_pytorch_model.bin"],
                              tqdm_class=_progress_tqdm(progress, cancel), etag_timeout=5)
    except (DownloadCancelled, ModelUnavailableError):
        raise
    except Exception as exc:
        raise ModelUnavailableError(OFFLINE_HELP.format(what=what, why=str(exc).splitlines()[0])) from exc
    if not is_cached(repo):
        raise ModelUnavailableError(OFFLINE_HELP.format(what=what, why="the repository has no open_clip weights"))
