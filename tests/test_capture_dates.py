"""Capture times (EXIF, a video's movie header, mtime), stored with their source; date sort and filters."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastslow_desktop.catalog import store as store_module
from fastslow_desktop.catalog.store import Store
from fastslow_desktop.cli import main as cli_main
from fastslow_desktop.library import Library
from fastslow_desktop.media import container_creation_time, open_image
from fastslow_desktop.models import load_bundle
from fastslow_desktop.search import SearchEngine, SearchRequest

EPOCH_1904 = dt.datetime(1904, 1, 1, tzinfo=dt.timezone.utc)


def _ts(*when: int) -> float:
    return dt.datetime(*when).timestamp()


def write_jpeg(path: Path, color: tuple[int, int, int], mtime: float, original: str | None = None,
               ifd0_datetime: str | None = None, digitized: str | None = None) -> Path:
    """A JPEG with the given EXIF date tags (EXIF's 'YYYY:MM:DD HH:MM:SS' text) and file mtime."""
    exif = Image.Exif()
    if ifd0_datetime:
        exif[306] = ifd0_datetime
    if original or digitized:
        sub = exif.get_ifd(0x8769)
        if original:
            sub[36867] = original
        if digitized:
            sub[36868] = digitized
    image = Image.new("RGB", (80, 60), color)
    image.paste((255 - color[0], color[1] // 2, 200), (10, 10, 50, 40))
    image.save(path, "JPEG", exif=exif)
    os.utime(path, (mtime, mtime))
    return path


def mvhd_box(seconds: int, version: int = 0) -> bytes:
    times = struct.pack(">QQ", seconds, seconds) if version else struct.pack(">II", seconds, seconds)
    body = bytes([version, 0, 0, 0]) + times + b"\0" * 80
    return struct.pack(">I4s", 8 + len(body), b"mvhd") + body


def write_mp4(path: Path, created: dt.datetime | None, mtime: float) -> Path:
    """A short MP4 from OpenCV with its movie header's creation time set (OpenCV writes zero)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (64, 48))
    for i in range(16):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, : 4 * i] = (30, 200, 90)
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    at = data.index(b"mvhd") + 4
    assert data[at] == 0 and struct.unpack(">I", data[at + 4:at + 8])[0] == 0
    if created is not None:
        data[at + 4:at + 8] = struct.pack(">I", int((created - EPOCH_1904).total_seconds()))
    path.write_bytes(bytes(data))
    os.utime(path, (mtime, mtime))
    return path


# -- reading ------------------------------------------------------------------------------------

def test_exif_capture_time_prefers_date_time_original_then_digitized_then_ifd0(tmp_path):
    both = write_jpeg(tmp_path / "a.jpg", (200, 0, 0), _ts(2024, 1, 1), original="2021:07:08 09:10:11",
                      ifd0_datetime="2024:01:01 00:00:00")
    digitized = write_jpeg(tmp_path / "b.jpg", (0, 200, 0), _ts(2024, 1, 1), digitized="2020:02:03 04:05:06",
                           ifd0_datetime="2024:01:01 00:00:00")
    blank = write_jpeg(tmp_path / "c.jpg", (0, 0, 200), _ts(2024, 1, 1), original="0000:00:00 00:00:00",
                       ifd0_datetime="2018:05:06 07:08:09")
    assert open_image(both)[1].taken == "2021-07-08T09:10:11"
    assert open_image(digitized)[1].taken == "2020-02-03T04:05:06"
    assert open_image(blank)[1].taken == "2018-05-06T07:08:09"  # a blank original is skipped, not fatal


def test_movie_header_creation_time_versions_zero_and_damage(tmp_path):
    when = dt.datetime(2022, 8, 9, 10, 11, 12, tzinfo=dt.timezone.utc)
    seconds = int((when - EPOCH_1904).total_seconds())
    ftyp = struct.pack(">I4s", 16, b"ftyp") + b"isom\0\0\0\1"
    free = struct.pack(">I4sQ", 1, b"free", 24) + b"\0" * 8  # a 64-bit size box before moov

    def moov(inner: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(inner), b"moov") + inner

    cases = {"v0.mp4": ftyp + free + moov(mvhd_box(seconds)), "v1.mov": ftyp + moov(mvhd_box(seconds, 1)),
             "zero.mp4": ftyp + moov(mvhd_box(0)), "none.mp4": ftyp + moov(b""),
             "cut.mp4": ftyp + moov(mvhd_box(seconds))[:20], "junk.mp4": b"\xff" * 64,
             "early.mp4": ftyp + moov(mvhd_box(1_600_000_000))}  # a Unix count in a 1904 field: 1954
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert container_creation_time(tmp_path / "v0.mp4") == when
    assert container_creation_time(tmp_path / "v1.mov") == when
    for name in ("zero.mp4", "none.mp4", "cut.mp4", "junk.mp4", "early.mp4"):
        assert container_creation_time(tmp_path / name) is None, name
    assert container_creation_time(tmp_path / "missing.mp4") is None


# -- indexed ------------------------------------------------------------------------------------

VIDEO_TIME = dt.datetime(2022, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def dated(tmp_path_factory, tiny_bundle):
    """EXIF times and mtimes that disagree, a photo without EXIF, a video with a header time."""
    root = tmp_path_factory.mktemp("dated")
    media = root / "media"
    (media / "trips").mkdir(parents=True)
    write_jpeg(media / "old_exif_new_file.jpg", (220, 30, 30), _ts(2024, 3, 1, 8), original="2020:05:01 10:00:00")
    write_jpeg(media / "trips" / "new_exif_old_file.jpg", (30, 220, 30), _ts(2019, 1, 1, 8),
               original="2023:09:10 18:30:00")
    write_jpeg(media / "no_exif.jpg", (30, 30, 220), _ts(2021, 4, 2, 15))
    write_mp4(media / "trips" / "clip.mp4", VIDEO_TIME, _ts(2018, 1, 1))
    library = Library.open(root / "library", load_bundle(tiny_bundle))
    library.add_root(media)
    library.index()
    engine = SearchEngine(library, library.models)
    yield {"engine": engine, "library": library, "media": media.resolve(), "root": root, "bundle": tiny_bundle}
    engine.close()
    library.close()


def _names(results) -> list[str]:
    return [Path(r.path).name for r in results]


def test_capture_times_are_stored_with_their_source(dated):
    library = dated["library"]
    infos = {Path(i.path).name: i for i in library.segments_info(library.segment_ids().tolist())}
    assert (infos["old_exif_new_file.jpg"].captured_at, infos["old_exif_new_file.jpg"].captured_source) == \
        ("2020-05-01T10:00:00", "exif")
    assert infos["no_exif.jpg"].captured_source == "mtime"
    assert infos["no_exif.jpg"].captured_at == dt.datetime(2021, 4, 2, 15).isoformat()
    local_video = VIDEO_TIME.astimezone().replace(tzinfo=None).isoformat()
    assert (infos["clip.mp4"].captured_at, infos["clip.mp4"].captured_source) == (local_video, "container")


def test_date_sort_orders_by_exif_time_not_mtime(dated):
    engine = dated["engine"]
    by_date = engine.search(SearchRequest("a red square", top=10, sort="date"))
    assert _names(by_date.results) == ["new_exif_old_file.jpg", "clip.mp4", "no_exif.jpg", "old_exif_new_file.jpg"]
    by_relevance = engine.fast(SearchRequest("a red square", top=10))
    scores = [r.score for r in by_relevance.results]
    assert scores == sorted(scores, reverse=True)


def test_date_range_folder_and_kind_filters(dated):
    engine, media = dated["engine"], dated["media"]

    def names(**filters) -> set[str]:
        return set(_names(engine.fast(SearchRequest("a photo", top=10, **filters)).results))

    assert names(date_from=dt.date(2022, 1, 1)) == {"new_exif_old_file.jpg", "clip.mp4"}
    # By mtime the first photo would be in 2024 and the second in 2019: EXIF decides.
    assert names(date_to=dt.date(2020, 12, 31)) == {"old_exif_new_file.jpg"}
    assert names(date_from=dt.date(2020, 5, 1), date_to=dt.date(2020, 5, 1)) == {"old_exif_new_file.jpg"}
    assert names(folder=str(media / "trips")) == {"new_exif_old_file.jpg", "clip.mp4"}
    assert names(folder=str(media / "trips"), kind="image") == {"new_exif_old_file.jpg"}
    assert names(kind="video", date_to=dt.date(2021, 1, 1)) == set()


def test_filter_ids_come_from_sql_without_loading_every_row(dated, monkeypatch):
    engine = dated["engine"]
    loaded: list[int] = []
    real = engine.library.segments_info
    monkeypatch.setattr(engine.library, "segments_info", lambda ids: loaded.append(len(ids)) or real(ids))
    from fastslow_desktop.search.filters import allowed_ids

    allowed = allowed_ids(engine.library, SearchRequest("x", date_from=dt.date(2022, 1, 1), kind="image"))
    assert len(allowed) == 1 and loaded == []


def _cli(dated, *args: str) -> list[str]:
    return ["search", "--library", str(dated["root"] / "library"), "--models", str(dated["bundle"]), *args]


def test_cli_sort_and_filters_with_capture_fields(dated, capsys):
    dated["library"].close()  # the CLI opens the library itself
    assert cli_main(_cli(dated, "a red square", "--json", "--no-rerank", "--sort", "date")) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [Path(r["path"]).name for r in results][:2] == ["new_exif_old_file.jpg", "clip.mp4"]
    sources = {Path(r["path"]).name: (r["captured_at"][:10], r["captured_source"]) for r in results}
    assert sources["no_exif.jpg"] == ("2021-04-02", "mtime")
    assert sources["old_exif_new_file.jpg"] == ("2020-05-01", "exif")
    assert sources["clip.mp4"][1] == "container"
    assert cli_main(_cli(dated, "x", "--json", "--no-rerank", "--after", "2021-01-01", "--before", "2022-12-31",
                         "--folder", str(dated["media"]), "--type", "image")) == 0
    assert [Path(r["path"]).name for r in json.loads(capsys.readouterr().out)["results"]] == ["no_exif.jpg"]
    # A folder that is not there (an offline drive, a typo) is searched anyway, with a note.
    assert cli_main(_cli(dated, "x", "--json", "--no-rerank", "--folder", str(dated["media"] / "gone"))) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["results"] == [] and "is not a folder on this computer now" in out.err


@pytest.mark.parametrize("args, says", [(("--after", "31/05/2024"), "--after wants a day as YYYY-MM-DD"),
                                        (("--before", "2024-02-30"), "--before wants a day"),
                                        (("--after", "2024-05-02", "--before", "2024-05-01"), "is later than")])
def test_cli_bad_dates_exit_2_with_a_clear_message(dated, capsys, args, says):
    assert cli_main(_cli(dated, "x", *args)) == 2
    assert says in capsys.readouterr().err


# -- older libraries ----------------------------------------------------------------------------

def test_a_schema_1_library_gets_capture_columns_and_its_videos_are_read_on_the_next_run(tmp_path, tiny_bundle):
    media = tmp_path / "media"
    media.mkdir()
    write_mp4(media / "clip.mp4", VIDEO_TIME, _ts(2018, 1, 1))
    write_jpeg(media / "p.jpg", (10, 120, 10), _ts(2019, 2, 3, 4), original="2017:01:02 03:04:05")
    with Library.open(tmp_path / "lib", load_bundle(tiny_bundle)) as library:
        library.add_root(media)
        library.index()
    db = tmp_path / "lib" / "library.db"
    with sqlite3.connect(db) as conn:  # back to what schema 1 held
        conn.execute("UPDATE media SET captured_at = NULL, captured_source = NULL")
        conn.execute("DROP INDEX media_captured")
        conn.execute("DROP INDEX media_uncaptured")
        conn.execute("ALTER TABLE media DROP COLUMN captured_at")
        conn.execute("ALTER TABLE media DROP COLUMN captured_source")
        conn.execute("PRAGMA user_version = 1")
    store = Store(db)
    rows = dict(store.conn.execute("SELECT kind, captured_at || ' ' || coalesce(captured_source, '-') FROM media"))
    store.close()
    assert rows["image"] == "2017-01-02T03:04:05 exif"
    assert rows["video"] == dt.datetime.fromtimestamp(_ts(2018, 1, 1)).isoformat() + " -"  # mtime, not read yet
    assert (tmp_path / "lib" / "library.db.v1.bak").is_file()
    with Library.open(tmp_path / "lib", load_bundle(tiny_bundle)) as library:
        video = [i for i in library.segments_info(library.segment_ids().tolist()) if i.kind == "video"][0]
        assert video.captured_source == "mtime"  # a stand-in is reported as what it is
        library.index()  # nothing changed on disk: only the backfill reads the header
        video = [i for i in library.segments_info(library.segment_ids().tolist()) if i.kind == "video"][0]
    assert video.captured_source == "container"
    assert video.captured_at == VIDEO_TIME.astimezone().replace(tzinfo=None).isoformat()


def test_store_schema_version_is_2(tmp_path):
    assert store_module.SCHEMA_VERSION == 2
    store = Store(tmp_path / "library.db")
    columns = {row[1] for row in store.conn.execute("PRAGMA table_info(media)")}
    store.close()
    assert {"captured_at", "captured_source"} <= columns
