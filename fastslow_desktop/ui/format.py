"""Human-readable numbers for the UI: sizes, durations, moments, capture times, rates and times left."""

from __future__ import annotations

import datetime as dt


def clock(seconds: float | None) -> str:
    """1:05, or 1:02:05 past an hour."""
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def moment_label(t_start: float | None, t_end: float | None) -> str:
    if t_start is None:
        return ""
    return f"{clock(t_start)}–{clock(t_end)}" if t_end is not None else clock(t_start)


def file_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def timestamp(mtime: float | None) -> str:
    if not mtime:
        return ""
    return dt.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")


_SOURCE_NOTES = {"exif": "", "container": " (from the video file)", "mtime": " (file date)"}


def captured(info) -> str:
    """When a photo or video was captured, with where that came from unless it is the camera's EXIF:
    '2024-05-01 10:00 (file date)'. Falls back to the EXIF `taken` of results made before capture times."""
    when = getattr(info, "captured_at", None) or getattr(info, "taken", None)
    if not when:
        return ""
    source = getattr(info, "captured_source", None) or "exif"
    return when.replace("T", " ")[:16] + _SOURCE_NOTES.get(source, f" ({source})")


def eta(seconds: float | None) -> str:
    """'about 2 min left'; empty while unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, int(round(seconds)))} s left"
    if seconds < 3600:
        return f"about {int(round(seconds / 60))} min left"
    return f"about {seconds / 3600:.1f} h left"


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def match_text(result) -> str:
    """'yes · 92 %' from the slow stage's judgement; '' before re-ranking."""
    match = getattr(result, "match", None)
    if match is None:
        return ""
    probability = getattr(result, "match_probability", None)
    return match if probability is None else f"{match} · {probability:.0%}".replace("%", " %")


_BREAK_AFTER = str.maketrans({c: c + "\u200b" for c in "/\\_-.,"})


def breakable(name: str) -> str:
    """A path or file name with invisible break points after / _ - . , so a long one wraps in a label
    instead of being cut off (for display only: a copy of it carries them)."""
    return name.translate(_BREAK_AFTER)
