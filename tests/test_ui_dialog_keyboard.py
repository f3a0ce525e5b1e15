"""Keyboard and screen-reader use of the Settings, Exclusions and Models dialogs: Tab runs top to bottom and
reaches every button, no box traps Tab, focus starts on a field (not on OK), Enter never starts a download
nobody chose, and controls that look alike have names that tell them apart."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QWidget

from fastslow_desktop.models.presets import PresetInfo
from fastslow_desktop.ui.dialogs.exclusions import ExclusionsDialog, PatternsEdit
from fastslow_desktop.ui.dialogs.models import ModelChooser
from fastslow_desktop.ui.dialogs.settings import SettingsDialog


def _shown(qtbot, dialog: QWidget) -> QWidget:
    qtbot.addWidget(dialog)
    with qtbot.waitActive(dialog):
        dialog.show()
    return dialog


def _tab(qtbot, times: int, key=Qt.Key.Key_Tab) -> list[QWidget]:
    """Press Tab (or Shift+Tab) as a person does, on whatever has focus; the widgets focused in turn."""
    seen = []
    for _ in range(times):
        qtbot.keyClick(QApplication.focusWidget(), key)
        seen.append(QApplication.focusWidget())
    return seen


def _accessible_name(widget: QWidget) -> str:
    """What a screen reader says: the explicit name, else what Qt derives (a buddy label, a group box title)."""
    return QAccessible.queryAccessibleInterface(widget).text(QAccessible.Text.Name)


def _ok_cancel(dialog: QWidget) -> list[QWidget]:
    box = dialog.findChild(QDialogButtonBox)
    return [box.button(QDialogButtonBox.StandardButton.Ok), box.button(QDialogButtonBox.StandardButton.Cancel)]


# -- Settings --------------------------------------------------------------------------------------------------
@pytest.fixture
def bundle_settings(ui_settings, tmp_path):
    ui_settings.models = str(tmp_path / "my-bundle")  # a bundle folder: "Bundle folder" is the checked radio
    return ui_settings


def test_settings_tab_runs_top_to_bottom_with_ok_and_cancel_last(qtbot, bundle_settings):
    dialog = _shown(qtbot, SettingsDialog(bundle_settings, cuda=False))
    assert QApplication.focusWidget() is dialog.use_bundle  # the first field, not OK: Enter does not save at once
    expected = [dialog.bundle, dialog.bundle_browse, dialog.device, dialog.k, dialog.beta, dialog.library,
                dialog.library_browse, dialog.exclusions, dialog.watching, *_ok_cancel(dialog), dialog.use_bundle]
    assert _tab(qtbot, len(expected)) == expected
    assert _tab(qtbot, 3, Qt.Key.Key_Backtab) == expected[-2::-1][:3]  # Shift+Tab walks it back


def test_settings_tab_enters_the_radio_group_on_the_checked_radio(qtbot, bundle_settings):
    dialog = _shown(qtbot, SettingsDialog(bundle_settings, cuda=False))
    dialog.watching.setFocus()
    assert _tab(qtbot, 3)[-1] is dialog.use_bundle  # watching → OK → Cancel → the checked radio, not "Preset"
    qtbot.keyClick(dialog.use_bundle, Qt.Key.Key_Up)  # arrows still switch between the two
    assert dialog.use_preset.isChecked() and QApplication.focusWidget() is dialog.use_preset
    # Preset → its list → (the unchecked radio and the disabled bundle row are skipped) → Device
    assert _tab(qtbot, 2) == [dialog.preset, dialog.device]
    assert _tab(qtbot, 2, Qt.Key.Key_Backtab) == [dialog.preset, dialog.use_preset]


def test_settings_tab_stop_follows_a_radio_checked_in_code(qtbot, bundle_settings):
    """Qt moves a radio group's Tab stop only when one of its radios gets focus; load() checks them in code."""
    dialog = _shown(qtbot, SettingsDialog(bundle_settings, cuda=False))
    bundle_settings.models = "balanced"
    dialog.load()  # "Preset" checked while "Bundle folder" had focus
    dialog.watching.setFocus()
    assert _tab(qtbot, 4) == [*_ok_cancel(dialog), dialog.use_preset, dialog.preset]


def test_settings_with_a_preset_starts_on_the_preset_radio(qtbot, ui_settings):
    ui_settings.models = "balanced"
    dialog = _shown(qtbot, SettingsDialog(ui_settings, cuda=False))
    assert dialog.use_preset.isChecked() and QApplication.focusWidget() is dialog.use_preset
    assert _tab(qtbot, 2) == [dialog.preset, dialog.device]
    assert not dialog.bundle_browse.isEnabled()  # browsing would fill the disabled bundle field


def test_settings_browse_buttons_and_folder_fields_have_names_that_tell_them_apart(qtbot, bundle_settings):
    dialog = SettingsDialog(bundle_settings, cuda=False)
    qtbot.addWidget(dialog)
    names = [_accessible_name(dialog.bundle_browse), _accessible_name(dialog.library_browse)]
    assert names == ["Browse for a model bundle folder", "Browse for a library folder"]
    assert dialog.bundle_browse.text() == dialog.library_browse.text() == "Browse…"  # what is seen stays short
    assert _accessible_name(dialog.bundle) == "Model bundle folder"  # not the group box's "Models"
    assert _accessible_name(dialog.library) == "Library folder"
    assert _accessible_name(dialog.exclusions) == "Skip in new folders"


# -- Exclusions ------------------------------------------------------------------------------------------------
def test_patterns_box_passes_tab_on_instead_of_typing_it(qtbot):
    edit = PatternsEdit(["*.tmp"])
    qtbot.addWidget(edit)
    assert edit.tabChangesFocus()
    assert edit.accessibleName()


def test_tab_leaves_the_exclusions_box_for_the_buttons_and_types_nothing(qtbot):
    dialog = _shown(qtbot, ExclusionsDialog("/photos", ["*.tmp"]))
    dialog.edit.setFocus()
    assert _tab(qtbot, 3) == [*_ok_cancel(dialog), dialog.edit]
    assert dialog.edit.toPlainText() == "*.tmp" and dialog.patterns() == ["*.tmp"]
    assert _accessible_name(dialog.edit) == "Exclusion patterns"


def test_tab_leaves_the_settings_exclusions_box(qtbot, bundle_settings):
    dialog = _shown(qtbot, SettingsDialog(bundle_settings, cuda=False))
    dialog.exclusions.setFocus()
    assert _tab(qtbot, 1) == [dialog.watching]
    assert "\t" not in dialog.exclusions.toPlainText()


# -- Models ----------------------------------------------------------------------------------------------------
def _preset(name: str, size: int, downloaded: bool, default: bool = False) -> PresetInfo:
    return PresetInfo(name=name, description=f"about {name}", languages=["en"], hardware="cpu",
                      download_bytes=size, downloaded=downloaded, accuracy={}, speed={}, legacy=False,
                      default=default)


# Made here, not read from the catalogue and cache: no hub, no download, the same on every machine.
ROWS = [_preset("balanced", 1_619_395_592, False, default=True), _preset("fast", 1_313_784_216, False),
        _preset("synthscenes", 0, True)]


def test_models_tab_reaches_the_buttons_and_leaves_the_selection_alone(qtbot):
    chooser = _shown(qtbot, ModelChooser(ROWS, current="synthscenes", preselect="synthscenes"))
    assert QApplication.focusWidget() is chooser.table and not chooser.table.tabKeyNavigation()
    assert _tab(qtbot, 3) == [chooser.use_button, chooser.cancel_button, chooser.table]
    assert chooser.chosen() == "synthscenes" and chooser.use_button.text() == "Use these models"
    assert _accessible_name(chooser.table) == "Search model presets"


def test_models_with_a_bundle_folder_in_use_select_nothing_and_enter_downloads_nothing(qtbot, tmp_path):
    bundle = str(tmp_path / "synthscenes-bundle")  # as the window passes it: the models in use, a folder
    chooser = _shown(qtbot, ModelChooser(ROWS, current=bundle, preselect=bundle))
    assert chooser.chosen() is None and chooser.table.selectionModel().selectedRows() == []
    assert not chooser.use_button.isEnabled() and "Download" not in chooser.use_button.text()
    qtbot.keyClick(chooser.table, Qt.Key.Key_Return)
    assert not chooser.downloading and chooser.isVisible()
    qtbot.keyClick(chooser.table, Qt.Key.Key_Space)  # the keyboard way to choose the focused row
    assert chooser.chosen() == "balanced" and chooser.use_button.text() == "Download (1.6 GB) and use"


def test_models_preselect_the_listed_preset_in_use(qtbot):
    chooser = ModelChooser(ROWS, current="fast", preselect="fast")
    qtbot.addWidget(chooser)
    assert chooser.chosen() == "fast"
    assert chooser.table.item(1, 0).text() == "fast — in use"
    assert chooser.use_button.isEnabled() and chooser.use_button.text() == "Download (1.3 GB) and use"


def test_models_with_nothing_in_use_select_nothing(qtbot):
    chooser = ModelChooser(ROWS)
    qtbot.addWidget(chooser)
    assert chooser.chosen() is None and not chooser.use_button.isEnabled()
