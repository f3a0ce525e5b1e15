"""Fault injection, end to end through the `fastslow` command: kills, a full disk, two writers, a
read-only library. Afterwards the database is intact, HNSW agrees with SQLite, every good file is
indexed, every bad one is reported with a reason, and no command printed a traceback.

    python -m benchmarks.fault_injection [--kills 20] [--photos 120] [--json]

Needs root for the full-disk (a small tmpfs) and read-only (a read-only bind mount) parts; without
root those parts are skipped and the report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

MODELS = "synthscenes"  # ships with the app: no network needed
BAD_FILES = {  # name -> bytes; each must end as a failure row with a reason
    "truncated.jpg": None,  # filled in from a real JPEG, cut in half
    "not-an-image.jpg": b"this is text, not a JPEG\n" * 10,
    "empty.png": b"",
    "garbage.png": bytes(range(256)) * 8,
}


def _photo(path: Path, rng: random.Random, size: int = 96) -> None:
    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    x, y = rng.randrange(size // 2), rng.randrange(size // 2)
    draw.ellipse((x, y, x + rng.randrange(8, size // 2), y + rng.randrange(8, size // 2)),
                 fill=tuple(rng.randrange(256) for _ in range(3)))
    image.save(path, quality=90)


def make_media(folder: Path, n_good: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """n_good photos (one with a name that is not valid UTF-8) and the bad files above."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    for i in range(n_good):
        path = folder / f"photo_{i:04d}.jpg"
        _photo(path, rng)
        good.append(path)
    odd = Path(os.fsdecode(os.fsencode(str(folder)) + b"/caf\xe9-latin1.jpg"))
    _photo(odd, rng)
    good.append(odd)
    bad = []
    for name, data in BAD_FILES.items():
        path = folder / "bad" / name
        path.parent.mkdir(exist_ok=True)
        if data is None:
            data = good[0].read_bytes()[: good[0].stat().st_size // 2]
        path.write_bytes(data)
        bad.append(path)
    return good, bad


def fastslow(args: list[str], library: Path, timeout: float = 300, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fastslow_desktop", "--library", str(library), "--models", MODELS, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", **(env or {})))


def start_index(folder: Path, library: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fastslow_desktop", "--library", str(library), "--models", MODELS,
           "index", str(folder), "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))


class Report:
    """Every command's outcome; a traceback anywhere is a failure of the run."""

    def __init__(self) -> None:
        self.parts: dict[str, dict] = {}
        self.tracebacks: list[str] = []

    def saw(self, what: str, stderr: str) -> None:
        if "Traceback (most recent call last)" in stderr:
            self.tracebacks.append(f"{what}: {stderr[-2000:]}")


CHECK = r"""
import json, sqlite3, sys
from fastslow_desktop.library import Library
folder = sys.argv[1]
conn = sqlite3.connect(f"file:{folder}/library.db?mode=ro", uri=True)
integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
conn.close()
with Library.open(folder) as library:
    status = library.status()
    sqlite_ids = set(int(i) for i in library.segment_ids())
    ann_ids = set(library.ann().ids())
print(json.dumps({"integrity": integrity, "hnsw_agrees": sqlite_ids == ann_ids, "segments": len(sqlite_ids),
                  "media": status["media"], "failed": status["failed"]}))
"""


def check(library: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", CHECK, str(library)], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if run.returncode != 0:
        return {"error": run.stderr[-2000:]}
    return json.loads(run.stdout.strip().splitlines()[-1])


def verdict(state: dict, good: list[Path], bad: list[Path]) -> dict:
    failed = {f["path"]: f["error"] for f in state.get("failed", [])}
    missing_reasons = [str(p) for p in bad if not failed.get(str(p))]
    good_failed = [p for p in failed if p in {str(g) for g in good}]
    # status counts indexed media; the bad files are its `failed` rows
    ok = (state.get("integrity") == "ok" and state.get("hnsw_agrees") is True
          and state.get("media") == len(good) and not missing_reasons and not good_failed)
    return {"ok": ok, **{k: state.get(k) for k in ("integrity", "hnsw_agrees", "media", "segments")},
            "bad_without_reason": missing_reasons, "good_failed": good_failed, "error": state.get("error")}


def kills(work: Path, n_kills: int, n_photos: int, rng: random.Random, report: Report) -> dict:
    """Index in steps (new photos before each run), killing each run at a random point."""
    folder, library = work / "kill-media", work / "kill-library"
    good, bad = make_media(folder, n_photos)
    reference_lib = work / "kill-reference"
    started = time.perf_counter()
    ref = fastslow(["index", str(folder), "--json"], reference_lib)
    full = time.perf_counter() - started
    report.saw("reference index", ref.stderr)
    reference = check(reference_lib)
    # Kill inside the last second or so of a run: scanning, decoding, writing, saving HNSW, closing
    # (earlier kills would mostly land while Python imports torch, which tests nothing).
    found = re.search(r"in ([0-9.]+) s \(\+([0-9.]+) s loading models\)", ref.stderr)
    index_s = float(found.group(1)) if found else full / 2
    window = (max(0.2, full - index_s - 1.0), full + 0.3)
    killed_at = []
    extra = 0
    runs = 0
    while len(killed_at) < n_kills and runs < 2 * n_kills:  # a run that ends before its kill is not one
        i, runs = runs, runs + 1
        for _ in range(3):  # new photos each run, so every run has something to write and save
            _photo(folder / f"new_{extra:04d}.jpg", rng)
            good.append(folder / f"new_{extra:04d}.jpg")
            extra += 1
        proc = start_index(folder, library)
        delay = rng.uniform(window[0], window[1])
        began = time.perf_counter()
        try:
            proc.wait(timeout=delay)
            took = time.perf_counter() - began  # it ended first: aim the next kills at runs this long
            window = (max(0.2, took - index_s - 1.0), took + 0.1)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            killed_at.append(round(delay, 2))
        _, err = proc.communicate()
        if proc.returncode != -signal.SIGKILL:
            report.saw(f"kill run {i}", err)
    final = fastslow(["index", str(folder), "--json"], library)
    report.saw("index after kills", final.stderr)
    result = verdict(check(library), good, bad)
    result["ok"] = result["ok"] and len(killed_at) == n_kills
    result.update(runs=runs, killed=len(killed_at), kill_window_s=[round(w, 2) for w in window],
                  kill_times_s=killed_at, reference_run_s=round(full, 1),
                  reference_segments=reference.get("segments"))
    return result


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def full_disk(work: Path, n_photos: int, report: Report) -> dict:
    """The library on a tmpfs that fills mid-run (half the room a full library needs); then room is
    made and the run repeated."""
    if os.geteuid() != 0:
        return {"skipped": "needs root for a tmpfs"}
    folder, mnt = work / "disk-media", work / "disk-mnt"
    good, bad = make_media(folder, n_photos, seed=1)
    reference = work / "disk-reference"
    report.saw("index for the size", fastslow(["index", str(folder)], reference).stderr)
    room_kb = max(64, _folder_bytes(reference) // 2048)
    mnt.mkdir()
    if not _mount("-t", "tmpfs", "-o", f"size={room_kb}k", "tmpfs", str(mnt)):
        return {"skipped": "mount -t tmpfs failed"}
    try:
        library = mnt / "library"
        first = fastslow(["index", str(folder), "--json"], library)
        report.saw("index on a full disk", first.stderr)
        message = (first.stderr.strip().splitlines() or [""])[-1]
        _mount("-o", "remount,size=64m", str(mnt))
        again = fastslow(["index", str(folder), "--json"], library)
        report.saw("index after room was made", again.stderr)
        result = verdict(check(library), good, bad)
        result.update(room_kb=room_kb, first_exit=first.returncode, first_message=message[:300],
                      second_exit=again.returncode)
        result["ok"] = result["ok"] and first.returncode != 0 and again.returncode == 0  # it did fill
        return result
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def two_writers(work: Path, n_photos: int, report: Report) -> dict:
    folder, library = work / "two-media", work / "two-library"
    good, bad = make_media(folder, n_photos, seed=2)
    procs = [start_index(folder, library) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for i, (_, err) in enumerate(outs):
        report.saw(f"writer {i}", err)
    result = verdict(check(library), good, bad)
    result.update(exits=[p.returncode for p in procs],
                  messages=[(err.strip().splitlines() or [""])[-1][:200] for _, err in outs])
    return result


def read_only(work: Path, n_photos: int, report: Report) -> dict:
    """A library folder mounted read-only: status and search work, index says why it cannot."""
    if os.geteuid() != 0:
        return {"skipped": "needs root for a read-only bind mount"}
    folder, library, ro = work / "ro-media", work / "ro-library", work / "ro-mnt"
    make_media(folder, n_photos // 4, seed=3)
    report.saw("index before read-only", fastslow(["index", str(folder)], library).stderr)
    ro.mkdir()
    if not (_mount("--bind", str(library), str(ro)) and _mount("-o", "remount,ro,bind", str(ro))):
        return {"skipped": "read-only bind mount failed"}
    try:
        status = fastslow(["status", "--json"], ro)
        search = fastslow(["search", "a red circle", "--json", "--no-rerank"], ro)
        index = fastslow(["index", str(folder)], ro)
        for what, run in (("status", status), ("search", search), ("index", index)):
            report.saw(f"read-only {what}", run.stderr)
        return {"ok": status.returncode == 0 and search.returncode == 0 and index.returncode != 0,
                "status_exit": status.returncode, "search_exit": search.returncode,
                "index_exit": index.returncode,
                "index_message": (index.stderr.strip().splitlines() or [""])[-1][:300]}
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--photos", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--parts", default="kills,full_disk,two_writers,read_only", help="which parts to run")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fastslow-faults-"))
    report = Report()
    started = time.perf_counter()
    try:
        parts = args.parts.split(",")
        if "kills" in parts:
            report.parts["kills"] = kills(work, args.kills, args.photos, rng, report)
        if "full_disk" in parts:
            report.parts["full_disk"] = full_disk(work, args.photos, report)
        if "two_writers" in parts:
            report.parts["two_writers"] = two_writers(work, args.photos, report)
        if "read_only" in parts:
            report.parts["read_only"] = read_only(work, args.photos, report)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(part.get("ok", "skipped" in part) for part in report.parts.values()) and not report.tracebacks
    print(json.dumps({"ok": ok, "seconds": round(time.perf_counter() - started, 1), **report.parts,
                      "tracebacks": report.tracebacks}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
