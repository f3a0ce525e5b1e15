"""Typed access to the app's persisted settings (QSettings): models, device, K, β, library, folders, UI state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "FastSlow"
APPLICATION = "FastSlow"
# A new library for a person's own folders (presets.json default_for_new_library); an existing library
# keeps the models it remembers (library/models_spec.py), whatever this says.
DEFAULT_MODELS = "balanced"
DEVICES = ("auto", "cpu", "cuda")


def _as_bool(value, default: bool) -> bool:
    # INI-backed QSettings give strings back ("true"/"false"); native backends give bools.
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _as_list(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class AppSettings:
    """Wraps one QSettings store; the composition root makes it, tests point it at a temporary file."""

    def __init__(self, store: QSettings | None = None):
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    @classmethod
    def at(cls, path: str | Path) -> AppSettings:
        """Settings kept in an INI file (tests, portable installs)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    def _get(self, key: str, default=None):
        return self.store.value(key, default)

    def _set(self, key: str, value) -> None:
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()

    # -- models and search ----------------------------------------------------------------
    @property
    def models(self) -> str:
        """The models last chosen (a preset name such as "balanced", or a bundle folder): used for a new
        library; a library that remembers its own models opens with those."""
        return str(self._get("models/spec", DEFAULT_MODELS) or DEFAULT_MODELS)

    @models.setter
    def models(self, value: str) -> None:
        self._set("models/spec", value)

    @property
    def device(self) -> str:
        value = str(self._get("models/device", "auto"))
        return value if value in DEVICES else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self._set("models/device", value)

    @property
    def k(self) -> int | None:
        """Candidates the slow model re-ranks; None: the bundle's own choice."""
        value = self._get("search/k", None)
        return int(value) if value not in (None, "", 0, "0") else None

    @k.setter
    def k(self, value: int | None) -> None:
        self._set("search/k", int(value) if value else 0)

    @property
    def beta(self) -> float | None:
        """Weight of the fast score in the final score; None: the bundle's own choice."""
        value = self._get("search/beta", None)
        return float(value) if value not in (None, "") else None

    @beta.setter
    def beta(self, value: float | None) -> None:
        if value is None:
            self.store.remove("search/beta")
        else:
            self._set("search/beta", float(value))

    # -- library --------------------------------------------------------------------------
    @property
    def library(self) -> str:
        """The library folder; empty: the platform default (or FASTSLOW_LIBRARY)."""
        return str(self._get("library/folder", "") or "")

    @library.setter
    def library(self, value: str) -> None:
        self._set("library/folder", value)

    @property
    def exclusions(self) -> list[str]:
        """Glob patterns skipped in every library folder (e.g. "*.tmp", "node_modules")."""
        return _as_list(self._get("library/exclusions", []))

    @exclusions.setter
    def exclusions(self, value: list[str]) -> None:
        self._set("library/exclusions", [v for v in value if v.strip()])

    @property
    def watching(self) -> bool:
        return _as_bool(self._get("library/watching", True), True)

    @watching.setter
    def watching(self, value: bool) -> None:
        self._set("library/watching", bool(value))

    # -- window state ---------------------------------------------------------------------
    @property
    def geometry(self) -> QByteArray | None:
        value = self._get("window/geometry", None)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self._set("window/geometry", value)

    @property
    def window_state(self) -> QByteArray | None:
        value = self._get("window/state", None)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @window_state.setter
    def window_state(self, value: QByteArray) -> None:
        self._set("window/state", value)

    @property
    def last_query(self) -> str:
        return str(self._get("window/last_query", "") or "")

    @last_query.setter
    def last_query(self, value: str) -> None:
        self._set("window/last_query", value)

    @property
    def last_query_library(self) -> str:
        """The library folder the last query was typed in (it is restored only there)."""
        return str(self._get("window/last_query_library", "") or "")

    @last_query_library.setter
    def last_query_library(self, value: str) -> None:
        self._set("window/last_query_library", value)

    @property
    def welcomed(self) -> bool:
        return _as_bool(self._get("window/welcomed", False), False)

    @welcomed.setter
    def welcomed(self, value: bool) -> None:
        self._set("window/welcomed", bool(value))
