"""Writing an HNSW file safely: a unique temp file, its size checked, fsync, then a rename over the old one."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import hnswlib

from .records import LibraryError, new_file_mode


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; rename is durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_index(index: hnswlib.Index, path: str) -> None:
    """hnswlib's own writer (a seam the disk-full tests replace)."""
    index.save_index(path)


def save_atomically(index: hnswlib.Index, file: Path) -> int:
    """Write `index` to a unique temp file beside `file`, verify its size, fsync, rename over `file`.
    A short write or a full disk raises LibraryError and leaves the old file as it was."""
    expected = int(index.index_file_size())
    fd, tmp = tempfile.mkstemp(prefix=file.name + ".", suffix=".tmp", dir=file.parent)
    os.close(fd)
    try:
        os.chmod(tmp, new_file_mode())  # mkstemp makes it private; the file is as private as the rest
        _write_index(index, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        written = os.path.getsize(tmp)
        if written != expected:
            raise OSError(errno.ENOSPC, f"short write ({written} of {expected} bytes)")
        os.replace(tmp, file)
    except (OSError, RuntimeError) as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LibraryError(f"Cannot save the search index {file.name} ({reason}): is the disk full? "
                           "The previous index file is kept and the library database is intact; "
                           "free some space and it is saved again.") from exc
    _fsync_dir(file.parent)
    return expected
