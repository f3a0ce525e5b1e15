"""The one media-decoding path (photos with Pillow, videos with OpenCV), shared with training.

Every failure becomes a `DecodeError` whose reason a person understands ("truncated JPEG",
"not an image", "image too large: 900 megapixels"), so the indexer can store it and move on.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

try:  # HEIC / AVIF when the optional extra is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
    HAVE_HEIF = True
except Exception:  # noqa: BLE001 - any import problem just means "no HEIC support"
    HAVE_HEIF = False

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
                              ".heic", ".heif", ".avif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv",
                              ".3gp"})

# Above this a photo is refused before its pixels are decoded: 200 MP covers every real camera
# and panorama, while a decompression bomb claims far more.
MAX_PIXELS = 200_000_000
# Pillow warns above its own limit and raises at twice it; align it with ours so our check runs first.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, like a file browser does
HASH_BLOCK = 64 * 1024

# Video segmentation: sample a few frames per second, cut where consecutive samples differ much
# more than the clip's usual motion, keep every segment between MIN and MAX seconds.
SAMPLE_FPS = 4.0
MIN_SEGMENT_S = 1.0
MAX_SEGMENT_S = 10.0
FRAMES_PER_SEGMENT = 3
CUT_MIN_DIFF = 4.0  # mean absolute difference (0-255) of 24x24 colour thumbnails
CUT_MOTION_FACTOR = 4.0


class DecodeError(Exception):
    """A file that cannot be used; `reason` is written for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def media_kind(path: str | Path) -> str | None:
    """'image', 'video' or None (not a file type we index), by extension."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def partial_hash(path: str | Path, size: int | None = None) -> str:
    """A cheap content fingerprint (size + first, middle and last 64 KiB) for rename detection."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size if size is None else size
        digest.update(str(size).encode())
        if size <= 3 * HASH_BLOCK:
            digest.update(fh.read())
        else:
            for offset in (0, size // 2 - HASH_BLOCK // 2, size - HASH_BLOCK):
                fh.seek(offset)
                digest.update(fh.read(HASH_BLOCK))
    return digest.hexdigest()


# -- photos ----------------------------------------------------------------------------------

@dataclass
class ImageInfo:
    """What a photo decode learns besides the pixels."""

    width: int  # of the original file, after EXIF rotation
    height: int
    taken: str | None  # ISO date from EXIF, or None


def _megapixels(pixels: int) -> str:
    return f"image too large: {round(pixels / 1e6)} megapixels"


def _bomb_reason(exc: Exception) -> str:
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return _megapixels(int(match.group(1))) if match else "image too large"


def _exif_taken(img: Image.Image) -> str | None:
    try:
        exif = img.getexif()
        if not exif:
            return None
        value = exif.get_ifd(0x8769).get(36867) or exif.get(306)  # DateTimeOriginal, else DateTime
        if not value:
            return None
        value = str(value).strip("\x00 ")
        return _dt.datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the photo
        return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency composited on BACKGROUND."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max(initial=0.0))
        if mode == "F":
            top = peak if peak > 0 else 1.0
        else:  # 16-bit samples (0-65535) unless the file only uses the 8-bit range
            top = 65535.0 if peak > 255 else 255.0
        arr8 = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, LAB, HSV


def _reason_for(exc: Exception, path: Path, fmt: str | None) -> str:
    text = str(exc).lower()
    if "truncated" in text or "premature end" in text or "broken data stream" in text:
        return f"truncated {fmt}" if fmt else "truncated image"
    if isinstance(exc, (SyntaxError, ValueError)) or "corrupt" in text or "invalid" in text:
        return f"damaged {fmt}" if fmt else "damaged image"
    if isinstance(exc, MemoryError):
        return "image too large to decode"
    if isinstance(exc, OSError) and getattr(exc, "errno", None) is not None:
        return f"cannot read file: {exc.strerror or exc}"
    return f"cannot decode image ({type(exc).__name__}: {exc})"


def open_image(path: str | Path, max_side: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """Decode a photo to RGB, upright, at least `max_side` on its shorter side when that is cheaper
    (JPEG draft); returns the image and its info. Raises DecodeError."""
    path = Path(path)
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file")
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    fmt = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = {"MPO": "JPEG"}.get(img.format, img.format)
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise DecodeError(_megapixels(width * height))
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)  # animations: the first frame
                taken = _exif_taken(img)
                orientation = img.getexif().get(0x0112, 1) if fmt in ("JPEG", "TIFF", "WEBP", "PNG") else 1
                if max_side and fmt == "JPEG":
                    # Decode at 1/2, 1/4 or 1/8 scale while staying >= max_side: the biggest saving.
                    img.draft("RGB", (max_side, max_side))
                img.load()
                img = ImageOps.exif_transpose(img) if orientation != 1 else img
                rgb = _to_rgb(img)
                if rgb is img:
                    rgb = img.copy()
    except DecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecodeError(_bomb_reason(exc)) from exc
    except UnidentifiedImageError as exc:
        raise DecodeError("not an image" if _looks_unknown(path) else "unsupported format") from exc
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a reason, never a crash
        raise DecodeError(_reason_for(exc, path, fmt)) from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if max_side and min(rgb.size) > 2 * max_side:
        # Formats without draft mode: shrink once here so preprocessing and thumbnails are cheap.
        scale = max_side / min(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.BILINEAR, reducing_gap=2.0)
    return rgb, ImageInfo(width, height, taken)


def _looks_unknown(path: Path) -> bool:
    """HEIC/AVIF without pillow-heif is 'unsupported format'; anything else Pillow cannot place is 'not an image'."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
    except OSError:
        return True
    return not (b"ftypheic" in head or b"ftypheix" in head or b"ftypmif1" in head or b"ftypavif" in head)


def load_image(path: str | Path, max_side: int | None = None) -> Image.Image:
    """A photo as upright 8-bit RGB (see `open_image`). Raises DecodeError."""
    return open_image(path, max_side)[0]


# -- videos ----------------------------------------------------------------------------------

@dataclass
class VideoSegment:
    """A stretch of a video between two scene changes, with a few of its frames."""

    t_start: float
    t_end: float
    frames: list[Image.Image] = field(default_factory=list)  # RGB, evenly spaced over the segment


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float


def _open_capture(path: Path):
    import cv2

    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file")
    except OSError as exc:
        raise DecodeError(f"cannot read file: {exc.strerror or exc}") from exc
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise DecodeError("not a video (or a format this computer cannot decode)")
    return cap


def _bgr_to_pil(frame: np.ndarray, max_side: int | None) -> Image.Image:
    import cv2

    h, w = frame.shape[:2]
    if max_side and min(h, w) > max_side:
        scale = max_side / min(h, w)
        frame = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def _pick(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)] if n > 1 else [items[len(items) // 2]]


def iter_video_segments(
    path: str | Path,
    max_side: int | None = None,
    frames_per_segment: int = FRAMES_PER_SEGMENT,
    min_len: float = MIN_SEGMENT_S,
    max_len: float = MAX_SEGMENT_S,
) -> tuple[VideoInfo, Iterator[VideoSegment]]:
    """Probe a video and stream its segments (memory stays bounded by one segment's samples)."""
    import cv2

    path = Path(path)
    cap = _open_capture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if not (0 < fps < 1000):
        fps = 25.0  # some containers report 0 or nonsense; timestamps then come from frame order
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    info = VideoInfo(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                     fps, count, count / fps if count > 0 else 0.0)
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise DecodeError("video has no readable frames")
    step = max(1, round(fps / SAMPLE_FPS))

    def generate() -> Iterator[VideoSegment]:
        samples: list[tuple[float, Image.Image]] = []
        diffs: list[float] = []
        seg_start = 0.0
        pending: VideoSegment | None = None  # held back so a too-short tail can join it
        prev_small = None
        index, frame = 0, first
        last_t = 0.0
        try:
            while True:
                t = index / fps
                last_t = t
                small = cv2.resize(frame, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
                diff = float(np.abs(small - prev_small).mean()) if prev_small is not None else 0.0
                prev_small = small
                threshold = max(CUT_MIN_DIFF, CUT_MOTION_FACTOR * float(np.median(diffs)) if diffs else 0.0)
                length = t - seg_start
                if samples and ((diff > threshold and length >= min_len) or length >= max_len):
                    segment = VideoSegment(seg_start, t, [im for _, im in _pick(samples, frames_per_segment)])
                    if pending is not None:
                        yield pending
                    pending = segment
                    samples, diffs, seg_start = [], [], t
                else:
                    diffs.append(diff)
                samples.append((t, _bgr_to_pil(frame, max_side)))
                # Skip to the next sample: grab() demuxes and decodes without the colour conversion.
                skipped = 0
                while skipped < step - 1 and cap.grab():
                    skipped += 1
                index += skipped + 1
                ok, frame = (cap.read() if skipped == step - 1 else (False, None))
                if not ok or frame is None:
                    break
        finally:
            cap.release()
        end = max(info.duration, last_t + 1.0 / fps)
        info.duration = end
        tail = VideoSegment(seg_start, end, [im for _, im in _pick(samples, frames_per_segment)])
        if pending is not None and tail.t_end - tail.t_start < min_len and \
                pending.t_end - pending.t_start + (tail.t_end - tail.t_start) <= max_len:
            pending.t_end = tail.t_end
            pending.frames = _pick(pending.frames + tail.frames, frames_per_segment)
            yield pending
            return
        if pending is not None:
            yield pending
        if tail.frames:
            yield tail

    return info, generate()


def video_frames(path: str | Path, times: list[float], max_side: int | None = None) -> list[Image.Image]:
    """Frames at the given seconds (seeking), for re-ranking a stored segment. Raises DecodeError."""
    import cv2

    cap = _open_capture(Path(path))
    frames = []
    try:
        for t in times:
            cap.set(cv2.CAP_PROP_POS_MSEC, max(0.0, t) * 1000.0)
            ok, frame = cap.read()
            if ok and frame is not None:
                frames.append(_bgr_to_pil(frame, max_side))
    finally:
        cap.release()
    if not frames:
        raise DecodeError("video has no readable frames at those times")
    return frames


def segment_times(t_start: float, t_end: float, n: int) -> list[float]:
    """n evenly spaced instants inside [t_start, t_end), the same spacing indexing uses."""
    if n <= 1:
        return [(t_start + t_end) / 2]
    span = max(0.0, t_end - t_start)
    return [t_start + span * (i + 0.5) / n for i in range(n)]
