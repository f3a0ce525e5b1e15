"""Desktop integration: open with the system viewer, reveal in the file manager, copy a path, play a video."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication

logger = logging.getLogger(__name__)


def open_file(path: str) -> bool:
    """Open with the system's default application."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def reveal(path: str) -> bool:
    """Show the file selected in the file manager (or at least its folder)."""
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", path])
    if sys.platform.startswith("win"):
        return QProcess.startDetached("explorer", [f"/select,{Path(path)}"])
    if shutil.which("dbus-send"):
        # The freedesktop FileManager1 interface selects the file (Nautilus, Dolphin, Nemo, Thunar…).
        # Waited for (it answers in milliseconds): without a session bus or a file manager it fails, and
        # the folder is opened instead rather than nothing happening.
        try:
            done = subprocess.run([
                "dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.FileManager1",
                "/org/freedesktop/FileManager1", "org.freedesktop.FileManager1.ShowItems",
                f"array:string:{QUrl.fromLocalFile(path).toString()}", "string:"],
                capture_output=True, timeout=3)
            if done.returncode == 0:
                return True
        except (OSError, subprocess.SubprocessError) as exc:
            logger.info("dbus-send could not show %s: %s", path, exc)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


def copy_path(path: str) -> None:
    QGuiApplication.clipboard().setText(path)


def play_externally(path: str, seconds: float | None) -> bool:
    """The system player; VLC and mpv are asked to start at the moment, others start at 0."""
    start = max(0.0, seconds or 0.0)
    for player, args in (("vlc", [f"--start-time={start:.1f}", path]), ("mpv", [f"--start={start:.1f}", path])):
        if start and shutil.which(player):
            return QProcess.startDetached(player, args)
    return open_file(path)


def multimedia_problem() -> str | None:
    """Why QtMultimedia cannot play videos here (naming the package to install), or None when it can."""
    try:
        import PySide6.QtMultimedia  # noqa: F401
        import PySide6.QtMultimediaWidgets  # noqa: F401
    except ImportError as exc:
        from .system_libs import multimedia_problem as missing_libraries

        logger.info("QtMultimedia unavailable (%s): videos open in the system player", exc)
        return missing_libraries() or f"Videos cannot play inside FastSlow: {exc}"
    return None
