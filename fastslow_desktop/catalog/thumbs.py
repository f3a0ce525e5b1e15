"""Thumbnail files: small JPEGs under the library's thumbnails/ folder, named by a hash of the file."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from .records import new_file_mode

logger = logging.getLogger(__name__)

THUMB_SIZE = 256  # longest side of a thumbnail, pixels
WARN_EVERY_S = 60.0  # one warning per kind of failure a minute: a full disk fails every thumbnail
_last_warning: dict[int | None, float] = {}  # errno -> when it was last warned about (monotonic)


def _log_failure(path: str, exc: OSError) -> None:
    now = time.monotonic()
    if now - _last_warning.get(exc.errno, -WARN_EVERY_S) >= WARN_EVERY_S:
        _last_warning[exc.errno] = now
        logger.warning("cannot write thumbnail for %r: %s (more like it this minute are logged at debug level)",
                       path, exc)
    else:
        logger.debug("cannot write thumbnail for %r: %s", path, exc)


def thumbnail_name(path: str, size: int, mtime: float, index: int) -> str:
    """Relative path of a segment's thumbnail. The key hashes the raw bytes of the path, so a name
    that is not UTF-8 gets one like any other."""
    key = hashlib.blake2b(os.fsencode(path) + f"\0{size}\0{mtime}".encode(), digest_size=10).hexdigest()
    return (Path("thumbnails") / key[:2] / f"{key}-{index}.jpg").as_posix()


def write_thumbnail(library_root: Path, image: Image.Image, path: str, size: int, mtime: float,
                    index: int) -> str | None:
    """Write a thumbnail of `image` (a segment of the file at `path`); returns its relative path,
    or None when it cannot be written (the file is still indexed, it just shows no picture)."""
    rel = thumbnail_name(path, size, mtime, index)
    out = library_root / rel
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        thumb = image.copy()
        thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
        os.chmod(tmp, new_file_mode())  # mkstemp makes it private; thumbnails are as private as the library
        with os.fdopen(fd, "wb") as fh:
            thumb.save(fh, "JPEG", quality=85)
        os.replace(tmp, out)
    except OSError as exc:
        _log_failure(path, exc)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return None
    return rel


def remove_thumbnails(library_root: Path, rel_paths: Iterable[str]) -> None:
    for rel in rel_paths:
        try:
            (library_root / rel).unlink()
        except OSError:
            pass
