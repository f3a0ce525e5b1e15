"""Render the results window at 1280×800 on the offline demo library with the shipped SynthScenes models:
a query whose scene is in the library (the match divider) and one whose scene is not (nothing matches).

    QT_QPA_PLATFORM=offscreen python docs/screenshots/render_results.py [--dir DIR]

Writes docs/screenshots/match-divider.png and nothing-matches.png, and prints each query's judgement.
The judgement is the real one (stage 2 of the shipped bundle and its calibration), not staged.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from fastslow_desktop.demo import build_demo
from fastslow_desktop.ui.app import build_window
from fastslow_desktop.ui.services import ServiceConfig
from fastslow_desktop.ui.settings import AppSettings
from fastslow_desktop.ui.style import STYLESHEET

HERE = Path(__file__).resolve().parent
SHOTS = (("match-divider", "an orange star above a red square"),  # the scene of the demo's first image
         ("nothing-matches", "a green star to the left of a purple circle"))  # checked below: no demo scene shows it


def _wait(app: QApplication, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _relevant(demo: Path, query: str) -> int:
    """How many demo photos and video moments the SynthScenes relevance rule says show `query`."""
    from fastslow_desktop.synthscenes.captions import satisfies
    from fastslow_desktop.synthscenes.scenes import Scene

    count = 0
    for line in (demo / "media" / "captions.jsonl").read_text().splitlines():
        item = json.loads(line)
        scenes = [item["scene"]] if "scene" in item else [event["scene"] for event in item.get("events", [])]
        count += sum(satisfies(Scene.from_dict(scene), query) for scene in scenes)
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "fastslow-screenshot-demo")
    args = parser.parse_args()
    library = build_demo(args.dir)
    if not (_relevant(args.dir, SHOTS[0][1]) and not _relevant(args.dir, SHOTS[1][1])):
        print("the demo's scenes changed: pick other queries", file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setStyle("Fusion")
    app.setStyleSheet(STYLESHEET)
    settings = AppSettings.at(Path(tempfile.mkdtemp()) / "settings.ini")
    window = build_window(settings, ServiceConfig(library_dir=library, models="synthscenes", watching=False))
    window.resize(1280, 800)
    window.show()
    window.start()
    if not _wait(app, lambda: window.controller.is_ready, 120):
        print("the app did not get ready", file=sys.stderr)
        return 1
    for name, query in SHOTS:
        stages: list = []
        window.controller.stage2.connect(stages.append)
        window.search_bar.field.setText(query)  # as typed, so the screenshot shows the query
        window.run_query(query)
        _wait(app, lambda: stages and window.search_bar.refining.isHidden(), 120)
        window.controller.stage2.disconnect(stages.append)
        if not stages:
            print(f"no re-ranked results for {query!r}", file=sys.stderr)
            return 1
        _wait(app, lambda: False, 1.0)  # thumbnails
        out = HERE / f"{name}.png"
        window.grab().save(str(out))
        judged = [(Path(r.path).name, r.match, round(r.match_probability or 0, 3)) for r in stages[-1].results[:5]]
        print(f"{out.name}: {query!r} any_match={stages[-1].any_match} top5={judged}")
    window.close()
    _wait(app, lambda: window._stopped, 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
