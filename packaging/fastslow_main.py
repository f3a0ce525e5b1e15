"""Entry script of the PyInstaller build: the same `fastslow` command as the pip install's entry point."""

import multiprocessing
import sys

from fastslow_desktop.cli import main

if __name__ == "__main__":
    # A frozen app re-runs this script in any child process that multiprocessing spawns.
    multiprocessing.freeze_support()
    sys.exit(main())
