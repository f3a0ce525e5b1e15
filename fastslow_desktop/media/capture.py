"""When a photo or video was captured: EXIF for photos, the MP4/MOV movie header for videos, else mtime.

No library installed with the app reads a QuickTime/MP4 movie header's creation time (OpenCV does
not expose it; PyAV would add a whole FFmpeg build for one field), so the `mvhd` box is read here:
top-level boxes are skipped by their sizes to `moov`, whose `mvhd` holds seconds since 1904 (UTC).
"""

from __future__ import annotations

import datetime as _dt
import struct
from pathlib import Path
from typing import BinaryIO

from .files import open_regular

EXIF, CONTAINER, MTIME = "exif", "container", "mtime"  # where a capture time came from
_EPOCH_1904 = _dt.datetime(1904, 1, 1, tzinfo=_dt.timezone.utc)
# Earlier than this is a writer's mistake (a Unix-epoch count in a 1904 field lands in the 1940s-60s).
_EARLIEST = _dt.datetime(1980, 1, 1, tzinfo=_dt.timezone.utc)
_MAX_BOXES = 10_000  # a damaged file of tiny boxes must not keep us reading


def _boxes(fh: BinaryIO, start: int, end: int):
    """(type, payload start, payload end) of the ISO-BMFF boxes between two offsets."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos + 8 > end:
            return
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            return
        size, kind = struct.unpack(">I4s", header)
        payload = pos + 8
        if size == 1:  # a 64-bit size follows the type
            large = fh.read(8)
            if len(large) < 8:
                return
            size, payload = struct.unpack(">Q", large)[0], pos + 16
        elif size == 0:  # the last box: it runs to the end of the file
            size = end - pos
        if size < payload - pos or pos + size > end:
            return  # a size that cannot be right: stop rather than guess
        yield kind, payload, pos + size
        pos += size


def _find(fh: BinaryIO, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for name, payload, box_end in _boxes(fh, start, end):
        if name == kind:
            return payload, box_end
    return None


def container_creation_time(path: str | Path) -> _dt.datetime | None:
    """The creation time (UTC) in an MP4/MOV/3GP movie header, or None when there is none, it is zero
    (unknown), implausible, or the file is not an ISO-BMFF/QuickTime file. Never raises for bad files."""
    try:
        with open_regular(path) as fh:
            end = fh.seek(0, 2)
            moov = _find(fh, 0, end, b"moov")
            mvhd = _find(fh, *moov, b"mvhd") if moov else None
            if mvhd is None:
                return None
            fh.seek(mvhd[0])
            head = fh.read(12)
    except (OSError, ValueError, struct.error):
        return None
    if len(head) < 8:
        return None
    if head[0] == 1:  # version 1: 64-bit times
        if len(head) < 12:
            return None
        seconds = struct.unpack(">Q", head[4:12])[0]
    else:
        seconds = struct.unpack(">I", head[4:8])[0]
    if seconds == 0:
        return None  # the format's "unknown"
    try:
        when = _EPOCH_1904 + _dt.timedelta(seconds=seconds)
    except OverflowError:
        return None
    latest = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=2)
    return when if _EARLIEST <= when <= latest else None


def local_iso(when: _dt.datetime) -> str:
    """An aware time as local wall-clock ISO text (seconds), the form EXIF times have."""
    return when.astimezone().replace(tzinfo=None).isoformat(timespec="seconds")


def mtime_iso(mtime: float) -> str:
    return _dt.datetime.fromtimestamp(mtime).isoformat(timespec="seconds")


def capture_time(path: str | Path, kind: str, exif_taken: str | None, mtime: float) -> tuple[str, str]:
    """(ISO local capture time, source): the photo's EXIF time, the video's container time, else mtime."""
    if exif_taken:
        return exif_taken, EXIF
    if kind == "video":
        created = container_creation_time(path)
        if created is not None:
            return local_iso(created), CONTAINER
    return mtime_iso(mtime), MTIME
