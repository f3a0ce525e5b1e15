"""The house rules, checked: import-linter contracts, no import cycles, small modules and functions."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fastslow_desktop"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start) & modules)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_in_the_app_takes_part_in_an_import_cycle():
    graph = grimp.build_graph("fastslow_desktop", cache_dir=None)
    # A package's __init__ re-exporting its own modules is not a cycle between rooms; imports of a
    # package from inside it are, so only the package-to-itself edge is dropped.
    modules = set(graph.modules)
    for module in modules:
        for imported in list(graph.find_modules_directly_imported_by(module)):
            if module.startswith(imported + "."):
                graph.remove_import(importer=module, imported=imported)
    cycles = _cycles(graph, modules)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_over_the_line_limit():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines: " + ", ".join(long)


def test_no_function_is_over_the_line_limit():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(long)


def _lint(folder: Path) -> subprocess.CompletedProcess:
    """lint-imports on a tree, in a fresh interpreter so the tree's own package is the one analysed."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    env = dict(os.environ, PYTHONPATH=str(folder))
    return subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


def test_import_linter_contracts_are_kept():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout[run.stdout.find("Broken contracts"):] or run.stdout + run.stderr


@pytest.mark.parametrize("bad, contract", [("import sqlite3", "Models know nothing of storage"),
                                           ("from PySide6 import QtCore", "Only the UI imports Qt")])
def test_the_contracts_catch_a_forbidden_import(tmp_path, bad, contract):
    """The checker is not vacuous: a core module that imports storage or Qt breaks its contract."""
    copy = tmp_path / "repo"
    for package in ("fastslow_desktop", "training"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    with open(copy / "fastslow_desktop" / "models" / "errors.py", "a", encoding="utf-8") as fh:
        fh.write(f"\n{bad}\n")
    run = _lint(copy)
    assert f"{contract} BROKEN" in run.stdout, run.stdout + run.stderr
