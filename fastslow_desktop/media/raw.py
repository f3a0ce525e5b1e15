"""Camera RAW photos (CR2, NEF, ARW, DNG, …): the embedded preview through rawpy, an optional extra."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from .files import DecodeError, open_regular, read_error
from .images import ImageInfo, decode_opened, exif_orientation, shrink

RAW_EXTRA_HINT = "pip install 'fastslow-desktop[raw]'"
MISSING_RAWPY = f"RAW photo: reading RAW files needs the optional rawpy package ({RAW_EXTRA_HINT})"
# LibRaw's `flip` -> the Pillow transpose that shows the preview upright (embedded previews are
# stored as the sensor saw them; postprocess() applies the flip itself).
_FLIP = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def _rawpy():
    try:
        import rawpy
    except ImportError as exc:
        raise DecodeError(MISSING_RAWPY) from exc
    return rawpy


def _preview(raw, rawpy, max_side: int | None) -> tuple[Image.Image, bool, str | None]:
    """The embedded preview (or a half-size develop when there is none): image, whether it still needs
    LibRaw's flip, and the date taken from the preview's EXIF."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        thumb = None
    if thumb is not None and thumb.format == rawpy.ThumbFormat.JPEG:
        img = Image.open(io.BytesIO(thumb.data))
        own_orientation = exif_orientation(img) != 1  # the preview's own EXIF wins over LibRaw's flip
        rgb, info = decode_opened(img, "JPEG", max_side)
        return rgb, not own_orientation, info.taken
    if thumb is not None and thumb.format == rawpy.ThumbFormat.BITMAP:
        return Image.fromarray(thumb.data).convert("RGB"), True, None
    developed = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    return Image.fromarray(developed), False, None


def open_raw(path: str | Path, max_side: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """A RAW photo as upright 8-bit RGB from its embedded preview, with its info. Raises DecodeError
    (naming the extra to install when rawpy is missing)."""
    try:
        fh = open_regular(path)
    except OSError as exc:
        raise read_error(exc) from exc
    with fh:
        rawpy = _rawpy()
        try:
            with rawpy.imread(fh) as raw:
                flip = int(raw.sizes.flip)
                width, height = int(raw.sizes.width), int(raw.sizes.height)
                image, needs_flip, taken = _preview(raw, rawpy, max_side)
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - LibRaw's errors become a reason, never a crash
            raise DecodeError(f"damaged or unsupported RAW file ({type(exc).__name__}: {exc})") from exc
    if needs_flip and flip in _FLIP:
        image = image.transpose(_FLIP[flip])
    if flip in (5, 6):
        width, height = height, width
    return shrink(image, max_side), ImageInfo(width, height, taken)
