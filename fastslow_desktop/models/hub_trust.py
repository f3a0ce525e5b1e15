"""Trust on first use for hub files: the sha256 of every file fetched is recorded, later loads compare.

The record is a small JSON file in FastSlow's cache folder ({cache}/hub-trust.json), keyed by
repository and commit. A file that changes after it was recorded is refused like a tampered bundle.
Files the hub publishes with an LFS sha256 are also checked against it right after the download,
so a transfer that went wrong is never recorded as trusted.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ..paths import cache_dir
from .checksums import sha256_file, trusted_sha256s
from .errors import BundleError

TRUST_FILE = "hub-trust.json"
_lock = threading.Lock()


def trust_path() -> Path:
    return cache_dir() / TRUST_FILE


def _load() -> dict:
    try:
        data = json.loads(trust_path().read_text())
    except FileNotFoundError:
        return {"version": 1, "repos": {}}
    except (OSError, ValueError) as exc:
        # A damaged record must not silently become "trust everything again".
        raise BundleError(f"{trust_path()} cannot be read ({exc}). Delete it only if you trust the "
                          "model files in the hub cache; FastSlow will then record them again.") from exc
    data.setdefault("repos", {})
    return data


def _save(data: dict) -> None:
    path = trust_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def recorded(repo: str, commit: str) -> dict[str, str]:
    """{file name: sha256} recorded for one repository commit."""
    return dict(_load()["repos"].get(repo, {}).get(commit, {}))


def record_download(repo: str, commit: str, name: str, path: Path, lfs_sha256: str | None) -> str:
    """Record a freshly fetched file; refuse it when it differs from the hub's own hash or the record."""
    actual = sha256_file(path)
    if lfs_sha256 and actual != lfs_sha256:
        _discard(path)
        raise BundleError(f"{repo}/{name} arrived damaged: its sha256 is {actual[:12]}…, the hub says "
                          f"{lfs_sha256[:12]}…. It was deleted; download again.")
    with _lock:
        data = _load()
        files = data["repos"].setdefault(repo, {}).setdefault(commit, {})
        expected = files.get(name)
        if expected is not None and expected != actual:
            raise _tampered(path, actual, expected)
        files[name] = actual
        _save(data)
    return actual


def verify(repo: str, commit: str, paths: dict[str, Path]) -> None:
    """Check cached files against the record; files never seen before are recorded (first use)."""
    # A 1.6 GB model is hashed once; later loads trust it until a file's size, times or inode change.
    actuals = trusted_sha256s(paths)
    with _lock:
        data = _load()
        files = data["repos"].setdefault(repo, {}).setdefault(commit, {})
        changed = False
        for name, path in paths.items():
            actual = actuals[name]
            expected = files.get(name)
            if expected is None:
                files[name] = actual
                changed = True
            elif actual != expected:
                raise _tampered(path, actual, expected)
        if changed:
            _save(data)


def _tampered(path: Path, actual: str, expected: str) -> BundleError:
    return BundleError(
        f"{path} was changed after FastSlow downloaded it: its sha256 is {actual[:12]}…, FastSlow recorded "
        f"{expected[:12]}…. FastSlow will not load it. Delete that model's folder in the hub cache "
        "(or the file) and download the model again."
    )


def _discard(path: Path) -> None:
    """Remove a bad download: the snapshot link and the blob it points at."""
    target = path.resolve()
    for p in {path, target}:
        try:
            p.unlink()
        except FileNotFoundError:
            pass
