"""File paths as text for a terminal line or a JSON object, including names whose bytes are not UTF-8.

Python hands such names over with surrogate escapes (PEP 383): printed as they are they stop a command with
UnicodeEncodeError, and in JSON they become lone surrogates that most readers turn into U+FFFD.
"""

from __future__ import annotations

import base64
import os


def printable_path(path: str) -> str:
    """`path` on one printable line: undecodable bytes as \\xNN, control characters escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def path_fields(path: str) -> dict[str, str]:
    """{"path": path} for a JSON object, plus "path_bytes" (the name's exact bytes, base64) when it is not
    UTF-8: Python's json.loads and os.fsencode give the bytes back from "path"; other readers use "path_bytes"."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return {"path": path, "path_bytes": base64.b64encode(os.fsencode(path)).decode("ascii")}
    return {"path": path}
