"""`python -m training` is `python -m training.distill`."""

from .distill import main

raise SystemExit(main())
