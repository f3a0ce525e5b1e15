"""The main window for a keyboard-only user and a screen reader: Tab follows the layout, no key opens a
dialog by accident, the grid shows and names where the keys act, Enter presses a focused button."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox, QSlider

from tests.ui_helpers import open_window

QUERY = "a red circle to the left of a blue square"


def _tab_stops(start) -> list:
    """The widgets Tab visits from `start`, in order, as Qt walks the focus chain (visible, enabled ones)."""
    stops, widget = [], start.nextInFocusChain()
    while widget is not start and len(stops) < 500:
        if widget.isVisible() and widget.isEnabled() and widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            stops.append(widget)
        widget = widget.nextInFocusChain()
    return stops


def test_tab_follows_the_layout(qtbot, ui_settings, indexed_library, tiny_bundle):
    """The filter row came after the whole preview pane (the order widgets were made in)."""
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000):
        window.run_query(QUERY)
    window.sidebar.list.setCurrentRow(0)  # Remove and Exclude… are enabled
    bar, side, preview = window.filter_bar, window.sidebar, window.preview
    stops = _tab_stops(window.search_bar.field)
    expected = [bar.kind, bar.folder, bar.dates, bar.sort, side.list, side.add_button, side.remove_button,
                side.exclude_button, window.results_view, preview.open_button, preview.reveal_button,
                preview.copy_button, preview.more_button]
    assert [w for w in stops if w in expected] == expected
    assert window.preview.scroll not in stops  # the details area shows no focus: it is no stop


def test_arrowing_onto_choose_opens_no_dialog(qtbot, tmp_path):
    from fastslow_desktop.ui.views.filter_bar import CHOOSE, FilterBar

    bar = FilterBar()
    qtbot.addWidget(bar)
    asked: list[int] = []
    bar.ask_folder = lambda: asked.append(1) or ""
    bar.set_roots([str(tmp_path / "Holiday")])
    bar.show()
    bar.folder.setFocus()
    for _ in range(3):
        qtbot.keyClick(bar.folder, Qt.Key.Key_Down)
    assert asked == [] and bar.folder.currentText() == "Holiday"  # it stays on the last folder
    bar.folder.activated.emit(bar.folder.findData(CHOOSE))  # chosen from the open list (a click, Enter)
    assert asked == [1]


def test_the_grid_names_each_card_and_hands_typing_to_the_search_field(qtbot, ui_settings, indexed_library,
                                                                       tiny_bundle):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    window.activateWindow()
    with qtbot.waitSignal(window.controller.stage2, timeout=30_000):
        window.search_bar.field.setText(QUERY)
        window.run_query(QUERY)
    model, view, field = window.results_model, window.results_view, window.search_bar.field
    spoken = model.index(0, 0).data(Qt.ItemDataRole.AccessibleTextRole)
    first = model.result(0)
    assert spoken.startswith(f"{first.path.rsplit('/', 1)[-1]}, photo, ") and f"1 of {model.rowCount()}" in spoken
    assert view.accessibleName() == "Results"
    assert window.search_bar.timing.text().startswith(f"{model.rowCount()} results · fast ")
    qtbot.keyClick(field, Qt.Key.Key_Down)
    assert view.hasFocus()
    qtbot.keyClick(view, Qt.Key.Key_Up)  # the first row: back to the field
    qtbot.waitUntil(field.hasFocus)
    qtbot.keyClick(field, Qt.Key.Key_Down)
    with qtbot.waitSignal(window.controller.stage1, timeout=30_000) as stage1:
        qtbot.keyClicks(view, " x")  # Space is the preview's; a letter goes on in the field and searches
    assert field.hasFocus() and field.text() == QUERY + "x"
    assert stage1.args[0].request.text == QUERY + "x"


def test_keyboard_seeking_in_the_player_moves_the_video():
    """Home on the position slider moved the knob but not the video."""
    from fastslow_desktop.ui.views.player import PlayerControls

    controls = PlayerControls()
    controls.set_duration(10_000)
    controls.set_position(4_000)
    seeks: list[int] = []
    controls.seek_requested.connect(seeks.append)
    controls.slider.triggerAction(QSlider.SliderAction.SliderToMinimum)
    controls.slider.triggerAction(QSlider.SliderAction.SliderPageStepAdd)
    assert seeks == [0, controls.slider.pageStep()]
    assert controls.slider.accessibleName() and controls.play_pause.accessibleName() == "Play or pause"


def test_removing_the_focused_folder_keeps_the_keyboard_in_the_sidebar(qtbot):
    from fastslow_desktop.ui.views.sidebar import FoldersSidebar

    def root(path: str):
        return SimpleNamespace(path=path, n_indexed=1, n_media=1, n_errors=0, online=True, excludes=())
    sidebar = FoldersSidebar()
    qtbot.addWidget(sidebar)
    sidebar.show()
    sidebar.activateWindow()
    sidebar.set_roots([root("/a"), root("/b"), root("/c")])
    sidebar.list.setCurrentRow(2)
    sidebar.remove_button.setFocus()
    qtbot.waitUntil(sidebar.remove_button.hasFocus)
    removed: list[str] = []
    sidebar.remove_requested.connect(removed.append)
    qtbot.keyClick(sidebar.remove_button, Qt.Key.Key_Return)  # Enter presses a focused button, as Space does
    assert removed == ["/c"]
    sidebar.set_roots([root("/a"), root("/b")])  # the library took it away
    assert sidebar.current_path() == "/b" and sidebar.remove_button.isEnabled()  # its neighbour is next
    assert QApplication.focusWidget() is sidebar.list
    sidebar.remove_button.setFocus()
    sidebar.set_roots([])
    assert QApplication.focusWidget() is sidebar.add_button  # not a disabled button, not the preview


def test_menus_offer_the_keys_and_removing_a_folder_asks_with_no_as_default(qtbot, ui_settings, indexed_library,
                                                                             tiny_bundle, monkeypatch):
    window = open_window(qtbot, ui_settings, indexed_library, tiny_bundle)
    assert QKeySequence("Ctrl+,") in window.settings_action.shortcuts()
    assert window.find_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Find)
    assert window.preview_action.shortcut() == QKeySequence("F9")
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args) or QMessageBox.StandardButton.No)
    window._remove_folder("/somewhere")
    assert asked and asked[0][-1] == QMessageBox.StandardButton.No  # Enter keeps the folder


def test_a_card_tells_a_screen_reader_its_section_and_match():
    from fastslow_desktop.ui.models.results import ResultsModel

    def result(n: int, match: str, kind: str = "image"):
        return SimpleNamespace(segment_id=n, media_id=n, path=f"/p/{n}.mp4" if kind == "video" else f"/p/{n}.jpg",
                               kind=kind, t_start=2.0 if kind == "video" else None, t_end=7.0 if kind == "video"
                               else None, match=match, match_probability=0.97 if match == "yes" else 0.2, thumb=None)
    model = ResultsModel()
    model.set_results([result(1, "yes", "video"), result(2, "no")], stage=2)
    spoken = [model.index(row, 0).data(Qt.ItemDataRole.AccessibleTextRole) for row in range(2)]
    assert spoken == ["1.mp4, video 0:02–0:07, match yes · 97 %, 1 of 2, in Matches",
                      "2.jpg, photo, match no · 20 %, 2 of 2, in Similar, not exact"]
    model.set_results([result(2, "no")], stage=2)
    assert model.index(0, 0).data(Qt.ItemDataRole.AccessibleTextRole).endswith("nothing matches exactly")
