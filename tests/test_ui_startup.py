"""Under Xvfb, `fastslow --library L --models B` shows a usable window titled FastSlow within 2 s.

Launches the app as a user would (a fresh process: torch is not imported yet), finds its window with
xdotool, types a query while the models are still loading, quits with Ctrl+Q, and checks that the
typed query reached the app (it is saved as the last query).
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                       reason="needs Xvfb and xdotool (apt-get install xvfb xdotool)"),
]

REPO = Path(__file__).resolve().parent.parent
WINDOW_BUDGET_S = 2.0
# `python -m fastslow_desktop --library L --models B` once the CLI passes --models to the app;
# until then the app's own entry point (the same main) is launched.
APP_MODULE = os.environ.get("FASTSLOW_APP_MODULE", "fastslow_desktop.ui")


def _start_xvfb(log: Path) -> tuple[subprocess.Popen, str]:
    """A private Xvfb that a client has already connected to, so the app's clock starts on a working display.

    `-noreset`: by default an X server resets itself each time its last client disconnects, and a
    client that connects during the reset is refused. Every probe below and every `xdotool search`
    while the app starts is such a client, so without it the app sometimes failed with "could not
    connect to display" (about 1 run in 10 here, and once in CI).
    """
    for _ in range(3):
        read, write = os.pipe()
        with open(log, "a") as err:
            xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1400x900x24",
                                     "-nolisten", "tcp", "-noreset"],
                                    pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=err)
        os.close(write)
        with os.fdopen(read) as pipe:
            display = f":{pipe.readline().strip()}"
        env = dict(os.environ, DISPLAY=display)
        ready_by = time.perf_counter() + 5
        while display != ":" and time.perf_counter() < ready_by:
            probe = subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True, timeout=10)
            if probe.returncode == 0:
                return xvfb, display
            time.sleep(0.1)
        xvfb.kill()
        xvfb.wait(10)
    pytest.fail(f"Xvfb gave no usable display in 3 tries; its log:\n{log.read_text()[-3000:]}")


def _find_window(env: dict, deadline: float) -> str | None:
    while time.perf_counter() < deadline:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^FastSlow$"], env=env,
                               capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.02)
    return None


def _launch_type_quit(env: dict, library: Path, bundle: Path) -> tuple[float, str]:
    """Launch the app, wait for its window, type a query while the models load, quit with Ctrl+Q.
    Returns (seconds until the window was on screen, the app's output)."""
    app = None
    try:
        start = time.perf_counter()
        app = subprocess.Popen([sys.executable, "-m", APP_MODULE, "--library", str(library), "--models", str(bundle)],
                               env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        window = _find_window(env, start + 20)
        shown = time.perf_counter() - start
        if window is None:  # say why: the app's own output (a crash, a hang in start-up) is the evidence
            app.kill()
            tail = (app.communicate(timeout=10)[0] or "")[-3000:]
            pytest.fail(f"no window titled FastSlow appeared; app output:\n{tail}")
        # Usable: type while the ML stack is still loading in the background, then quit.
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, check=True, timeout=10)
        subprocess.run(["xdotool", "type", "--delay", "20", "red circle"], env=env, check=True, timeout=10)
        typed = time.perf_counter() - start
        subprocess.run(["xdotool", "key", "ctrl+q"], env=env, check=True, timeout=10)
        # Quitting hides the window at once, even while the models are still loading behind it.
        gone_by = time.perf_counter() + 1.0
        while time.perf_counter() < gone_by and _find_window(env, time.perf_counter() + 0.05):
            pass
        assert _find_window(env, time.perf_counter() + 0.05) is None, "the window stayed after Ctrl+Q"
        quit_at = time.perf_counter()
        output, _ = app.communicate(timeout=60)
        print(f"\nexited {time.perf_counter() - quit_at:.1f} s after Ctrl+Q")
        assert app.returncode == 0, output
        print(f"\nwindow shown {shown:.2f} s after launch; query typed by {typed:.2f} s")
        return shown, output
    finally:
        if app is not None and app.poll() is None:
            app.kill()


def test_window_titled_fastslow_is_usable_within_two_seconds(tmp_path, tiny_bundle):
    t = time.perf_counter()
    xvfb, display = _start_xvfb(tmp_path / "xvfb.log")
    print(f"\nXvfb up in {time.perf_counter() - t:.1f} s")
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path / "config"),
               FASTSLOW_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.pop("FASTSLOW_LIBRARY", None)
    try:
        # Best of two launches, as the start-up benchmark takes the best of three: on these shared 2-core
        # machines a one-off stall (2.4 s once, against 0.4-0.7 s usually) is the machine, not the app.
        shown, output = _launch_type_quit(env, tmp_path / "library", tiny_bundle)
        if shown >= WINDOW_BUDGET_S:
            shown = min(shown, _launch_type_quit(env, tmp_path / "library", tiny_bundle)[0])
        assert shown < WINDOW_BUDGET_S, f"the window took {shown:.2f} s to appear, twice"
        saved = configparser.ConfigParser()
        saved.read(tmp_path / "config" / "FastSlow" / "FastSlow.conf")
        assert saved.get("window", "last_query", fallback=None) == "red circle", output
    finally:
        xvfb.terminate()
        xvfb.wait(10)
