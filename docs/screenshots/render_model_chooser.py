"""Render the model chooser offscreen to docs/screenshots/model_chooser.png (README's first-run flow).

    QT_QPA_PLATFORM=offscreen HF_HUB_CACHE=$(mktemp -d) python docs/screenshots/render_model_chooser.py

An empty HF_HUB_CACHE shows the catalogue as a new user sees it: nothing downloaded but the demo.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from fastslow_desktop.models.presets import preset_infos
from fastslow_desktop.ui.dialogs.models import ModelChooser
from fastslow_desktop.ui.style import STYLESHEET


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    app.setStyleSheet(STYLESHEET)
    chooser = ModelChooser(preset_infos(), cuda=False, preselect="balanced")
    chooser.resize(1180, 330)
    chooser.show()
    app.processEvents()
    out = Path(__file__).with_name("model_chooser.png")
    if not chooser.grab().save(str(out)):
        print(f"could not write {out}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
