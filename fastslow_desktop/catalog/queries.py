"""Read queries of the library database (a mixin of `Store`): media, segments, vectors, counts."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

import numpy as np

from .records import MediaRow, chunks, db_path, py_path

_MEDIA_COLUMNS = "id, root_id, path, kind, size, mtime, hash, status, error, indexed_at"


def _media_row(row: tuple) -> MediaRow:
    return MediaRow(row[0], row[1], py_path(row[2]), *row[3:])


def under_clause(prefix: str, column: str = "path") -> tuple[str, list]:
    """SQL (and its arguments) true for a path that is `prefix` or lies under it."""
    base = prefix.rstrip(os.sep) or os.sep
    under = base.rstrip(os.sep) + os.sep  # substr, not LIKE: LIKE ignores case and needs escaping
    raw_base, raw_under = os.fsencode(base), os.fsencode(under)
    # Paths that are not UTF-8 are BLOBs (records.db_path): match them byte-wise as well.
    sql = (f"({column} = ? OR substr({column}, 1, ?) = ? OR {column} = ? OR substr({column}, 1, ?) = ?)")
    args: list = [raw_base, len(raw_under), raw_under] * 2
    if isinstance(db_path(under), str):
        args[:3] = [base, len(under), under]
    return sql, args


class StoreQueries:
    """Reads; `conn` is the calling thread's connection (provided by `Store`)."""

    conn: sqlite3.Connection

    def media_under(self, root_id: int | None = None, prefix: str | None = None) -> dict[str, MediaRow]:
        """Media rows of a root, or whose path is `prefix` or lies under it, keyed by path."""
        sql = f"SELECT {_MEDIA_COLUMNS} FROM media"
        if prefix is not None:
            where, args = under_clause(prefix)
            rows = self.conn.execute(f"{sql} WHERE {where}", args).fetchall()
        elif root_id is not None:
            rows = self.conn.execute(sql + " WHERE root_id = ?", (root_id,)).fetchall()
        else:
            rows = self.conn.execute(sql).fetchall()
        return {py_path(r[2]): _media_row(r) for r in rows}

    def media_missing_model(self, model_id: str) -> list[MediaRow]:
        """Indexed media with at least one segment that has no embedding for `model_id`."""
        # Every run asks (twice); two index counts answer the usual "none" without the join.
        segments = self.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        embedded = self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)).fetchone()[0]
        if segments == embedded:
            return []
        rows = self.conn.execute(
            "SELECT DISTINCT m.id, m.root_id, m.path, m.kind, m.size, m.mtime, m.hash, m.status, m.error "
            "FROM media m JOIN segments s ON s.media_id = m.id "
            "LEFT JOIN embeddings e ON e.segment_id = s.id AND e.model_id = ? "
            "WHERE m.status = 'ok' AND e.segment_id IS NULL", (model_id,)).fetchall()
        return [_media_row(r) for r in rows]

    def segments_of(self, media_id: int) -> list[dict]:
        cur = self.conn.execute("SELECT id, t_start, t_end, thumb FROM segments WHERE media_id = ? ORDER BY id",
                                (media_id,))
        return [dict(zip(("id", "t_start", "t_end", "thumb"), row)) for row in cur]

    def model_ids(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id").fetchall())

    def embedding_ids(self, model_id: str) -> np.ndarray:
        rows = self.conn.execute("SELECT segment_id FROM embeddings WHERE model_id = ?", (model_id,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def embedding_dim(self, model_id: str) -> int | None:
        row = self.conn.execute("SELECT length(vector) FROM embeddings WHERE model_id = ? LIMIT 1",
                                (model_id,)).fetchone()
        return None if row is None else int(row[0]) // 4

    def vectors(self, model_id: str, ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(segment ids, (n, d) float32 vectors) for a model; all of them, or those in `ids`."""
        if ids is None:
            rows = self.conn.execute("SELECT segment_id, vector FROM embeddings WHERE model_id = ? "
                                     "ORDER BY segment_id", (model_id,)).fetchall()
        else:
            rows = []
            for chunk, marks in chunks(list(ids)):
                rows += self.conn.execute(f"SELECT segment_id, vector FROM embeddings WHERE model_id = ? "
                                          f"AND segment_id IN ({marks})", [model_id, *chunk]).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        seg_ids = np.array([r[0] for r in rows], dtype=np.int64)
        return seg_ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def segment_rows(self, ids: Iterable[int]) -> dict[int, tuple]:
        """Segment id -> (segment_id, media_id, path, kind, t_start, t_end, taken, mtime, size, width,
        height, duration, root, online, thumb, captured_at, captured_source): SegmentInfo's order.
        Plain tuples: every query reads these for its whole shortlist."""
        out: dict[int, tuple] = {}
        for chunk, marks in chunks(list(ids)):
            sql = ("SELECT s.id, s.media_id, m.path, m.kind, s.t_start, s.t_end, m.taken, m.mtime, m.size, "
                   "m.width, m.height, m.duration, r.path, r.online, s.thumb, m.captured_at, m.captured_source "
                   "FROM segments s JOIN media m ON m.id = s.media_id JOIN roots r ON r.id = m.root_id "
                   f"WHERE s.id IN ({marks})")
            for row in self.conn.execute(sql, chunk):
                out[row[0]] = row
        return out

    def media_count(self) -> int:
        """Rows of media, failed files included: a plain COUNT(*) is answered from the b-tree (0.04 ms
        at 100 000 rows) where a status filter scans the table (28 ms), and a few failed files barely
        move what this is for (segments per file)."""
        return self.conn.execute("SELECT COUNT(*) FROM media").fetchone()[0]

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

    def filtered_segment_ids(self, kind: str | None = None, folder: str | None = None,
                             captured_from: str | None = None, captured_before: str | None = None,
                             model_id: str | None = None) -> np.ndarray:
        """Ids of segments of one kind, under a folder, captured in [captured_from, captured_before)
        (ISO texts, compared as strings like the stored local capture times); all in one query."""
        # CROSS JOIN fixes the loop order: media first, so a date range walks the capture-time index
        # (left to itself, without ANALYZE statistics, SQLite starts from the model's every embedding),
        # and the covering (model, segment) index answers "has a vector" without reading the vector rows.
        sql = "SELECT s.id FROM media m CROSS JOIN segments s ON s.media_id = m.id"
        args: list = []
        if model_id:
            sql += " CROSS JOIN embeddings e INDEXED BY embeddings_model ON e.segment_id = s.id AND e.model_id = ?"
            args.append(model_id)
        where: list[str] = []
        if kind:
            where.append("m.kind = ?")
            args.append(kind)
        if folder:
            clause, folder_args = under_clause(folder, "m.path")
            where.append(clause)
            args += folder_args
        if captured_from:
            where.append("m.captured_at >= ?")
            args.append(captured_from)
        if captured_before:
            where.append("m.captured_at < ?")
            args.append(captured_before)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.conn.execute(sql, args).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def media_without_capture_source(self) -> list[tuple[int, str, str, float, str | None]]:
        """(id, path, kind, mtime, taken) of rows indexed before capture times were read."""
        rows = self.conn.execute("SELECT id, path, kind, mtime, taken FROM media INDEXED BY media_uncaptured "
                                 "WHERE captured_source IS NULL")
        return [(r[0], py_path(r[1]), *r[2:]) for r in rows]

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
        return [{"path": py_path(r[0]), "error": r[1]} for r in
                self.conn.execute("SELECT path, error FROM media WHERE status = 'error' ORDER BY path")]

    def failed_before(self, when: float) -> set[str]:
        """Paths of failed media whose last attempt was before `when` (a time.time() value)."""
        return {py_path(r[0]) for r in self.conn.execute(
            "SELECT path FROM media WHERE status = 'error' AND (indexed_at IS NULL OR indexed_at < ?)", (when,))}

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
