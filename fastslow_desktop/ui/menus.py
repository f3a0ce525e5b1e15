"""The main window's menus, shortcuts and Help texts (built here so the window module stays about wiring)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QWidget

from fastslow_desktop import __version__

KEYS_HELP = ("Ctrl+F — go to the search field\nEnter in the search field — search now\n"
             "Escape — clear the search (in the results: back to the search field)\n"
             "↓ — from the search field to the results; ↑ in the first row — back\n"
             "Arrows, Page Up/Down, Home, End — move through the results\n"
             "Typing in the results — goes on in the search field\n"
             "Enter — open (videos play from the moment)\nSpace — show or hide the preview\n"
             "Ctrl+Shift+O — add a folder\nCtrl+Shift+I — search with a picture\n"
             "Ctrl+, — settings\nF9 — preview pane\nF1 — this list\nCtrl+Q — quit")
ABOUT = ("<b>FastSlow</b> {version}<br>Find photos and moments in videos by describing them. A fast dual encoder "
         "shortlists at once; a slow captioner re-ranks the best matches a moment later "
         "(Miech et al., <i>Thinking Fast and Slow</i>, CVPR 2021).<br><br>Everything runs on this computer.")


def about_text() -> str:
    return ABOUT.format(version=f"version {__version__}")


def show_keys(parent: QWidget) -> None:
    QMessageBox.information(parent, "Keyboard shortcuts", KEYS_HELP)


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About FastSlow", about_text())


def build_menus(window: QMainWindow) -> None:
    """File, View and Help; the actions the window connects become its attributes."""
    file_menu = window.menuBar().addMenu("&File")
    window.add_action = QAction("&Add folder…", window)
    window.add_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
    window.picture_action = QAction("Search with a &picture…", window)  # as dropping a photo on the window does
    window.picture_action.setShortcut(QKeySequence("Ctrl+Shift+I"))
    window.models_action = QAction("&Models…", window)  # the preset catalogue: choose, download
    window.settings_action = QAction("&Settings…", window)
    # The platform's key (Ctrl+, on macOS; none on most Linux desktops) and Ctrl+, everywhere.
    window.settings_action.setShortcuts(list(dict.fromkeys(
        [*QKeySequence.keyBindings(QKeySequence.StandardKey.Preferences), QKeySequence("Ctrl+,")])))
    window.reindex_action = QAction("&Re-scan all folders", window)
    window.retry_action = QAction("Re&try failed files", window)
    quit_action = QAction("&Quit", window)
    # The platform's key (none on Windows) and Ctrl+Q everywhere, as the shortcuts help says.
    quit_action.setShortcuts(list(dict.fromkeys([*QKeySequence.keyBindings(QKeySequence.StandardKey.Quit),
                                                  QKeySequence("Ctrl+Q")])))
    quit_action.triggered.connect(window.close)
    for action in (window.add_action, window.picture_action, window.reindex_action, window.retry_action,
                   window.models_action, window.settings_action):
        file_menu.addAction(action)
    file_menu.addSeparator()
    file_menu.addAction(quit_action)
    view_menu = window.menuBar().addMenu("&View")
    window.find_action = QAction("Go to the &search field", window)
    window.find_action.setShortcut(QKeySequence.StandardKey.Find)
    window.find_action.triggered.connect(window.focus_search)
    view_menu.addAction(window.find_action)
    errors_action = window.errors_panel.toggleViewAction()
    errors_action.setText("&Errors panel")
    view_menu.addAction(errors_action)
    window.preview_action = QAction("&Preview pane", window)
    window.preview_action.setCheckable(True)
    window.preview_action.setChecked(True)
    window.preview_action.setShortcut(QKeySequence("F9"))
    window.preview_action.toggled.connect(window.preview.setVisible)
    view_menu.addAction(window.preview_action)
    help_menu = window.menuBar().addMenu("&Help")
    keys_action = QAction("&Keyboard shortcuts", window)
    keys_action.setShortcut(QKeySequence.StandardKey.HelpContents)  # F1
    keys_action.triggered.connect(lambda: show_keys(window))
    window.about_action = QAction("&About FastSlow", window)
    window.about_action.triggered.connect(lambda: show_about(window))
    help_menu.addAction(keys_action)
    help_menu.addAction(window.about_action)
