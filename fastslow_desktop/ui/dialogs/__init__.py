"""Dialogs: settings, model download, folder exclusions."""
