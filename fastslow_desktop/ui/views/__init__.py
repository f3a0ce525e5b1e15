"""Widgets of the main window, built in code (one view per file)."""
