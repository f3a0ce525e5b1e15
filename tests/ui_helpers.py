"""Builders for the desktop-app tests: photos on disk, the real window opened and closed as a person does."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from fastslow_desktop.ui.app import build_window
from fastslow_desktop.ui.services import ServiceConfig
from fastslow_desktop.ui.settings import AppSettings

READY_MS = 60_000  # models + library open (the tiny bundle: about a second)


def write_photos(folder: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """n small, all-different PNGs: a coloured background with a coloured shape."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(n):
        image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        x, y = rng.randrange(size // 2), rng.randrange(size // 2)
        box = (x, y, x + rng.randrange(8, size // 2), y + rng.randrange(8, size // 2))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colour)
        image.save(folder / f"photo_{i:05d}.png")
    return folder


def indexed_photos(library: Path, bundle: Path, folder: Path, n: int) -> Path:
    """`n` photos written to `folder` and indexed into `library` by a Library of its own (as another process
    would), before any window opens it; returns the folder."""
    from fastslow_desktop.library import Library
    from fastslow_desktop.models import load_bundle

    write_photos(folder, n)
    with Library.open(library, load_bundle(bundle)) as opened:
        opened.add_root(folder)
        opened.index()
    return folder


def open_window(qtbot, settings: AppSettings, library: Path, bundle: Path, *, wait_ready: bool = True,
                query: str | None = None, **config):
    """The real main window on a library, started the way app.main starts it."""
    config.setdefault("watching", False)
    window = build_window(settings, ServiceConfig(library_dir=library, models=str(bundle), **config))
    # Closing hands the services to a background stop; the window is deleted only after it is done.
    qtbot.addWidget(window, before_close_func=lambda w: close_window(qtbot, w))
    window.show()
    failures: list[str] = []
    window.controller.failed.connect(lambda message, _offline: failures.append(message))
    window.start(query)
    if wait_ready:
        qtbot.waitUntil(lambda: window.controller.is_ready or bool(failures), timeout=READY_MS)
        assert not failures, failures
    return window


def close_window(qtbot, window, timeout_ms: int = 60_000) -> None:
    """Close the window the way a person does and wait until its services have stopped (library saved)."""
    window.close()
    qtbot.waitUntil(lambda: window._stopped, timeout=timeout_ms)
