"""The `fastslow` command: the desktop app (no subcommand), index, status, search, demo.

Each subcommand is one `cmd_*` function registered in `COMMANDS`; add a command by writing its
function and its `_add_*_parser`. `main(argv)` returns the exit code, so tests call it in-process.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger("fastslow_desktop.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _library_dir(args: argparse.Namespace) -> Path:
    from .paths import default_library_dir

    return Path(args.library).expanduser() if args.library else default_library_dir()


def _load_models(spec: str | None):
    """The bundle to index or search with, or None after printing why (exit code 2)."""
    from .models import DEFAULT_PRESET, ModelError, load_bundle

    try:
        return load_bundle(spec or DEFAULT_PRESET)
    except ModelError as exc:
        print(f"fastslow: cannot use models {spec or DEFAULT_PRESET!r}: {exc}", file=sys.stderr)
        return None


_library_log: logging.Handler | None = None


def _log_to_library(folder: Path) -> None:
    """Keep a log of index runs in the library's logs/ folder (rotated, small)."""
    global _library_log
    if _library_log is not None:  # main() called again in one process (tests): one file at a time
        logging.getLogger("fastslow_desktop").removeHandler(_library_log)
        _library_log.close()
        _library_log = None
    try:
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(folder / "logs" / "fastslow.log", maxBytes=2_000_000,
                                                       backupCount=2, encoding="utf-8")
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("fastslow_desktop").addHandler(handler)
    _library_log = handler


# -- index ---------------------------------------------------------------------------------

def _add_index_parser(sub) -> None:
    p = sub.add_parser("index", help="add folders to the library and index them once")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders to add and index")
    p.add_argument("--exclude", action="append", default=None, metavar="GLOB",
                   help="skip files or folders matching this pattern (repeatable; replaces the folder's "
                        "earlier patterns, which are kept when no --exclude is given)")
    p.add_argument("--models", metavar="B", help="model bundle folder or preset (default: synthscenes)")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON on stdout")


def cmd_index(args: argparse.Namespace) -> int:
    from .library import Library, LibraryError, TqdmProgress

    for path in args.paths:
        if not Path(path).is_dir():
            print(f"fastslow: {path} is not a folder", file=sys.stderr)
            return EXIT_USAGE
    models = _load_models(args.models)
    if models is None:
        return EXIT_USAGE
    folder = _library_dir(args)
    _log_to_library(folder)
    bar = TqdmProgress(disable=args.json or None)
    try:
        with Library.open(folder, models) as library:
            for path in args.paths:
                library.add_root(path, exclude=args.exclude)
            report = library.index(progress=bar)
    except LibraryError as exc:
        print(f"fastslow: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("fastslow: interrupted; what was indexed so far is kept", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(report.throughput_line(), file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_json()))
    return EXIT_OK


# -- status --------------------------------------------------------------------------------

def _add_status_parser(sub) -> None:
    p = sub.add_parser("status", help="what is indexed")
    p.add_argument("--json", action="store_true", help="print the status as JSON on stdout")


def cmd_status(args: argparse.Namespace) -> int:
    from .library import Library, LibraryError

    folder = _library_dir(args)
    if not (folder / "library.db").exists():
        status = {"roots": [], "media": 0, "images": 0, "videos": 0, "segments": 0, "model": None, "failed": []}
    else:
        try:
            with Library.open(folder) as library:
                status = library.status()
        except LibraryError as exc:
            print(f"fastslow: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(json.dumps(status))
        return EXIT_OK
    print(f"library: {folder}")
    print(f"model:   {status['model'] or '-'}")
    print(f"{status['media']} files indexed ({status['images']} photos, {status['videos']} videos, "
          f"{status['segments']} segments), {len(status['failed'])} failed")
    for root in status["roots"]:
        state = "" if root["online"] else "  [offline]"
        print(f"  {root['path']}: {root['indexed']} indexed, {root['failed']} failed{state}")
    for failure in status["failed"]:
        print(f"  ! {failure['path']}: {failure['error']}")
    return EXIT_OK


# -- search and demo (filled in by the search engine and demo work) -------------------------

def _add_search_parser(sub) -> None:
    from .search.cli import add_arguments

    add_arguments(sub.add_parser("search", help="search the library"))


def cmd_search(args: argparse.Namespace) -> int:
    from .search.cli import run_search

    return run_search(args, _library_dir(args), _load_models)


def _add_demo_parser(sub) -> None:
    from .demo import add_arguments

    add_arguments(sub.add_parser("demo", help="build an offline SynthScenes library and open it"))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def _not_implemented(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"fastslow {name}: not implemented yet", file=sys.stderr)
        return EXIT_USAGE
    return run


def cmd_gui(args: argparse.Namespace) -> int:
    """Bare `fastslow`: the desktop app (Qt is imported only here, lazily)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("fastslow_desktop.ui.app") is None:
        print("fastslow: the desktop app is not available in this build "
              "(use `fastslow index`, `fastslow status` or `fastslow search`)", file=sys.stderr)
        return EXIT_USAGE
    app = importlib.import_module("fastslow_desktop.ui.app")
    return int(app.main(args) or 0)


# name -> (add parser, run). Replace an entry to implement a command.
COMMANDS: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "index": (_add_index_parser, cmd_index),
    "status": (_add_status_parser, cmd_status),
    "search": (_add_search_parser, cmd_search),
    "demo": (_add_demo_parser, cmd_demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastslow", description="Find photos and moments in videos by description.")
    parser.add_argument("--library", metavar="DIR",
                        help="library folder (default: $FASTSLOW_LIBRARY or the platform's user-data folder)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    # For the desktop app (bare `fastslow`); subcommands that use models take their own --models.
    parser.add_argument("--models", metavar="B", help="app: model bundle folder or preset (default: synthscenes)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="app: where the models run")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        before = set(sub.choices)
        add(sub)
        for added in set(sub.choices) - before:
            # --library is accepted before or after the subcommand.
            sub.choices[added].add_argument("--library", metavar="DIR", default=argparse.SUPPRESS,
                                            help="library folder")
    return parser


_console: logging.Handler | None = None


def configure_logging(verbose: int = 0) -> None:
    """At start-up: warnings on stderr (more with -v); the library's log file gets INFO."""
    global _console
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if _console is None:
        _console = logging.StreamHandler(sys.stderr)
        _console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(_console)
    _console.setLevel(level)
    package = logging.getLogger("fastslow_desktop")
    package.setLevel(min(level, logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command is None:
        return cmd_gui(args)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
