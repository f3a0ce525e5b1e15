"""A bare desktop: missing xcb libraries or no display give an install hint and exit 2, never Qt's abort;
a missing libpulse0 is named in the app when a video cannot play inside it."""

from __future__ import annotations

import pytest

import fastslow_desktop.ui.app as app_module
from fastslow_desktop import cli
from fastslow_desktop.ui import system_libs
from fastslow_desktop.ui.system_libs import display_problem

DESKTOP = {"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}


def _all_but(*gone: str):
    return lambda soname: soname not in gone


def test_missing_xcb_cursor_names_the_debian_and_fedora_packages():
    problem = display_problem(DESKTOP, "linux", _all_but("libxcb-cursor.so.0", "libxcb-icccm.so.4"))
    assert "libxcb-cursor.so.0" in problem and "libxcb-icccm.so.4" in problem
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4" in problem
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in problem


@pytest.mark.parametrize("env, platform, expected", [
    (DESKTOP, "linux", None),  # everything loadable
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", None),  # no display needed
    ({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "linux", None),
    ({}, "darwin", None),
    ({}, "linux", "no display"),
    ({"QT_QPA_PLATFORM": "xcb"}, "linux", "no display"),
])
def test_which_desktops_are_checked(env, platform, expected):
    problem = display_problem(env, platform, lambda soname: True, reach=lambda display: True)
    assert problem is None if expected is None else expected in problem


def test_a_display_no_x_server_answers_is_named_instead_of_qts_abort(tmp_path):
    assert "no X server answers at DISPLAY=:0" in display_problem(DESKTOP, "linux", lambda soname: True,
                                                                   reach=lambda display: False)
    assert not system_libs.x_server_answers(":987")  # nothing listens there
    assert not system_libs.x_server_answers("127.0.0.1:987", timeout=0.5)
    assert system_libs.x_server_answers("/private/tmp/com.apple.launchd.x/org.xquartz:0")  # not judged here


def test_a_local_x_socket_counts_as_an_answer(tmp_path, monkeypatch):
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0/tmp/.X11-unix/X986")  # where an X server listens (the abstract socket)
    server.listen(1)
    try:
        assert system_libs.x_server_answers(":986.0")
    finally:
        server.close()


def test_wayland_session_does_not_need_the_xcb_libraries():
    env = {"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}
    assert display_problem(env, "linux", _all_but("libxcb-cursor.so.0")) is None
    assert "libxcb-cursor0" in display_problem(dict(env, QT_QPA_PLATFORM="xcb"), "linux",
                                               _all_but("libxcb-cursor.so.0"))


def _bare_desktop(monkeypatch, **env: str) -> list:
    """The GUI entry point on Linux with this environment; records if Qt's app would have been started."""
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(system_libs.sys, "platform", "linux")
    started: list = []
    monkeypatch.setattr(app_module, "main", lambda args: started.append(args) or 0)
    return started


def test_fastslow_without_xcb_cursor_prints_the_hint_and_exits_2(monkeypatch, capsys):
    started = _bare_desktop(monkeypatch, DISPLAY=":0")
    monkeypatch.setattr(system_libs, "loadable", _all_but("libxcb-cursor.so.0"))
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "libxcb-cursor.so.0" in err and "libxcb-cursor0" in err and "xcb-util-cursor" in err
    assert not started, "Qt was started anyway"


def test_fastslow_without_any_display_says_so_and_exits_2(monkeypatch, capsys):
    started = _bare_desktop(monkeypatch)
    assert cli.main([]) == 2
    assert "no display" in capsys.readouterr().err and not started


def test_fastslow_with_everything_installed_starts_the_app(monkeypatch):
    started = _bare_desktop(monkeypatch, DISPLAY=":0")
    monkeypatch.setattr(system_libs, "loadable", lambda soname: True)
    monkeypatch.setattr(system_libs, "x_server_answers", lambda display: True)
    assert cli.main([]) == 0 and len(started) == 1


def test_play_without_libpulse_names_the_package_in_the_preview(qtbot, monkeypatch):
    import fastslow_desktop.ui.views.preview as preview_module
    from tests.test_ui_results_model import make_results

    monkeypatch.setattr(system_libs.sys, "platform", "linux")
    monkeypatch.setattr(system_libs, "loadable", _all_but("libpulse.so.0"))
    monkeypatch.setattr(preview_module, "multimedia_problem", system_libs.multimedia_problem)
    pane = preview_module.PreviewPane()
    qtbot.addWidget(pane)
    pane.show()
    video = make_results(5)[4]  # every fifth is a video
    pane.show_result(video)
    with qtbot.waitSignal(pane.play_requested) as fallback:
        pane.play_button.click()
    played = fallback.args[0]  # the result at the moment shown (a copy when Next moment moved it)
    assert (played.path, played.t_start, played.t_end) == (video.path, video.t_start, video.t_end)
    assert pane.play_note.isVisible() and "libpulse0" in pane.play_note.text()
    assert "pulseaudio-libs" in pane.play_note.text()
    pane.show_result(None)
    assert not pane.play_note.isVisible()
