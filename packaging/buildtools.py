"""Helpers shared by fastslow.spec and build.py: which files are CUDA-only, which of them torch
loads at import time, and a size report of the built app folder.

No third-party imports: the spec runs inside PyInstaller, the report in any Python.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

# Files that a CPU-only torch wheel does not have. Paths are relative to the app's _internal/ folder.
CUDA_PATTERNS = (
    "nvidia/*",                      # nvidia-* wheels: cuBLAS, cuDNN, cuFFT, NCCL, cuSPARSE(Lt), NVRTC, ...
    "triton/*",                      # torch.compile's GPU code generator (excluded from the build anyway)
    "torch/lib/libtorch_cuda*.so*",  # libtorch_cuda.so, libtorch_cuda_linalg.so
    "torch/lib/libc10_cuda.so*",
    "torch/lib/libtorch_nvshmem.so*",
    "torch/lib/libcaffe2_nvrtc.so*",
    "torch/lib/libnvshmem*",
)


def is_cuda_file(rel_path: str) -> bool:
    rel = rel_path.replace(os.sep, "/")
    return any(fnmatch.fnmatch(rel, pattern) for pattern in CUDA_PATTERNS)


_NEEDED = re.compile(r"^\s*NEEDED\s+(\S+)", re.MULTILINE)


def needed_libraries(path: str) -> list[str]:
    """The DT_NEEDED sonames of an ELF file ([] for anything objdump cannot read)."""
    try:
        out = subprocess.run(["objdump", "-p", path], capture_output=True, text=True, check=False).stdout
    except OSError:  # no binutils: PyInstaller needs them on Linux anyway
        return []
    return _NEEDED.findall(out)


def cuda_files_not_loaded_at_import(binaries: list[tuple[str, str, str]]) -> set[str]:
    """Dest names of CUDA libraries that nothing loads at start-up: the ones a CUDA torch only
    dlopen()s when a GPU is used (cuDNN engines, cuSOLVER, NVRTC alt/builtins, CUPTI extras, ...).

    `binaries` is PyInstaller's TOC: (dest_name, src_path, typecode). Every non-CUDA binary is a
    root; whatever its DT_NEEDED closure reaches (libtorch.so -> libtorch_cuda.so -> libcublas...)
    must stay, or `import torch` fails even on a machine without a GPU.
    """
    by_soname: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for dest, src, _ in binaries:
        by_soname[os.path.basename(dest)].append((dest, src))
    keep: set[str] = set()
    todo = [(dest, src) for dest, src, _ in binaries if not is_cuda_file(dest)]
    while todo:
        dest, src = todo.pop()
        if dest in keep:
            continue
        keep.add(dest)
        for soname in needed_libraries(src):
            todo.extend(by_soname.get(soname, ()))
    return {dest for dest, _, _ in binaries if is_cuda_file(dest) and dest not in keep}


# -- system libraries the app carries ---------------------------------------------------------

_LDCONFIG_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$")


_LDCONFIG_ARCH = {"x86_64": "x86-64", "aarch64": "AArch64"}  # how `ldconfig -p` tags 64-bit entries


def system_library_paths(sonames: list[str], ldconfig_output: str | None = None,
                         machine: str | None = None) -> tuple[dict[str, str], list[str]]:
    """Where the build machine's loader finds each soname (the entries of `ldconfig -p` for this
    machine's architecture, never a 32-bit one), and the sonames it does not have."""
    import platform

    tag = _LDCONFIG_ARCH.get(machine or platform.machine())
    if ldconfig_output is None:
        try:
            ldconfig_output = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
        except OSError:
            ldconfig_output = ""
    found: dict[str, str] = {}
    for line in ldconfig_output.splitlines():
        match = _LDCONFIG_LINE.match(line)
        flags = match.group(2).split(",") if match else []
        if match and match.group(1) in sonames and match.group(1) not in found and (tag is None or tag in flags):
            found[match.group(1)] = match.group(3)
    return found, [name for name in sonames if name not in found]


# -- size report ------------------------------------------------------------------------------

def component_of(rel: str) -> str:
    """Group files into the components a reader cares about (per nvidia wheel, per torch library)."""
    parts = rel.replace(os.sep, "/").split("/")
    if len(parts) == 1:
        return parts[0]
    if parts[0] == "nvidia" and len(parts) > 2:
        return "nvidia/" + parts[1]
    if parts[0] == "torch" and parts[1] == "lib" and len(parts) == 3:
        return "torch/lib/" + parts[2]
    if parts[0] == "torch":
        return "torch (python, other)"
    if parts[0] == "PySide6" and parts[1] == "Qt" and len(parts) > 3:
        return "PySide6/Qt/" + parts[2]
    if parts[0] == "PySide6":
        return "PySide6 (bindings)"
    if parts[0] == "resources" and len(parts) > 2 and parts[1] == "models":
        return "resources/models"
    return parts[0]


def _du_bytes(folder: Path) -> int | None:
    try:
        out = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None


def size_report(app_dir: str | Path, top: int = 10) -> dict:
    """Sizes of a built one-folder app: total, the `top` largest components and files, and how much
    of it exists only because torch is a CUDA build."""
    app_dir = Path(app_dir)
    internal = app_dir / "_internal"
    base = internal if internal.is_dir() else app_dir
    components: dict[str, int] = defaultdict(int)
    files: list[tuple[int, str]] = []
    cuda_total = 0
    total = 0
    for root, _, names in os.walk(app_dir):
        for name in names:
            path = Path(root) / name
            if path.is_symlink():
                continue
            size = path.stat().st_size
            total += size
            if base in path.parents:
                rel = path.relative_to(base).as_posix()
                components[component_of(rel)] += size
            else:  # the executable; PyInstaller appends the archive of Python modules to it
                rel = path.relative_to(app_dir).as_posix()
                components[f"{rel} (executable + Python modules archive)"] += size
            files.append((size, rel))
            if is_cuda_file(rel):
                cuda_total += size
    files.sort(reverse=True)
    return {
        "app_dir": str(app_dir),
        "bytes": total,
        "du_bytes": _du_bytes(app_dir),
        "files": len(files),
        "top_components": sorted(({"name": k, "bytes": v} for k, v in components.items()),
                                 key=lambda c: -c["bytes"])[:top],
        "top_files": [{"path": rel, "bytes": size} for size, rel in files[:top]],
        "cuda_only_bytes": cuda_total,
    }


def human(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_report(report: dict) -> str:
    lines = [f"size of {report['app_dir']}: {human(report['du_bytes'])} on disk (du), "
             f"{human(report['bytes'])} in {report['files']} files",
             f"top {len(report['top_components'])} components:"]
    lines += [f"  {human(c['bytes']):>10}  {c['name']}" for c in report["top_components"]]
    lines.append(f"top {len(report['top_files'])} files:")
    lines += [f"  {human(f['bytes']):>10}  {f['path']}" for f in report["top_files"]]
    share = report["cuda_only_bytes"] / report["bytes"] if report["bytes"] else 0.0
    lines.append(f"CUDA-only files (nvidia-* libraries, libtorch_cuda*, libc10_cuda, nvshmem, triton): "
                 f"{human(report['cuda_only_bytes'])} ({share:.0%} of the app)")
    lines.append(f"estimate: a CPU-only torch wheel would make the app about {human(report['cuda_only_bytes'])} "
                 f"smaller, i.e. about {human(report['bytes'] - report['cuda_only_bytes'])} (a CPU wheel has none "
                 "of these files; its libtorch_cpu.so is taken to be the same size as this build's)")
    return "\n".join(lines)
