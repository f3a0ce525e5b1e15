"""Walking a library folder: media files by their real paths, links not followed, library folders skipped,
and a report of everything that could not be seen or used."""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import stat as _stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.records import LibraryPaths
from ..media import media_kind

logger = logging.getLogger(__name__)

# System clutter that is never a user's photo, whatever its extension.
CLUTTER = frozenset(name.lower() for name in (
    "Thumbs.db", "desktop.ini", "@eaDir", "$RECYCLE.BIN", "System Volume Information", "__MACOSX",
    "lost+found", "ehthumbs.db", "Icon\r", ".DS_Store", ".Spotlight-V100", ".Trashes", ".fseventsd",
))

GONE = (errno.ENOENT, errno.ENOTDIR)  # vanished during the walk: really gone, not unreadable
_SPECIAL = ((_stat.S_ISFIFO, "named pipe"), (_stat.S_ISSOCK, "socket"), (_stat.S_ISCHR, "device file"),
            (_stat.S_ISBLK, "device file"))


@dataclass
class WalkReport:
    """What a walk could not see: paths whose known entries must be kept, and rows for `status`."""

    unreadable: list[str] = field(default_factory=list)  # folders or files: their rows stay as they are
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), shown in `status`
    outside_links: list[tuple[str, str, str]] = field(default_factory=list)  # (link, target, "folder"/"file")
    hidden: list[str] = field(default_factory=list)  # hidden folders and media files, skipped (see `_note_hidden`)

    def cannot_read(self, path: str, reason: str, show: bool = True) -> None:
        self.unreadable.append(path)
        if show:
            self.problems.append((path, reason))



def _broken_link_reason(path: str) -> str:
    """Why a link leads to nothing: a loop of links, or a target that does not exist."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "broken link: it points back at itself (a loop of links)"
    return "broken link: what it points at does not exist"

def is_clutter(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$") or name.lower() in CLUTTER


def _note_hidden(entry: os.DirEntry, report: WalkReport, root: str, excludes: tuple[str, ...]) -> None:
    """A hidden folder, or a hidden file named as media, is skipped but counted in `status`: a person whose
    photos are in `.photos` should learn why none were found. System clutter, macOS's `._name` companion
    files (metadata beside a copied file, not pictures) and what the user excluded are not worth a mention."""
    name = entry.name
    if not name.startswith(".") or name.startswith("._") or name.lower() in CLUTTER:
        return
    if excludes and is_excluded(os.path.relpath(entry.path, root), excludes):
        return
    try:
        folder = entry.is_dir(follow_symlinks=False)
    except OSError:
        folder = False
    if folder or media_kind(name):
        report.hidden.append(entry.path)


def is_excluded(rel_path: str, patterns: Iterable[str]) -> bool:
    """A glob pattern matches the path relative to its root, or any single part of it."""
    rel = rel_path.replace(os.sep, "/")
    parts = rel.split("/")
    for pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern) or any(fnmatch.fnmatchcase(p, pattern) for p in parts):
            return True
    return False


def is_under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def os_error_reason(exc: OSError) -> str:
    return "path too long" if exc.errno == errno.ENAMETOOLONG else (exc.strerror or str(exc))


def not_regular_reason(mode: int) -> str:
    what = next((name for test, name in _SPECIAL if test(mode)), "special file")
    return f"not a regular file ({what})"


def _list_folder(path: str, seen_dirs: set[tuple[int, int]], report: WalkReport) -> list[os.DirEntry] | None:
    """A folder's entries sorted by name; None when already walked, gone, or unreadable (reported)."""
    try:
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:  # a bind mount back up the tree: walked already
            return None
        seen_dirs.add(key)
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if exc.errno in GONE:
            return None
        logger.warning("cannot list %s: %s", path, exc)
        report.cannot_read(path, f"cannot list folder: {os_error_reason(exc)}")
        return None


def _note_link(entry: os.DirEntry, root: str, report: WalkReport) -> None:
    """Links are not followed; one pointing out of the root (at a folder, or at media) is worth telling about,
    and so is a media-named link that leads nowhere."""
    try:
        target = os.path.realpath(entry.path)  # a loop resolves to some path; an unreadable link raises
        what = "folder" if os.path.isdir(target) else "file" if os.path.isfile(target) else None
    except OSError as exc:
        report.problems.append((entry.path, f"link that cannot be read, not followed: {os_error_reason(exc)}"))
        return
    if what is None:
        if media_kind(entry.name):
            report.problems.append((entry.path, _broken_link_reason(entry.path)))
    elif not is_under(target, root) and (what == "folder" or media_kind(target)):
        report.outside_links.append((entry.path, target, what))


def is_library_folder(path: str) -> bool:
    """A FastSlow library folder (this one or another): its thumbnails are not the user's photos."""
    return os.path.isfile(LibraryPaths(Path(path)).db)  # os.path: False, never raises, on an unreadable folder


def _entry_stat(entry: os.DirEntry, report: WalkReport) -> os.stat_result | None:
    """lstat of an entry; an unreadable one is kept (and shown when it is a folder or looks like media)."""
    try:
        return entry.stat(follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in GONE:
            try:
                folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                folder = False
            what = "folder" if folder else "file"
            report.cannot_read(entry.path, f"cannot read {what}: {os_error_reason(exc)}",
                               show=folder or bool(media_kind(entry.name)))
        return None


def _first_link(st: os.stat_result, seen: set[tuple[int, int]]) -> bool:
    """False for another hard link to a file already walked (DirEntry's nlink is 0 on Windows: no check)."""
    if st.st_nlink > 1:
        if (st.st_dev, st.st_ino) in seen:
            return False
        seen.add((st.st_dev, st.st_ino))
    return True


def walk(folder: str | Path, root: str | Path | None = None, excludes: Iterable[str] = (),
         report: WalkReport | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """Media files under `folder` (path, lstat), each real file once, by its real path.

    Symbolic links are not followed: a link inside the root is an alias of a file or folder the
    walk reaches anyway by its real path (following it would store that file twice, or under the
    link's name), and a link out of the root would crawl whatever it points at (`/`, another disk).
    Without following links no link loop is possible; hard links are deduplicated by inode.
    What cannot be read goes to `report`."""
    folder, root = str(folder), str(root or folder)
    excludes = tuple(excludes)
    report = report if report is not None else WalkReport()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        path = stack.pop()
        if is_library_folder(path):
            logger.info("not indexing %s: it is a FastSlow library folder", path)
            continue
        entries = _list_folder(path, seen_dirs, report)
        subdirs = []
        for entry in entries or ():
            if is_clutter(entry.name):
                _note_hidden(entry, report, root, excludes)
                continue
            if excludes and is_excluded(os.path.relpath(entry.path, root), excludes):
                continue
            try:
                link = entry.is_symlink()
            except OSError:
                link = False  # lstat below says what it is
            if link:
                _note_link(entry, root, report)
                continue
            est = _entry_stat(entry, report)
            if est is None:
                continue
            if _stat.S_ISDIR(est.st_mode):
                subdirs.append(entry.path)
            elif _stat.S_ISREG(est.st_mode):
                if media_kind(entry.name) and _first_link(est, seen_files):
                    yield entry.path, est
            elif media_kind(entry.name):
                report.problems.append((entry.path, not_regular_reason(est.st_mode)))
        stack.extend(reversed(subdirs))
