"""Opening media files safely: regular files only, never blocking, and a cheap content fingerprint."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

HASH_BLOCK = 64 * 1024


class DecodeError(Exception):
    """A file that cannot be used; `reason` is written for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NotARegularFile(DecodeError, OSError):
    """A FIFO, device or socket where a file was: refused without reading (also an OSError, so
    callers that skip unreadable files skip it too)."""

    def __init__(self, path: str | Path, reason: str = "not a regular file"):
        super().__init__(reason)
        self.filename = str(path)

    def __str__(self) -> str:  # OSError's own would print "[Errno None] None: 'path'"
        return self.reason


def read_error(exc: OSError) -> DecodeError:
    """An OSError from opening or reading, as a DecodeError with a person's reason."""
    if isinstance(exc, DecodeError):
        return exc
    return DecodeError(f"cannot read file: {exc.strerror or exc}")


def open_regular(path: str | Path) -> BinaryIO:
    """Open a regular file for reading without ever blocking: O_NONBLOCK makes open() return at once
    on a FIFO (which would otherwise wait forever for a writer), and fstat refuses anything that is
    not a regular file. Raises NotARegularFile or OSError."""
    nonblock = getattr(os, "O_NONBLOCK", 0)  # POSIX; Windows has no FIFOs in the file system
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, "a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file")
        if nonblock:
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def opened_path(path: str | Path) -> Iterator[str]:
    """A path naming the very file `open_regular` checked, for libraries that want a path (OpenCV):
    on Linux /proc/self/fd/N, so a file swapped for a FIFO after the check is never opened."""
    with open_regular(path) as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise DecodeError("empty file")
        proc = f"/proc/self/fd/{fh.fileno()}"
        yield proc if sys.platform.startswith("linux") and os.path.exists(proc) else str(path)


def partial_hash(path: str | Path, size: int | None = None) -> str:
    """A cheap content fingerprint (size + first, middle and last 64 KiB) for rename detection.
    Raises NotARegularFile or OSError."""
    digest = hashlib.blake2b(digest_size=16)
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size if size is None else size
        digest.update(str(size).encode())
        if size <= 3 * HASH_BLOCK:
            digest.update(fh.read())
        else:
            for offset in (0, size // 2 - HASH_BLOCK // 2, size - HASH_BLOCK):
                fh.seek(offset)
                digest.update(fh.read(HASH_BLOCK))
    return digest.hexdigest()
