"""Exceptions for model problems a user can act on, with messages written for that user."""


class ModelError(Exception):
    """Base class: something is wrong with the models the app was asked to use."""


class BundleError(ModelError):
    """A model bundle is missing, unreadable, of an unknown version, or fails its checksums."""


class ModelUnavailableError(ModelError):
    """Pretrained weights are not on disk and cannot be downloaded now (offline, hub unreachable)."""


class DownloadCancelled(ModelError):
    """The user cancelled a model download."""
