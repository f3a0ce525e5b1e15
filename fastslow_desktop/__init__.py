"""FastSlow: private text-to-photo and text-to-video-moment search on your own disk."""

__version__ = "0.1.0"

import os as _os

# Torch's OpenMP workers spin while they wait by default; beside decode threads on a 2-core laptop
# that spinning starves the real work (re-ranks measured 4-100x slower). It must be set before torch
# is first imported, which every entry point does after importing this package.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
