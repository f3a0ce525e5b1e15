"""Named architectures: small JSON files in configs/, loaded as plain dicts with defaults.

`fast-*.json` hold an open_clip CLIP config (embed_dim, vision_cfg, text_cfg) plus preprocessing;
`slow-*.json` hold a `SlowConfig` (see slow.py). Vocabulary size and context length come from the
tokenizer at build time, so one architecture serves any vocabulary.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

CONFIG_DIR = Path(str(resources.files("fastslow_desktop.models") / "configs"))


def list_archs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_arch(name_or_path: str) -> dict:
    """Architecture dict by name (`fast-tiny`) or by path to a JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ValueError(f"unknown architecture {name_or_path!r}; known: {', '.join(list_archs())}")
    return json.loads(path.read_text())
