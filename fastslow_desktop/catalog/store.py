"""The library database (SQLite, WAL): roots, media, segments, embeddings, and the writes to them.

SQLite is the source of truth; the HNSW file is a cache of the embeddings table. Every write that
matters happens in one transaction, so a process killed at any moment leaves either the old or the
new state of a file, never half of it. One connection per thread (WAL lets readers run while the
indexer writes); writes from this process are serialised by a lock. A folder that cannot be
written is opened read-only: reads work, writes raise LibraryError.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import generations
from .queries import StoreQueries
from .records import LibraryError, MediaRecord, chunks, db_path, disk_full_message, disk_is_full, mtime_iso

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

# Step-by-step migrations: _MIGRATIONS[n] takes a database at version n to n + 1.
_MIGRATIONS: dict[int, str] = {
    0: """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE IF NOT EXISTS roots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        excludes TEXT NOT NULL DEFAULT '[]',
        online INTEGER NOT NULL DEFAULT 1,
        added REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS media (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        root_id INTEGER NOT NULL REFERENCES roots(id),
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        hash TEXT,
        width INTEGER,
        height INTEGER,
        duration REAL,
        taken TEXT,
        status TEXT NOT NULL,
        error TEXT,
        indexed_at REAL
    );
    CREATE INDEX IF NOT EXISTS media_root ON media(root_id);
    CREATE INDEX IF NOT EXISTS media_hash ON media(size, hash);
    CREATE TABLE IF NOT EXISTS segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        media_id INTEGER NOT NULL REFERENCES media(id),
        t_start REAL,
        t_end REAL,
        thumb TEXT
    );
    CREATE INDEX IF NOT EXISTS segments_media ON segments(media_id);
    CREATE TABLE IF NOT EXISTS embeddings (
        segment_id INTEGER NOT NULL REFERENCES segments(id),
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (segment_id, model_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS embeddings_model ON embeddings(model_id, segment_id);
    """,
    # Capture time (local ISO text, so date filters and sorting are plain string comparisons in SQL)
    # and its source. Older rows: EXIF `taken` where they had one, else their mtime with source NULL
    # (shown as "mtime"); the next index run reads the real time of those once (library/dates.py).
    # The partial index keeps "which rows still need it" free once there are none (every watcher batch asks).
    1: """
    ALTER TABLE media ADD COLUMN captured_at TEXT;
    ALTER TABLE media ADD COLUMN captured_source TEXT;
    UPDATE media SET captured_at = taken, captured_source = 'exif' WHERE taken IS NOT NULL;
    UPDATE media SET captured_at = strftime('%Y-%m-%dT%H:%M:%S', mtime, 'unixepoch', 'localtime')
        WHERE captured_at IS NULL;
    CREATE INDEX IF NOT EXISTS media_captured ON media(captured_at);
    CREATE INDEX IF NOT EXISTS media_uncaptured ON media(id) WHERE captured_source IS NULL;
    """,
}

# Cheap reads that walk every table's b-tree (not the vector blobs): a database with a good header
# and garbage pages fails here, at open, instead of deep inside a later query.
_PROBES = ("SELECT COUNT(*) FROM roots", "SELECT COUNT(*) FROM media INDEXED BY media_root",
           "SELECT COUNT(*) FROM segments INDEXED BY segments_media",
           "SELECT COUNT(*) FROM embeddings INDEXED BY embeddings_model", "SELECT COUNT(*) FROM meta")


def _thread_alive(tid: int) -> bool:
    """Whether the OS thread `tid` still runs (Linux: its /proc entry; elsewhere: Python's threads)."""
    if os.path.isdir("/proc/self/task"):
        return os.path.exists(f"/proc/self/task/{tid}")
    return any(t.native_id == tid and t.is_alive() for t in threading.enumerate())


def root_device_key(root_id: int) -> str:
    """The meta key of the device (st_dev) a root was last walked on (library/scan.py)."""
    return f"root_device:{root_id}"


class Store(StoreQueries):
    """The library database. Thread-safe: one connection per thread, one write lock."""

    def __init__(self, path: Path, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._write_lock = threading.RLock()
        self._connections: dict[int, sqlite3.Connection] = {}  # by OS thread id (see `conn`)
        self._conn_lock = threading.Lock()
        if read_only and not self.path.is_file():
            raise LibraryError(f"{self.path.parent} is read-only and holds no library yet.")
        self._migrate()
        self._probe()
        self._writes = generations.WriteCounter(self.generation)

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            conn = self._connect_read_only()
        else:
            conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=OFF")  # deletes are explicit and ordered below
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = f"file:{quote(str(self.path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A WAL database whose -shm file cannot be created in a read-only folder: nobody can be
            # writing it then, so read it as an immutable file.
            conn.close()
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        # Keyed by the OS thread, not threading.local: Qt's pool threads enter Python afresh for every
        # job (a new thread state, so an empty threading.local), and a connection per job was never
        # closed: 2 file descriptors and ~0.1 MB each, every 2 s once the app polled for other writers.
        tid = threading.get_native_id()
        with self._conn_lock:
            conn = self._connections.get(tid)
            if conn is None:
                for gone in [t for t in self._connections if not _thread_alive(t)]:  # threads come and go
                    self._connections.pop(gone).close()
                conn = self._connections[tid] = self._connect()
        return conn

    def close(self) -> None:
        with self._conn_lock:
            for conn in self._connections.values():
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""
        if self.read_only:
            raise LibraryError(f"The library folder {self.path.parent} is read-only: it can be searched, "
                               "not changed.")
        with self._write_lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                generation = None
                try:
                    yield conn
                    generation = self._writes.bump(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if generation is not None:
                        self._writes.rolled_back(generation)
                    raise
            except (sqlite3.OperationalError, OSError) as exc:
                if disk_is_full(exc):
                    raise LibraryError(disk_full_message(self.path.parent)) from exc
                raise

    # -- other writers --------------------------------------------------------------------
    def generation(self) -> int:
        """How many write transactions the library has committed (by any process)."""
        row = self.conn.execute(generations.READ).fetchone()
        return int(row[0]) if row else 0

    def changed_elsewhere(self) -> bool:
        """Whether another writer (another process, another Store) committed since the last call."""
        return self._writes.changed_elsewhere()

    # -- schema ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"{self.path} is not a FastSlow library database ({exc}).") from exc
        if version > SCHEMA_VERSION:
            raise LibraryError(
                f"{self.path} was written by a newer FastSlow (schema {version}; this one reads up to "
                f"{SCHEMA_VERSION}). Update FastSlow or use another library folder."
            )
        if version == SCHEMA_VERSION:
            return
        if self.read_only:
            raise LibraryError(f"{self.path} needs an upgrade but its folder is read-only.")
        if existed and version > 0:
            backup = self.path.with_name(f"{self.path.name}.v{version}.bak")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copy2(self.path, backup)
            logger.info("backed up the library database to %s before migrating", backup)
        while version < SCHEMA_VERSION:
            with self._write_lock:
                # executescript commits first; each step runs as one script then bumps the version.
                self.conn.executescript(
                    f"BEGIN IMMEDIATE;\n{_MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
                )
            version += 1
            logger.info("library database migrated to schema %d", version)

    def _probe(self) -> None:
        try:
            for sql in _PROBES:
                self.conn.execute(sql).fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise LibraryError(
                f"The library database {self.path} is damaged ({exc}). Restore it from a backup "
                f"(library.db.v*.bak if there is one), or move it away and run `fastslow index` to "
                "build the library again; your photos and videos are untouched.") from exc

    # -- meta -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- roots ----------------------------------------------------------------------------
    def roots(self) -> list[dict]:
        rows = self.conn.execute("SELECT id, path, excludes, online, added FROM roots ORDER BY path")
        return [{"id": r[0], "path": r[1], "excludes": json.loads(r[2]), "online": bool(r[3]), "added": r[4]}
                for r in rows]

    def add_root(self, path: str, excludes: Iterable[str] | None = None) -> int:
        """Insert a root, or update its exclusion patterns (kept as they are when `excludes` is None)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
            if row:
                if excludes is not None:
                    conn.execute("UPDATE roots SET excludes = ? WHERE id = ?", (json.dumps(list(excludes)), row[0]))
                return row[0]
            cur = conn.execute("INSERT INTO roots(path, excludes, online, added) VALUES (?, ?, 1, ?)",
                               (path, json.dumps(list(excludes or ())), time.time()))
            return int(cur.lastrowid)

    def set_root_online(self, root_id: int, online: bool) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE roots SET online = ? WHERE id = ?", (int(online), root_id))

    def merge_root_into(self, old_root: int, new_root: int) -> None:
        """A newly added parent folder absorbs a root inside it (keeping its media)."""
        with self.transaction() as conn:
            conn.execute("UPDATE media SET root_id = ? WHERE root_id = ?", (new_root, old_root))
            conn.execute("DELETE FROM roots WHERE id = ?", (old_root,))
            conn.execute("DELETE FROM meta WHERE key = ?", (root_device_key(old_root),))

    def delete_root(self, root_id: int) -> None:
        """Forget a root row (its media must be deleted first)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM roots WHERE id = ?", (root_id,))
            conn.execute("DELETE FROM meta WHERE key = ?", (root_device_key(root_id),))

    # -- media writes ---------------------------------------------------------------------
    def move_media(self, media_id: int, new_path: str, root_id: int, mtime: float) -> None:
        with self.transaction() as conn:
            # A capture time that was only the file's mtime follows the new mtime; a real one stays.
            conn.execute("UPDATE media SET path = ?, root_id = ?, mtime = ?, captured_at = CASE WHEN "
                         "coalesce(captured_source, 'mtime') = 'mtime' THEN ? ELSE captured_at END WHERE id = ?",
                         (db_path(new_path), root_id, mtime, mtime_iso(mtime), media_id))

    def delete_media(self, media_ids: list[int]) -> tuple[list[int], list[str]]:
        """Remove media with their segments and embeddings; returns (segment ids, thumbnail paths)."""
        seg_ids: list[int] = []
        thumbs: list[str] = []
        with self.transaction() as conn:
            for chunk, marks in chunks(media_ids):
                for sid, thumb in conn.execute(f"SELECT id, thumb FROM segments WHERE media_id IN ({marks})", chunk):
                    seg_ids.append(sid)
                    if thumb:
                        thumbs.append(thumb)
                conn.execute(f"DELETE FROM embeddings WHERE segment_id IN "
                             f"(SELECT id FROM segments WHERE media_id IN ({marks}))", chunk)
                conn.execute(f"DELETE FROM segments WHERE media_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM media WHERE id IN ({marks})", chunk)
        return seg_ids, thumbs

    def write_media(self, records: list[MediaRecord], model_id: str
                    ) -> tuple[list[int], np.ndarray, list[int], list[str]]:
        """Write decoded files in one transaction (replacing any previous state of the same paths).

        Returns (new segment ids, their vectors, replaced segment ids, replaced thumbnail paths)."""
        new_ids: list[int] = []
        vectors: list[np.ndarray] = []
        old_ids: list[int] = []
        old_thumbs: list[str] = []
        with self.transaction() as conn:
            for rec in records:
                media_id = self._upsert_media(conn, rec, old_ids, old_thumbs)
                for seg in rec.segments or []:
                    cur = conn.execute("INSERT INTO segments(media_id, t_start, t_end, thumb) VALUES (?,?,?,?)",
                                       (media_id, seg.t_start, seg.t_end, seg.thumb))
                    sid = int(cur.lastrowid)
                    if seg.vector is not None:
                        vec = np.ascontiguousarray(seg.vector, dtype=np.float32)
                        conn.execute("INSERT INTO embeddings(segment_id, model_id, vector) VALUES (?,?,?)",
                                     (sid, model_id, vec.tobytes()))
                        new_ids.append(sid)
                        vectors.append(vec)
        matrix = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
        return new_ids, matrix, old_ids, old_thumbs

    @staticmethod
    def _upsert_media(conn: sqlite3.Connection, rec: MediaRecord, old_ids: list[int], old_thumbs: list[str]) -> int:
        """The media row of `rec` (inserted or updated, its old segments deleted and reported)."""
        path = db_path(rec.path)
        row = conn.execute("SELECT id FROM media WHERE path = ?", (path,)).fetchone()
        captured_at = rec.captured_at or mtime_iso(rec.mtime)
        values = (rec.root_id, rec.kind, rec.size, rec.mtime, rec.hash, rec.width, rec.height,
                  rec.duration, rec.taken, "error" if rec.error else "ok", rec.error, time.time(),
                  captured_at, rec.captured_source if rec.captured_at else "mtime")
        if row is None:
            cur = conn.execute("INSERT INTO media(root_id, kind, size, mtime, hash, width, height, duration, "
                               "taken, status, error, indexed_at, captured_at, captured_source, path) "
                               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", values + (path,))
            return int(cur.lastrowid)
        media_id = row[0]
        for sid, thumb in conn.execute("SELECT id, thumb FROM segments WHERE media_id = ?", (media_id,)):
            old_ids.append(sid)
            if thumb:
                old_thumbs.append(thumb)
        conn.execute("DELETE FROM embeddings WHERE segment_id IN (SELECT id FROM segments WHERE media_id = ?)",
                     (media_id,))
        conn.execute("DELETE FROM segments WHERE media_id = ?", (media_id,))
        conn.execute("UPDATE media SET root_id=?, kind=?, size=?, mtime=?, hash=?, width=?, height=?, "
                     "duration=?, taken=?, status=?, error=?, indexed_at=?, captured_at=?, captured_source=? "
                     "WHERE id = ?", values + (media_id,))
        return media_id

    def mark_checked(self, media_ids: list[int], when: float) -> None:
        """Files whose content was found unchanged at `when` (they are not checked again until they change)."""
        with self.transaction() as conn:
            for chunk, marks in chunks(media_ids):
                conn.execute(f"UPDATE media SET indexed_at = ? WHERE id IN ({marks})", (when, *chunk))

    def set_capture_times(self, items: list[tuple[str, str, int]]) -> None:
        """(captured_at, captured_source, media id) triples for rows indexed before capture times."""
        with self.transaction() as conn:
            conn.executemany("UPDATE media SET captured_at = ?, captured_source = ? WHERE id = ?", items)

    def write_embeddings(self, items: list[tuple[int, np.ndarray]], model_id: str) -> None:
        """Embeddings for existing segments under another model (re-embedding after a model change)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings(segment_id, model_id, vector) VALUES (?,?,?)",
                [(sid, model_id, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for sid, v in items])

    def drop_models_except(self, model_id: str) -> list[str]:
        with self.transaction() as conn:
            others = [r[0] for r in conn.execute("SELECT DISTINCT model_id FROM embeddings WHERE model_id != ?",
                                                  (model_id,))]
            conn.execute("DELETE FROM embeddings WHERE model_id != ?", (model_id,))
        return others
