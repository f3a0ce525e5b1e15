"""A count of the library's committed writes, so that a process notices another process's writes.

Every write transaction bumps the `generation` row of the meta table by one, inside the transaction.
Generations are consecutive, so when the current value is ahead of the last one seen by more than
the number of this process's own commits in between, another writer (e.g. `fastslow index` while
the app runs) has changed the library.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

_BUMP = ("INSERT INTO meta(key, value) VALUES ('generation', '1') ON CONFLICT(key) "
         "DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value")
READ = "SELECT value FROM meta WHERE key = 'generation'"


class WriteCounter:
    """This process's view of the generation: its own commits and the last value it saw."""

    def __init__(self, read: Callable[[], int]):
        self._read = read
        self._lock = threading.Lock()
        self._own: set[int] = set()
        self._seen = read()

    def bump(self, conn: sqlite3.Connection) -> int:
        """Count the open transaction on `conn`; it is known as this process's own before it commits,
        so `changed_elsewhere` never takes it for another writer's."""
        generation = int(conn.execute(_BUMP).fetchone()[0])
        with self._lock:
            self._own.add(generation)
        return generation

    def rolled_back(self, generation: int) -> None:
        with self._lock:
            self._own.discard(generation)

    def changed_elsewhere(self) -> bool:
        """Whether another writer committed since the last call (one row read: cheap enough to poll)."""
        current = self._read()
        with self._lock:
            seen, self._seen = self._seen, max(current, self._seen)
            own = sum(1 for g in self._own if seen < g <= current)
            self._own = {g for g in self._own if g > current}
        return current - seen > own
