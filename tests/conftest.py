"""Shared fixtures: offline hub, offscreen Qt, a tiny random model bundle, a small indexed library, UI settings."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("FASTSLOW_TORCH_THREADS", "2")

import pytest

from tests.helpers import make_tiny_bundle


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A bundle with tiny random fast + slow models: exercises every code path in milliseconds."""
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Never write to the real user folders from a test."""
    monkeypatch.setenv("FASTSLOW_CACHE", str(tmp_path / "_cache"))
    monkeypatch.setenv("FASTSLOW_LIBRARY", str(tmp_path / "_library"))


@pytest.fixture(scope="session")
def scenes_folder(tmp_path_factory):
    """A small SynthScenes folder: 24 photos and one video. Shared by every test: read it, never change it."""
    from fastslow_desktop.synthscenes import generate

    folder = tmp_path_factory.mktemp("scenes")
    generate(folder, 24, 1, seed=3, sizes=(64, 96))
    return folder


@pytest.fixture(scope="session")
def _indexed_library_master(tmp_path_factory, tiny_bundle, scenes_folder):
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    folder = tmp_path_factory.mktemp("library")
    with Library.open(folder, load_bundle(tiny_bundle)) as library:
        library.add_root(scenes_folder)
        report = library.index()
    assert report.indexed == 25 and report.failed == 0
    return folder


@pytest.fixture
def indexed_library(tmp_path, _indexed_library_master):
    """A library folder with scenes_folder indexed by the tiny bundle: each test gets its own copy, so a
    test that adds folders, re-indexes or saves cannot change what the next one sees."""
    import shutil

    return shutil.copytree(_indexed_library_master, tmp_path / "indexed-library")


@pytest.fixture
def ui_settings(tmp_path):
    """Settings in a temporary INI file: tests never touch the user's real settings."""
    from fastslow_desktop.ui.settings import AppSettings

    return AppSettings.at(tmp_path / "settings" / "FastSlow.ini")
