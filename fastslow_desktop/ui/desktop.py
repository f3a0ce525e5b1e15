"""Desktop integration: open with the system viewer, reveal in the file manager, copy a path, play a video."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication

logger = logging.getLogger(__name__)


def open_file(path: str) -> bool:
    """Open with the system's default application."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def _open_folder(path: str) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


def reveal(path: str, on_failure: Callable[[], None] | None = None) -> bool:
    """Show the file selected in the file manager (or at least its folder). False when nothing could;
    on Linux the file manager answers later, so that failure reaches `on_failure` instead."""
    if sys.platform == "darwin":
        return QProcess.startDetached("open", ["-R", path])
    if sys.platform.startswith("win"):
        return QProcess.startDetached("explorer", [f"/select,{Path(path)}"])
    if not shutil.which("dbus-send"):
        return _open_folder(path)
    # The freedesktop FileManager1 interface selects the file (Nautilus, Dolphin, Nemo, Thunar…). Its answer
    # is awaited off the GUI thread's hands: without a session bus or a file manager it fails, and the
    # folder is opened instead rather than nothing happening.
    process = QProcess(QGuiApplication.instance())

    def answered(code: int = 1, status: QProcess.ExitStatus = QProcess.ExitStatus.CrashExit) -> None:
        process.deleteLater()
        if (code != 0 or status != QProcess.ExitStatus.NormalExit) and not _open_folder(path) and on_failure:
            on_failure()

    process.finished.connect(answered)
    process.errorOccurred.connect(lambda error: error == QProcess.ProcessError.FailedToStart and answered())
    process.start("dbus-send", [
        "--session", "--print-reply", "--dest=org.freedesktop.FileManager1", "/org/freedesktop/FileManager1",
        "org.freedesktop.FileManager1.ShowItems", f"array:string:{QUrl.fromLocalFile(path).toString()}", "string:"])
    return True


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
