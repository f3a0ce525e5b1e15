"""Which models a library uses: the spec (preset name or bundle folder) it remembers in its meta table.

A new library for a person's own folders gets the catalogue's default (`balanced`); an existing one
keeps the models it was indexed with, so `fastslow index` / `search` / the app need no `--models`.
Two keys: `models_spec` is the spec the library is moving to (the last one indexed with; an index
run without `--models` continues with it), and `models_spec:<model id>` maps each model id whose
embeddings the library holds to its spec (search loads the spec of the serving model, so the old
embeddings keep answering while a new model re-embeds). Read without opening the library for
writing and without importing torch: the CLI and the app decide which models to load first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..catalog import LibraryError, LibraryPaths

TARGET_KEY = "models_spec"
SERVING_KEY = "serving_model"  # catalog.SERVING_MODEL: the model id whose embeddings answer searches


def spec_key(model_id: str) -> str:
    return f"{TARGET_KEY}:{model_id}"


def _read_meta(folder: Path) -> dict[str, str]:
    """The library's meta table ({} for a folder with no library yet or one this cannot read)."""
    db = LibraryPaths(Path(folder)).db
    if not db.is_file():
        return {}
    try:
        conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = conn.execute("SELECT key, value FROM meta").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:  # damaged or locked: opening the library later says so properly
        return {}
    return {key: value for key, value in rows if value is not None}


def inferred_spec(model_id: str | None) -> str | None:
    """The spec of a library indexed before specs were remembered, from its serving model id."""
    if not model_id:
        return None
    from ..models import presets

    head, _, rest = model_id.partition(":")
    if head == "open_clip":  # open_clip:MODEL:PRETRAINED — a hub preset with that fast model
        model, _, pretrained = rest.partition(":")
        for name in presets.names():
            fast = (presets.entry(name) or {}).get("fast") or {}
            if fast.get("model") == model and (fast.get("pretrained") or "") == pretrained:
                return name
        return None
    entry = presets.entry(head)  # NAME:sha — a bundle; only the shipped ones can be named again
    return head if entry is not None and "bundle" in entry else None


def stored_spec(folder: str | Path, for_search: bool = False) -> str | None:
    """The models spec a library remembers: for search the serving model's, for indexing the target."""
    meta = _read_meta(Path(folder))
    serving = meta.get(SERVING_KEY)
    serving_spec = meta.get(spec_key(serving)) if serving else None
    if for_search and serving_spec:
        return serving_spec
    return meta.get(TARGET_KEY) or serving_spec or inferred_spec(serving)


def has_embeddings(folder: str | Path) -> bool:
    return SERVING_KEY in _read_meta(Path(folder))


def choose_spec(folder: str | Path, given: str | None, for_search: bool = False) -> str:
    """`given` (--models, Settings) first, then what the library remembers, then the default for a
    new library. Raises LibraryError for a library whose models cannot be told (give --models)."""
    if given:
        return given
    remembered = stored_spec(folder, for_search)
    if remembered:
        return remembered
    if has_embeddings(folder):
        raise LibraryError(f"The library at {folder} does not say which models it was indexed with. "
                           "Give them with --models PATH (or a preset; `fastslow models` lists them).")
    from ..models.presets import default_for_new_library

    return default_for_new_library()


def remember_spec(catalog, spec: str, model_id: str) -> None:
    """Record that this library now indexes with `spec` (whose embeddings have id `model_id`)."""
    store = catalog.store
    if store.get_meta(TARGET_KEY) == spec and store.get_meta(spec_key(model_id)) == spec:
        return
    with catalog.writing():
        store.set_meta(TARGET_KEY, spec)
        store.set_meta(spec_key(model_id), spec)
