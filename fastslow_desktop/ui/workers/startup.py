"""Start-up job: import the ML stack, open the models and the library, warm the models up (seconds)."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..services import EngineFactory, ServiceConfig, Services

logger = logging.getLogger(__name__)


@dataclass
class StartupStep:
    """A progress event of the start-up job; `library` arrives before the models are warm."""

    message: str
    library: object | None = None


@dataclass
class NeedsDownload:
    """The chosen preset's weights are not on disk: the GUI asks before fetching them."""

    models: object  # fastslow_desktop.models.Models
    repos: list[str]


@dataclass
class StartupFailed:
    """Models or library could not be opened; `offline` when weights cannot be downloaded now."""

    message: str
    offline: bool = False


@dataclass
class StartupCancelled:
    """The app is closing: start-up stopped between steps."""


def load_services(config: ServiceConfig, engine_factory: EngineFactory, cancel: threading.Event,
                  progress: Callable[[StartupStep], None], skip_download_check: bool = False):
    """Runs in a pool thread. Returns Services, NeedsDownload, StartupFailed or StartupCancelled
    (never raises for problems a user can fix, so the GUI can say what to do)."""
    t0 = time.perf_counter()
    progress(StartupStep("Loading the search models…"))
    # Heavy imports happen here, off the GUI thread: torch + open_clip take seconds.
    from fastslow_desktop.library import Library, LibraryError
    from fastslow_desktop.models import ModelError, ModelUnavailableError, list_presets, load_bundle

    if cancel.is_set():  # the imports cannot be interrupted; every later step can be skipped
        return StartupCancelled()
    try:
        models = load_bundle(config.models, device=config.device)
    except ModelError as exc:
        return StartupFailed(str(exc), offline=isinstance(exc, ModelUnavailableError))
    if not skip_download_check:
        try:
            repos = models.needs_download()
        except ModelError as exc:
            return StartupFailed(str(exc), offline=isinstance(exc, ModelUnavailableError))
        if repos:
            return NeedsDownload(models, repos)
    if cancel.is_set():
        return StartupCancelled()
    _load_in_background(models)
    try:
        library = Library.open(config.library_dir, models)
    except (LibraryError, OSError) as exc:
        return StartupFailed(f"Cannot open the library at {config.library_dir}: {exc}")
    progress(StartupStep("Opening the library…", library=library))
    if cancel.is_set():
        library.close()
        return StartupCancelled()
    search_models, moving = serving_models(library, models, config.device)
    try:
        # What embeds the typed text: the lean ONNX text tower when one is exported for these weights
        # (no torch: the app answers its first query before torch has loaded), else the fast encoder.
        # The first call builds kernels; the user's first query should not pay for it.
        search_models.text_encoder.encode_texts(["warm up"])
        engine = engine_factory(library, search_models)
    except ModelError as exc:
        library.close()
        return StartupFailed(str(exc), offline=isinstance(exc, ModelUnavailableError))
    logger.info("fast model ready in %.1f s", time.perf_counter() - t0)
    settle_heap()
    return Services(library, search_models, engine, presets=tuple(list_presets()),
                    reembedding=models if moving else None, has_folders=library.has_folders)


def _load_in_background(models) -> None:
    """Start loading what will embed the typed text (an ONNX Runtime session, or the torch fast model)
    while the library opens: `Models.text_encoder` builds it once under a lock, so the start-up job's
    own call below waits for this one instead of building it twice. A failure here is left to that
    call, which reports it."""
    def load() -> None:
        try:
            models.text_encoder
        except Exception:  # noqa: BLE001 - reported by the start-up job's own call
            logger.debug("text encoder: background load failed; the start-up job retries", exc_info=True)

    threading.Thread(target=load, name="fastslow-text-encoder", daemon=True).start()


def serving_models(library, models, device: str) -> tuple[object, bool]:
    """(the models whose embeddings answer this library's searches, whether the library is moving to
    `models` from others). While it moves, the others answer (loaded from the spec the library
    remembers for them, when they are on disk); otherwise searches wait for the re-embedding."""
    from fastslow_desktop.library.models_spec import inferred_spec, spec_key
    from fastslow_desktop.models import ModelError, load_bundle

    serving = library.catalog.serving_model_id()
    if serving is None or serving == models.model_id:
        return models, False
    spec = library.catalog.store.get_meta(spec_key(serving)) or inferred_spec(serving)
    try:
        old = load_bundle(spec, device=device) if spec else None
        if old is not None and not old.needs_download() and old.model_id == serving:
            return old, True
    except ModelError as exc:
        logger.warning("the library's current models %s cannot be loaded (%s)", spec, exc)
    logger.warning("searches wait until the library is re-embedded with %s", models.name)
    return models, True


def warm_slow(services: Services) -> None:
    """Load the slow model ahead of the first re-rank (runs after the app is already searchable), then
    export the lean text tower if these weights have none yet, so that the next start needs no torch
    for its first query."""
    try:
        services.models.slow
    except Exception as exc:  # the refine job reports it when it is actually needed
        logger.warning("slow model not ready: %s", exc)
    try:
        from fastslow_desktop.models.text_onnx import export_text_tower, needs_export

        if needs_export(services.models):
            export_text_tower(services.models)
    except Exception as exc:  # noqa: BLE001 - an optional speed-up: torch keeps answering without it
        logger.warning("quick text searches not prepared: %s", exc)
    settle_heap()


def settle_heap() -> None:
    """Exempt everything alive now (torch, the models, Qt's wrappers: about 400 000 objects) from
    Python's cyclic garbage collector. They live as long as the app, yet each full collection walked
    them all, holding the GIL for about 0.35 s (2-core EPYC): the window froze whenever one ran
    during indexing. Objects made later are still collected, and the models a switch lets go of are
    freed by reference counting (tests/test_models.py checks they hold no cycles)."""
    gc.freeze()
