"""`fastslow models`: the preset catalogue (size, languages, speed, whether on disk); `download NAME`."""

from __future__ import annotations

import argparse
import json
import sys
import threading

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "download"), default="list",
                        help="list the presets (default) or download one")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the preset to download")
    parser.add_argument("--json", action="store_true", help="print the catalogue as one JSON list")


def _size(n: int) -> str:
    return "shipped" if n == 0 else f"{n / 1e6:,.0f} MB"


def _speed(speed: dict) -> str:
    images, text = speed.get("images_per_s"), speed.get("text_ms")
    if images is None and text is None:
        return "not measured"
    return f"{images} img/s, {text} ms/text"


def _table(rows: list) -> str:
    lines = [f"{'preset':<24} {'size':>9}  {'on disk':<7}  {'languages':<18} {'speed':<24} description"]
    for row in rows:
        name = row.name + (" *" if row.default else "") + (" (legacy)" if row.legacy else "")
        languages = ", ".join(row.languages[:3]) + (" …" if len(row.languages) > 3 else "")
        lines.append(f"{name:<24} {_size(row.download_bytes):>9}  {'yes' if row.downloaded else 'no':<7}  "
                     f"{languages:<18} {_speed(row.speed):<24} {row.description}")
    lines.append("* the default for a new library of your own photos; `fastslow models download NAME` fetches one")
    return "\n".join(lines)


def fetch_with_bar(name: str, fetch) -> int:
    """Run `fetch(progress, cancel)` under a progress bar (bytes, speed, ETA); exit code 2 when the hub
    cannot be reached, 130 when interrupted (the next run resumes)."""
    from tqdm import tqdm

    from .models import ModelUnavailableError

    cancel = threading.Event()
    failure = None
    # The bar is for a person at a terminal; in a log or a pipe its carriage returns are noise: one line instead.
    terminal = sys.stderr.isatty()
    if not terminal:
        print(f"fastslow: downloading {name}…", file=sys.stderr, flush=True)
    with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}", file=sys.stderr,
              disable=not terminal, leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()
        try:
            fetch(progress, cancel)
        except ModelUnavailableError as exc:
            failure = (str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            cancel.set()
            failure = ("download interrupted; run the same command again to resume it", 130)
    if failure is not None:  # after the bar is closed, so the message starts its own line
        print(f"fastslow: {failure[0]}", file=sys.stderr)
        return failure[1]
    print(f"fastslow: {name} is downloaded and checked", file=sys.stderr)
    return EXIT_OK


def download_with_bar(name: str) -> int:
    """`fastslow models download NAME`, also run by `fastslow index` for a preset not on disk yet."""
    from .models.presets import download_preset

    return fetch_with_bar(name, lambda progress, cancel: download_preset(
        name, progress=lambda p: progress(p.done, p.total), cancel=cancel))


def run_models(args: argparse.Namespace) -> int:
    from .models.presets import names, preset_infos

    if args.action == "download":
        if not args.name:
            print(f"fastslow models download: name a preset ({', '.join(names())})", file=sys.stderr)
            return EXIT_USAGE
        if args.name not in names():
            print(f"fastslow models download: no preset named {args.name!r} (the presets: {', '.join(names())})",
                  file=sys.stderr)
            return EXIT_USAGE
        return download_with_bar(args.name)
    rows = preset_infos()
    if args.json:
        print(json.dumps([row.to_dict() for row in rows]))
    else:
        print(_table(rows))
    return EXIT_OK
