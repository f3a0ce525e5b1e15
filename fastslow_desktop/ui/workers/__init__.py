"""Background jobs (one per file): each reports through started / progress / result / error / finished."""
