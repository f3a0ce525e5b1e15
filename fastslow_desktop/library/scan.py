"""Walking library folders and reconciling them with the database: new, changed, moved, deleted."""

from __future__ import annotations

import fnmatch
import logging
import os
import stat as _stat
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.records import MediaRow
from ..catalog.store import Store
from .decode import media_kind, partial_hash

logger = logging.getLogger(__name__)

# System clutter that is never a user's photo, whatever its extension.
CLUTTER = frozenset(name.lower() for name in (
    "Thumbs.db", "desktop.ini", "@eaDir", "$RECYCLE.BIN", "System Volume Information", "__MACOSX",
    "lost+found", "ehthumbs.db", "Icon\r", ".DS_Store", ".Spotlight-V100", ".Trashes", ".fseventsd",
))


@dataclass
class FileEntry:
    path: str
    root_id: int
    kind: str
    size: int
    mtime: float


@dataclass
class Plan:
    """What a reconcile found: the work the indexer then does."""

    to_index: list[FileEntry] = field(default_factory=list)  # new, changed, or failed-and-changed
    moves: list[tuple[MediaRow, FileEntry]] = field(default_factory=list)
    removed: list[MediaRow] = field(default_factory=list)
    unchanged: int = 0
    offline_roots: list[str] = field(default_factory=list)


def is_clutter(name: str) -> bool:
    return name.startswith(".") or name.startswith("~$") or name.lower() in CLUTTER


def is_excluded(rel_path: str, patterns: Iterable[str]) -> bool:
    """A glob pattern matches the path relative to its root, or any single part of it."""
    rel = rel_path.replace(os.sep, "/")
    parts = rel.split("/")
    for pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern) or any(fnmatch.fnmatchcase(p, pattern) for p in parts):
            return True
    return False


def walk(folder: str | Path, root: str | Path | None = None, excludes: Iterable[str] = ()) -> Iterator[tuple[str, os.stat_result]]:
    """Media files under `folder` (path, stat), following symlinks without ever looping."""
    folder, root = str(folder), str(root or folder)
    excludes = tuple(excludes)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            st = os.stat(current)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:  # a symlink loop or a second link to a folder already walked
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            logger.warning("cannot list %s: %s", current, exc)
            continue
        subdirs = []
        for entry in entries:
            if is_clutter(entry.name):
                continue
            if excludes and is_excluded(os.path.relpath(entry.path, root), excludes):
                continue
            try:
                est = entry.stat()  # follows symlinks; a dangling link raises
            except OSError:
                continue
            if _stat.S_ISDIR(est.st_mode):
                subdirs.append(entry.path)
            elif _stat.S_ISREG(est.st_mode) and media_kind(entry.name):
                fkey = (est.st_dev, est.st_ino)
                if fkey in seen_files:
                    continue
                seen_files.add(fkey)
                yield entry.path, est
        stack.extend(reversed(subdirs))


def root_for(path: str, roots: list[dict]) -> dict | None:
    """The deepest root containing `path`."""
    best = None
    for root in roots:
        base = root["path"]
        if path == base or path.startswith(base.rstrip(os.sep) + os.sep):
            if best is None or len(base) > len(best["path"]):
                best = root
    return best


def _looks_unmounted(root: str, known: int) -> bool:
    """A root that vanished, or is an empty mount point while the database knows files in it."""
    if not os.path.isdir(root):
        return True
    if known == 0:
        return False
    try:
        return not any(True for _ in os.scandir(root))
    except OSError:
        return True


def reconcile(store: Store, scope: Iterable[str] | None = None) -> Plan:
    """Compare the disk with the database, for all roots (scope None) or only some paths."""
    plan = Plan()
    roots = store.roots()
    seen: dict[str, FileEntry] = {}
    known: dict[str, MediaRow] = {}
    if scope is None:
        for root in roots:
            rows = store.media_under(root_id=root["id"])
            if _looks_unmounted(root["path"], len(rows)):
                if root["online"]:
                    logger.warning("folder %s is not available (unplugged drive?); keeping its %d entries",
                                   root["path"], len(rows))
                    store.set_root_online(root["id"], False)
                plan.offline_roots.append(root["path"])
                continue
            if not root["online"]:
                store.set_root_online(root["id"], True)
            known.update(rows)
            for path, st in walk(root["path"], root["path"], root["excludes"]):
                seen[path] = FileEntry(path, root["id"], media_kind(path), st.st_size, st.st_mtime)
    else:
        for raw in sorted(set(scope)):
            path = os.path.abspath(raw)
            root = root_for(path, roots)
            if root is None:
                continue
            rel = os.path.relpath(path, root["path"])
            if rel != "." and (any(is_clutter(p) for p in Path(rel).parts) or is_excluded(rel, root["excludes"])):
                continue
            known.update(store.media_under(prefix=path))
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone: its rows (if any) are in `known` and will be removed or matched
            if _stat.S_ISDIR(st.st_mode):
                for fpath, fst in walk(path, root["path"], root["excludes"]):
                    seen[fpath] = FileEntry(fpath, root["id"], media_kind(fpath), fst.st_size, fst.st_mtime)
            elif _stat.S_ISREG(st.st_mode) and media_kind(path):
                seen[path] = FileEntry(path, root["id"], media_kind(path), st.st_size, st.st_mtime)

    new: list[FileEntry] = []
    for path, entry in seen.items():
        row = known.get(path)
        if row is None:
            new.append(entry)
        elif row.size == entry.size and row.mtime == entry.mtime and row.kind == entry.kind:
            plan.unchanged += 1
        else:
            plan.to_index.append(entry)
    gone = [row for path, row in known.items() if path not in seen]

    # Renames and moves: a new file with the size and partial hash of a vanished one takes its place.
    by_size: dict[int, list[MediaRow]] = defaultdict(list)
    for row in gone:
        if row.hash:
            by_size[row.size].append(row)
    matched: set[int] = set()
    for entry in new:
        candidates = [r for r in by_size.get(entry.size, ()) if r.id not in matched]
        if not candidates:
            plan.to_index.append(entry)
            continue
        try:
            digest = partial_hash(entry.path, entry.size)
        except OSError:
            plan.to_index.append(entry)
            continue
        hit = next((r for r in candidates if r.hash == digest), None)
        if hit is None:
            plan.to_index.append(entry)
        else:
            matched.add(hit.id)
            plan.moves.append((hit, entry))
    plan.removed = [row for row in gone if row.id not in matched]
    return plan
