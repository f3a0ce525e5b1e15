"""Sample media files for tests: odd but valid photos, hostile files with the reason each must fail with,
rotated photos in every format, videos, FIFOs and header bombs."""

from __future__ import annotations

import importlib.util
import io
import random
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fastslow_desktop.media import RAW_EXTRA_HINT

HAVE_RAWPY = importlib.util.find_spec("rawpy") is not None

# name -> the reason it must fail with (substring)
BAD_FILES = {
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated JPEG",
    "random bytes.png": "not an image",
    "text.jpeg": "not an image",
    "random.mp4": "not a video",
    "bomb.png": "image too large: 900 megapixels",
    # A RAW file (garbage inside): without rawpy the reason names the extra to install.
    "camera.nef": "damaged or unsupported RAW file" if HAVE_RAWPY else RAW_EXTRA_HINT,
}
GOOD_ODD_FILES = ("ünïcödé name with spaces.png", "alpha.png", "palette-transparent.png", "cmyk.jpg",
                  "sixteen-bit.png", "animated.gif", "rotated-exif.jpg", "grey.tif", "tiny.webp",
                  "phone.heic", "phone.avif")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, side: int = 30000) -> None:
    """A 200-byte PNG whose header claims side x side pixels (900 megapixels by default)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) +
                     _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def write_rotated_jpeg(path: Path) -> None:
    """A 60x30 JPEG stored sideways with EXIF orientation 6 and a DateTimeOriginal."""
    img = Image.new("RGB", (60, 30), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[36867] = "2021:07:14 09:30:00"
    img.save(path, "JPEG", exif=exif.tobytes())


def make_bad_files(folder: Path, seed: int = 0) -> dict[str, str]:
    """Writes BAD_FILES into `folder`; returns {absolute path: expected reason}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    noise = Image.effect_noise((256, 256), 60).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=90)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    (folder / "random bytes.png").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    (folder / "text.jpeg").write_text("this is a text file, not a photo\n" * 20)
    (folder / "random.mp4").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    write_bomb_png(folder / "bomb.png")
    (folder / "camera.nef").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    return {str((folder / name).resolve()): reason for name, reason in BAD_FILES.items()}


def make_odd_good_files(folder: Path) -> list[str]:
    """Files that are unusual but fine: every one must decode."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (10, 200, 10)).save(folder / GOOD_ODD_FILES[0])
    Image.new("RGBA", (50, 40), (255, 0, 0, 100)).save(folder / "alpha.png")
    pal = Image.new("P", (32, 32), 0)  # index 0 is transparent; a red square on it
    pal.paste(1, (8, 8, 24, 24))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(folder / "palette-transparent.png", transparency=0)
    Image.new("RGB", (64, 48), (0, 90, 200)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.arange(0, 65536, 16, dtype=np.uint16).reshape(64, 64)).save(folder / "sixteen-bit.png")
    frames = [Image.new("P", (30, 30), i) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    write_rotated_jpeg(folder / "rotated-exif.jpg")
    Image.new("L", (33, 21), 128).save(folder / "grey.tif")
    Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "tiny.webp")
    write_rotated(folder / "phone.heic", "HEIF")
    write_rotated(folder / "phone.avif", "AVIF")
    return [str((folder / name).resolve()) for name in GOOD_ODD_FILES]


def write_test_video(path: Path, colours: list[tuple[int, int, int]], seconds_each: float, fps: int = 10) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for colour in colours:
        for _ in range(int(seconds_each * fps)):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:] = colour[::-1]
            writer.write(frame)
    writer.release()


_MP4_CONTAINERS = {b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl"}


def _mp4_boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, offset, size) of every box, containers' children included (32-bit sizes: small test files)."""
    i, end = start, len(data) if end is None else end
    while i < end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        yield kind, i, size
        if kind in _MP4_CONTAINERS:
            yield from _mp4_boxes(data, i + 8, i + size)
        i += size


def write_variable_rate_video(path: Path) -> None:
    """A phone-like variable-frame-rate MP4: 20 red frames 0.1 s apart (0-2 s), then 20 blue frames
    0.4 s apart (2-10 s). Written at a constant 10 fps, then its sample-timing table (stts) rewritten;
    the movie data stays before the header, so no chunk offset moves."""
    write_test_video(path, [(255, 0, 0), (0, 0, 255)], 2.0)
    data = path.read_bytes()
    boxes = list(_mp4_boxes(data))
    _, at, size = next(b for b in boxes if b[0] == b"stts")
    assert next(b for b in boxes if b[0] == b"mdat")[1] < at  # OpenCV writes the data first
    count, delta = struct.unpack(">II", data[at + 16:at + 24])
    body = struct.pack(">IIIIII", 0, 2, 20, delta, count - 20, 4 * delta)
    stts = struct.pack(">I4s", 8 + len(body), b"stts") + body
    grow = len(stts) - size
    out = bytearray(data[:at] + stts + data[at + size:])
    for kind, offset, box_size in boxes:
        if kind in _MP4_CONTAINERS and offset < at < offset + box_size:
            struct.pack_into(">I", out, offset, box_size + grow)
    # Every duration grows with it (version-0 boxes; the edit list would otherwise cut playback at 4 s).
    factor = (20 + 4 * (count - 20)) / count
    where = {b"mdhd": 24, b"mvhd": 24, b"tkhd": 28, b"elst": 16}
    for kind, offset, _ in _mp4_boxes(bytes(out)):
        if kind in where:
            old = struct.unpack(">I", out[offset + where[kind]:offset + where[kind] + 4])[0]
            struct.pack_into(">I", out, offset + where[kind], round(old * factor))
    path.write_bytes(bytes(out))


# A 60 x 30 picture, red with a blue 10 x 10 top-left corner, stored sideways with EXIF orientation 6
# (turn 90° clockwise to show): upright it is 30 x 60 with the blue corner at the top right.
ROTATED_STORED = (60, 30)
ROTATED_UPRIGHT = (30, 60)
RED, BLUE = (200, 30, 30), (0, 0, 255)


def write_rotated(path: Path, fmt: str, scale: int = 1) -> None:
    """The sideways picture above (sides times `scale`) in any format Pillow (+ pillow-heif) writes."""
    # No pillow_heif.register_heif_opener() here: importing fastslow_desktop.media registered it.
    w, h = ROTATED_STORED
    img = Image.new("RGB", (w * scale, h * scale), RED)
    img.paste(BLUE, (0, 0, 10 * scale, 10 * scale))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, fmt, exif=exif.tobytes(), quality=95)


def is_blue(rgb) -> bool:
    return rgb[2] > 150 and rgb[0] < 100


def is_red(rgb) -> bool:
    return rgb[0] > 150 and rgb[2] < 100


def _zlib_repeated(block: bytes, times: int) -> bytes:
    """A zlib stream of `block` repeated: one raw-deflate piece that refers only to itself, repeated,
    so a 392 MB stream is built in well under a second and a few hundred KB."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    adler = 1
    for _ in range(times):
        adler = zlib.adler32(block, adler)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return b"\x78\xda" + piece * times + final + struct.pack(">I", adler)


def write_sixteen_bit_bomb(path: Path, side: int = 14000) -> None:
    """A valid, all-black side x side 16-bit greyscale PNG of ~380 KB (196 MP: under the pixel cap,
    but 392 MB of samples before any conversion)."""
    rows = 100
    block = (b"\0" + b"\0" * (2 * side)) * rows  # filter byte + one row of 16-bit samples
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) +
                     _png_chunk(b"IDAT", _zlib_repeated(block, side // rows)) + _png_chunk(b"IEND", b""))


def write_fading_video(path: Path, seconds: float = 6.0, fps: int = 10) -> None:
    """A grey video that brightens evenly (20 levels a second): no scene cut, and every instant has
    its own brightness, so a frame tells the time it was taken at."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(int(seconds * fps)):
        writer.write(np.full((48, 64, 3), int(i / fps * 20), np.uint8))
    writer.release()
