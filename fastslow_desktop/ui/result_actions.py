"""What a result's buttons do outside the app: open it, show it in the file manager, play a video in the
system player, copy its path; each failure said in the window, not only on stderr.

A mixin of MainWindow (same object), like window_dialogs.
"""

from __future__ import annotations

from pathlib import Path

from . import desktop


class ResultActions:
    """Needs MainWindow's preview pane and status bar."""

    def _open(self, result) -> None:
        if result is None:
            return
        if result.kind == "video":
            self._play_externally(result)
        elif not desktop.open_file(result.path):
            self.status.showMessage(f"No application on this computer opens {Path(result.path).name}; "
                                    "Copy path or Show in folder can help.", 8000)

    def _reveal(self, result) -> None:
        def say() -> None:
            self.status.showMessage(f"No file manager could show {Path(result.path).parent}; "
                                    "Copy path puts the file's path on the clipboard.", 8000)

        if not desktop.reveal(result.path, on_failure=say):
            say()

    def _play_externally(self, result) -> None:
        if not desktop.play_externally(result.path, result.t_start):
            self.preview.show_no_player("No video player was found on this computer either "
                                        "(VLC or mpv can play from the moment).")

    def _copy_path(self, result) -> None:
        desktop.copy_path(result.path)
        self.status.showMessage("Path copied", 2000)
