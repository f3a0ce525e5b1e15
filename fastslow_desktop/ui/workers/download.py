"""Download job: fetch a hub preset's weights with progress (bytes done, total) and cancel."""

from __future__ import annotations

import threading
from collections.abc import Callable


def download_models(models, cancel: threading.Event, progress: Callable[[tuple[int, int]], None]) -> bool:
    """Runs in a pool thread; raises ModelUnavailableError (offline) or DownloadCancelled."""
    models.download(progress=lambda done, total: progress((done, total)), cancel=cancel)
    return True
