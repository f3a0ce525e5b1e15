"""Download jobs: fetch a preset's or a bundle's hub weights with progress and cancel (pool threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable

DONE, CANCELLED = "done", "cancelled"


def download_models(models, cancel: threading.Event, progress: Callable[[object], None]) -> bool:
    """Runs in a pool thread; `progress` gets hub.DownloadProgress (bytes, speed, ETA).
    Raises ModelUnavailableError (offline) or DownloadCancelled."""
    from fastslow_desktop.models.hub import download

    download(models.needs_download(), progress, cancel, what=models.name)
    return True


def download_preset_job(name: str, cancel: threading.Event, progress: Callable[[object], None]) -> str:
    """Fetch a catalogue preset; `progress` gets hub.DownloadProgress (bytes, speed, ETA).

    Returns DONE, or CANCELLED when `cancel` was set (the partial file stays; the next call resumes it).
    Raises ModelError (offline, disk full): the job's error signal carries its sentence.
    """
    from fastslow_desktop.models import DownloadCancelled
    from fastslow_desktop.models.presets import download_preset

    try:
        download_preset(name, progress=progress, cancel=cancel)
    except DownloadCancelled:
        return CANCELLED
    return DONE
