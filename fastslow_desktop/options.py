"""Options and logging shared by the command line and the desktop app (defined once, used by both)."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import sys
from pathlib import Path

from .models.backends import CHOICES as BACKEND_CHOICES
from .models.backends import set_override as _set_backend_override


def shared_options(suppress: bool) -> argparse.ArgumentParser:
    """`--library`, `--models`, `--device`, `--backend`, `-v`: accepted before the command and after it.

    The copy on each subcommand has SUPPRESS defaults, so an option given only before the command is
    not overwritten by the subcommand's default (`fastslow --models B index P` indexes with B).
    """
    def default(value):
        return argparse.SUPPRESS if suppress else value

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--library", metavar="DIR", default=default(None),
                        help="library folder (default: $FASTSLOW_LIBRARY or the platform's user-data folder)")
    parent.add_argument("--models", metavar="B", default=default(None),
                        help="model bundle folder or preset (default: the models the library was indexed with; "
                             "balanced for a new library; synthscenes for `fastslow demo`)")
    parent.add_argument("--device", choices=("auto", "cpu", "cuda"), default=default(None),
                        help="where the models run (default: auto)")
    parent.add_argument("--backend", choices=BACKEND_CHOICES, default=default(None),
                        help="what runs the fast model: torch (fp32), bf16 (CPU autocast), fp16 (CUDA), onnx "
                             "(ONNX Runtime, the [onnx] extra), int8 (ONNX Runtime, the image tower's weights in "
                             "int8: faster indexing, embeddings within cosine 0.99 of fp32), measure (time each "
                             "here once and remember the fastest for auto); default: $FASTSLOW_BACKEND or auto "
                             "(the remembered measurement, else by the hardware); a backend whose results differ "
                             "from torch fp32's is not used")
    parent.add_argument("-v", "--verbose", action="count", default=default(0),
                        help="more log output (-vv for debug)")
    return parent


def apply_backend_option(args: argparse.Namespace) -> None:
    """Make `--backend` the process's choice; without it, FASTSLOW_BACKEND or auto (reset per call)."""
    _set_backend_override(getattr(args, "backend", None))


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record arrives, not the stream of start-up: pytest swaps
    and closes stderr between tests, and an app may redirect it; a stale stream raised "I/O operation on
    closed file" inside a worker thread, before the job could report its error."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102 - logging's attribute
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_console: logging.Handler | None = None


def configure_logging(verbose: int = 0) -> None:
    """At start-up: warnings on stderr (more with -v); the library's log file gets INFO."""
    global _console
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if _console is None:
        _console = _ConsoleHandler()
        _console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(_console)
    _console.setLevel(level)
    package = logging.getLogger("fastslow_desktop")
    package.setLevel(min(level, logging.INFO))


class _LibraryLogHandler(logging.handlers.RotatingFileHandler):
    """The library's log file, best effort: when it cannot be written (a full disk) the record is
    dropped quietly instead of logging's "--- Logging error ---" traceback on the terminal."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


_library_log: logging.Handler | None = None


def close_library_log() -> None:
    global _library_log
    if _library_log is not None:  # main() called again in one process (tests): one file at a time
        logging.getLogger("fastslow_desktop").removeHandler(_library_log)
        _library_log.close()
        _library_log = None


def log_to_library(folder: Path) -> None:
    """Keep a log of index runs in the library's logs/ folder (rotated, small)."""
    global _library_log
    close_library_log()
    try:
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        handler = _LibraryLogHandler(folder / "logs" / "fastslow.log", maxBytes=2_000_000,
                                                       backupCount=2, encoding="utf-8")
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("fastslow_desktop").addHandler(handler)
    _library_log = handler


def library_log() -> logging.handlers.RotatingFileHandler | None:
    """The library's log file handler, when one is open."""
    return _library_log
