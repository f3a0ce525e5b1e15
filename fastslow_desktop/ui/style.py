"""The app's look: Fusion everywhere (the same on every desktop) plus a few touches."""

STYLESHEET = """
QLabel#hint { color: palette(placeholder-text); }
QLabel#welcomeHeading { font-size: 20pt; font-weight: 600; margin: 8px; }
QLabel#sidebarTitle { font-weight: 600; font-size: 11pt; padding: 2px 2px 6px 2px; }
QLabel#previewTitle { font-size: 12pt; padding: 4px 0px; }
QLabel#timing { color: palette(placeholder-text); padding-left: 6px; }
QFrame#banner { background: #fff4d6; border-bottom: 1px solid #e8c766; }
QFrame#banner QLabel { color: #4a3b00; }
QFrame#banner QPushButton { color: #4a3b00; background: #ffe9a8; border: 1px solid #e8c766; border-radius: 4px;
                            padding: 3px 10px; }
QFrame#banner QPushButton#bannerClose { background: transparent; border: none; padding: 3px 4px; }
QFrame#banner QPushButton:focus, QFrame#banner QPushButton#bannerClose:focus { border: 2px solid #4a3b00; }
QLineEdit#searchField { font-size: 12pt; padding: 4px 10px; border-radius: 6px;
                        border: 1px solid palette(mid); }
QLineEdit#searchField:focus { border: 1px solid palette(highlight); }
QListWidget#folders::item { padding: 6px 4px; }
QPushButton#primary { padding: 6px 18px; }
"""
