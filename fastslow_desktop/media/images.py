"""Photos: any Pillow format (HEIC through pillow-heif, AVIF through Pillow) to upright 8-bit RGB,
refusing bombs by their header before a pixel is decoded."""

from __future__ import annotations

import datetime as _dt
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError, features

from .files import DecodeError, open_regular, read_error
from .sniff import EXTENSION_FOR, HEAD_BYTES, video_format

try:  # a default dependency; registered here, once, for every reader of photos
    import pillow_heif

    pillow_heif.register_heif_opener()
    HAVE_HEIF = True
except ImportError:  # a broken install: HEIC photos then fail with a reason that says what to install
    HAVE_HEIF = False

try:
    HAVE_AVIF = features.check_module("avif")  # Pillow's own AVIF plugin (built into recent wheels)
except ValueError:  # a Pillow too old to know the module
    HAVE_AVIF = False
if not HAVE_AVIF and HAVE_HEIF and hasattr(pillow_heif, "register_avif_opener"):
    pillow_heif.register_avif_opener()  # older Pillow: pillow-heif's own AVIF reader, where it has one
    HAVE_AVIF = True

# Above this a photo is refused before its pixels are decoded: 200 MP covers every real camera
# and panorama, while a decompression bomb claims far more.
MAX_PIXELS = 200_000_000
# ...and above this many bytes of working memory (decoded pixels plus the conversion to 8-bit RGB,
# counted from the header): a 14 000 x 14 000 16-bit PNG is only 196 MP but needs ~1.8 GB.
MAX_DECODE_BYTES = 1 << 30
# Pillow warns above its own limit and raises at twice it; align it with ours so our check runs first.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

BACKGROUND = (255, 255, 255)  # transparent pixels are shown on white, like a file browser does
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_WHITE_LEVELS = {"F": (1.0, 255.0, 65535.0), "I": (255.0, 65535.0)}  # 32-bit samples: the smallest that fits


@dataclass
class ImageInfo:
    """What a photo decode learns besides the pixels."""

    width: int  # of the original file, after EXIF rotation
    height: int
    taken: str | None  # ISO date and time from EXIF (DateTimeOriginal first), or None


def decode_bytes(mode: str, width: int, height: int) -> int:
    """Working memory a decode of this header takes: Pillow's pixels (RGB is held in 4 bytes) plus
    what `_to_rgb` allocates on the way to 8-bit RGB."""
    if mode in ("1", "L", "P"):
        held, convert = 1, (12 if mode == "P" else 4)  # a palette may carry transparency: RGBA path
    elif mode in _SIXTEEN_BIT:
        held, convert = 2, 2 + 1 + 4  # numpy copy, 8-bit copy, RGB
    elif mode in ("I", "F"):
        held, convert = 4, 4 + 1 + 4
    else:
        held, convert = 4, (0 if mode == "RGB" else 12 if mode in _ALPHA_MODES else 4)
    return width * height * (held + convert)


def _check_budget(img: Image.Image) -> None:
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise DecodeError(_megapixels(width * height))
    need = decode_bytes(img.mode, width, height)
    if need > MAX_DECODE_BYTES:
        raise DecodeError(f"image too large to decode: {width} × {height} pixels in mode {img.mode} need "
                          f"{need / 1e9:.1f} GB of memory (limit {MAX_DECODE_BYTES / 1e9:.1f} GB)")


def _megapixels(pixels: int) -> str:
    return f"image too large: {round(pixels / 1e6)} megapixels"


def _bomb_reason(exc: Exception) -> str:
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return _megapixels(int(match.group(1))) if match else "image too large"


# Where a camera keeps the moment a photo was taken, best first: DateTimeOriginal and
# DateTimeDigitized (Exif IFD), then IFD0's DateTime, which editors rewrite but is still closer to the
# shot than the file's mtime.
_EXIF_DATE_TAGS = ((0x8769, 36867), (0x8769, 36868), (None, 306))


def _exif_taken(img: Image.Image) -> str | None:
    """The capture time in the photo's EXIF as an ISO date and time (camera local time), or None."""
    try:
        exif = img.getexif()
        if not exif:
            return None
        exif_ifd = exif.get_ifd(0x8769)
        for ifd, tag in _EXIF_DATE_TAGS:
            parsed = _exif_datetime((exif_ifd if ifd else exif).get(tag))
            if parsed is not None:
                return parsed
    except Exception:  # noqa: BLE001 - a broken EXIF block must not cost the photo
        return None
    return None


def _exif_datetime(value: object) -> str | None:
    """'YYYY:MM:DD HH:MM:SS' (as EXIF writes it) to ISO; None for blanks like '0000:00:00 00:00:00'."""
    if not value:
        return None
    text = (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).strip("\x00 ")
    try:
        return _dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def exif_orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - broken EXIF: show the pixels as stored
        return 1
    return value if 1 <= value <= 8 else 1


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency composited on BACKGROUND."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        return _deep_to_rgb(img)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "1":
        return img.convert("L").convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, LAB, HSV


def _deep_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit single-channel pictures to 8-bit grey, in integer or float32 steps (float64
    copies of a large scan once cost gigabytes)."""
    arr = np.asarray(img)
    peak = float(np.nanmax(arr, initial=0))  # float scans may mark missing samples as NaN
    if not math.isfinite(peak):
        peak = 1.0  # an infinite sample: the rest is read on the float convention
    if img.mode in _SIXTEEN_BIT:  # 16-bit samples (0-65535) unless the file only uses the 8-bit range
        arr8 = (arr >> 8).astype(np.uint8) if peak > 255 else arr.astype(np.uint8)
    else:
        # White is the top of the range the samples use by convention (float 0-1, 8-bit, 16-bit), not
        # the brightest sample: scaling by the peak once showed a dark float scan as a bright one.
        top = next((limit for limit in _WHITE_LEVELS[img.mode] if peak <= limit), peak)
        scaled = arr.astype(np.float32)
        scaled *= 255.0 / top
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        arr8 = np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)
    return Image.fromarray(arr8, "L").convert("RGB")


def _reason_for(exc: Exception, fmt: str | None) -> str:
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


def _unknown_reason(fh: BinaryIO) -> str:
    """HEIC/AVIF this install cannot read is 'unsupported format' (with what to install), and one its
    decoder is installed for but cannot open is damaged; anything else Pillow cannot place is 'not an image'."""
    try:
        fh.seek(0)
        head = fh.read(HEAD_BYTES)
    except OSError:
        return "not an image"
    video = video_format(head)
    if video is not None:
        return f"not an image: it is a video ({video}); named {EXTENSION_FOR[video]} it is indexed as one"
    if any(brand in head for brand in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc")):
        return ("damaged HEIC image" if HAVE_HEIF
                else "unsupported format (HEIC needs pillow-heif: pip install pillow-heif)")
    if b"ftypavif" in head or b"ftypavis" in head:
        return ("damaged AVIF image" if HAVE_AVIF
                else "unsupported format (AVIF needs a Pillow with AVIF support: pip install -U Pillow)")
    return "not an image"


def shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """At least `max_side` on the shorter side, but no more than twice that (cheap preprocessing)."""
    if not max_side or min(image.size) <= 2 * max_side:
        return image
    factor = min(image.size) // max_side
    try:
        image = image.reduce(factor)  # box-averages whole blocks: fast, and keeps >= max_side
    except ValueError:  # a mode reduce() does not handle
        pass
    if min(image.size) > 2 * max_side:
        scale = max_side / min(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def decode_opened(img: Image.Image, fmt: str | None, max_side: int | None) -> tuple[Image.Image, ImageInfo]:
    """The Pillow part of `open_image`: header checks, draft, load, upright, RGB."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise DecodeError(_megapixels(width * height))
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)  # animations: the first frame
    if max_side and fmt == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale while staying >= max_side: the biggest saving.
        img.draft("RGB", (max_side, max_side))
    _check_budget(img)  # on the drafted size and mode, before any pixel is decoded
    taken, orientation = _exif_taken(img), exif_orientation(img)  # after: PNG's getexif() decodes it all
    img.load()
    img = shrink(img, max_side)
    img = ImageOps.exif_transpose(img) if orientation != 1 else img
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return _to_rgb(img), ImageInfo(width, height, taken)


def open_picture(path: str | Path, max_side: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """Decode a Pillow-readable photo (not RAW) to RGB, upright, at least `max_side` on its shorter side
    when that is cheaper (JPEG draft, block reduce); returns the image and its info. Raises DecodeError."""
    try:
        fh = open_regular(path)
    except OSError as exc:
        raise read_error(exc) from exc
    fmt = None
    with fh:
        try:
            if fh.seek(0, 2) == 0:
                raise DecodeError("empty file")
            fh.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fh)
                fmt = {"MPO": "JPEG"}.get(img.format, img.format)
                return decode_opened(img, fmt, max_side)
        except DecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DecodeError(_bomb_reason(exc)) from exc
        except UnidentifiedImageError as exc:
            raise DecodeError(_unknown_reason(fh)) from exc
        except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a reason, never a crash
            raise DecodeError(_reason_for(exc, fmt)) from exc
