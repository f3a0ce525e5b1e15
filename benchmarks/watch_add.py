"""`watch_add_one@100k`: one new photo copied into a watched library of 100 000 vectors — seconds until
it is searchable, bytes the process writes for it (write() calls: SQLite, thumbnail, HNSW), and query
p99 while single-file adds run one after another. With `--old DIR` (a checkout of older code, e.g.
`git archive 510f419 fastslow_desktop | tar -x -C DIR`) the same figures for that code, same run.

    python -m benchmarks.watch_add [--quick] [--old DIR] [--adds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .common import REPO, Context, Result, child_env, machine_info, percentile, skipped

DIM = 512
SIZES = {"tiny": (500, 2), "quick": (100_000, 50), "full": (100_000, 1000)}  # (vectors, adds)
OLD_ADDS = 20  # the old code rewrites the whole HNSW file per add: fewer adds keep the run short
WRITE_CHUNK = 5000
LABEL = "100k"  # the figures' names; `--vectors` runs other sizes (named after them)


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def make_bundle(out: Path) -> Path:
    """Tiny random towers with a 512-d embedding: the new photos share the synthetic vectors' model."""
    import torch

    from fastslow_desktop.models import PreprocessConfig, RerankConfig, SlowCaptioner, SlowConfig, TextTokenizer
    from fastslow_desktop.models import save_bundle
    from fastslow_desktop.models.config import load_arch
    from fastslow_desktop.models.fast import build_clip

    torch.manual_seed(0)
    tokenizer = TextTokenizer.compact_for(["a photo"], context_length=16)
    arch = dict(load_arch("fast-tiny"), embed_dim=DIM)
    fast = build_clip(arch, tokenizer.vocab_size, tokenizer.context_length)
    slow = SlowCaptioner(SlowConfig.from_dict(dict(load_arch("slow-tiny"), vocab_size=tokenizer.vocab_size,
                                                   context_length=tokenizer.context_length)))
    return save_bundle(out, name="bench-512", fast_model=fast, fast_arch=arch,
                       fast_preprocess=PreprocessConfig.from_dict(arch["preprocess"]), slow_model=slow.eval(),
                       slow_preprocess=PreprocessConfig(image_size=slow.cfg.image_size, resize_mode="squash"),
                       tokenizer=tokenizer, rerank=RerankConfig(k=10, beta=1.0, normalization="zscore"),
                       provenance={"data": "none (random weights)", "preset": "benchmark"})


def build_library(folder: Path, root: Path, bundle: Path, n: int) -> None:
    """n synthetic photos' rows and unit vectors, written through the catalog; HNSW saved."""
    from fastslow_desktop.catalog import MediaRecord, NewSegment
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    models = load_bundle(bundle)
    rng = np.random.default_rng(0)
    with Library.open(folder, models) as library:
        root_path = library.add_root(root)
        root_id = next(r["id"] for r in library.catalog.store.roots() if r["path"] == root_path)
        catalog = library.catalog
        with catalog.writing():
            catalog.serve_if_first(models.model_id)
            for begin in range(0, n, WRITE_CHUNK):
                count = min(WRITE_CHUNK, n - begin)
                vectors = rng.standard_normal((count, DIM)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                records = [MediaRecord(path=f"{root_path}/synthetic/{(begin + i) // 1000:04d}/IMG_{begin + i:07d}.jpg",
                                       root_id=root_id, kind="image", size=3_000_000 + begin + i,
                                       mtime=1.6e9 + begin + i, hash=f"{begin + i:032x}",
                                       segments=[NewSegment(None, None, None, vectors[i])]) for i in range(count)]
                catalog.write_media(records, models.model_id, DIM)
            catalog.finish_run(models.model_id, complete=True)


def _written() -> int:
    """Bytes this process has passed to write() so far (tmpfs-proof, unlike write_bytes)."""
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("wchar:"))


def worker(folder: Path, bundle: Path, photos: list[Path], adds: int) -> dict:
    """In the code under test: watch, copy photos in one at a time, time and count each."""
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    library = Library.open(folder, load_bundle(bundle))
    store = library.catalog.store if hasattr(library, "catalog") else library.store
    library.ann()
    root = Path(library.roots()[0].path) / "new"
    root.mkdir(exist_ok=True)
    finished = threading.Event()
    batch_times: list[tuple[float, float]] = []  # (start, end) of each watcher batch's index run

    def on_batch(paths: list[str]) -> None:  # the watcher's default action, timed
        start = time.perf_counter()
        library.index(paths)
        batch_times.append((start, time.perf_counter()))
        finished.set()

    library.watch(on_batch=on_batch)
    stop, latencies = threading.Event(), []

    def queries() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            vector = rng.standard_normal(DIM).astype(np.float32)
            start = time.perf_counter()
            ids, _ = library.query(vector / np.linalg.norm(vector), 50)
            library.segments_info(ids.tolist())
            latencies.append((time.perf_counter() - start) * 1000.0)
            stop.wait(0.005)

    searchable, written, waited, indexing, copied_at = [], [], [], [], []
    stalls: list[tuple[float, float]] = []  # (seconds since start, length) of this process's pauses

    dump = os.environ.get("FASTSLOW_BENCH_STALL_DUMP")  # a file: every thread's stack when a stall passes 2 s
    dump_file = open(dump, "w") if dump else None  # noqa: SIM115 - kept open for faulthandler's C thread

    def probe() -> None:  # a thread that only sleeps: if it wakes late, the whole process was held
        import faulthandler

        last = time.perf_counter()
        while not stop.is_set():
            if dump_file is not None:  # re-armed every 10 ms; fires from C even while the GIL is held
                faulthandler.dump_traceback_later(2.0, file=dump_file)
            stop.wait(0.01)
            now = time.perf_counter()
            if now - last > 0.5:
                stalls.append((round(now - begun, 3), round(now - last - 0.01, 3)))
            last = now

    begun = time.perf_counter()
    thread = threading.Thread(target=queries, daemon=True)
    thread.start()
    threading.Thread(target=probe, daemon=True).start()
    try:
        for i in range(-1, adds):  # add -1 warms up (loads the model's weights): not counted
            dest = root / f"add_{i + 1:05d}.jpg"
            finished.clear()
            shutil.copyfile(photos[i % len(photos)], dest)
            copied, before = time.perf_counter(), _written()
            while True:
                row = store.media_under(prefix=str(dest)).get(str(dest))
                if row is not None and row.status == "ok":
                    ids = {s["id"] for s in store.segments_of(row.id)}
                    if ids and ids <= library.ann().ids():
                        break
                if time.perf_counter() - copied > 60:
                    raise RuntimeError(f"{dest} not searchable after 60 s")
                time.sleep(0.005)
            seconds = time.perf_counter() - copied
            finished.wait(60)  # the run's last writes (its HNSW save, if any) count too
            if i >= 0:
                copied_at.append(round(copied - begun, 3))
                searchable.append(seconds)
                written.append(_written() - before)
                # Where the time went: the watcher's wait before the run, and the run itself.
                runs = [(a, b) for a, b in batch_times if b >= copied]
                waited.append(runs[0][0] - copied if runs else None)
                indexing.append(runs[0][1] - runs[0][0] if runs else None)
            else:
                latencies.clear()
    finally:
        stop.set()
        thread.join()
        library.close()
    return {"adds": adds, "searchable_s": searchable, "written_bytes": written, "query_ms": latencies,
            "watcher_wait_s": waited, "index_run_s": indexing, "copied_at_s": copied_at, "stalls": stalls,
            "code": str(Path(sys.modules["fastslow_desktop"].__file__).parent)}


def _measure(code: Path, folder: Path, bundle: Path, photos: list[Path], adds: int) -> dict:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join((str(code), str(REPO)))
    args = json.dumps({"folder": str(folder), "bundle": str(bundle), "photos": [str(p) for p in photos],
                       "adds": adds, "code": str(code)})
    proc = subprocess.run([sys.executable, "-m", "benchmarks.watch_add", "--worker", args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker for {code} failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def _photos(folder: Path, n: int = 8) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    out = []
    for i in range(n):
        path = folder / f"photo_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (960, 1280, 3), dtype=np.uint8)).save(path, quality=90)
        out.append(path)
    return out


def built_library(scratch: Path, n: int, cache: Path | None) -> tuple[Path, Path, float]:
    """The bundle and an n-vector library (in `scratch`) and its watched root; returns (bundle, root,
    seconds the library took to build). With `cache`, a build is kept there (keyed by size, HNSW
    parameters and schema) and copied in: 100 000 vectors into an M 32 graph take minutes. The rows
    hold the root's absolute path, so a cached library's root is a fixed folder in the cache."""
    from fastslow_desktop.catalog import ann
    from fastslow_desktop.catalog.store import SCHEMA_VERSION

    root = (cache / "watch-add-root") if cache is not None else scratch / "root"
    shutil.rmtree(root / "new", ignore_errors=True)  # a previous run's added photos
    root.mkdir(parents=True, exist_ok=True)
    kept = cache / f"watch-add-{n}-d{DIM}-M{ann.M}-ef{ann.EF_CONSTRUCTION}-schema{SCHEMA_VERSION}-v1" \
        if cache is not None else None
    if kept is not None and (kept / "built.json").is_file():
        shutil.copytree(kept / "bundle", scratch / "bundle")
        shutil.copytree(kept / "library", scratch / "library")
        return scratch / "bundle", root, json.loads((kept / "built.json").read_text())["build_s"]
    bundle = make_bundle(scratch / "bundle")
    start = time.perf_counter()
    build_library(scratch / "library", root, bundle, n)
    build_s = time.perf_counter() - start
    if kept is not None:
        tmp = kept.with_name(kept.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(scratch / "bundle", tmp / "bundle")
        shutil.copytree(scratch / "library", tmp / "library")
        (tmp / "built.json").write_text(json.dumps({"build_s": build_s}))
        tmp.rename(kept)
    return bundle, root, build_s


def measure_all(scratch: Path, mode: str, old: Path | None, adds: int | None = None, n: int | None = None,
                cache: Path | None = None) -> dict:
    default_n, default_adds = SIZES[mode]
    n = n or default_n
    adds = adds or default_adds
    photos = _photos(scratch / "src")
    bundle, root, build_s = built_library(scratch, n, cache)
    out = {"n": n, "build_s": build_s}
    if old is not None:  # a copy of the same library: both runs start from identical files
        shutil.copytree(scratch / "library", scratch / "library-old")
        as_schema_1(scratch / "library-old" / "library.db")
        # The old code first (its 20 adds take a minute or two): a failure there costs little.
        out["old"] = _measure(old, scratch / "library-old", bundle, photos, min(adds, OLD_ADDS))
        shutil.rmtree(root / "new", ignore_errors=True)
    out["new"] = _measure(REPO, scratch / "library", bundle, photos, adds)
    return out


def as_schema_1(db: Path) -> None:
    """The library in the format the code before the catalog reads (schema 1): the capture-time
    columns that schema 2 added are dropped. Rows, vectors and the HNSW file stay as they are."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 2:
            conn.executescript("""
                DROP INDEX IF EXISTS media_captured;
                DROP INDEX IF EXISTS media_uncaptured;
                ALTER TABLE media DROP COLUMN captured_at;
                ALTER TABLE media DROP COLUMN captured_source;
                PRAGMA user_version = 1;
            """)
    finally:
        conn.close()


def _summary(data: dict) -> tuple[float, float, float]:
    """Median seconds to searchable, median MB written per add, query p99 ms."""
    return (percentile(data["searchable_s"], 50), percentile(data["written_bytes"], 50) / 1e6,
            percentile(data["query_ms"], 99))


def results(measured: dict, old_reason: str) -> list[Result]:
    new = _summary(measured["new"])
    old = _summary(measured["old"]) if "old" in measured else (None, None, None)
    note = (f"{measured['new']['adds']} single-photo adds into {measured['n']} vectors (dim {DIM}), watcher on; "
            f"median add (worst: {max(measured['new']['searchable_s']):.2f} s, "
            f"{max(measured['new']['written_bytes']) / 1e6:.2f} MB)" + (f"; baseline: code before the catalog, {measured['old']['adds']} adds"
                            if "old" in measured else f"; no baseline: {old_reason}"))
    rows = []
    label = LABEL if measured["n"] == 100_000 else _label(measured["n"])
    for name, unit, goal, value, base in (
            (f"watch_add_searchable_s@{label}", "s", "≤ 1", new[0], old[0]),
            (f"watch_add_written_mb@{label}", "MB", "≤ 5", new[1], old[1]),
            (f"watch_add_query_p99_ms@{label}", "ms", "≤ 50", new[2], old[2])):
        limit = float(goal.split()[-1])
        rows.append(Result(name, value, unit, baseline=base, ratio=value / base if base else None, goal=goal,
                           met=value <= limit, note=note))
    return rows


def run(ctx: Context) -> list[Result]:
    old = os.environ.get("FASTSLOW_BENCH_OLD_CODE")
    try:
        measured = measure_all(ctx.scratch / "watch_add", ctx.sizes.mode, Path(old) if old else None,
                               cache=ctx.cache if ctx.sizes.mode != "tiny" else None)
    except Exception as exc:  # noqa: BLE001 - reported as null figures with the reason
        return [skipped(f"watch_add_{k}@{LABEL}", u, f"failed: {exc}") for k, u in
                (("searchable_s", "s"), ("written_mb", "MB"), ("query_p99_ms", "ms"))]
    return results(measured, "set FASTSLOW_BENCH_OLD_CODE to an older checkout")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.watch_add", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="50 adds instead of 1000")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--adds", type=int, help="number of single-photo adds")
    p.add_argument("--vectors", type=int, help="library size (default 100 000; figures are named after it)")
    p.add_argument("--old", metavar="DIR", help="folder holding an older fastslow_desktop/ to compare with")
    p.add_argument("--raw", metavar="FILE.json", help="also write every measurement here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kw = json.loads(args.worker)
        sys.path.insert(0, kw["code"])  # ahead of the working directory, which -m puts first
        import fastslow_desktop

        assert Path(fastslow_desktop.__file__).is_relative_to(kw["code"]), fastslow_desktop.__file__
        print(json.dumps(worker(Path(kw["folder"]), Path(kw["bundle"]), [Path(x) for x in kw["photos"]],
                                kw["adds"])))
        return 0
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="fastslow-watch-add-") as scratch:
        measured = measure_all(Path(scratch), mode, Path(args.old) if args.old else None, args.adds, args.vectors)
    if args.raw:
        Path(args.raw).write_text(json.dumps(measured))
    rows = results(measured, "no --old given")
    print(json.dumps({"machine": machine_info(), "build_s": round(measured["build_s"], 1),
                      "results": [r.to_json() for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
