"""`python -m fastslow_desktop.ui [--library DIR] [--models B]` opens the desktop app directly."""

import sys

from .app import main

if __name__ == "__main__":
    sys.exit(main())
