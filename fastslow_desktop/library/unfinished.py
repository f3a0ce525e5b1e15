"""Index runs that did not finish (killed, crashed, stopped by the user) are recorded in the library, so that
another process using it (the app, open while `fastslow index` ran in a terminal) can finish their work."""

from __future__ import annotations

import json

from ..catalog.store import Store

UNFINISHED = "unfinished_run"  # meta key: JSON, null for a run over the whole library, else the paths it covered


def _covered(store: Store) -> list[str] | None | bool:
    """The paths the recorded unfinished run covered (None: the whole library); False when there is none."""
    value = store.get_meta(UNFINISHED)
    if value is None:
        return False
    try:
        scope = json.loads(value)
    except ValueError:
        return None  # unreadable: assume the worst, everything
    return scope if isinstance(scope, list) else None


def run_started(store: Store, scope: list[str] | None) -> None:
    """Before a run's first write: from now on the library says a run is unfinished, until one covering at
    least as much completes. Two runs that both stop early leave the union of their paths."""
    before = _covered(store)
    if before is False:
        widened = scope
    elif before is None or scope is None:
        widened = None
    else:
        widened = sorted(set(before) | set(scope))
    if before is False or widened != before:
        store.set_meta(UNFINISHED, json.dumps(widened))


def run_completed(store: Store, scope: list[str] | None) -> None:
    """A run went through all its work: it finished what an earlier one left when it covered those paths."""
    before = _covered(store)
    if before is not False and (scope is None or (before is not None and set(before) <= set(scope))):
        store.set_meta(UNFINISHED, None)


def left_unfinished(store: Store) -> bool:
    """Whether a run stopped before it went through its work and no later run finished it."""
    return _covered(store) is not False
