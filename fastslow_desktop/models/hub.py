"""Model hub access: fail fast offline, download with progress/ETA/cancel/resume, trust on first use.

open_clip resolves an architecture + pretrained tag to a Hugging Face repository. We fetch that
repository's files ourselves (so the UI sees bytes, speed and ETA, can cancel, and an interrupted
download resumes from huggingface_hub's `.incomplete` file), record every fetched file's sha256
(hub_trust.py), and load the models from the verified local snapshot, never from the network.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import hub_trust
from .errors import DownloadCancelled, ModelError, ModelUnavailableError

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total): the older, simpler form

OFFLINE_HELP = (
    "FastSlow could not download the model {what!r}: {why}. Use a model bundle on disk instead "
    "(fastslow --models PATH, or choose a bundle folder in Settings), or try `fastslow demo`, which "
    "works offline with the bundled SynthScenes model."
)

CONFIG_FILE = "open_clip_config.json"
_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# Fetched only when open_clip_config.json names a Hugging Face tokenizer (SigLIP2, XLM-R): open_clip
# then reads them from the same folder.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "vocab.json", "merges.txt", "sentencepiece.bpe.model", "tokenizer.model")
REACH_TIMEOUT_S = 3.0
# huggingface_hub hands the body over in 10 MiB pieces: progress, cancel and what a crash loses
# would move in 10 MiB steps. 1 MiB keeps a slow link's bar moving.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report: bytes on disk of the total, this session's speed and the time left."""

    done: int
    total: int
    speed_bps: float  # bytes per second fetched in this session (resumed bytes do not count)
    eta_s: float | None  # None until the speed is known
    file: str  # "repo/filename" being fetched


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


def endpoint() -> str:
    """The hub address, read now (huggingface_hub reads HF_ENDPOINT once, at import)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def snapshot_dir(repo: str) -> Path | None:
    """The cached snapshot folder of a repository, if its config is on disk."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo, CONFIG_FILE)
    return Path(path).parent if isinstance(path, str) else None


def _needed_names(folder: Path) -> list[str]:
    """The files open_clip will read from a snapshot folder (config, weights, HF tokenizer)."""
    names = [CONFIG_FILE]
    weights = next((w for w in _WEIGHT_FILES if (folder / w).is_file()), None)
    if weights:
        names.append(weights)
    try:
        text_cfg = json.loads((folder / CONFIG_FILE).read_text()).get("model_cfg", {}).get("text_cfg", {})
    except (OSError, ValueError):
        text_cfg = {}
    if text_cfg.get("hf_tokenizer_name"):
        names += [n for n in _TOKENIZER_FILES if (folder / n).is_file()]
    return names


def is_cached(repo: str) -> bool:
    """True when the config and a weight file of the repository are in the local cache."""
    folder = snapshot_dir(repo)
    return folder is not None and any((folder / w).is_file() for w in _WEIGHT_FILES)


def verified_snapshot(repo: str) -> Path:
    """The repository's cached folder after checking every file against its recorded sha256."""
    folder = snapshot_dir(repo)
    if folder is None or not is_cached(repo):
        raise ModelUnavailableError(OFFLINE_HELP.format(what=repo, why="it is not on this computer"))
    hub_trust.verify(repo, folder.name, {name: folder / name for name in _needed_names(folder)})
    return folder


def _network_reason(exc: OSError) -> str:
    """A person's words for why a connection failed (not 'gaierror')."""
    if isinstance(exc, socket.gaierror):
        return "no network, or its name cannot be looked up"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    return exc.strerror or exc.__class__.__name__


def check_reachable(timeout: float = REACH_TIMEOUT_S, what: str | None = None) -> None:
    """Raise ModelUnavailableError within `timeout` seconds when the hub cannot be reached.

    huggingface_hub's own retries can take a minute without network; one TCP connect tells us first.
    """
    url = urlparse(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        why = f"the model hub {url.hostname} is unreachable ({_network_reason(exc)})"
        raise ModelUnavailableError(OFFLINE_HELP.format(what=what or url.geturl(), why=why)) from exc


class _Meter:
    """Adds up bytes across the files of one download and turns them into speed and ETA."""

    def __init__(self, total: int, callback: Callable[[DownloadProgress], None] | None,
                 cancel: threading.Event | None):
        self.total, self.callback, self.cancel = total, callback, cancel
        self.finished = 0  # bytes of files already complete
        self.current = 0  # bytes on disk of the file being fetched
        self.fetched = 0  # bytes received in this session
        self.file = ""
        self.started = time.monotonic()

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled("model download cancelled")

    def report(self) -> None:
        if self.callback is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        speed = self.fetched / elapsed
        done = min(self.finished + self.current, self.total) if self.total else self.finished + self.current
        eta = (self.total - done) / speed if speed > 0 and self.total else None
        self.callback(DownloadProgress(done, self.total, speed, eta, self.file))

    def tqdm_class(self):
        from tqdm.auto import tqdm

        meter = self

        class MeterTqdm(tqdm):
            def __init__(self, *args, **kwargs):
                kwargs["disable"] = True  # the app draws its own progress; huggingface_hub's bar stays off
                super().__init__(*args, **kwargs)
                meter.current = int(kwargs.get("initial") or 0)  # resumed bytes already on disk

            def update(self, n=1):
                meter.check_cancel()
                meter.current += int(n or 0)
                meter.fetched += int(n or 0)
                meter.report()
                return super().update(n)

        return MeterTqdm


def _listing(repo: str) -> tuple[dict[str, int], dict[str, str]]:
    """({file: size}, {file: lfs sha256}) from the hub's API."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint()).model_info(repo, files_metadata=True, timeout=REACH_TIMEOUT_S * 3)
    sizes, hashes = {}, {}
    for sib in info.siblings or []:
        sizes[sib.rfilename] = int(sib.size or 0)
        if sib.lfs is not None:
            hashes[sib.rfilename] = sib.lfs.sha256
    return sizes, hashes


def _plan(sizes: dict[str, int]) -> list[str]:
    """Config, one weight file (safetensors when published) and tokenizer files if present."""
    weights = next((w for w in _WEIGHT_FILES if w in sizes), None)
    if CONFIG_FILE not in sizes or weights is None:
        return []
    return [CONFIG_FILE, weights, *[n for n in _TOKENIZER_FILES if n in sizes]]


def _fetch_file(repo: str, name: str, sha256: str | None, meter: _Meter) -> Path:
    """Fetch one file into the hub cache, resuming a partial file left by a cancel, crash or kill.

    huggingface_hub (2.x) downloads into a per-process temporary file that it deletes on any error,
    so an interrupted download would start again from zero. We keep our own partial file next to the
    blob, resume it with a Range request (huggingface_hub's http_get), check the sha256 the hub
    publishes, and move it to the blob path; hf_hub_download then only links it into the snapshot.
    """
    from huggingface_hub import file_download, hf_hub_download

    meter.file, meter.current = f"{repo}/{name}", 0
    meter.check_cancel()
    ep, timeout = endpoint(), REACH_TIMEOUT_S * 3
    meta = file_download.get_hf_file_metadata(file_download.hf_hub_url(repo, name, endpoint=ep),
                                              timeout=timeout, endpoint=ep)
    if meta.etag and meta.size:
        _fetch_blob(_blob_path(repo, meta.etag), meta.location, meta.size, sha256, meter)
    # The blob is in place, so this only writes refs/main and the snapshot link ("main", not the
    # commit: offline lookups read refs/main).
    return Path(hf_hub_download(repo, name, endpoint=ep, etag_timeout=timeout, tqdm_class=meter.tqdm_class()))


def _blob_path(repo: str, etag: str) -> Path:
    import huggingface_hub.constants as hub_constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(hub_constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model") / "blobs" / etag


def _fetch_blob(blob: Path, url: str, size: int, sha256: str | None, meter: _Meter) -> None:
    import huggingface_hub.constants as hub_constants
    from filelock import FileLock
    from huggingface_hub import file_download

    hub_constants.DOWNLOAD_CHUNK_SIZE = min(hub_constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES)
    if blob.exists():
        return
    blob.parent.mkdir(parents=True, exist_ok=True)
    part = blob.with_name(blob.name + ".fastslow-part")
    with FileLock(str(part) + ".lock"):  # two FastSlow processes never write one partial file
        if blob.exists():
            return
        with open(part, "ab") as fh:
            resume = fh.tell()
            tqdm_class = meter.tqdm_class()
            # attribute lookup at call time: tests replace http_get to simulate a full disk
            file_download.http_get(url, fh, resume_size=resume, expected_size=size, tqdm_class=tqdm_class)
            fh.flush()
            os.fsync(fh.fileno())
        if sha256:
            actual = hub_trust.sha256_file(part)
            if actual != sha256:
                part.unlink()
                raise ModelError(f"{blob.parent.parent.name}: a downloaded file arrived damaged (sha256 "
                                 f"{actual[:12]}…, the hub says {sha256[:12]}…). It was deleted; download again.")
        part.replace(blob)


def _check_space(repo: str, files: list[str], sizes: dict[str, int]) -> None:
    import huggingface_hub.constants as hub_constants

    cache = Path(hub_constants.HF_HUB_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    folder = snapshot_dir(repo)
    missing = sum(sizes[n] for n in files if folder is None or not (folder / n).is_file())
    free = shutil.disk_usage(cache).free
    if missing > free:
        raise ModelError(_disk_message(repo, cache, free, missing))


def _disk_message(repo: str, cache: Path, free: int | None, need: int | None) -> str:
    amounts = f" ({free / 1e6:.0f} MB free, {need / 1e6:.0f} MB needed)" if free is not None and need else ""
    return (f"Not enough disk space to download {repo} into {cache}{amounts}. Free some space (or point "
            "HF_HOME at a larger disk) and download again; the part already fetched is kept and resumes. "
            "Nothing incomplete is used.")


def _fetch_repo(repo: str, files: list[str], sizes: dict[str, int], hashes: dict[str, str], meter: _Meter) -> None:
    import huggingface_hub.constants as hub_constants

    for name in files:
        try:
            path = _fetch_file(repo, name, hashes.get(name), meter)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ModelError(_disk_message(repo, Path(hub_constants.HF_HUB_CACHE), None, None)) from exc
            raise
        hub_trust.record_download(repo, path.parent.name, name, path, hashes.get(name))
        meter.finished += sizes[name]
        meter.current = 0
        meter.report()


def _download_all(todo: list[str], meter: _Meter, what: str) -> None:
    plans = []
    for repo in todo:  # list every repository first: one total, one bar, one ETA
        sizes, hashes = _listing(repo)
        files = _plan(sizes)
        if not files:
            raise ModelUnavailableError(OFFLINE_HELP.format(what=what, why=f"{repo} has no open_clip weights"))
        _check_space(repo, files, sizes)
        plans.append((repo, files, sizes, hashes))
        meter.total += sum(sizes[n] for n in files)
    for plan in plans:
        _fetch_repo(*plan, meter)


def download(
    repos: list[str],
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    what: str | None = None,
) -> None:
    """Fetch the open_clip files of each hub repository not yet cached (resuming partial files)."""
    todo = [r for r in repos if not is_cached(r)]
    if not todo:
        return
    label = what or ", ".join(todo)
    if _offline():
        raise ModelUnavailableError(
            OFFLINE_HELP.format(what=label, why="it is not on this computer and HF_HUB_OFFLINE is set"))
    check_reachable(what=label)
    try:
        _download_all(todo, _Meter(0, progress, cancel), label)
    except (DownloadCancelled, ModelError):
        raise
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ModelUnavailableError(OFFLINE_HELP.format(what=label, why=why)) from exc


def ensure_downloaded(
    repo: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    what: str | None = None,
) -> Path:
    """Make sure a hub repository's files are cached and untampered; returns its verified folder."""
    relay = (lambda p: progress(p.done, p.total)) if progress is not None else None
    download([repo], relay, cancel, what=what or repo)
    return verified_snapshot(repo)
