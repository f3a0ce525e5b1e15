"""Decoding photos and videos: odd formats work, hostile files fail with a reason a person understands."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.library.decode import (
    DecodeError,
    iter_video_segments,
    load_image,
    open_image,
    partial_hash,
    segment_times,
    video_frames,
)

# name -> the reason it must fail with (substring)
BAD_FILES = {
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated JPEG",
    "random bytes.png": "not an image",
    "text.jpeg": "not an image",
    "random.mp4": "not a video",
    "bomb.png": "image too large: 900 megapixels",
}
GOOD_ODD_FILES = ("ünïcödé name with spaces.png", "alpha.png", "palette-transparent.png", "cmyk.jpg",
                  "sixteen-bit.png", "animated.gif", "rotated-exif.jpg", "grey.tif", "tiny.webp")


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
    return [str((folder / name).resolve()) for name in GOOD_ODD_FILES]


def write_test_video(path: Path, colours: list[tuple[int, int, int]], seconds_each: float, fps: int = 10) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for colour in colours:
        for _ in range(int(seconds_each * fps)):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:] = colour[::-1]
            writer.write(frame)
    writer.release()


def test_every_hostile_file_fails_with_a_reason_a_person_understands(tmp_path):
    expected = make_bad_files(tmp_path)
    for path, reason in expected.items():
        if path.endswith(".mp4"):
            with pytest.raises(DecodeError) as info:
                iter_video_segments(path)
        else:
            with pytest.raises(DecodeError) as info:
                load_image(path, max_side=64)
        assert reason in info.value.reason, (path, info.value.reason)


def test_unusual_but_valid_photos_decode_to_rgb(tmp_path):
    for path in make_odd_good_files(tmp_path):
        image = load_image(path, max_side=64)
        assert image.mode == "RGB" and min(image.size) > 0, path


def test_transparency_is_shown_on_white_and_sixteen_bit_keeps_its_range(tmp_path):
    make_odd_good_files(tmp_path)
    image = load_image(tmp_path / "palette-transparent.png")
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((16, 16)) == (255, 0, 0)
    grey = np.asarray(load_image(tmp_path / "sixteen-bit.png"))
    assert grey.min() == 0 and grey.max() >= 250  # 16-bit scaled, not clipped to white


def test_exif_orientation_is_applied_and_date_taken_read(tmp_path):
    write_rotated_jpeg(tmp_path / "r.jpg")
    image, info = open_image(tmp_path / "r.jpg")
    assert image.size == (30, 60) and (info.width, info.height) == (30, 60)
    assert info.taken == "2021-07-14T09:30:00"


def test_jpeg_draft_decodes_big_photos_at_reduced_scale(tmp_path):
    Image.new("RGB", (2000, 1600), (5, 5, 5)).save(tmp_path / "big.jpg")
    image, info = open_image(tmp_path / "big.jpg", max_side=224)
    assert (info.width, info.height) == (2000, 1600)
    assert 224 <= min(image.size) <= 448


def test_video_is_cut_at_scene_changes_with_timestamps(tmp_path):
    path = tmp_path / "clip.mp4"
    write_test_video(path, [(255, 0, 0), (0, 0, 255), (0, 255, 0)], seconds_each=2.0)
    info, segments = iter_video_segments(path, max_side=32, frames_per_segment=3)
    segments = list(segments)
    assert abs(info.duration - 6.0) < 0.3
    assert [round(s.t_start) for s in segments] == [0, 2, 4]
    assert all(len(s.frames) == 3 for s in segments)
    red, blue = segments[0].frames[1].getpixel((5, 5)), segments[1].frames[1].getpixel((5, 5))
    assert red[0] > 200 and blue[2] > 200
    frames = video_frames(path, segment_times(segments[2].t_start, segments[2].t_end, 2))
    assert len(frames) == 2 and frames[0].getpixel((5, 5))[1] > 200


def test_long_unchanging_video_is_split_at_the_maximum_length(tmp_path):
    path = tmp_path / "still.mp4"
    write_test_video(path, [(90, 90, 90)], seconds_each=23.0, fps=5)
    _, segments = iter_video_segments(path, max_side=32)
    lengths = [s.t_end - s.t_start for s in segments]
    assert len(lengths) == 3 and max(lengths) <= 10.0 + 1e-6 and min(lengths) >= 1.0


def test_partial_hash_follows_content_not_name(tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "a.bin").write_bytes(data)
    (tmp_path / "b.bin").write_bytes(data)
    (tmp_path / "c.bin").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert partial_hash(tmp_path / "a.bin") == partial_hash(tmp_path / "b.bin") != partial_hash(tmp_path / "c.bin")
