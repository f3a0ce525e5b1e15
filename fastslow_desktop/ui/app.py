"""The desktop app's entry point and composition root: settings, controller and window are built here, once.

The window shows before the ML stack is imported (torch + open_clip take seconds); the controller
loads it in a worker, and the first query runs as soon as the models are ready.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from ..options import configure_logging
from .controller import AppController
from .main_window import MainWindow
from .services import EngineFactory, ServiceConfig
from .settings import APPLICATION, ORGANIZATION, AppSettings
from .style import STYLESHEET
from .system_libs import EXIT_USAGE, display_problem

logger = logging.getLogger(__name__)


def app_icon() -> QIcon:
    from fastslow_desktop.paths import resources_dir

    icon = QIcon()
    folder = resources_dir() / "icons"
    for name in ("fastslow.svg", "fastslow.png"):
        if (folder / name).is_file():
            icon.addFile(str(folder / name))
    return icon


def service_config(settings: AppSettings, library: str | None = None, models: str | None = None,
                   device: str | None = None) -> ServiceConfig:
    """Command line first, then Settings, then defaults (FASTSLOW_LIBRARY or the platform folder)."""
    from fastslow_desktop.paths import default_library_dir

    import os

    if library:
        library_dir = Path(library).expanduser().absolute()
    elif os.environ.get("FASTSLOW_LIBRARY") or not settings.library:
        library_dir = default_library_dir()
    else:
        library_dir = Path(settings.library).expanduser().absolute()
    return ServiceConfig(library_dir=library_dir, models=models or library_models(library_dir, settings.models),
                         device=device or settings.device,
                         k=settings.k, beta=settings.beta, exclusions=settings.exclusions,
                         watching=settings.watching)


def library_models(library_dir: Path, fallback: str) -> str:
    """The models a library remembers (an existing library keeps its own), else `fallback` (Settings)."""
    from fastslow_desktop.library.models_spec import stored_spec

    return stored_spec(library_dir) or fallback


def build_window(settings: AppSettings, config: ServiceConfig, engine_factory: EngineFactory | None = None,
                 request_factory=None) -> MainWindow:
    """The composition root: one controller (services and workers) handed to one window."""
    controller = AppController(config, engine_factory=engine_factory, request_factory=request_factory)
    window = MainWindow(controller, settings, icon=app_icon())
    controller.setParent(window)
    return window


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from fastslow_desktop.options import shared_options  # the same options as `fastslow`, defined once

    parser = argparse.ArgumentParser(prog="fastslow", description="FastSlow desktop app",
                                     parents=[shared_options(suppress=False)])
    parser.add_argument("--search", dest="initial_search", metavar="TEXT",
                        help="open with this search typed (it runs as soon as the models are ready)")
    args, _ = parser.parse_known_args(argv)  # Qt's own options (-style, -platform…) pass through
    return args


def main(argv: Sequence[str] | argparse.Namespace | None = None) -> int:
    """`fastslow` with no command. Accepts argv, or the Namespace that fastslow_desktop.cli parsed."""
    if isinstance(argv, argparse.Namespace):
        args, qt_argv = argv, [sys.argv[0]]
    else:
        args = parse_args(argv if argv is not None else sys.argv[1:])
        qt_argv = [sys.argv[0]]
        configure_logging(args.verbose)
    if QApplication.instance() is None:
        problem = display_problem()  # before Qt's platform plugin can abort the process
        if problem is not None:
            print(f"fastslow: {problem}", file=sys.stderr)
            return EXIT_USAGE
    app = QApplication.instance() or QApplication(qt_argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("FastSlow")
    app.setDesktopFileName("fastslow")
    app.setStyle("Fusion")
    app.setStyleSheet(STYLESHEET)
    # A light/dark switch of the desktop while the app runs: the style sheet's palette() colours are
    # resolved when it is set, so set it again (without this the window stayed half light, half dark).
    app.styleHints().colorSchemeChanged.connect(  # once the new palette is in place
        lambda _scheme: QTimer.singleShot(0, lambda: app.setStyleSheet(STYLESHEET)))
    settings = AppSettings()
    config = service_config(settings, getattr(args, "library", None), getattr(args, "models", None),
                            getattr(args, "device", None))
    from fastslow_desktop.options import log_to_library

    log_to_library(config.library_dir)  # job tracebacks land in the library's log, as the CLI's do
    window = build_window(settings, config)
    app.setWindowIcon(window.icon)
    # Quit when the services have stopped (the library saved), not when the window hides at close.
    app.setQuitOnLastWindowClosed(False)
    window.closed.connect(app.quit)
    window.show()
    # Start loading after the first paint, so the window is on screen before any heavy import.
    QTimer.singleShot(0, lambda: window.start(getattr(args, "initial_search", None)))
    return app.exec()
