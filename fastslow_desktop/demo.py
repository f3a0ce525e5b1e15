"""`fastslow demo`: builds an offline SynthScenes library of photos and videos, indexes it, opens the app."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import platformdirs

from .paths import APP_NAME

logger = logging.getLogger(__name__)

DEMO_IMAGES = 300
DEMO_VIDEOS = 12
DEMO_SEED = 2024
DEMO_MODELS = "synthscenes"
MARKER = "demo.json"  # what the media folder was generated with, so a re-run can reuse it
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def default_demo_dir() -> Path:
    """A "demo" folder in the platform's user-data folder."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", metavar="DIR", help=f"where to build it (default: {default_demo_dir()})")
    parser.add_argument("--no-gui", action="store_true", help="build and index, but do not open the app")
    # Hidden: small demos for tests, another bundle for development.
    parser.add_argument("--images", type=int, default=DEMO_IMAGES, help=argparse.SUPPRESS)
    parser.add_argument("--videos", type=int, default=DEMO_VIDEOS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=argparse.SUPPRESS)
    # --models (another bundle, for development) is one of the options every command shares.


def ensure_media(media: Path, n_images: int, n_videos: int, seed: int) -> bool:
    """Generate the SynthScenes photos and videos unless the same set is already there.
    Returns True when files were (re)generated."""
    from .synthscenes import generate

    wanted = {"images": n_images, "videos": n_videos, "seed": seed, "version": 1}
    marker = media / MARKER
    if marker.is_file() and (media / "captions.jsonl").is_file():
        try:
            if json.loads(marker.read_text()) == wanted:
                logger.info("demo media already in %s", media)
                return False
        except (OSError, json.JSONDecodeError):
            pass
        # Only a folder this command made (it has the marker) is ever cleared.
        for sub in ("images", "videos"):
            shutil.rmtree(media / sub, ignore_errors=True)
    logger.info("generating %d photos and %d videos in %s", n_images, n_videos, media)
    generate(media, n_images, n_videos, seed=seed, twins=True)
    marker.write_text(json.dumps(wanted))
    return True


def build_demo(folder: Path, n_images: int = DEMO_IMAGES, n_videos: int = DEMO_VIDEOS, seed: int = DEMO_SEED,
               models: str = DEMO_MODELS, progress=None) -> Path:
    """Generate (or reuse) the demo media under `folder/media` and index it into `folder/library`.
    Returns the library folder. Needs no network: the bundle ships with the app."""
    from .library import Library
    from .models import load_bundle

    folder = Path(folder).expanduser()
    media, library_dir = folder / "media", folder / "library"
    media.mkdir(parents=True, exist_ok=True)
    ensure_media(media, n_images, n_videos, seed)
    bundle = load_bundle(models)
    with Library.open(library_dir, bundle) as library:
        library.add_root(media)
        report = library.index(progress=progress)
    logger.info("demo library %s: %s", library_dir, report.throughput_line())
    return library_dir


def run_demo(args: argparse.Namespace) -> int:
    """`fastslow demo`: build the library, then open the app on it unless --no-gui."""
    from .library import LibraryError, TqdmProgress
    from .models import ModelError

    if args.images < 0 or args.videos < 0 or args.images + args.videos == 0:
        print("fastslow demo: --images and --videos must not be negative, nor both zero", file=sys.stderr)
        return EXIT_USAGE
    folder = Path(args.dir).expanduser() if args.dir else default_demo_dir()
    args.models = getattr(args, "models", None) or DEMO_MODELS
    if getattr(args, "library", None):  # shared by every command, but the demo's library lives in --dir
        print("fastslow demo: the demo keeps its library in DIR/library of --dir DIR; --library does not apply",
              file=sys.stderr)
        return EXIT_USAGE
    bar = TqdmProgress()
    try:
        library_dir = build_demo(folder, args.images, args.videos, args.seed, args.models, progress=bar)
    except ModelError as exc:
        print(f"fastslow demo: cannot use models {args.models!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (LibraryError, OSError) as exc:
        print(f"fastslow demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        bar.close()
    print(f"demo library ready: {library_dir} (search it with `fastslow search --library {library_dir} "
          f"--models {args.models} \"a red circle\"`)", file=sys.stderr)
    if args.no_gui:
        return EXIT_OK
    try:
        from .ui.app import main as gui_main
    except ImportError as exc:
        print(f"fastslow demo: the desktop app is not available in this build ({exc}); the library is "
              "ready for `fastslow search`", file=sys.stderr)
        return EXIT_USAGE
    device = ["--device", args.device] if getattr(args, "device", None) else []
    return int(gui_main(["--library", str(library_dir), "--models", args.models, *device]) or 0)
