"""Command line for writing a SynthScenes dataset folder (images, videos, captions.jsonl)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from fastslow_desktop.synthscenes import generate, generate_shifted

logger = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.synthscenes",
        description="Generate a SynthScenes set; use disjoint seeds for train, validation, test.",
    )
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--images", type=int, default=1000, help="number of images")
    parser.add_argument("--videos", type=int, default=0, help="number of video clips")
    parser.add_argument(
        "--seed", type=int, required=True, help="the same seed gives the same files"
    )
    parser.add_argument(
        "--twins",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add confusable twins (hard negatives); keep on for test sets",
    )
    parser.add_argument("--min-size", type=int, default=96, help="smallest image side in pixels")
    parser.add_argument("--max-size", type=int, default=320, help="largest image side in pixels")
    parser.add_argument(
        "--format", choices=("png", "jpeg"), default="png", help="image file format"
    )
    parser.add_argument(
        "--shifted",
        action="store_true",
        help="draw the images with the shifted renderer (evaluation only: 96-256 px, any aspect, "
        "textures, blur, noise, PNG and JPEG 60-95); images only, sizes and format are its own",
    )
    args = parser.parse_args(argv)
    if args.shifted and args.videos:
        parser.error("--shifted writes images only: drop --videos")
    if args.images < 0 or args.videos < 0:
        parser.error("--images and --videos must not be negative")
    if not 1 <= args.min_size <= args.max_size:
        parser.error("--min-size must be at least 1 and at most --max-size")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.shifted:
        captions = generate_shifted(args.out, args.images, args.seed, twins=args.twins)
        logger.info("captions written to %s", captions)
        return 0
    captions = generate(
        args.out,
        args.images,
        args.videos,
        args.seed,
        twins=args.twins,
        image_format=args.format,
        sizes=(args.min_size, args.max_size),
    )
    logger.info("captions written to %s", captions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
