"""What a file's first bytes say it is, so that a file whose extension lies (a JPEG named .mp4, a phone
video named .jpg) fails with a reason that says what it really is and how to have it indexed."""

from __future__ import annotations

HEAD_BYTES = 32  # enough for every signature below (an ISO-BMFF `ftyp` box's brands included)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")


def _ftyp_brands(head: bytes) -> list[bytes]:
    """The major and compatible brands of an ISO-BMFF file (MP4, QuickTime, HEIF, AVIF); [] for others."""
    if head[4:8] != b"ftyp":
        return []
    return [head[i:i + 4] for i in range(8, len(head) - 3, 4) if i != 12]  # 12..16 is the minor version


def picture_format(head: bytes) -> str | None:
    """'JPEG', 'PNG', 'TIFF', 'BMP', 'WebP', 'HEIC' or 'AVIF' when `head` starts a still picture."""
    brands = _ftyp_brands(head)
    if any(b in _AVIF_BRANDS for b in brands):
        return "AVIF"
    if any(b in _HEIF_BRANDS for b in brands):
        return "HEIC"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head.startswith(b"BM") and len(head) >= 14:
        return "BMP"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def video_format(head: bytes) -> str | None:
    """'MP4 or QuickTime', 'AVI' or 'Matroska' when `head` starts a video container."""
    if _ftyp_brands(head) and picture_format(head) is None:
        return "MP4 or QuickTime"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska"
    return None


EXTENSION_FOR = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "BMP": ".bmp", "WebP": ".webp", "HEIC": ".heic",
                 "AVIF": ".avif", "MP4 or QuickTime": ".mp4 or .mov", "AVI": ".avi", "Matroska": ".mkv"}
