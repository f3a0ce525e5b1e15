"""The `fastslow` command: the desktop app (no subcommand), index, status, search, demo.

Each subcommand is one `cmd_*` function registered in `COMMANDS`; add a command by writing its
function and its `_add_*_parser`. `main(argv)` returns the exit code, so tests call it in-process.
The options every command shares (`--library`, `--models`, `--device`, `-v`) live in one parent
parser, and `main` is the one place where errors become a sentence on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import explain, is_expected, unexpected
from .path_text import path_fields, printable_path
from .options import (apply_backend_option, close_library_log, configure_logging, library_log, log_to_library,
                      shared_options)

logger = logging.getLogger("fastslow_desktop.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _library_dir(args: argparse.Namespace) -> Path:
    from .paths import default_library_dir

    return Path(args.library).expanduser().absolute() if args.library else default_library_dir()


def _models_loader(args: argparse.Namespace) -> Callable[[str | None], object]:
    """`load(spec)` for this command line: the bundle on `--device`, or None after printing why (exit 2).
    No spec: the models the library remembers for searching (its serving model's), else the default."""
    def load(spec: str | None):
        from .library import LibraryError
        from .library.models_spec import choose_spec
        from .models import ModelError, load_bundle

        try:
            spec = choose_spec(_library_dir(args), spec, for_search=True)
            return load_bundle(spec, device=args.device or "auto")
        except (ModelError, LibraryError) as exc:
            what = repr(spec) if spec else "of this library"
            print(f"fastslow: cannot use models {what}: {exc}", file=sys.stderr)
            return None
    return load


def _fetch_preset_first(spec: str) -> int:
    """A hub preset not on disk yet is downloaded (progress bar) before torch is imported, so an
    unreachable hub is reported within seconds of starting; exit code 2 then."""
    from .models.hub import is_cached
    from .models.presets import entry, repos

    if entry(spec) is None or all(is_cached(repo) for repo in repos(spec)):
        return EXIT_OK
    from .models_command import download_with_bar

    return download_with_bar(spec)


# -- index ---------------------------------------------------------------------------------

def _add_index_parser(sub) -> None:
    p = sub.add_parser("index", help="add folders to the library and index them once")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders to add and index")
    p.add_argument("--exclude", action="append", default=None, metavar="GLOB",
                   help="skip files or folders matching this pattern (repeatable; replaces the folder's "
                        "earlier patterns, which are kept when no --exclude is given)")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON on stdout")
    p.add_argument("--retry-failed", action="store_true",
                   help="try every failed file again, even unchanged ones whose content looked bad")


def _say_which_models(folder: Path, spec: str, given: bool) -> None:
    """A new library names the models it gets; a library moving to other models says it re-embeds."""
    from .library.models_spec import has_embeddings, stored_spec

    if not has_embeddings(folder):
        if not given:
            print(f"fastslow: a new library: indexing with the {spec!r} models (`fastslow models` lists the "
                  "others; choose one with --models NAME)", file=sys.stderr)
        return
    previous = stored_spec(folder, for_search=True)
    same = previous is None or previous == spec or (not given)
    if not same and Path(spec).expanduser().exists() and Path(spec).expanduser().resolve() == Path(previous):
        same = True  # the same bundle folder, named another way
    if not same:
        print(f"fastslow: this library was indexed with {previous!r}: every file is embedded again with "
              f"{spec!r}; searches use the old models until this run completes", file=sys.stderr)


def _say_if_excluded(path: str, root: str, library) -> None:
    """A folder asked for by name that its enclosing folder's --exclude patterns skip gets a note, not silence."""
    from .library.walk import is_excluded

    rel = os.path.relpath(Path(path).resolve(), root)
    patterns = next((r.excludes for r in library.roots() if r.path == root), [])
    if rel != "." and patterns and is_excluded(rel, patterns):
        print(f"fastslow: note: {path} is inside {root}, whose --exclude patterns ({', '.join(patterns)}) skip it; "
              f"`fastslow index {root} --exclude GLOB` sets other patterns", file=sys.stderr)


def _say_waiting(holder: str) -> None:
    print(f"fastslow: {holder}; waiting for it to finish (Ctrl+C stops waiting)", file=sys.stderr, flush=True)


def cmd_index(args: argparse.Namespace) -> int:
    from .library import Library, LibraryError, TqdmProgress
    from .library.models_spec import choose_spec

    for path in args.paths:
        if not Path(path).is_dir():
            print(f"fastslow: {path} is not a folder", file=sys.stderr)
            return EXIT_USAGE
    folder = _library_dir(args)
    try:  # --models, else what the library was indexed with, else the default for a new library
        spec = choose_spec(folder, args.models)
    except LibraryError as exc:
        print(f"fastslow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _say_which_models(folder, spec, given=bool(args.models))
    code = _fetch_preset_first(spec)
    if code != EXIT_OK:
        return code
    models = _models_loader(args)(spec)
    if models is None:
        return EXIT_USAGE
    if models.needs_download():  # a bundle whose parts live on the hub: fetch them, with a progress bar
        from .models_command import fetch_with_bar

        code = fetch_with_bar(models.name, models.download)
        if code != EXIT_OK:
            return code
    log_to_library(folder)
    bar = TqdmProgress(disable=args.json or None)
    try:
        with Library.open(folder, models) as library:
            library.wait_for_other_writers(_say_waiting)
            for path in args.paths:
                _say_if_excluded(path, library.add_root(path, exclude=args.exclude), library)
            if args.retry_failed:
                library.retry_failed()
            report = library.index(progress=bar)
    except LibraryError as exc:
        print(f"fastslow: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("fastslow: interrupted; what was indexed so far is kept, and the next `fastslow index` (or the app, "
              "watching this library) indexes the rest", file=sys.stderr)
        return 130
    finally:
        bar.close()
    from .search.cli import prepare_quick_search

    prepare_quick_search(models)  # the fast model is loaded: export its text tower for quick searches
    print(report.throughput_line(), file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_json()))
    return EXIT_OK


# -- status --------------------------------------------------------------------------------

def _add_status_parser(sub) -> None:
    p = sub.add_parser("status", help="what is indexed")
    p.add_argument("--json", action="store_true", help="print the status as JSON on stdout")


def _count(n: int, noun: str) -> str:
    """'1 video', '2 videos'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cmd_status(args: argparse.Namespace) -> int:
    from .library import Library, LibraryError

    folder = _library_dir(args)
    if folder.exists() and not folder.is_dir():
        print(f"fastslow: {folder} is a file, not a library folder", file=sys.stderr)
        return EXIT_USAGE
    if not (folder / "library.db").exists():
        if not args.json:
            print(f"fastslow: no library at {folder} yet; `fastslow index PATH` makes one", file=sys.stderr)
        status = {"roots": [], "media": 0, "images": 0, "videos": 0, "segments": 0, "model": None, "failed": [],
                  "unfinished_run": False, "hidden": []}
    else:
        try:
            with Library.open(folder) as library:
                status = library.status()
        except LibraryError as exc:
            print(f"fastslow: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        for entry in status["roots"] + status["failed"]:
            entry.update(path_fields(entry["path"]))
        status["hidden"] = [path_fields(path) for path in status["hidden"]]  # objects, as in "failed"
        print(json.dumps(status))
        return EXIT_OK
    print(f"library: {printable_path(str(folder))}")
    print(f"model:   {status['model'] or '-'}")
    # `failed` lists files that failed and entries the walk could not use (links, FIFOs, unreadable folders).
    n_failed = sum(root["failed"] for root in status["roots"])
    others = len(status["failed"]) - n_failed
    print(f"{_count(status['media'], 'file')} indexed ({_count(status['images'], 'photo')}, "
          f"{_count(status['videos'], 'video')}, {_count(status['segments'], 'segment')}), "
          f"{n_failed} failed" + (f", {others} other {'entry' if others == 1 else 'entries'} not used (listed below)"
                                  if others > 0 else ""))
    for root in status["roots"]:
        state = "" if root["online"] else "  [offline]"
        skipped = f" (skipping {', '.join(root['excludes'])})" if root.get("excludes") else ""
        print(f"  {printable_path(root['path'])}: {root['indexed']} indexed, {root['failed']} failed{skipped}{state}")
    for failure in status["failed"]:
        print(f"  ! {printable_path(failure['path'])}: {failure['error']}")
    if status["hidden"]:
        n = len(status["hidden"])
        shown = ", ".join(printable_path(os.path.basename(path)) for path in status["hidden"][:3])
        more = f" and {n - 3} more" if n > 3 else ""
        print(f"note: {n} hidden folder{'' if n == 1 else 's'} or file{'' if n == 1 else 's'} skipped (names "
              f"starting with a dot: {shown}{more}); hidden ones are not indexed")
    if status["unfinished_run"]:
        print("note: an index run has not finished (it is still running, or it was stopped): files it has not "
              "reached are not indexed yet; `fastslow index` finishes it")
    return EXIT_OK


# -- search and demo (filled in by the search engine and demo work) -------------------------

def _add_search_parser(sub) -> None:
    from .search.cli import add_arguments

    add_arguments(sub.add_parser("search", help="search the library"))


def cmd_search(args: argparse.Namespace) -> int:
    from .search.cli import run_search

    return run_search(args, _library_dir(args), _models_loader(args))


def _add_demo_parser(sub) -> None:
    from .demo import add_arguments

    add_arguments(sub.add_parser("demo", help="build an offline SynthScenes library and open it"))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def cmd_gui(args: argparse.Namespace) -> int:
    """Bare `fastslow`: the desktop app (Qt is imported only here, lazily)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("fastslow_desktop.ui.app") is None:
        print("fastslow: the desktop app is not available in this build "
              "(use `fastslow index`, `fastslow status` or `fastslow search`)", file=sys.stderr)
        return EXIT_USAGE
    from .ui.system_libs import display_problem  # no Qt: checks what Qt would abort on

    problem = display_problem()
    if problem is not None:
        print(f"fastslow: {problem}", file=sys.stderr)
        return EXIT_USAGE
    app = importlib.import_module("fastslow_desktop.ui.app")
    return int(app.main(args) or 0)


# name -> (add parser, run). Replace an entry to implement a command.
def _add_models_parser(sub) -> None:
    from .models_command import add_arguments

    add_arguments(sub.add_parser("models", help="the model presets; download one"))


def cmd_models(args: argparse.Namespace) -> int:
    from .models_command import run_models

    return run_models(args)


COMMANDS: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "index": (_add_index_parser, cmd_index),
    "status": (_add_status_parser, cmd_status),
    "search": (_add_search_parser, cmd_search),
    "demo": (_add_demo_parser, cmd_demo),
    "models": (_add_models_parser, cmd_models),
}


class _SubcommandParser(argparse.ArgumentParser):
    """Every subcommand parser inherits the shared options (argparse builds them through this class)."""

    def __init__(self, *args, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", []), shared_options(suppress=True)]
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastslow", description="Find photos and moments in videos by description.",
                                     parents=[shared_options(suppress=False)])
    parser.add_argument("--search", dest="initial_search", metavar="TEXT",
                        help="with no COMMAND: open the desktop app with this search typed")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubcommandParser)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def _log_crash(args: argparse.Namespace | None, exc: BaseException) -> str:
    """Write the traceback to the library's log (never the terminal); returns where it went."""
    text = "".join(traceback.format_exception(exc))
    if args is not None and library_log() is None:
        log_to_library(_library_dir(args))
    handler = library_log()
    if handler is not None:
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "unexpected error:\n%s", (text,), None)
        handler.handle(record)
        return handler.baseFilename
    try:  # no library log (unwritable folder): a file in the temporary folder still keeps it
        with tempfile.NamedTemporaryFile("w", prefix="fastslow-crash-", suffix=".log", delete=False,
                                         encoding="utf-8") as file:
            file.write(text)
            return file.name
    except OSError:
        return "nowhere (no writable folder)"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush into the closed pipe stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests capture it): nothing to flush into
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error ends here as one line on stderr and an exit code."""
    args = build_parser().parse_args(argv)
    close_library_log()  # an earlier call's library (tests run many commands in one process)
    configure_logging(args.verbose)
    apply_backend_option(args)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.command is None:
            return cmd_gui(args)
        if getattr(args, "initial_search", None):
            print(f"fastslow: --search opens the desktop app; on the command line use "
                  f"`fastslow search \"{args.initial_search}\"`", file=sys.stderr)
            return EXIT_USAGE
        return COMMANDS[args.command][1](args)
    except KeyboardInterrupt:
        print("fastslow: interrupted; what was done so far is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastslow search … | head`: the reader has all it wanted; nothing to say
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # the one boundary: a sentence for people, the traceback for the log
        if is_expected(exc):
            logger.debug("command failed", exc_info=True)
            print(f"fastslow: {explain(exc)}", file=sys.stderr)
            return EXIT_FAILED
        print(f"fastslow: {unexpected(exc, _log_crash(args, exc))}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
