"""Cheap checks of packaging/: the spec parses, the scripts answer --help, the size report and the
CPU-only selection do what they say, and the desktop entry installs and validates. No builds here:
a PyInstaller build takes minutes (packaging/build.py, then packaging/smoke_check.sh)."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
SCRIPTS = ["smoke_check.sh", "install-desktop-entry.sh", "fresh_machine_check.sh"]


def _buildtools():
    # By path: a folder named "packaging" must not shadow the `packaging` distribution on sys.path.
    spec = importlib.util.spec_from_file_location("fastslow_buildtools", PACKAGING / "buildtools.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_parses_and_names_the_app_fastslow():
    source = (PACKAGING / "fastslow.spec").read_text()
    tree = ast.parse(source)
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= calls
    assert 'name="FastSlow"' in source


def test_spec_leaves_out_test_tools_training_and_unused_qt():
    tree = ast.parse((PACKAGING / "fastslow.spec").read_text())
    lists = [node.value for node in tree.body if isinstance(node, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id in ("EXCLUDES", "UNUSED_QT") for t in node.targets)]
    assert len(lists) == 2
    strings = {node.value for value in lists for node in ast.walk(value)
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert {"pytest", "pytestqt", "training", "tensorboard", "QtWebEngineCore", "Qt3DCore", "QtQuick"} <= strings
    # ... but never what the app imports.
    assert not {"QtCore", "QtGui", "QtWidgets", "QtMultimedia", "torch", "open_clip", "cv2"} & strings
    # The hub presets need these: MobileCLIP's FastViT is a timm model, SigLIP2 reads text with an HF tokenizer.
    assert not {"timm", "tokenizers", "transformers"} & strings


LDCONFIG = """\
3 libs found in cache `/etc/ld.so.cache'
\tlibxcb-cursor.so.0 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0
\tlibxcb-icccm.so.4 (libc6) => /usr/lib32/libxcb-icccm.so.4
\tlibxcb-icccm.so.4 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libxcb-icccm.so.4
"""


def test_the_build_finds_the_xcb_libraries_it_carries_and_names_the_absent_ones():
    found, absent = _buildtools().system_library_paths(
        ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"], LDCONFIG, machine="x86_64")
    assert found == {"libxcb-cursor.so.0": "/usr/lib/x86_64-linux-gnu/libxcb-cursor.so.0",
                     "libxcb-icccm.so.4": "/usr/lib/x86_64-linux-gnu/libxcb-icccm.so.4"}  # not the 32-bit one
    assert absent == ["libxkbcommon-x11.so.0"]


def test_the_app_carries_the_xcb_utility_libraries_but_not_the_display_stack():
    from fastslow_desktop.ui.system_libs import CARRIED_XCB_LIBS

    carried = {lib.soname for lib in CARRIED_XCB_LIBS}
    assert {"libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0"} <= carried
    assert not {"libxcb.so.1", "libEGL.so.1", "libpulse.so.0"} & carried
    assert "CARRIED_XCB_LIBS" in (PACKAGING / "fastslow.spec").read_text()


def test_build_script_answers_help():
    done = subprocess.run([sys.executable, str(PACKAGING / "build.py"), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--cpu-only" in done.stdout and "--resources" in done.stdout


def test_build_script_refuses_resources_without_the_demo_bundle(tmp_path):
    pytest.importorskip("PyInstaller")
    (tmp_path / "icons").mkdir()
    done = subprocess.run([sys.executable, str(PACKAGING / "build.py"), "--resources", str(tmp_path),
                           "--dist", str(tmp_path / "dist"), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "models/synthscenes/manifest.json is missing" in done.stderr
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_script_is_valid_and_answers_help(script):
    path = PACKAGING / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    done = subprocess.run(["bash", str(path), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: packaging/" + script)


def test_fresh_machine_check_runs_the_readme_quick_start_commands():
    done = subprocess.run(["bash", str(PACKAGING / "fresh_machine_check.sh"), "--print-commands"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.splitlines()
    assert len(commands) == 2
    readme = (REPO / "README.md").read_text()
    for command in commands:
        assert command in readme and "#" not in command


def test_cuda_files_are_told_apart_from_the_cpu_build():
    bt = _buildtools()
    assert bt.is_cuda_file("nvidia/cudnn/lib/libcudnn_graph.so.9")
    assert bt.is_cuda_file("torch/lib/libtorch_cuda.so")
    assert bt.is_cuda_file("torch/lib/libc10_cuda.so")
    assert not bt.is_cuda_file("torch/lib/libtorch_cpu.so")
    assert not bt.is_cuda_file("torch/lib/libc10.so")
    assert not bt.is_cuda_file("PySide6/Qt/lib/libQt6Core.so.6")


def test_cpu_only_keeps_the_cuda_libraries_torch_needs_at_import(monkeypatch):
    bt = _buildtools()
    needed = {
        "torch/_C.so": ["libtorch.so"],
        "torch/lib/libtorch.so": ["libtorch_cpu.so", "libtorch_cuda.so"],
        "torch/lib/libtorch_cuda.so": ["libcublas.so.13"],
    }
    monkeypatch.setattr(bt, "needed_libraries", lambda src: needed.get(src, []))
    toc = [(dest, dest, "BINARY") for dest in [
        "torch/_C.so", "torch/lib/libtorch.so", "torch/lib/libtorch_cpu.so", "torch/lib/libtorch_cuda.so",
        "nvidia/cu13/lib/libcublas.so.13", "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
        "torch/lib/libtorch_cuda_linalg.so",
    ]]
    assert bt.cuda_files_not_loaded_at_import(toc) == {
        "nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9", "torch/lib/libtorch_cuda_linalg.so"}


def test_size_report_lists_the_largest_components_and_the_cuda_share(tmp_path):
    bt = _buildtools()
    app = tmp_path / "FastSlow"
    files = {"FastSlow": 10, "_internal/nvidia/cudnn/lib/libcudnn.so.9": 500, "_internal/nvidia/cu13/lib/libcublas.so": 300,
             "_internal/torch/lib/libtorch_cpu.so": 400, "_internal/torch/lib/libtorch_cuda.so": 200,
             "_internal/torch/nn/modules.py": 5, "_internal/PySide6/Qt/lib/libQt6Core.so.6": 50}
    for rel, size in files.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_bytes(b"x" * size)
    report = bt.size_report(app, top=3)
    assert report["bytes"] == sum(files.values())
    assert [c["name"] for c in report["top_components"]] == ["nvidia/cudnn", "torch/lib/libtorch_cpu.so", "nvidia/cu13"]
    assert report["cuda_only_bytes"] == 1000
    assert "CPU-only" in bt.format_report(report)


def test_desktop_entry_installs_with_an_absolute_exec_and_the_icon(tmp_path):
    app = tmp_path / "My Apps" / "FastSlow"
    app.parent.mkdir()
    app.write_text("#!/bin/sh\n")
    app.chmod(0o755)
    data = tmp_path / "share"
    env = dict(os.environ, XDG_DATA_HOME=str(data))
    done = subprocess.run(["bash", str(PACKAGING / "install-desktop-entry.sh"), "--app", str(app)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    entry = (data / "applications" / "fastslow.desktop").read_text()
    assert f'Exec="{app}"' in entry and f"TryExec={app}" in entry
    assert "Icon=fastslow" in entry
    assert "StartupWMClass=FastSlow" in entry  # Qt's WM_CLASS instance is the executable's name
    assert (data / "icons" / "hicolor" / "256x256" / "apps" / "fastslow.png").read_bytes() == \
        (REPO / "resources" / "icons" / "fastslow.png").read_bytes()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(data / "applications" / "fastslow.desktop")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    done = subprocess.run(["bash", str(PACKAGING / "install-desktop-entry.sh"), "--uninstall"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not (data / "applications" / "fastslow.desktop").exists()


def test_a_wheel_carries_the_demo_bundle_and_icons_where_an_installed_copy_looks(tmp_path):
    """`pip install .` (not -e) has no checkout beside the package: the shipped bundle must be in the wheel."""
    import zipfile

    source = tmp_path / "source"  # built from a copy: setuptools leaves build/ in the folder it builds
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "fastslow_desktop", "training", "resources"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (REPO / name).is_dir() else {}))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("*.whl")
    names = {name.split(".data/data/", 1)[-1] for name in zipfile.ZipFile(wheel).namelist()}
    shipped = {f"share/fastslow/{p.relative_to(REPO / 'resources').as_posix()}"
               for p in (REPO / "resources").rglob("*") if p.is_file()}
    assert shipped <= names, sorted(shipped - names)


def test_an_installed_copy_finds_its_resources_under_the_prefix(tmp_path, monkeypatch):
    from fastslow_desktop import paths

    (tmp_path / "share" / "fastslow" / "models").mkdir(parents=True)
    monkeypatch.delenv("FASTSLOW_RESOURCES", raising=False)
    monkeypatch.setattr(paths.sys, "prefix", str(tmp_path))
    assert paths.resources_dir() == REPO / "resources"  # a checkout wins
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "fastslow_desktop" / "paths.py"))
    assert paths.resources_dir() == tmp_path / "share" / "fastslow"
