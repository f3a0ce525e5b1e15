"""System libraries the desktop app needs on Linux, checked before Qt can abort on them (no Qt imports here).

Qt's xcb platform plugin needs X11 libraries that a fresh desktop may lack; without them Qt prints
"could not load the Qt platform plugin xcb" and aborts the process. We load each one first and,
when some are missing, tell the person which packages to install (Debian/Ubuntu and Fedora names).
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EXIT_USAGE = 2


@dataclass(frozen=True)
class SystemLib:
    soname: str
    debian: str  # Debian/Ubuntu package
    fedora: str  # Fedora/RHEL package


# What libQt6XcbQpa, libQt6Gui and the xcb plugin link against (readelf on PySide6 6.11), beyond libc and
# friends. Not libxcb-xinerama: Qt 6 no longer links it, and demanding it would refuse a desktop Qt runs on.
XCB_LIBS = (
    SystemLib("libxcb.so.1", "libxcb1", "libxcb"),
    SystemLib("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    SystemLib("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm"),
    SystemLib("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms"),
    SystemLib("libxcb-image.so.0", "libxcb-image0", "xcb-util-image"),
    SystemLib("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil"),
    SystemLib("libxcb-util.so.1", "libxcb-util1", "xcb-util"),
    SystemLib("libxcb-shape.so.0", "libxcb-shape0", "libxcb"),
    SystemLib("libxcb-randr.so.0", "libxcb-randr0", "libxcb"),
    SystemLib("libxcb-xkb.so.1", "libxcb-xkb1", "libxcb"),
    SystemLib("libxcb-render.so.0", "libxcb-render0", "libxcb"),
    SystemLib("libxcb-shm.so.0", "libxcb-shm0", "libxcb"),
    SystemLib("libxcb-sync.so.1", "libxcb-sync1", "libxcb"),
    SystemLib("libxcb-xfixes.so.0", "libxcb-xfixes0", "libxcb"),
    SystemLib("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb"),
    SystemLib("libxkbcommon.so.0", "libxkbcommon0", "libxkbcommon"),
    SystemLib("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    SystemLib("libEGL.so.1", "libegl1", "libglvnd-egl"),
    SystemLib("libfontconfig.so.1", "libfontconfig1", "fontconfig"),
    SystemLib("libdbus-1.so.3", "libdbus-1-3", "dbus-libs"),
)

# What the packaged app carries in its own folder: the xcb utility libraries a bare desktop lacks most
# often (the cause of Qt's "could not load the Qt platform plugin xcb"). Not the core libraries every X
# desktop has and that must match its X server and GPU driver (libxcb, libX11-xcb, libxkbcommon, libEGL,
# fontconfig, D-Bus), nor PulseAudio, whose client must match the running sound server.
_SYSTEM_CORE = {"libxcb.so.1", "libX11-xcb.so.1", "libxkbcommon.so.0", "libEGL.so.1", "libfontconfig.so.1",
                "libdbus-1.so.3"}
CARRIED_XCB_LIBS = tuple(lib for lib in XCB_LIBS if lib.soname not in _SYSTEM_CORE)

# QtMultimedia (the in-app video player) needs PulseAudio's client library.
MULTIMEDIA_LIBS = (SystemLib("libpulse.so.0", "libpulse0", "pulseaudio-libs"),)


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds this library (the same search Qt's own load does)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing(libs: tuple[SystemLib, ...], load: Callable[[str], bool] | None = None) -> list[SystemLib]:
    """The libraries the loader cannot find (`load` defaults to `loadable`, looked up at call time)."""
    load = load or loadable
    return [lib for lib in libs if not load(lib.soname)]


def install_hint(libs: list[SystemLib]) -> str:
    """'sudo apt install …' and 'sudo dnf install …' for these libraries (each package once)."""
    debian = " ".join(dict.fromkeys(lib.debian for lib in libs))
    fedora = " ".join(dict.fromkeys(lib.fedora for lib in libs))
    return f"Debian/Ubuntu: sudo apt install {debian}\n  Fedora: sudo dnf install {fedora}"


def _chosen_platform(env: Mapping[str, str]) -> str:
    """The first plugin of QT_QPA_PLATFORM ('wayland;xcb' tries wayland first; 'xcb:opt' has options)."""
    return env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()


def uses_xcb(env: Mapping[str, str]) -> bool:
    """Whether Qt would pick the xcb plugin: no platform chosen (or xcb) and not a Wayland session."""
    if _chosen_platform(env):
        return _chosen_platform(env) == "xcb"
    wayland = bool(env.get("WAYLAND_DISPLAY")) and env.get("XDG_SESSION_TYPE", "").lower() == "wayland"
    return not wayland


def x_server_answers(display: str, timeout: float = 1.0) -> bool:
    """Whether an X server listens at DISPLAY ([host]:N[.screen]): its local socket (abstract or file) for
    ":N", TCP port 6000 + N for "host:N" (as SSH X forwarding gives). Forms not known here count as yes."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit() or host.startswith("/"):  # macOS launchd sockets and the like: let Qt judge
        return True
    if host in ("", "unix"):
        for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(timeout)
                    sock.connect(address)
                return True
            except OSError:
                continue
        return False
    try:
        socket.create_connection((host, 6000 + int(number)), timeout=timeout).close()
        return True
    except OSError:
        return False


def display_problem(env: Mapping[str, str] | None = None, platform: str | None = None,
                    load: Callable[[str], bool] | None = None,
                    reach: Callable[[str], bool] | None = None) -> str | None:
    """Why the GUI cannot start on this desktop, in words a person can act on; None when it can."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    chosen = _chosen_platform(env)
    if chosen and chosen not in ("xcb", "wayland"):
        return None  # offscreen, vnc, eglfs…: the person chose a platform that needs no display
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return ("no display: the desktop app needs a graphical session (DISPLAY or WAYLAND_DISPLAY is not "
                "set). Run it from your desktop, or use `fastslow index`, `fastslow search` and "
                "`fastslow status` here.")
    if not uses_xcb(env) or not env.get("DISPLAY"):
        return None
    gone = missing(XCB_LIBS, load)
    if gone:
        names = ", ".join(lib.soname for lib in gone)
        return (f"the desktop app needs system libraries that are not installed ({names}). Install them with\n"
                f"  {install_hint(gone)}\nthen start FastSlow again.")
    if not (reach or x_server_answers)(env["DISPLAY"]):  # Qt would print "could not connect to display" and abort
        return (f"no X server answers at DISPLAY={env['DISPLAY']} (a display that has gone, or an SSH session "
                "without X forwarding). Run FastSlow from your desktop, or use `fastslow index`, "
                "`fastslow search` and `fastslow status` here.")
    return None


def multimedia_problem(load: Callable[[str], bool] | None = None) -> str | None:
    """Why the in-app video player cannot run, naming the package to install; None when it can."""
    if not sys.platform.startswith("linux"):
        return None
    gone = missing(MULTIMEDIA_LIBS, load)
    if not gone:
        return None
    return (f"Playing videos inside FastSlow needs {', '.join(lib.soname for lib in gone)}. "
            f"Install it with {install_hint(gone)}")
