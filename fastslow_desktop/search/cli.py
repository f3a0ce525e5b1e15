"""`fastslow search`: runs queries through the engine and prints DESIGN.md's JSON, or a readable table."""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import logging
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ..path_text import printable_path
from .filters import SORTS
from .types import SearchError, SearchRequest, StageResult, nothing_matches

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The search subcommand's own arguments (`--library`, `--models`, `--device`, `-v` are shared by every command)."""
    parser.add_argument("query", nargs="?", metavar="QUERY",
                        help='a description, or a combined query: \'"red circle" + photo.jpg - "blue"\'')
    parser.add_argument("--top", type=int, default=20, metavar="N", help="results to show (default 20)")
    parser.add_argument("--k", type=int, default=None, metavar="K",
                        help="how many fast candidates the slow model re-ranks (default: the bundle's)")
    parser.add_argument("--no-rerank", action="store_true", help="fast results only (slow_score is null)")
    parser.add_argument("--image", metavar="PATH", help="search with a picture (added to QUERY if both are given)")
    parser.add_argument("--type", choices=("image", "video"), help="only photos or only videos")
    parser.add_argument("--folder", metavar="DIR", help="only files in this folder (and its subfolders)")
    parser.add_argument("--after", metavar="YYYY-MM-DD", help="only files captured on or after this day")
    parser.add_argument("--before", metavar="YYYY-MM-DD", help="only files captured on or before this day")
    parser.add_argument("--sort", choices=SORTS, default="relevance",
                        help="order of the results: relevance (default), or date captured, newest first")
    parser.add_argument("--queries", metavar="FILE",
                        help="one query per line ('-' for stdin); prints one JSON object per line, in order")
    parser.add_argument("--only-matches", action="store_true",
                        help='only results the slow model judges to show the query (match "yes"); needs re-ranking')
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def _fail(message: str) -> int:
    print(f"fastslow: {message}", file=sys.stderr)
    return EXIT_USAGE


def read_queries_file(name: str) -> str:
    """The text of a queries file: a regular file, or '-' for stdin.

    Opened non-blocking and checked before reading, so a FIFO, a device or a folder is refused at
    once instead of waiting forever for a writer.
    """
    if name == "-":
        return sys.stdin.read()
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (give a text file, or - for stdin)", name)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read()
    finally:
        os.close(fd)
    return data.decode("utf-8")


def _queries(args: argparse.Namespace) -> Iterator[str] | str:
    """The queries to run, or an error message."""
    if args.queries:
        if args.query:
            return f"give QUERY or --queries FILE, not both ({args.query!r} would not be searched)"
        try:
            lines = read_queries_file(args.queries).splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot read the queries file {args.queries}: {getattr(exc, 'strerror', None) or exc}"
        queries = [line.strip() for line in lines if line.strip()]
        return iter(queries) if queries else f"the queries file {args.queries} has no queries (one per line)"
    if not args.query and not args.image:
        return "give a QUERY, --image PATH or --queries FILE"
    return iter([args.query or ""])


def _image_problem(path: str | None) -> str | None:
    """Why --image cannot be used, found before the models load (seconds) rather than after."""
    from .query import load_query_image

    try:
        if path is not None:
            load_query_image(path)
    except SearchError as exc:
        return str(exc)
    return None


def _day(text: str | None, option: str) -> datetime.date | None:
    """A YYYY-MM-DD option as a date; ValueError with a message naming the option."""
    if text is None:
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option} wants a day as YYYY-MM-DD (for example 2024-05-31), not {text!r}") from None


def filter_options(args: argparse.Namespace) -> dict | str:
    """The request fields of --type/--folder/--after/--before/--sort, or an error message."""
    try:
        after, before = _day(args.after, "--after"), _day(args.before, "--before")
    except ValueError as exc:
        return str(exc)
    if after and before and after > before:
        return f"--after {after} is later than --before {before}: no day is in that range"
    if args.folder and not os.path.isdir(os.path.expanduser(args.folder)):
        # Still searched: the folder may be on a drive that is offline now.
        print(f"fastslow: note: {args.folder} is not a folder on this computer now; searching the library "
              "for files indexed there anyway", file=sys.stderr)
    return {"kind": args.type, "folder": args.folder, "date_from": after, "date_to": before, "sort": args.sort}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _shown_path(path: str) -> str:
    """A path on one printable line: control characters and undecodable bytes escaped, and a file that is
    gone since it was indexed marked (the library learns of it at the next index run or watcher batch)."""
    text = printable_path(path)
    return text if os.path.lexists(path) else f"{text}  (no longer on disk)"


def format_table(query: str, result: StageResult) -> str:
    """A readable listing of one query's results."""
    slow = f", slow {result.slow_ms:.0f} ms" if result.slow_ms is not None else ", not re-ranked"
    lines = [f"{query}  ({len(result.results)} results; fast {result.fast_ms:.0f} ms{slow})"]
    lines.extend(f"note: {note}" for note in result.notes)
    if result.any_match is False:
        lines.append(nothing_matches({r.kind for r in result.results}) + ".")
    if result.results:
        lines.append(f"{'#':>3}  {'score':>8}  {'fast':>7}  {'slow':>8}  {'match':<10}  {'kind':<5}  "
                     f"{'moment':<13}  path")
    for rank, r in enumerate(result.results, 1):
        moment = f"{r.t_start:.1f}-{r.t_end:.1f}s" if r.t_start is not None and r.t_end is not None else ""
        match = "-" if r.match is None else f"{r.match} {r.match_probability:.2f}"
        # After re-ranking, a result outside the top K keeps its fast score: another scale, not shown as one.
        score = None if result.stage == 2 and r.slow_score is None else r.score
        lines.append(f"{rank:>3}  {_fmt(score):>8}  {_fmt(r.fast_score):>7}  {_fmt(r.slow_score, 2):>8}  "
                     f"{match:<10}  {r.kind:<5}  {moment:<13}  {_shown_path(r.path)}")
    return "\n".join(lines)


def prepare_quick_search(models) -> None:
    """Export the fast text tower for the lean query path (text_onnx) if it is not yet: seconds, once
    per model, so that later one-shot searches start without torch. Called where torch is loaded anyway."""
    from ..models.text_onnx import export_text_tower, needs_export

    if needs_export(models):
        print("fastslow: preparing quick text searches for these models (once per model)", file=sys.stderr,
              flush=True)
        export_text_tower(models)


def run_search(args: argparse.Namespace, folder: Path, load_models: Callable[[str | None], object]) -> int:
    """Run `fastslow search`; returns the exit code. The models load once for all queries."""
    from ..library import Library, LibraryError
    from ..models import ModelError
    from .engine import SearchEngine

    if not (folder / "library.db").is_file():
        return _fail(f"no library at {folder}: index some folders first with `fastslow index PATH`")
    queries = _queries(args)
    if isinstance(queries, str):
        return _fail(queries)
    if args.top < 1:
        return _fail(f"--top must be at least 1 (got {args.top})")
    if args.k is not None and args.k < 0:
        return _fail(f"--k must be at least 0 (got {args.k}; 0 turns re-ranking off)")
    filters = filter_options(args)
    if isinstance(filters, str):
        return _fail(filters)
    if args.only_matches and args.no_rerank:
        return _fail("--only-matches needs re-ranking: the slow model judges what matches (drop --no-rerank)")
    problem = _image_problem(args.image)
    if problem is not None:
        return _fail(problem)
    models = load_models(args.models)
    if models is None:  # load_models has said why
        return EXIT_USAGE
    models.text_prepack = bool(args.queries)  # one query: start the text tower fast rather than run it fast
    if args.only_matches and models.match_calibration is None:
        return _fail(f"the model bundle {models.name!r} has no match calibration, so --only-matches cannot "
                     "judge results (see docs/DESIGN.md, 'Match judgement')")
    try:
        with Library.open(folder, models) as library:
            engine = SearchEngine(library, models)
            try:
                # Loaded before the first query so its timing is the query's, not the model load's. A text
                # query with --no-rerank loads only the text encoder: no image tower, no slow model.
                engine.warm_up(slow=not args.no_rerank, image=bool(args.image or args.queries))
                for query in queries:
                    request = SearchRequest(text=query, top=args.top, k=args.k, rerank=not args.no_rerank,
                                            image=args.image, only_matches=args.only_matches, **filters)
                    result = engine.search(request)
                    if args.only_matches and result.stage != 2:  # nothing was re-ranked, so nothing judged
                        print(f"fastslow: {query or args.image!r} was not re-ranked (no text to judge it by), "
                              "so no result is a judged match", file=sys.stderr)
                        result.results = []
                    shown = query or args.image or ""
                    if args.json or args.queries:  # a queries file is a batch: JSON lines, as README says
                        print(json.dumps(result.to_json(query=shown)), flush=True)
                    else:
                        print(format_table(shown, result), flush=True)
            finally:
                engine.close()
    except (SearchError, ModelError, LibraryError) as exc:
        return _fail(str(exc))
    if models.fast_loaded and not models.has_lean_text:  # torch embedded the text: the next search need not
        prepare_quick_search(models)
    return EXIT_OK
