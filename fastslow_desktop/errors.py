"""One way to turn an exception into words for people: used at the CLI and the app's job boundaries (no Qt)."""

from __future__ import annotations

import logging


def is_expected(exc: BaseException) -> bool:
    """Our own exception types (LibraryError, ModelError, DecodeError, SearchError…) and OSError.

    Their messages are written for people; anything else is a programming error whose traceback
    belongs in the log.
    """
    if isinstance(exc, OSError):
        return True
    return any(cls.__module__.startswith("fastslow_desktop.") for cls in type(exc).__mro__)


def explain(exc: BaseException) -> str:
    """One sentence for an expected error: an OSError's reason and file, or the exception's own text."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def unexpected(exc: BaseException, where: str) -> str:
    """A short line for a programming error; the traceback is in `where` (the log)."""
    return f"unexpected error ({type(exc).__name__}: {explain(exc)}); the details are in {where}"


def log_file() -> str:
    """Where tracebacks are kept: the library's log file when one is open, else the terminal's stderr."""
    for handler in logging.getLogger("fastslow_desktop").handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return "the terminal's log output"
