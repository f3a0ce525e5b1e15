"""Shared fixtures: offline hub, offscreen Qt, and a tiny random model bundle."""

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
