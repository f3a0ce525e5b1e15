"""GUI soak: the real window on the demo library, queries typed and the grid scrolled for N minutes.

The PySide6 6.12 / Python 3.11 crash (`Fatal Python error: none_dealloc`) took about four minutes of
clicking to show: every paint of the results grid dropped references to None. This drives the same
paths for longer, in-process (offscreen unless QT_QPA_PLATFORM says otherwise): keystrokes into the
search field, results through both stages, wheel scrolling, selection (the preview) and forced repaints
of the grid. It prints one JSON object: duration, counts, and None's reference count at the start and
end (constant on Python >= 3.12, where None is immortal).

    python -m benchmarks.gui_soak --minutes 15 --demo-dir /tmp/soak-demo
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

QUERIES = [
    "a red circle to the left of a blue square", "three small yellow stars", "a large green star",
    "an orange triangle above a purple circle", "two large blue squares", "a small red star",
    "a purple square to the right of a green circle", "a blue circle below a yellow triangle",
]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--demo-dir", default="/tmp/fastslow-soak-demo")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from benchmarks.common import _cpu_model
    from fastslow_desktop.demo import build_demo
    from fastslow_desktop.ui.app import build_window
    from fastslow_desktop.ui.services import ServiceConfig
    from fastslow_desktop.ui.settings import AppSettings

    library = build_demo(Path(args.demo_dir), args.images, args.videos)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    settings = AppSettings.at(Path(args.demo_dir) / "soak-settings.ini")
    window = build_window(settings, ServiceConfig(library_dir=library, models="synthscenes", watching=False))
    window.resize(1280, 800)
    window.show()
    window.start()
    deadline = time.monotonic() + 120
    while not window.controller.is_ready and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if not window.controller.is_ready:
        print(json.dumps({"ok": False, "error": "models never became ready"}))
        return 1

    rng = random.Random(args.seed)
    view = window.results_view
    counts = {"queries": 0, "keystrokes": 0, "scrolls": 0, "selections": 0, "repaints": 0, "stage2": 0}
    window.controller.stage2.connect(lambda _result: counts.__setitem__("stage2", counts["stage2"] + 1))
    none_start = sys.getrefcount(None)
    started = time.monotonic()
    end = started + args.minutes * 60
    while time.monotonic() < end:
        field = window.search_bar.field
        field.clear()
        query = rng.choice(QUERIES)
        for char in query:  # typed one key at a time, with the pauses of a person typing
            QTest.keyClick(field, char)
            counts["keystrokes"] += 1
            app.processEvents()
        counts["queries"] += 1
        pause = time.monotonic() + 1.5
        while time.monotonic() < pause:  # both stages arrive; the grid paints thumbnails and badges
            app.processEvents()
            time.sleep(0.005)
        model = view.model()
        for _ in range(20):
            delta = rng.choice((-120, 120, 240))
            pos = QPointF(view.viewport().width() / 2, view.viewport().height() / 2)
            event = QWheelEvent(pos, view.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, -delta),
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                                Qt.ScrollPhase.NoScrollPhase, False)
            QApplication.sendEvent(view.viewport(), event)
            counts["scrolls"] += 1
            view.viewport().grab()  # a full paint of the visible grid, badges included
            counts["repaints"] += 1
            if model is not None and model.rowCount() and rng.random() < 0.3:
                view.setCurrentIndex(model.index(rng.randrange(model.rowCount()), 0))
                counts["selections"] += 1
            app.processEvents()
    none_end = sys.getrefcount(None)
    window.close()
    app.processEvents()
    print(json.dumps({
        "ok": True, "minutes": round((time.monotonic() - started) / 60, 2), **counts,
        "none_refcount_start": none_start, "none_refcount_end": none_end,
        "python": platform.python_version(), "pyside6": __import__("importlib.metadata").metadata.version("PySide6"),
        "cpu": _cpu_model(), "qpa": os.environ.get("QT_QPA_PLATFORM"),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
