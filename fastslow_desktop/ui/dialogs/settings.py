"""The settings dialog: models (preset or bundle folder), device, K and β, library folder, exclusions, watching."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt

from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from ..focus_order import chain
from ..settings import AppSettings
from .exclusions import PatternsEdit

def known_presets() -> list[str]:
    """The catalogue's presets (models/presets.json), legacy ones last."""
    from fastslow_desktop.models import presets

    rows = [(bool((presets.entry(n) or {}).get("legacy")), n) for n in presets.names()]
    return [name for _legacy, name in sorted(rows, key=lambda r: r[0])]


def preset_description(name: str) -> str:
    from fastslow_desktop.models import presets

    spec = presets.entry(name)
    return spec.get("description", "") if spec else ""
DEVICE_LABELS = (("Automatic (GPU when available)", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda"))


def cuda_available() -> bool | None:
    """Whether a CUDA GPU is usable; None when torch is not loaded yet (importing it here would freeze the GUI).

    The start-up worker imports torch before Settings can usefully be opened, so this is almost always known.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install: treat it as no GPU
        return False


def _folder_row(edit: QLineEdit, parent: QWidget, title: str, what: str) -> tuple[QHBoxLayout, QPushButton]:
    """The edit and its Browse… button; `what` names the folder, so a screen reader can tell the buttons apart."""
    browse = QPushButton("Browse…", parent)
    browse.setAccessibleName(f"Browse for {what}")

    def pick() -> None:
        folder = QFileDialog.getExistingDirectory(parent, title, edit.text())
        if folder:
            edit.setText(folder)

    browse.clicked.connect(pick)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row, browse


class SettingsDialog(QDialog):
    """Reads from and writes to AppSettings; `changes()` says what the app has to redo."""

    def __init__(self, settings: AppSettings, presets: list[str] | None = None, parent: QWidget | None = None,
                 cuda: bool | None = None, current_library: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.current_library = current_library
        presets = list(dict.fromkeys([*known_presets(), *(presets or [])]))
        note = QLabel("Changing the models, device or library folder reloads them in the background.", self)
        note.setObjectName("hint")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        boxes = (self._models_box(presets, cuda_available() if cuda is None else cuda), self._search_box(),
                 self._library_box())
        for widget in (*boxes, note, buttons):
            layout.addWidget(widget)
        self.use_preset.toggled.connect(self._sync_enabled)
        self.preset.currentTextChanged.connect(lambda name: self.preset_about.setText(preset_description(name)))
        self.load()
        self._set_tab_order(buttons)
        # Focus on the first field, not on OK: a keyboard user would otherwise save with the first Enter.
        self.models_radio().setFocus(Qt.FocusReason.OtherFocusReason)
        self.resize(560, 0)

    def _set_tab_order(self, buttons: QDialogButtonBox) -> None:
        """Top to bottom as laid out, OK and Cancel last (the chain otherwise follows creation order, and the
        button box is made first). Disabled fields and the unchecked radio are skipped by Qt itself."""
        chain([self.use_preset, self.preset, self.use_bundle, self.bundle, self.bundle_browse, self.device, self.k,
               self.beta, self.library, self.library_browse, self.exclusions, self.watching, *buttons.buttons()])

    def models_radio(self) -> QRadioButton:
        """The checked one of Preset / Bundle folder: where Tab enters the group."""
        return self.use_bundle if self.use_bundle.isChecked() else self.use_preset

    def _models_box(self, presets: list[str], cuda: bool | None) -> QGroupBox:
        self.use_preset = QRadioButton("Preset", self)
        self.use_bundle = QRadioButton("Bundle folder", self)
        group = QButtonGroup(self)
        group.addButton(self.use_preset)
        group.addButton(self.use_bundle)
        # Qt moves the group's Tab stop only when one of its radios gets focus, not when one is checked
        # in code (load()), so Tab would land on "Preset" while "Bundle folder" is chosen: keep it on the
        # checked one.
        group.buttonToggled.connect(lambda *_: self._sync_radio_focus())
        self.preset = QComboBox(self)
        self.preset.addItems(presets)
        for i, name in enumerate(presets):
            self.preset.setItemData(i, preset_description(name), Qt.ItemDataRole.ToolTipRole)
        self.preset_about = QLabel(self)  # what the chosen preset is for (languages, hardware)
        self.preset_about.setObjectName("hint")
        self.preset_about.setWordWrap(True)
        self.bundle = QLineEdit(self)
        self.bundle.setPlaceholderText("a folder containing manifest.json")
        self.bundle.setAccessibleName("Model bundle folder")  # else the group box's title, "Models"
        self.device = QComboBox(self)
        for label, value in DEVICE_LABELS:
            if value == "cuda" and cuda is False:
                if self.settings.device != "cuda":
                    continue  # no CUDA GPU on this machine: do not offer one
                label += " (not found)"  # chosen earlier (another machine): shown, not silently dropped
            self.device.addItem(label, value)
        box = QGroupBox("Models", self)
        form = QFormLayout(box)
        form.addRow(self.use_preset, self.preset)
        form.addRow("", self.preset_about)
        row, self.bundle_browse = _folder_row(self.bundle, self, "Choose a model bundle folder",
                                              "a model bundle folder")
        form.addRow(self.use_bundle, row)
        form.addRow("Device", self.device)
        return box

    def _search_box(self) -> QGroupBox:
        self.k = QSpinBox(self)
        self.k.setRange(0, 1000)
        self.k.setSpecialValueText("Bundle default")
        self.k.setToolTip("How many of the fast model's best matches the slow model re-ranks")
        self.beta = QDoubleSpinBox(self)
        self.beta.setRange(-0.05, 20.0)
        self.beta.setSingleStep(0.05)
        self.beta.setDecimals(2)
        self.beta.setSpecialValueText("Bundle default")
        self.beta.setToolTip("Weight of the fast score in the final score: final = slow + β·fast")
        box = QGroupBox("Re-ranking", self)
        form = QFormLayout(box)
        form.addRow("K (candidates)", self.k)
        form.addRow("β (fast weight)", self.beta)
        return box

    def _library_box(self) -> QGroupBox:
        from fastslow_desktop.paths import default_library_dir

        self.library = QLineEdit(self)
        self.library.setPlaceholderText(f"default: {default_library_dir()}")
        self.library.setAccessibleName("Library folder")  # else the group box's title, "Library"
        self.library_now = QLabel(f"Open now: {self.current_library}" if self.current_library else "", self)
        self.library_now.setObjectName("hint")
        self.library_now.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.exclusions = PatternsEdit([], self)
        self.exclusions.setMaximumHeight(90)
        self.exclusions.setAccessibleName("Skip in new folders")  # the form's label, not PatternsEdit's own name
        self.watching = QCheckBox("Watch folders and index changes automatically", self)
        box = QGroupBox("Library", self)
        form = QFormLayout(box)
        row, self.library_browse = _folder_row(self.library, self, "Choose the library folder", "a library folder")
        form.addRow("Library folder", row)
        if self.current_library:
            form.addRow("", self.library_now)
        form.addRow("Skip in new folders", self.exclusions)
        form.addRow("", self.watching)
        return box

    def _sync_enabled(self) -> None:
        self.preset.setEnabled(self.use_preset.isChecked())
        self.bundle.setEnabled(self.use_bundle.isChecked())
        self.bundle_browse.setEnabled(self.use_bundle.isChecked())  # no Tab stop that fills a disabled field

    def _sync_radio_focus(self) -> None:
        checked = self.models_radio()
        for radio in (self.use_preset, self.use_bundle):
            # Arrow keys still move between them (Qt's radio groups ignore the policy there) and check the other.
            radio.setFocusPolicy(Qt.FocusPolicy.StrongFocus if radio is checked else Qt.FocusPolicy.ClickFocus)

    def load(self) -> None:
        s = self.settings
        models = s.models
        if self.preset.findText(models) >= 0:
            self.use_preset.setChecked(True)
            self.preset.setCurrentText(models)
        else:
            self.use_bundle.setChecked(True)
            self.bundle.setText(models)
        self.preset_about.setText(preset_description(self.preset.currentText()))
        self.device.setCurrentIndex(max(0, self.device.findData(s.device)))
        self.k.setValue(s.k or 0)
        self.beta.setValue(s.beta if s.beta is not None else self.beta.minimum())
        self.library.setText(s.library)
        self.exclusions.setPlainText("\n".join(s.exclusions))
        self.watching.setChecked(s.watching)
        self._sync_enabled()

    def models_spec(self) -> str:
        if self.use_bundle.isChecked() and self.bundle.text().strip():
            return self.bundle.text().strip()
        return self.preset.currentText()

    def save(self) -> set[str]:
        """Write the settings; returns the names of those that changed."""
        s = self.settings
        before = {"models": s.models, "device": s.device, "k": s.k, "beta": s.beta, "library": s.library,
                  "exclusions": s.exclusions, "watching": s.watching}
        s.models = self.models_spec()
        s.device = self.device.currentData()
        s.k = self.k.value() or None
        s.beta = None if self.beta.value() == self.beta.minimum() else self.beta.value()
        s.library = self.library.text().strip()
        s.exclusions = self.exclusions.patterns()
        s.watching = self.watching.isChecked()
        s.sync()
        after = {"models": s.models, "device": s.device, "k": s.k, "beta": s.beta, "library": s.library,
                 "exclusions": s.exclusions, "watching": s.watching}
        return {key for key in before if before[key] != after[key]}
