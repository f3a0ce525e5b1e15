"""What the app runs on: the configuration chosen at start-up and the services built from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ServiceConfig:
    """Everything needed to (re)build the services; from the command line, then Settings."""

    library_dir: Path
    models: str = "synthscenes"  # a preset name or a bundle folder
    device: str = "auto"
    k: int | None = None  # None: the bundle's choice
    beta: float | None = None  # None: the bundle's choice
    exclusions: list[str] = field(default_factory=list)
    watching: bool = True


@dataclass
class Services:
    """Built once per configuration, in the start-up worker; the GUI only passes them around."""

    library: Any  # fastslow_desktop.library.Library
    models: Any  # fastslow_desktop.models.Models
    engine: Any  # fastslow_desktop.search.SearchEngine
    presets: list[str] = field(default_factory=list)  # model presets this install knows


# (library, models) -> engine; the default imports fastslow_desktop.search lazily (torch).
EngineFactory = Callable[[Any, Any], Any]


def default_engine_factory(library, models):
    from fastslow_desktop.search import SearchEngine

    return SearchEngine(library, models)


def default_request_factory(**fields):
    from fastslow_desktop.search import SearchRequest

    return SearchRequest(**fields)
