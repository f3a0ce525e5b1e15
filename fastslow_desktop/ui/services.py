"""What the app runs on: the configuration chosen at start-up and the services built from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real types import torch; the GUI imports this module at start-up
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import Models
    from fastslow_desktop.search import SearchEngine, SearchRequest


@dataclass(frozen=True)
class ServiceConfig:
    """Everything needed to (re)build the services; from the command line, then Settings.

    Frozen: a change is a new config (`dataclasses.replace`), so a running job never sees it move.
    """

    library_dir: Path
    models: str = "balanced"  # a preset name or a bundle folder (settings.DEFAULT_MODELS)
    device: str = "auto"
    k: int | None = None  # None: the bundle's choice
    beta: float | None = None  # None: the bundle's choice
    exclusions: list[str] = field(default_factory=list)
    watching: bool = True


@dataclass(frozen=True)
class Services:
    """Built once per configuration, in the start-up worker; the GUI only passes them around.

    The models' configs are never changed after loading: K and β travel in each SearchRequest.
    """

    library: Library
    models: Models
    engine: SearchEngine
    presets: tuple[str, ...] = ()  # model presets this install knows
    # The models the library is re-embedding with, when they differ from `models` (which answer
    # searches from the library's current embeddings until the re-embedding is complete).
    reembedding: Models | None = None
    has_folders: bool = False  # the library has folders to keep up to date


# (library, models) -> engine; the default imports fastslow_desktop.search lazily (torch).
EngineFactory = Callable[["Library", "Models"], "SearchEngine"]


def default_engine_factory(library: Library, models: Models) -> SearchEngine:
    from fastslow_desktop.search import SearchEngine

    return SearchEngine(library, models)


def default_request_factory(**fields) -> SearchRequest:
    from fastslow_desktop.search import SearchRequest

    return SearchRequest(**fields)
