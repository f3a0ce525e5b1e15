"""Where things live: the library folder, the cache folder, and the resources shipped with the app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "FastSlow"


def default_library_dir() -> Path:
    """FASTSLOW_LIBRARY if set (relative to the working folder), else the platform's user-data folder."""
    env = os.environ.get("FASTSLOW_LIBRARY")
    return Path(env).expanduser().absolute() if env else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Thumbnails and caches that can be rebuilt at any time."""
    env = os.environ.get("FASTSLOW_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def resources_dir() -> Path:
    """resources/ from a source checkout (or an editable install), a PyInstaller bundle, or a wheel's
    <prefix>/share/fastslow (pyproject's data-files)."""
    env = os.environ.get("FASTSLOW_RESOURCES")
    if env:
        return Path(env)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    checkout = Path(__file__).resolve().parent.parent / "resources"
    installed = Path(sys.prefix) / "share" / "fastslow"
    return installed if not checkout.is_dir() and installed.is_dir() else checkout


def bundled_models_dir() -> Path:
    return resources_dir() / "models"
