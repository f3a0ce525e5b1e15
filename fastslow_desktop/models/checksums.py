"""Bundle checksums: every weight file hashed in full once, then trusted until the file changes.

The trust record is a small JSON in the user cache folder, keyed by each file's resolved path, that
remembers the sha256 a file had at a given (size, mtime_ns, ctime_ns, inode, device). A file whose
stat differs is hashed again; a record that is missing, unreadable or garbage only costs a re-hash.
ctime is kept too because, unlike mtime, it cannot be set back after an edit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from ..paths import cache_dir
from .errors import BundleError

logger = logging.getLogger(__name__)

RECORD = "bundle-checksums.json"
MAX_RECORD_BYTES = 1024 * 1024  # a few hundred entries at most; anything bigger is not ours


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_path() -> Path:
    return cache_dir() / RECORD


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _read_record() -> dict[str, dict]:
    try:
        path = _record_path()
        if path.stat().st_size > MAX_RECORD_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _write_record(record: dict[str, dict]) -> None:
    """Replace the record atomically; a cache that cannot be written only means hashing again next time."""
    path = _record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=RECORD + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        logger.debug("bundle checksum record not saved (%s); files will be hashed again", exc)


def file_sha256(path: Path, record: dict[str, dict]) -> tuple[str, bool]:
    """(sha256 of `path`, whether it was hashed now); a recorded hash is used while the stat matches."""
    key = str(path.resolve())
    stamp = _stamp(path.stat())
    entry = record.get(key)
    if entry is not None and entry.get("stat") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"], False
    digest = sha256_file(path)
    if _stamp(path.stat()) == stamp:  # unchanged while we read it: safe to remember
        record[key] = {"stat": stamp, "sha256": digest}
    return digest, True


def trusted_sha256s(files: dict[str, Path]) -> dict[str, str]:
    """The sha256 of each file (name -> path): hashed once, then trusted while its stat is unchanged."""
    record = _read_record()
    out, changed = {}, False
    for name, file in files.items():
        out[name], hashed = file_sha256(file, record)
        changed |= hashed
    if changed:
        _write_record(record)
    return out


def verify_files(files: dict[str, Path], expected: dict[str, str]) -> None:
    """Check each bundle file's sha256 against the manifest (`files`: manifest name -> path)."""
    record = _read_record()
    changed = False
    for name, file in files.items():
        if not file.is_file():
            raise BundleError(f"{file} is missing from the bundle. Re-copy the whole bundle folder.")
        try:
            actual, hashed = file_sha256(file, record)
        except OSError as exc:
            raise BundleError(f"{file} cannot be read ({exc}). Re-copy the whole bundle folder.") from exc
        changed |= hashed
        if actual != expected[name]:
            if changed:  # the record stays true (this stat has this hash): a re-run refuses as fast
                _write_record(record)
            raise BundleError(
                f"{file} is damaged or was modified: its sha256 is {actual[:12]}…, the manifest expects "
                f"{expected[name][:12]}…. Re-copy or re-download the bundle; FastSlow will not load it."
            )
    if changed:
        _write_record(record)
