"""Qt item models over search results (no widgets here)."""
