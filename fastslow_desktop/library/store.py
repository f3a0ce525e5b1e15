"""The library database (SQLite through sqlite-utils, WAL): roots, media, segments, embeddings.

SQLite is the source of truth; the HNSW file is a cache of the embeddings table. Every write that
matters happens in one transaction, so a process killed at any moment leaves either the old or the
new state of a file, never half of it. One connection per thread (WAL lets readers run while the
indexer writes); writes from this process are serialised by a lock.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class LibraryError(Exception):
    """Something is wrong with the library folder that the user can act on."""


# Step-by-step migrations: MIGRATIONS[n] takes a database at version n to n + 1.
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
}


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


class Store:
    """The library database. Thread-safe: one connection per thread, one write lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conn_lock = threading.Lock()
        self._migrate()

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=OFF")  # deletes are explicit and ordered below
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conn_lock:
                # Threads come and go (worker pools, watcher batches): close their connections.
                for _thread, old in [c for c in self._connections if not c[0].is_alive()]:
                    old.close()
                self._connections = [c for c in self._connections if c[0].is_alive()]
                self._connections.append((threading.current_thread(), conn))
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self.conn)
            self._local.db = db
        return db

    def close(self) -> None:
        with self._conn_lock:
            for _, conn in self._connections:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""
        with self._write_lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

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
        rows = self.db.query("SELECT id, path, excludes, online, added FROM roots ORDER BY path")
        return [dict(r, excludes=json.loads(r["excludes"]), online=bool(r["online"])) for r in rows]

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

    def delete_root(self, root_id: int) -> list[int]:
        """Forget a root and everything under it; returns the removed segment ids."""
        with self.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT s.id FROM segments s JOIN media m ON m.id = s.media_id WHERE m.root_id = ?", (root_id,))]
            conn.execute("DELETE FROM embeddings WHERE segment_id IN "
                         "(SELECT s.id FROM segments s JOIN media m ON m.id = s.media_id WHERE m.root_id = ?)",
                         (root_id,))
            conn.execute("DELETE FROM segments WHERE media_id IN (SELECT id FROM media WHERE root_id = ?)",
                         (root_id,))
            conn.execute("DELETE FROM media WHERE root_id = ?", (root_id,))
            conn.execute("DELETE FROM roots WHERE id = ?", (root_id,))
        return ids

    # -- media ----------------------------------------------------------------------------
    def media_under(self, root_id: int | None = None, prefix: str | None = None) -> dict[str, MediaRow]:
        """Media rows of a root, or whose path is `prefix` or lies under it, keyed by path."""
        sql = "SELECT id, root_id, path, kind, size, mtime, hash, status, error FROM media"
        if prefix is not None:
            base = prefix.rstrip(os.sep) or os.sep
            under = base.rstrip(os.sep) + os.sep  # substr, not LIKE: LIKE ignores case and needs escaping
            rows = self.conn.execute(sql + " WHERE path = ? OR substr(path, 1, ?) = ?",
                                     (base, len(under), under)).fetchall()
        elif root_id is not None:
            rows = self.conn.execute(sql + " WHERE root_id = ?", (root_id,)).fetchall()
        else:
            rows = self.conn.execute(sql).fetchall()
        return {r[2]: MediaRow(*r) for r in rows}

    def media_missing_model(self, model_id: str) -> list[MediaRow]:
        """Indexed media with at least one segment that has no embedding for `model_id`."""
        rows = self.conn.execute(
            "SELECT DISTINCT m.id, m.root_id, m.path, m.kind, m.size, m.mtime, m.hash, m.status, m.error "
            "FROM media m JOIN segments s ON s.media_id = m.id "
            "LEFT JOIN embeddings e ON e.segment_id = s.id AND e.model_id = ? "
            "WHERE m.status = 'ok' AND e.segment_id IS NULL", (model_id,)).fetchall()
        return [MediaRow(*r) for r in rows]

    def segments_of(self, media_id: int) -> list[dict]:
        return list(self.db.query("SELECT id, t_start, t_end, thumb FROM segments WHERE media_id = ? ORDER BY id",
                                  [media_id]))

    def move_media(self, media_id: int, new_path: str, root_id: int, mtime: float) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE media SET path = ?, root_id = ?, mtime = ? WHERE id = ?",
                         (new_path, root_id, mtime, media_id))

    def delete_media(self, media_ids: list[int]) -> tuple[list[int], list[str]]:
        """Remove media with their segments and embeddings; returns (segment ids, thumbnail paths)."""
        seg_ids: list[int] = []
        thumbs: list[str] = []
        with self.transaction() as conn:
            for start in range(0, len(media_ids), 500):
                chunk = media_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for sid, thumb in conn.execute(f"SELECT id, thumb FROM segments WHERE media_id IN ({marks})", chunk):
                    seg_ids.append(sid)
                    if thumb:
                        thumbs.append(thumb)
                conn.execute(f"DELETE FROM embeddings WHERE segment_id IN "
                             f"(SELECT id FROM segments WHERE media_id IN ({marks}))", chunk)
                conn.execute(f"DELETE FROM segments WHERE media_id IN ({marks})", chunk)
                conn.execute(f"DELETE FROM media WHERE id IN ({marks})", chunk)
        return seg_ids, thumbs

    def write_media(self, records: list[MediaRecord], model_id: str) -> tuple[list[int], np.ndarray, list[int], list[str]]:
        """Write decoded files in one transaction (replacing any previous state of the same paths).

        Returns (new segment ids, their vectors, replaced segment ids, replaced thumbnail paths)."""
        new_ids: list[int] = []
        vectors: list[np.ndarray] = []
        old_ids: list[int] = []
        old_thumbs: list[str] = []
        now = time.time()
        with self.transaction() as conn:
            for rec in records:
                row = conn.execute("SELECT id FROM media WHERE path = ?", (rec.path,)).fetchone()
                status = "error" if rec.error else "ok"
                values = (rec.root_id, rec.kind, rec.size, rec.mtime, rec.hash, rec.width, rec.height,
                          rec.duration, rec.taken, status, rec.error, now)
                if row:
                    media_id = row[0]
                    for sid, thumb in conn.execute("SELECT id, thumb FROM segments WHERE media_id = ?", (media_id,)):
                        old_ids.append(sid)
                        if thumb:
                            old_thumbs.append(thumb)
                    conn.execute("DELETE FROM embeddings WHERE segment_id IN "
                                 "(SELECT id FROM segments WHERE media_id = ?)", (media_id,))
                    conn.execute("DELETE FROM segments WHERE media_id = ?", (media_id,))
                    conn.execute("UPDATE media SET root_id=?, kind=?, size=?, mtime=?, hash=?, width=?, height=?, "
                                 "duration=?, taken=?, status=?, error=?, indexed_at=? WHERE id = ?",
                                 values + (media_id,))
                else:
                    cur = conn.execute("INSERT INTO media(root_id, kind, size, mtime, hash, width, height, duration, "
                                       "taken, status, error, indexed_at, path) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                       values + (rec.path,))
                    media_id = cur.lastrowid
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

    # -- reads for search -----------------------------------------------------------------
    def model_ids(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id").fetchall())

    def embedding_ids(self, model_id: str) -> np.ndarray:
        rows = self.conn.execute("SELECT segment_id FROM embeddings WHERE model_id = ?", (model_id,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, model_id: str, ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(segment ids, (n, d) float32 vectors) for a model; all of them, or those in `ids`."""
        if ids is None:
            rows = self.conn.execute("SELECT segment_id, vector FROM embeddings WHERE model_id = ? "
                                     "ORDER BY segment_id", (model_id,)).fetchall()
        else:
            rows = []
            ids = list(ids)
            for start in range(0, len(ids), 500):
                chunk = [int(i) for i in ids[start:start + 500]]
                rows += self.conn.execute(
                    f"SELECT segment_id, vector FROM embeddings WHERE model_id = ? AND segment_id IN "
                    f"({','.join('?' * len(chunk))})", [model_id, *chunk]).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        seg_ids = np.array([r[0] for r in rows], dtype=np.int64)
        return seg_ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def segment_rows(self, ids: Iterable[int]) -> dict[int, dict]:
        ids = [int(i) for i in ids]
        out: dict[int, dict] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            sql = ("SELECT s.id AS segment_id, s.media_id, s.t_start, s.t_end, s.thumb, m.path, m.kind, m.taken, "
                   "m.mtime, m.size, m.width, m.height, m.duration, r.path AS root, r.online "
                   "FROM segments s JOIN media m ON m.id = s.media_id JOIN roots r ON r.id = m.root_id "
                   f"WHERE s.id IN ({','.join('?' * len(chunk))})")
            for row in self.db.query(sql, chunk):
                out[row["segment_id"]] = row
        return out

    def segment_ids(self, kind: str | None = None, model_id: str | None = None) -> np.ndarray:
        sql = "SELECT s.id FROM segments s JOIN media m ON m.id = s.media_id"
        args: list = []
        if model_id:
            sql += " JOIN embeddings e ON e.segment_id = s.id AND e.model_id = ?"
            args.append(model_id)
        if kind:
            sql += " WHERE m.kind = ?"
            args.append(kind)
        rows = self.conn.execute(sql, args).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def counts(self) -> dict:
        q = self.conn.execute
        return {
            "roots": q("SELECT COUNT(*) FROM roots").fetchone()[0],
            "media": q("SELECT COUNT(*) FROM media WHERE status = 'ok'").fetchone()[0],
            "images": q("SELECT COUNT(*) FROM media WHERE status = 'ok' AND kind = 'image'").fetchone()[0],
            "videos": q("SELECT COUNT(*) FROM media WHERE status = 'ok' AND kind = 'video'").fetchone()[0],
            "segments": q("SELECT COUNT(*) FROM segments").fetchone()[0],
        }

    def root_counts(self) -> dict[int, dict]:
        rows = self.conn.execute(
            "SELECT root_id, COUNT(*), SUM(status = 'ok'), SUM(status = 'error') FROM media GROUP BY root_id")
        return {r[0]: {"n_media": r[1], "n_indexed": r[2] or 0, "n_errors": r[3] or 0} for r in rows}

    def failures(self) -> list[dict]:
        return [{"path": r[0], "error": r[1]} for r in
                self.conn.execute("SELECT path, error FROM media WHERE status = 'error' ORDER BY path")]

    def failed_before(self, when: float) -> set[str]:
        """Paths of failed media whose last attempt was before `when` (a time.time() value)."""
        return {r[0] for r in self.conn.execute(
            "SELECT path FROM media WHERE status = 'error' AND (indexed_at IS NULL OR indexed_at < ?)", (when,))}

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
