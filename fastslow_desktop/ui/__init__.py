"""The PySide6 desktop app: the only package that imports Qt; a thin layer over library/ and search/."""
