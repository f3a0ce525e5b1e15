"""The media layer: odd formats work, HEIC/AVIF/EXIF-rotated photos come out upright for indexing and
the preview alike, hostile files (FIFOs, bombs, RAW without rawpy) fail fast with a reason a person
understands."""

from __future__ import annotations

import os
import sys
import threading
import time

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from fastslow_desktop.media import (
    FORMATS,
    RAW_EXTRA_HINT,
    DecodeError,
    frame_times,
    is_photo,
    iter_video_segments,
    load_image,
    media_kind,
    open_image,
    partial_hash,
    video_frames,
)
from fastslow_desktop.library.scan import is_content_failure
from fastslow_desktop.media import images as images_module
from tests.media_samples import (
    HAVE_RAWPY,
    ROTATED_UPRIGHT,
    is_blue,
    is_red,
    make_bad_files,
    make_odd_good_files,
    write_fading_video,
    write_rotated,
    write_rotated_jpeg,
    write_sixteen_bit_bomb,
    write_test_video,
    write_variable_rate_video,
)

ROTATED_FORMATS = {"heic": "HEIF", "avif": "AVIF", "jpg": "JPEG"}


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
    frames = video_frames(path, frame_times(segments[2].t_start, segments[2].t_end, 2))
    assert len(frames) == 2 and frames[0].getpixel((5, 5))[1] > 200


def test_a_variable_frame_rate_video_is_cut_where_its_frames_times_say(tmp_path):
    """Phones record variable frame rates: red for 2 s at 10 fps, then blue for 8 s at 2.5 fps."""
    path = tmp_path / "phone.mp4"
    write_variable_rate_video(path)
    info, segments = iter_video_segments(path, max_side=32)
    segments = list(segments)
    assert [(round(s.t_start, 2), round(s.t_end, 2)) for s in segments] == [(0.0, 2.0), (2.0, 10.0)]
    assert info.duration == pytest.approx(10.0)
    assert all(is_blue(f.getpixel((5, 5))) for f in segments[1].frames)
    assert is_blue(video_frames(path, [3.0])[0].getpixel((5, 5)))  # re-ranking seeks by the same clock


def test_a_video_cut_short_or_with_a_wrong_frame_rate_ends_at_its_last_frame(tmp_path):
    import cv2

    cut = tmp_path / "cut.avi"  # 10 s by its header; the second half of the file is gone
    writer = cv2.VideoWriter(str(cut), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for colour in [(0, 0, 255), (255, 0, 0)]:
        for _ in range(50):
            writer.write(np.full((48, 64, 3), colour, np.uint8))
    writer.release()
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    info, segments = iter_video_segments(cut, max_side=32)
    segments = list(segments)
    assert 3.0 < info.duration < 5.5 and segments[-1].t_end == pytest.approx(info.duration)
    fast = tmp_path / "fast.mp4"  # 0.2 s at 1 000 fps: a rate OpenCV's probe takes for nonsense
    write_test_video(fast, [(255, 0, 0)], seconds_each=0.2, fps=1000)
    info, segments = iter_video_segments(fast, max_side=32)
    ends = [s.t_end for s in segments]  # the duration is known once the frames are read
    assert info.duration == pytest.approx(0.2, abs=0.01) and ends == [info.duration]


def test_ffmpeg_says_nothing_on_the_terminal_about_a_damaged_video(tmp_path):
    import subprocess

    damaged = tmp_path / "damaged.mp4"
    write_test_video(damaged, [(255, 0, 0)], seconds_each=1.0)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # its header is gone
    code = ("import sys\nfrom fastslow_desktop.media import DecodeError, iter_video_segments\n"
            "try:\n    iter_video_segments(sys.argv[1])\nexcept DecodeError as exc:\n    print(exc)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-c", code, str(damaged)], capture_output=True, text=True, timeout=120,
                          env=env, cwd=str(Path(__file__).resolve().parents[1]))
    assert done.stdout.startswith("not a video") and done.stderr == ""


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



# -- one registry ---------------------------------------------------------------------------------

def test_one_extension_registry_serves_scanning_queries_and_the_window():
    from fastslow_desktop.search.query import parse_query
    from fastslow_desktop.ui import main_window

    assert media_kind("a/B.HEIC") == media_kind("x.avif") == media_kind("y.NEF") == "image"
    assert media_kind("clip.MOV") == "video" and media_kind("notes.txt") is None
    assert is_photo("p.avif") and is_photo("p.cr2") and not is_photo("clip.mp4")
    # The query parser and the window ask the registry: a RAW or AVIF path is a picture query.
    assert [t.kind for t in parse_query('"sunset" + holiday.avif - DSC_0001.NEF').terms] == ["text", "image", "image"]
    assert not hasattr(main_window, "IMAGE_SUFFIXES")
    assert {FORMATS[s] for s in (".heic", ".avif", ".nef", ".mp4")} == {"image", "raw", "video"}


# -- upright everywhere -----------------------------------------------------------------------------

@pytest.mark.parametrize("ext", sorted(ROTATED_FORMATS))
def test_heic_avif_and_rotated_jpeg_decode_upright_for_indexing(tmp_path, ext):
    path = tmp_path / f"sideways.{ext}"
    write_rotated(path, ROTATED_FORMATS[ext])
    image, info = open_image(path, max_side=16)  # what the indexer calls
    assert image.mode == "RGB" and image.size == ROTATED_UPRIGHT and (info.width, info.height) == ROTATED_UPRIGHT
    w, h = image.size
    assert is_blue(image.getpixel((w - 3, 2))), "the stored top-left corner is at the top right, upright"
    assert is_red(image.getpixel((2, 2))) and is_red(image.getpixel((w - 3, h - 3)))


@pytest.mark.parametrize("ext", sorted(ROTATED_FORMATS))
def test_heic_avif_and_rotated_jpeg_are_upright_in_preview_and_thumbnails(qapp, tmp_path, ext):
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QColor

    from fastslow_desktop.ui.workers.preview import preview_image
    from fastslow_desktop.ui.workers.thumbnails import read_scaled

    path = tmp_path / f"sideways.{ext}"
    write_rotated(path, ROTATED_FORMATS[ext])
    for image in (preview_image(str(path), "image", None, None, QSize(1024, 1024)),
                  read_scaled(path, QSize(256, 256))):
        assert not image.isNull() and (image.width(), image.height()) == ROTATED_UPRIGHT
        corner = QColor(image.pixel(image.width() - 3, 2))
        assert is_blue((corner.red(), corner.green(), corner.blue()))


def test_a_heic_photo_shows_in_the_large_preview(qtbot, tmp_path):
    """Issue 13's acceptance: the preview pane's worker decodes a HEIC and shows it full size."""
    from types import SimpleNamespace

    from fastslow_desktop.ui.views.preview import PreviewPane

    path = tmp_path / "phone.heic"
    write_rotated(path, "HEIF", scale=5)  # 300 x 150 stored sideways: 150 x 300 upright
    pane = PreviewPane()
    qtbot.addWidget(pane)
    pane.show()
    info = SimpleNamespace(size=path.stat().st_size, taken=None, mtime=path.stat().st_mtime, width=150, height=300,
                           duration=None)
    result = SimpleNamespace(segment_id=1, path=str(path), kind="image", t_start=None, t_end=None, info=info,
                             score=0.5, fast_score=0.5, slow_score=None, thumb=None)
    pane.show_result(result)
    qtbot.waitUntil(lambda: not pane.image._pixmap.isNull(), timeout=10_000)
    picture = pane.image._pixmap.toImage()
    assert (picture.width(), picture.height()) == (150, 300)
    assert picture.pixelColor(148, 2).blue() > 150 and picture.pixelColor(2, 2).red() > 150
    pane.shutdown()


def test_video_preview_shows_the_frame_that_stands_for_the_moment(qapp, tmp_path):
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QColor

    from fastslow_desktop.ui.workers.preview import load_preview

    path = tmp_path / "clip.mp4"
    write_test_video(path, [(255, 0, 0), (0, 0, 255)], seconds_each=2.0)
    token, image = load_preview(7, str(path), "video", 1.5, 3.5, QSize(1024, 1024))  # middle: 2.5 s, blue
    colour = QColor(image.pixel(5, 5))
    assert token == 7 and (image.width(), image.height()) == (64, 48) and colour.blue() > 200 > colour.red()


def test_heic_avif_and_rotated_jpeg_are_indexed_upright_and_raw_without_rawpy_gets_a_reason(
        tmp_path, tiny_bundle, monkeypatch):
    """Issue 14's acceptance through the real indexer: upright sizes and thumbnails, and a failure row
    for a RAW file whose reason names the extra to install."""
    import sqlite3

    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    monkeypatch.setitem(sys.modules, "rawpy", None)
    photos = tmp_path / "phone"
    photos.mkdir()
    for ext, fmt in ROTATED_FORMATS.items():
        write_rotated(photos / f"sideways.{ext}", fmt, scale=3)  # 180 x 90 stored, 90 x 180 upright
    (photos / "IMG_0002.NEF").write_bytes(b"MM\0*" + os.urandom(3000))
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        report = library.index()
        root = library.paths.root
    assert (report.indexed, report.failed) == (3, 1)
    with sqlite3.connect(root / "library.db") as conn:
        rows = conn.execute("SELECT m.path, m.status, m.error, m.width, m.height, s.thumb FROM media m "
                            "LEFT JOIN segments s ON s.media_id = m.id").fetchall()
    for path, status, error, width, height, thumb in rows:
        if path.endswith(".NEF"):
            assert status != "ok" and RAW_EXTRA_HINT in error
            continue
        assert (status, width, height) == ("ok", 90, 180), path
        with Image.open(root / thumb) as picture:
            picture = picture.convert("RGB")
            assert picture.height > picture.width and is_blue(picture.getpixel((picture.width - 4, 3))), path


# -- one frame_times --------------------------------------------------------------------------------

def test_indexing_embeds_the_frames_that_re_ranking_and_re_embedding_seek_to(tmp_path):
    path = tmp_path / "fade.mp4"
    write_fading_video(path, seconds=6.0)
    _, segments = iter_video_segments(path, max_side=32, frames_per_segment=3)
    (segment,) = list(segments)
    times = frame_times(segment.t_start, segment.t_end, 3)
    assert times == pytest.approx([1.0, 3.0, 5.0], abs=0.1)
    sought = video_frames(path, times)
    indexed = [float(np.asarray(f).mean()) for f in segment.frames]
    # 20 grey levels a second: the indexed frames lie within a sample step (0.2 s = 4 levels) of those
    # instants (first/middle/last samples would be ~20 levels off at both ends).
    assert indexed == pytest.approx([float(np.asarray(f).mean()) for f in sought], abs=6)


def test_frames_per_segment_has_one_definition():
    from fastslow_desktop.media import video
    from fastslow_desktop.search import moments

    assert moments.FRAMES_PER_SEGMENT is video.FRAMES_PER_SEGMENT
    assert frame_times(0.0, 6.0, 1) == [3.0] and frame_times(0.0, 6.0, 3) == [1.0, 3.0, 5.0]


# -- RAW --------------------------------------------------------------------------------------------

def test_raw_without_rawpy_names_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "rawpy", None)  # importing it now fails, installed or not
    (tmp_path / "IMG_0001.CR2").write_bytes(b"II*\0" + os.urandom(2000))
    with pytest.raises(DecodeError) as info:
        open_image(tmp_path / "IMG_0001.CR2", max_side=224)
    assert RAW_EXTRA_HINT in info.value.reason and "rawpy" in info.value.reason


def test_heic_or_avif_this_install_cannot_read_says_what_to_install(tmp_path, monkeypatch):
    for ext in ("heic", "avif"):
        write_rotated(tmp_path / f"p.{ext}", ROTATED_FORMATS[ext])

    def no_plugin(fp, *args, **kwargs):
        raise UnidentifiedImageError("cannot identify image file")  # as without pillow-heif / AVIF

    monkeypatch.setattr(Image, "open", no_plugin)
    monkeypatch.setattr(images_module, "HAVE_HEIF", False)
    monkeypatch.setattr(images_module, "HAVE_AVIF", False)
    reasons = {}
    for ext in ("heic", "avif"):
        with pytest.raises(DecodeError) as info:
            open_image(tmp_path / f"p.{ext}")
        reasons[ext] = info.value.reason
    assert "pip install pillow-heif" in reasons["heic"] and "AVIF" in reasons["avif"], reasons
    assert all(r.startswith("unsupported format") for r in reasons.values())


@pytest.mark.skipif(not images_module.HAVE_HEIF, reason="pillow-heif is not installed")
def test_a_damaged_heic_is_damaged_not_a_missing_plugin(tmp_path):
    write_rotated(tmp_path / "whole.heic", ROTATED_FORMATS["heic"])
    data = (tmp_path / "whole.heic").read_bytes()
    (tmp_path / "half.heic").write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError) as info:
        open_image(tmp_path / "half.heic")
    assert "pip install" not in info.value.reason and is_content_failure(info.value.reason), info.value.reason


@pytest.mark.skipif(not HAVE_RAWPY, reason="rawpy is not installed (the optional raw extra)")
def test_raw_with_rawpy_reports_a_damaged_file_clearly(tmp_path):
    (tmp_path / "broken.nef").write_bytes(os.urandom(4000))
    with pytest.raises(DecodeError) as info:
        open_image(tmp_path / "broken.nef")
    assert "RAW" in info.value.reason


# -- nothing hangs, nothing explodes ----------------------------------------------------------------

def _finishes(call, timeout: float = 20.0) -> tuple[bool, BaseException | None]:
    """Run `call` on a thread; (finished in time, what it raised)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread to judge
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), outcome[0] if outcome else None)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("name, call", [
    ("swapped.jpg", lambda p: partial_hash(p)),
    ("swapped.jpg", lambda p: open_image(p, max_side=64)),
    ("swapped.mp4", lambda p: iter_video_segments(p)),
    ("swapped.mp4", lambda p: video_frames(p, [0.0])),
    ("swapped.nef", lambda p: open_image(p)),
])
def test_a_file_swapped_for_a_fifo_is_refused_without_hanging(tmp_path, name, call):
    path = tmp_path / name
    os.mkfifo(path)
    try:
        finished, raised = _finishes(lambda: call(path))
    finally:
        try:  # a reader stuck in open() (the old code) is released by a writer that comes and goes
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert finished, "decoding a FIFO blocked"
    assert isinstance(raised, DecodeError) and raised.reason == "not a regular file"
    assert isinstance(raised, OSError), "scan.py's `except OSError` around partial_hash must catch it too"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_an_index_run_with_a_file_swapped_for_a_fifo_finishes_with_a_failure_row(tmp_path, tiny_bundle,
                                                                               monkeypatch):
    """Issue 18 item 9 through the indexer: the swap happens after the scan, at the first open."""
    import sqlite3

    from fastslow_desktop.library import Library
    from fastslow_desktop.media import files
    from fastslow_desktop.models import load_bundle

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (60 * i, 90, 200)).save(photos / f"p{i}.png")
    victim = photos / "p1.png"
    real_open = files.open_regular

    def swap_then_open(path):
        if os.fspath(path) == str(victim.resolve()) and not victim.is_fifo():
            victim.unlink()
            os.mkfifo(victim)  # the scan saw a photo; the decoder finds a FIFO
        return real_open(path)

    monkeypatch.setattr(files, "open_regular", swap_then_open)
    outcome = {}
    with Library.open(tmp_path / "library", load_bundle(tiny_bundle)) as library:
        library.add_root(photos)
        finished, raised = _finishes(lambda: outcome.setdefault("report", library.index()), timeout=60)
        if not finished:  # release the old code's blocking open() before failing
            os.close(os.open(victim, os.O_WRONLY | os.O_NONBLOCK))
    assert finished and raised is None, raised
    assert victim.is_fifo(), "the swap must have happened for the test to mean anything"
    assert (outcome["report"].indexed, outcome["report"].failed) == (2, 1)
    with sqlite3.connect(tmp_path / "library" / "library.db") as conn:
        errors = dict(conn.execute("SELECT path, error FROM media WHERE error IS NOT NULL"))
    assert errors == {str(victim.resolve()): "not a regular file"}


def test_sixteen_bit_png_bomb_under_the_pixel_cap_is_refused_before_decoding(tmp_path):
    path = tmp_path / "scan.png"
    write_sixteen_bit_bomb(path)
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(DecodeError) as info:
        load_image(path, max_side=224)
    elapsed = time.perf_counter() - start
    assert info.value.reason.startswith("image too large to decode: 14000 × 14000")
    assert "GB" in info.value.reason
    assert elapsed < 5.0, f"refused from the header, not after decoding 392 MB ({elapsed:.1f} s)"


def test_sixteen_bit_photos_convert_without_float64_copies(tmp_path):
    """A 16-bit scan within the budget still decodes, its full range kept."""
    Image.fromarray(np.linspace(0, 65535, 300 * 200).astype(np.uint16).reshape(200, 300)).save(tmp_path / "s.png")
    grey = np.asarray(load_image(tmp_path / "s.png"))
    assert grey.shape == (200, 300, 3) and grey.min() == 0 and grey.max() == 255


@pytest.mark.parametrize("fmt, ext, shown", [("JPEG", ".jpg", "JPEG"), ("PNG", ".png", "PNG"),
                                             ("HEIF", ".heic", "HEIC"), ("WEBP", ".webp", "WebP")])
def test_a_picture_named_as_a_video_says_what_it_is(tmp_path, fmt, ext, shown):
    """FFmpeg read a JPEG named .mp4 as a one-frame video of 0.04 s, shown as a video moment "0.0-0.0s"."""
    path = tmp_path / "holiday.mp4"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, fmt)
    with pytest.raises(DecodeError) as err:
        iter_video_segments(path, max_side=32, frames_per_segment=3)
    assert err.value.reason == f"not a video: it is a picture ({shown}); named {ext} it is indexed as one"
    assert is_content_failure(err.value.reason)  # not retried until the file changes


def test_a_video_named_as_a_picture_says_what_it_is(tmp_path):
    video = tmp_path / "clip.mp4"
    write_test_video(video, [(255, 0, 0)], seconds_each=1.0)
    named = tmp_path / "IMG_0001.jpg"
    video.rename(named)
    with pytest.raises(DecodeError) as err:
        load_image(named)
    assert err.value.reason == "not an image: it is a video (MP4 or QuickTime); named .mp4 or .mov it is indexed as one"
    assert is_content_failure(err.value.reason)
    named.rename(tmp_path / "IMG_0001.mov")  # renamed as the message says: a video like any other
    info, segments = iter_video_segments(tmp_path / "IMG_0001.mov", max_side=32, frames_per_segment=3)
    assert info.duration > 0.5 and list(segments)


def test_sniffing_does_not_take_an_avif_or_heic_for_a_video():
    from fastslow_desktop.media.sniff import picture_format, video_format

    avif = b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miaf"
    heic = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
    mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
    assert (picture_format(avif), video_format(avif)) == ("AVIF", None)
    assert (picture_format(heic), video_format(heic)) == ("HEIC", None)
    assert (picture_format(mp4), video_format(mp4)) == (None, "MP4 or QuickTime")


@pytest.mark.parametrize("scale", [1.0, 255.0, 65535.0])
def test_a_float_scan_keeps_its_brightness(tmp_path, scale):
    """A float32 TIFF was scaled by its brightest sample: a dark scan (0-0.5 of white) showed as a bright one."""
    ramp = np.linspace(0, 0.5, 64 * 48, dtype=np.float32).reshape(48, 64) * scale
    Image.fromarray(ramp, "F").save(tmp_path / "scan.tif")
    grey = np.asarray(load_image(tmp_path / "scan.tif"))
    assert grey.shape == (48, 64, 3) and grey.min() == 0
    assert 125 <= grey.max() <= 128, grey.max()  # half of white, not white


def test_a_float_scan_with_missing_samples_still_decodes(tmp_path):
    """NaN marks missing samples in scientific float TIFFs: they show black, the rest keeps its brightness."""
    ramp = np.linspace(0, 1.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    ramp[:4] = np.nan
    ramp[4, :4] = np.inf
    Image.fromarray(ramp, "F").save(tmp_path / "scan.tif")
    grey = np.asarray(load_image(tmp_path / "scan.tif"))
    assert (grey[:4] == 0).all() and (grey[4, :4] == 255).all() and grey[-1, -1, 0] == 255
