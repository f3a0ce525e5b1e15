"""Reconciling library folders with the database: new, changed, moved, deleted (the walk is in walk.py).

Never loses what it cannot see: an unreadable folder keeps its entries and gets a row in `status`;
links are not followed; failures are retried when that can help (see `is_content_failure`)."""

from __future__ import annotations

import json
import logging
import os
import stat as _stat
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..catalog.records import MediaRow
from ..catalog.store import Store, root_device_key
from ..media import media_kind, partial_hash
from .walk import (GONE, WalkReport, is_clutter, is_excluded, is_library_folder, is_under, not_regular_reason,
                   os_error_reason, walk)

logger = logging.getLogger(__name__)

# Failure reasons that say the file's content is bad (the decoder's wording): retrying an unchanged
# file cannot help. Every other reason ("cannot read file: Permission denied", "unexpected error: …",
# a model fault) is transient and retried on every run.
CONTENT_FAILURES = ("empty file", "not an image", "unsupported format", "truncated", "damaged", "corrupt",
                    "image too large", "not a video", "video has no readable frames", "cannot decode image")

SCAN_PROBLEMS = "scan_problems"  # meta key: JSON list of {"path", "error"} found by the last walks
HIDDEN = "hidden: its name starts with a dot"  # the stored error of a hidden entry the walks skipped
RETRY_FAILED = "retry_failed_before"  # meta key: failures recorded before this time are retried


@dataclass
class FileEntry:
    path: str
    root_id: int
    kind: str
    size: int
    mtime: float
    ctime: float = 0.0  # the inode's change time: an edit that kept size and mtime still moves it


@dataclass
class Plan:
    """What a reconcile found: the work the indexer then does."""

    to_index: list[FileEntry] = field(default_factory=list)  # new, changed, or failed and worth a retry
    moves: list[tuple[MediaRow, FileEntry]] = field(default_factory=list)
    removed: list[MediaRow] = field(default_factory=list)
    unchanged: int = 0
    retried: int = 0  # unchanged files whose last attempt failed, tried again
    kept_unreadable: int = 0  # known files not seen because their folder could not be read
    offline_roots: list[str] = field(default_factory=list)
    moved_roots: dict[int, str] = field(default_factory=dict)  # id -> path of offline roots found moved
    problems: list[tuple[str, str]] = field(default_factory=list)
    to_check: list[tuple[MediaRow, FileEntry]] = field(default_factory=list)  # see _check_contents


def is_content_failure(error: str | None) -> bool:
    """True when a failure reason says the file itself is bad (retry only once it changes)."""
    text = (error or "").lower()
    return any(text.startswith(reason) for reason in CONTENT_FAILURES)


def root_for(path: str, roots: list[dict]) -> dict | None:
    """The deepest root containing `path`."""
    return max((r for r in roots if is_under(path, r["path"])), key=lambda r: len(r["path"]), default=None)


def _inside_library(path: str, root: str) -> bool:
    """True when `path` lies in a library folder at or below `root` (the walk skips those)."""
    folder = Path(path).parent
    while is_under(str(folder), root):
        if is_library_folder(str(folder)):
            return True
        if str(folder) == root or folder.parent == folder:
            return False
        folder = folder.parent
    return False


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _looks_unmounted(root: dict, known: int, store: Store) -> bool:
    """A root that vanished, or an empty mount point while the database knows files in it. An empty
    folder on the same device (filesystem) as at its last walk was emptied, not unplugged: its files
    are gone. A folder never walked with its device recorded (older libraries) counts as unplugged."""
    path = root["path"]
    if not os.path.isdir(path):
        return True
    if known == 0:
        return False
    try:
        if any(True for _ in os.scandir(path)):
            return False
    except OSError:
        return True
    recorded = store.get_meta(root_device_key(root["id"]))
    return recorded is None or recorded != str(_device(path))


def _record_device(store: Store, root: dict) -> None:
    """The device a root was walked on, so that an emptied folder can be told from an empty mount point."""
    device = _device(root["path"])
    if device is not None and store.get_meta(root_device_key(root["id"])) != str(device):
        store.set_meta(root_device_key(root["id"]), str(device))


@dataclass
class _Scan:
    """What one reconcile saw on disk and knew from the database."""

    seen: dict[str, FileEntry] = field(default_factory=dict)
    known: dict[str, MediaRow] = field(default_factory=dict)
    offline: dict[str, MediaRow] = field(default_factory=dict)  # kept, unless found moved into a root walked now
    went_offline: list[dict] = field(default_factory=list)  # roots unavailable since their last walk
    report: WalkReport = field(default_factory=WalkReport)

    def add_walk(self, folder: str, root: dict) -> None:
        for path, st in walk(folder, root["path"], root["excludes"], self.report):
            self.seen[path] = FileEntry(path, root["id"], media_kind(path), st.st_size, st.st_mtime, st.st_ctime)

    def unreadable(self, path: str) -> bool:
        return any(is_under(path, base) for base in self.report.unreadable)


def _scan_roots(store: Store, roots: list[dict], scan: _Scan, plan: Plan) -> None:
    """Every root; an unplugged one keeps its entries and is marked offline."""
    for root in roots:
        rows = store.media_under(root_id=root["id"])
        if _looks_unmounted(root, len(rows), store):
            if root["online"]:
                scan.went_offline.append(root)
                store.set_root_online(root["id"], False)
            plan.offline_roots.append(root["path"])
            scan.offline.update(rows)
            continue
        if not root["online"]:
            store.set_root_online(root["id"], True)
        _record_device(store, root)
        scan.known.update(rows)
        scan.add_walk(root["path"], root)


def _scan_paths(store: Store, roots: list[dict], scope: Iterable[str], scan: _Scan) -> None:
    """Only some paths (the watcher's batches): files or folders, present or gone."""
    for raw in sorted(set(scope)):
        path = os.path.abspath(raw)
        root = root_for(path, roots)
        if root is None:
            continue
        rel = os.path.relpath(path, root["path"])
        if rel != "." and (any(is_clutter(p) for p in Path(rel).parts) or is_excluded(rel, root["excludes"])):
            continue
        if _inside_library(path, root["path"]):
            continue  # thumbnails being written into a library folder under a watched root
        scan.known.update(store.media_under(prefix=path))
        try:
            st = os.lstat(path)  # a link is not followed: its rows (from older versions) go or move
        except OSError as exc:
            if exc.errno not in GONE:  # unreadable, not gone: keep what is known under it
                scan.report.cannot_read(path, f"cannot read: {os_error_reason(exc)}")
            continue  # gone: its rows (if any) are in `known` and will be removed or matched
        if _stat.S_ISDIR(st.st_mode):
            scan.add_walk(path, root)
        elif not media_kind(path) or _stat.S_ISLNK(st.st_mode):
            continue
        elif _stat.S_ISREG(st.st_mode):
            scan.seen[path] = FileEntry(path, root["id"], media_kind(path), st.st_size, st.st_mtime, st.st_ctime)
        else:
            scan.report.problems.append((path, not_regular_reason(st.st_mode)))


def _compare(scan: _Scan, plan: Plan, retry: set[str]) -> tuple[list[FileEntry], list[MediaRow]]:
    """Sort what was seen into unchanged / to index / new, and what is known but unseen into gone."""
    new: list[FileEntry] = []
    for path, entry in scan.seen.items():
        row = scan.known.get(path)
        if row is None:
            new.append(entry)
        elif row.size != entry.size or row.mtime != entry.mtime or row.kind != entry.kind:
            plan.to_index.append(entry)
        elif row.status == "error" and (path in retry or not is_content_failure(row.error)):
            plan.to_index.append(entry)
            plan.retried += 1
        elif row.status == "ok" and row.hash and row.indexed_at is not None and entry.ctime > row.indexed_at:
            plan.to_check.append((row, entry))  # changed since, yet same size and time: its content tells
        else:
            plan.unchanged += 1
    gone = []
    for path, row in scan.known.items():
        if path in scan.seen:
            continue
        if scan.unreadable(path):
            plan.kept_unreadable += 1  # not seen is not gone: its folder could not be read
        else:
            gone.append(row)
    return new, gone


def _check_contents(store: Store, plan: Plan) -> None:
    """Files changed since they were indexed (their inode's ctime is later) with the same size and
    modification time: an edit that kept the time (`exiftool -P`, `touch -r`, some editors). A
    different partial hash sends them to be indexed again; the same one marks them checked, so a
    rename or chmod costs one hash, once."""
    checked, latest = [], time.time()
    for row, entry in plan.to_check:
        try:
            same = partial_hash(entry.path, entry.size) == row.hash
        except OSError:
            same = False  # unreadable now: indexing it again says why
        if same:
            checked.append(row.id)
            latest = max(latest, entry.ctime)  # a share's clock ahead of this one must not make it look changed again
            plan.unchanged += 1
        else:
            plan.to_index.append(entry)
    if checked:
        store.mark_checked(checked, latest)
    plan.to_check = []


def _match_moves(new: list[FileEntry], gone: list[MediaRow], plan: Plan, elsewhere: Iterable[MediaRow] = ()) -> None:
    """Renames and moves: a new file with the size and partial hash of a vanished one takes its place.
    `elsewhere` (an offline root's files) may be matched too, but is never removed when not found."""
    by_size: dict[int, list[MediaRow]] = defaultdict(list)
    for row in [*gone, *elsewhere]:
        if row.hash:
            by_size[row.size].append(row)
    matched: set[int] = set()
    for entry in new:
        candidates = [r for r in by_size.get(entry.size, ()) if r.id not in matched]
        hit = None
        if candidates:
            try:
                digest = partial_hash(entry.path, entry.size)
            except OSError:
                digest = None
            hit = next((r for r in candidates if digest and r.hash == digest), None)
        if hit is None:
            plan.to_index.append(entry)
        else:
            matched.add(hit.id)
            plan.moves.append((hit, entry))
    plan.removed = [row for row in gone if row.id not in matched]


def _moved_roots(offline: dict[str, MediaRow], plan: Plan, roots: list[dict]) -> dict[int, str]:
    """Offline roots all of whose files turned up in a folder walked now (`mv Photos Photos2`, then
    `fastslow index Photos2`): the folder moved, it is not an unplugged drive to wait for."""
    moved = {row.id for row, _ in plan.moves}
    by_root: dict[int, list[MediaRow]] = defaultdict(list)
    for row in offline.values():
        by_root[row.root_id].append(row)
    # A failed file has nothing to keep (no hash, no embedding): it is tried again at the new place.
    paths = {root["id"]: root["path"] for root in roots}
    return {root_id: paths[root_id] for root_id, rows in by_root.items()
            if any(row.id in moved for row in rows) and all(row.id in moved or row.status == "error" for row in rows)}


def _say_offline(scan: _Scan, plan: Plan) -> None:
    """Once moves are known: a folder whose files all turned up elsewhere moved, it is not an unplugged drive."""
    moved = {row.id for row, _ in plan.moves}
    for root in scan.went_offline:
        if root["id"] not in plan.moved_roots:
            kept = sum(1 for row in scan.offline.values() if row.root_id == root["id"] and row.id not in moved)
            logger.warning("folder %s is not available (unplugged drive?); keeping its %d entries", root["path"], kept)


def _problem_rows(scan: _Scan, roots: list[dict]) -> list[tuple[str, str]]:
    rows = list(scan.report.problems)
    for link, target, what in scan.report.outside_links:
        if root_for(target, roots) is None:  # a target inside another root is indexed there anyway
            folder = target if what == "folder" else os.path.dirname(target)
            rows.append((link, f"link to a {what} outside the indexed folders, not followed "
                               f"(add {folder} as a folder to index it)"))
    rows.extend((path, HIDDEN) for path in scan.report.hidden)  # kept apart by `scan_problems`
    return rows


def _save_problems(store: Store, rows: list[tuple[str, str]], rescanned: list[str], roots: list[dict]) -> None:
    """Replace the stored problems under the rescanned paths with this walk's (and drop removed roots')."""
    old = _load_problems(store)
    kept = [p for p in old if root_for(p["path"], roots) and not any(is_under(p["path"], b) for b in rescanned)]
    new = kept + [{"path": path, "error": error} for path, error in sorted(set(rows))]
    if new != old:
        store.set_meta(SCAN_PROBLEMS, json.dumps(new) if new else None)


def _load_problems(store: Store) -> list[dict]:
    try:
        data = json.loads(store.get_meta(SCAN_PROBLEMS) or "[]")
    except ValueError:
        data = []  # damaged: the next walks write it again
    return [p for p in data if isinstance(p, dict) and isinstance(p.get("path"), str)] if isinstance(data, list) else []


def scan_problems(store: Store) -> tuple[list[dict], list[str]]:
    """For `status`: the folders and files the last walks could not use, with why ({"path", "error"}), and
    the hidden folders and media files (names starting with a dot) they skipped on purpose (paths)."""
    roots = store.roots()
    kept = [p for p in _load_problems(store) if root_for(p["path"], roots) is not None]
    return [p for p in kept if p.get("error") != HIDDEN], [p["path"] for p in kept if p.get("error") == HIDDEN]


def request_retry(store: Store) -> int:
    """Mark every failure recorded so far for a retry by the next run; returns how many there are."""
    store.set_meta(RETRY_FAILED, repr(time.time()))
    return len(store.failures())


def _retry_paths(store: Store) -> set[str]:
    marked = store.get_meta(RETRY_FAILED)
    try:
        paths = store.failed_before(float(marked)) if marked is not None else set()
    except ValueError:  # a damaged mark: dropped
        paths = set()
    if not paths and marked is not None:
        store.set_meta(RETRY_FAILED, None)  # every marked failure has been tried again
    return paths


def reconcile(store: Store, scope: Iterable[str] | None = None) -> Plan:
    """Compare the disk with the database, for all roots (scope None) or only some paths."""
    plan = Plan()
    roots = store.roots()
    scan = _Scan()
    if scope is None:
        _scan_roots(store, roots, scan, plan)
        rescanned = [r["path"] for r in roots if r["path"] not in plan.offline_roots]
    else:
        rescanned = [os.path.abspath(p) for p in scope]
        _scan_paths(store, roots, rescanned, scan)
    new, gone = _compare(scan, plan, _retry_paths(store))
    _check_contents(store, plan)
    _match_moves(new, gone, plan, scan.offline.values())
    plan.moved_roots = _moved_roots(scan.offline, plan, roots)
    _say_offline(scan, plan)
    plan.problems = _problem_rows(scan, roots)
    _save_problems(store, plan.problems, rescanned, roots)
    if plan.kept_unreadable:
        logger.warning("kept %d entries under folders that could not be read", plan.kept_unreadable)
    return plan
