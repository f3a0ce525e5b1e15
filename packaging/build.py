"""Build the one-folder FastSlow app with PyInstaller and report its build time and size.

    python packaging/build.py                 # -> dist/FastSlow/FastSlow (+ dist/FastSlow-build.json)
    python packaging/build.py --cpu-only      # leave out the CUDA libraries a CPU-only run never loads
    python packaging/build.py --report-only   # size report of an existing build

Needs PyInstaller (`pip install -e '.[package]'`) and the demo bundle in resources/models/synthscenes/.
A build takes 5-15 minutes on 2 cores and several GB in build/ and dist/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import buildtools  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "packaging" / "fastslow.spec"
APP_NAME = "FastSlow"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python packaging/build.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-only", action="store_true",
                   help="leave out the CUDA libraries torch only loads on a GPU; the app then always runs on the CPU")
    p.add_argument("--resources", type=Path, default=REPO / "resources",
                   help="resources folder to ship (default: resources/; it must hold models/synthscenes/)")
    p.add_argument("--dist", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    p.add_argument("--work", type=Path, default=REPO / "build" / "pyinstaller",
                   help="PyInstaller's work folder (default: build/pyinstaller/); kept, so a rebuild re-uses the analysis")
    p.add_argument("--clean", action="store_true", help="empty the work folder first (a full re-analysis)")
    p.add_argument("--report-only", action="store_true", help="do not build; report the size of the existing build")
    p.add_argument("--top", type=int, default=10, help="how many of the largest components to list (default: 10)")
    return p.parse_args(argv)


def check_prerequisites(args: argparse.Namespace) -> str | None:
    """Why a build cannot start, or None."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        return "PyInstaller is not installed: pip install -e '.[package]'"
    manifest = args.resources / "models" / "synthscenes" / "manifest.json"
    if not manifest.is_file():
        return (f"{manifest} is missing: the build ships the demo bundle so `FastSlow demo` works offline. "
                "Train or copy it there first, or pass --resources DIR")
    if shutil.which("objdump") is None and sys.platform.startswith("linux"):
        return "objdump is missing (PyInstaller needs binutils on Linux): apt-get install binutils"
    return None


def run_pyinstaller(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--log-level", "WARN",
           "--distpath", str(args.dist), "--workpath", str(args.work)]
    if args.clean:
        cmd.append("--clean")
    cmd += ["--", "--resources", str(args.resources.resolve())]
    if args.cpu_only:
        cmd.append("--cpu-only")
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=REPO)


def self_test(app: Path) -> str | None:
    """The built executable starts and answers `--help` and `status` (seconds; no window, no models)."""
    with tempfile.TemporaryDirectory(prefix="fastslow-build-check-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FASTSLOW_"))}
        for cmd in ([str(app), "--help"], [str(app), "status", "--json", "--library", str(Path(tmp) / "library")]):
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            if done.returncode != 0:
                return f"`{' '.join(cmd)}` exited {done.returncode}:\n{done.stderr[-2000:]}"
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    args.dist, args.work, args.resources = args.dist.resolve(), args.work.resolve(), args.resources.resolve()
    app_dir = args.dist / APP_NAME
    build_seconds = None
    if not args.report_only:
        problem = check_prerequisites(args)
        if problem:
            print(f"build.py: {problem}", file=sys.stderr)
            return 2
        start = time.perf_counter()
        rc = run_pyinstaller(args)
        build_seconds = time.perf_counter() - start
        if rc != 0:
            print(f"build.py: PyInstaller failed (exit {rc}) after {build_seconds:.0f} s", file=sys.stderr)
            return 1
        print(f"built {app_dir / APP_NAME} in {build_seconds:.0f} s ({build_seconds / 60:.1f} min)")
    executable = app_dir / (APP_NAME + (".exe" if sys.platform == "win32" else ""))
    if not executable.is_file():
        print(f"build.py: {executable} does not exist", file=sys.stderr)
        return 1
    report = buildtools.size_report(app_dir, top=args.top)
    report_file = args.dist / f"{APP_NAME}-build.json"
    if build_seconds is None and report_file.is_file():  # --report-only: keep the time of the build it reports on
        try:
            build_seconds = json.loads(report_file.read_text()).get("build_seconds")
        except (OSError, ValueError):
            pass
    report.update(build_seconds=build_seconds, cpu_only=(app_dir / "_internal" / "fastslow-cpu-only").exists())
    print(buildtools.format_report(report))
    problem = self_test(executable)
    report["self_test"] = problem or "ok"
    report_file.write_text(json.dumps(report, indent=2))
    if problem:
        print(f"build.py: the built app does not start: {problem}", file=sys.stderr)
        return 1
    print(f"self-test: `{APP_NAME} --help` and `{APP_NAME} status` ok; report in {report_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
