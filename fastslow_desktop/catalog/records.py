"""What the catalog stores and hands out: rows, records to write, folder layout, and path encoding."""

from __future__ import annotations

import datetime
import errno
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK = 500  # ids per `IN (...)`: well under SQLite's bound-parameter limit


class LibraryError(Exception):
    """Something is wrong with the library folder that the user can act on."""


class LibraryBusy(LibraryError):
    """Another process holds the library's writer lock (it is indexing): try again once it is done."""


def disk_is_full(exc: BaseException) -> bool:
    """A write failed for want of room (SQLite's SQLITE_FULL, or ENOSPC/EDQUOT from the OS)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)


def disk_full_message(folder: Path) -> str:
    return (f"The disk holding the library {folder} is full: nothing more can be stored. What was indexed "
            "so far is kept; free some space and run the same command again to go on.")


def new_file_mode() -> int:
    """The permissions a file created now gets (0666 less the umask): what a temp file made private by
    mkstemp is given before it is renamed into place, so the library stays as private as the user's
    umask makes the database."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux says it without changing it; changing it, even for an instant, races other threads
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # elsewhere: read by setting it (private for that instant), put back at once
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class LibraryPaths:
    """What lives in a library folder."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "library.db"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        return self.root / "writer.lock"

    @property
    def lock_owner(self) -> Path:
        return self.root / "writer.pid"


@dataclass
class MediaRow:
    id: int
    root_id: int
    path: str
    kind: str
    size: int
    mtime: float
    hash: str | None
    status: str
    error: str | None
    indexed_at: float | None = None  # when it was last embedded (or found unchanged by its content)


@dataclass
class NewSegment:
    t_start: float | None
    t_end: float | None
    thumb: str | None
    vector: np.ndarray | None  # float32 (d,), unit length


@dataclass
class MediaRecord:
    """A decoded file ready to be written: its facts, and its segments (empty when it failed)."""

    path: str
    root_id: int
    kind: str
    size: int
    mtime: float
    hash: str | None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    taken: str | None = None
    error: str | None = None
    segments: list[NewSegment] | None = None
    captured_at: str | None = None  # ISO local time the photo/video was captured (see captured_source)
    captured_source: str | None = None  # "exif" | "container" | "mtime"


@dataclass
class SegmentInfo:
    """One searchable item: a photo (t_start/t_end None) or a video segment."""

    segment_id: int
    media_id: int
    path: str
    kind: str  # "image" | "video"
    t_start: float | None
    t_end: float | None
    taken: str | None  # ISO date and time from EXIF, or None
    mtime: float
    size: int
    width: int | None
    height: int | None
    duration: float | None
    root: str
    online: bool
    thumb: Path | None  # absolute path of the JPEG thumbnail, or None
    # When it was captured, as local ISO time, and where that came from: "exif", "container" (a video's
    # movie header) or "mtime" (the file's modification time, also for rows indexed before this was read).
    captured_at: str | None = None
    captured_source: str | None = None


@dataclass
class RootInfo:
    path: str
    online: bool
    excludes: list[str]
    n_media: int
    n_indexed: int
    n_errors: int


def mtime_iso(mtime: float) -> str:
    """A file's mtime as local ISO time (seconds): the capture time of last resort."""
    return datetime.datetime.fromtimestamp(mtime).isoformat(timespec="seconds")


def db_path(path: str) -> str | bytes:
    """How a path is bound in SQL: text when it is valid UTF-8, else its raw bytes (a BLOB).

    A file name that is not UTF-8 reaches Python with surrogate escapes, which SQLite cannot bind
    as text; the BLOB keeps it reversibly and still sorts and compares byte-wise."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def py_path(value: str | bytes) -> str:
    """The inverse of `db_path`."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def chunks(ids: Sequence[int]) -> Iterator[tuple[list[int], str]]:
    """(chunk of ids, "?,?,…" placeholders) pairs for `IN (...)` queries over many ids."""
    for start in range(0, len(ids), CHUNK):
        chunk = [int(i) for i in ids[start:start + CHUNK]]
        yield chunk, ",".join("?" * len(chunk))
