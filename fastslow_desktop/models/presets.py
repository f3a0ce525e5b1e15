"""The preset catalogue (presets.json): what each named model set is, and turning one into a manifest.

The CLI (`fastslow models`, `fastslow models download NAME`) and the Settings dialog read
`preset_infos()` and call `download_preset()`. FASTSLOW_PRESETS may name a JSON file in the same
schema whose presets replace the shipped ones of the same name (the test hub serves tiny models
under the real names this way).
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from .errors import BundleError

BUNDLE_FORMAT = "fastslow-bundle"  # the manifest format bundle.py reads (kept in step with it)
BUNDLE_FORMAT_VERSION = 1
CATALOGUE_FILE = "presets.json"
_PARTS = ("fast", "slow")


def _read(path_or_text: Path | str, what: str) -> dict:
    try:
        text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise BundleError(f"The preset catalogue {what} cannot be read ({exc}).") from exc
    if not isinstance(data.get("presets"), dict):
        raise BundleError(f"The preset catalogue {what} has no \"presets\" table.")
    return data


def catalogue() -> dict:
    """The shipped catalogue, with FASTSLOW_PRESETS' presets laid over it."""
    shipped = _read(resources.files(__package__).joinpath(CATALOGUE_FILE).read_text(), CATALOGUE_FILE)
    override = os.environ.get("FASTSLOW_PRESETS")
    if override:
        extra = _read(Path(override).expanduser(), override)
        shipped["presets"].update(extra["presets"])
        shipped["default_for_new_library"] = extra.get("default_for_new_library",
                                                       shipped["default_for_new_library"])
    return shipped


def names() -> list[str]:
    return list(catalogue()["presets"])


def default_for_new_library() -> str:
    """The preset a new library for a person's own folders uses unless they choose (issue 14)."""
    return catalogue()["default_for_new_library"]


def entry(name: str) -> dict | None:
    """The catalogue entry of a preset, or None when there is no preset of that name."""
    found = catalogue()["presets"].get(name)
    return copy.deepcopy(found) if found is not None else None


def hub_manifest(name: str) -> dict | None:
    """A bundle manifest for a hub preset; None for bundle presets (synthscenes) and unknown names."""
    spec = entry(name)
    if spec is None or "bundle" in spec:
        return None
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "embedding_dim": int(spec.get("embedding_dim", 0)),
        "fast": {"type": "open_clip_pretrained", "model": spec["fast"]["model"],
                 "pretrained": spec["fast"].get("pretrained")},
        "slow": {"type": "open_clip_coca", "model": spec["slow"]["model"],
                 "pretrained": spec["slow"].get("pretrained")},
        "rerank": spec.get("rerank", {"k": 20, "beta": 1.0, "normalization": "zscore"}),
        "provenance": {"preset": name, "accuracy": spec.get("accuracy", {})},
        "files": {},
    }


def repos(name: str) -> list[str]:
    """The hub repositories a preset needs (empty for bundle presets)."""
    from .hub import hub_repo_for

    spec = entry(name)
    if spec is None or "bundle" in spec:
        return []
    found = []
    for part in _PARTS:
        repo = spec[part].get("hub") or hub_repo_for(spec[part]["model"], spec[part].get("pretrained"))
        if repo and repo not in found:
            found.append(repo)
    return found


@dataclass(frozen=True)
class PresetInfo:
    """One row of `fastslow models` and of the model chooser."""

    name: str
    description: str
    languages: list[str]
    hardware: str
    download_bytes: int  # 0 for bundle presets
    downloaded: bool  # every file on disk (bundle presets: shipped)
    accuracy: dict
    speed: dict
    legacy: bool
    default: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _downloaded(name: str, spec: dict) -> bool:
    from .hub import is_cached

    if "bundle" in spec:
        from ..paths import bundled_models_dir

        return (bundled_models_dir() / spec["bundle"] / "manifest.json").is_file()
    return all(is_cached(repo) for repo in repos(name))


def preset_infos() -> list[PresetInfo]:
    """Every preset with size, languages, speed, published accuracy and whether it is on disk."""
    cat = catalogue()
    rows = []
    for name, spec in cat["presets"].items():
        size = sum(int(spec[p].get("download_bytes") or 0) for p in _PARTS if p in spec
                   and not (p == "slow" and spec["slow"].get("hub") == spec["fast"].get("hub")))
        rows.append(PresetInfo(
            name=name, description=spec.get("description", ""), languages=list(spec.get("languages", [])),
            hardware=spec.get("hardware", "cpu"), download_bytes=size, downloaded=_downloaded(name, spec),
            accuracy=spec.get("accuracy", {}), speed=spec.get("speed", {}), legacy=bool(spec.get("legacy")),
            default=name == cat["default_for_new_library"],
        ))
    return rows


def download_preset(
    name: str,
    progress: Callable[[object], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Download a preset's hub files; progress gets hub.DownloadProgress (bytes, speed, ETA).

    Raises BundleError for an unknown name, ModelUnavailableError offline (within seconds),
    DownloadCancelled when `cancel` is set (the partial file stays and the next call resumes it),
    ModelError when the disk is full.
    """
    from .hub import download

    if entry(name) is None:
        raise BundleError(f"There is no preset {name!r}. Presets: {', '.join(names())}.")
    download(repos(name), progress, cancel, what=name)
