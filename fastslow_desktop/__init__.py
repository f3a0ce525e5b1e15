"""FastSlow: private text-to-photo and text-to-video-moment search on your own disk."""

__version__ = "0.1.0"
