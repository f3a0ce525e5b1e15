"""A bundle manifest's structure, checked in one place before any field of it is used.

A manifest is data from disk (possibly edited and re-signed by someone else): every field the
loader reads is checked here for its type, every weight file it names must lie inside the bundle
folder and carry a checksum, and a refusal is a BundleError sentence naming the manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import BundleError

FORMAT = "fastslow-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # shipped manifests are a few KB; refuse before parsing a huge one

# Model types and the fields each one needs (name -> required type).
FAST_TYPES: dict[str, dict[str, type]] = {
    "open_clip": {"arch": dict, "preprocess": dict, "weights": str},
    "open_clip_pretrained": {"model": str},
}
SLOW_TYPES: dict[str, dict[str, type]] = {
    "fastslow_captioner": {"config": dict, "preprocess": dict, "weights": str},
    "open_clip_coca": {"model": str},
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_manifest(path: Path) -> object:
    """The JSON value in `path`; any read or parse failure is a BundleError."""
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is {path.stat().st_size} bytes, far larger than any manifest; "
                              "it is not a FastSlow bundle manifest.")
        text = path.read_text(encoding="utf-8")
        return json.loads(text)
    except RecursionError as exc:  # json recurses once per nesting level
        raise BundleError(f"{path} is nested too deeply to be a bundle manifest. Re-export or "
                          "re-download the bundle.") from exc
    except (OSError, ValueError) as exc:  # ValueError covers JSONDecodeError and UnicodeDecodeError
        raise BundleError(f"{path} cannot be read ({exc}). Re-export or re-download the bundle.") from exc


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _need(ok: bool, path: Path, problem: str) -> None:
    if not ok:
        raise BundleError(f"{path} is not a valid bundle manifest: {problem}. Re-export or re-download "
                          "the bundle; FastSlow will not load it.")


def _check_part(manifest: dict, part: str, types: dict[str, dict[str, type]], path: Path) -> None:
    spec = manifest.get(part)
    _need(isinstance(spec, dict), path, f"'{part}' must be an object describing the {part} model")
    kind = spec.get("type")
    _need(isinstance(kind, str) and kind in types, path,
          f"'{part}.type' is {kind!r}; this FastSlow knows {', '.join(types)}")
    for field, want in types[kind].items():
        _need(isinstance(spec.get(field), want), path,
              f"'{part}.{field}' must be a {want.__name__}, not {type(spec.get(field)).__name__}")
    if "pretrained" in spec:
        _need(spec["pretrained"] is None or isinstance(spec["pretrained"], str), path,
              f"'{part}.pretrained' must be a string")


def weight_files(manifest: dict) -> list[str]:
    """Names of the weight files a (checked) manifest's models read from the bundle folder."""
    fields = {**FAST_TYPES, **SLOW_TYPES}
    return [manifest[part]["weights"] for part in ("fast", "slow")
            if "weights" in fields[manifest[part]["type"]]]


def check_manifest(manifest: object, path: Path) -> dict:
    """Refuse a manifest whose structure the loader cannot use; returns it unchanged when it is sound."""
    _need(isinstance(manifest, dict), path, f"it holds a JSON {type(manifest).__name__}, not an object")
    assert isinstance(manifest, dict)  # for type checkers; _need has refused anything else
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path} is not a FastSlow bundle manifest (format {manifest.get('format')!r}).")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or not _int(version):
        raise BundleError(
            f"{path} has bundle format version {version}; this FastSlow reads version {FORMAT_VERSION}. "
            "Update FastSlow, or re-export the bundle with this version's `python -m training.distill`."
        )
    _need(isinstance(manifest.get("name", ""), str), path, "'name' must be a string")
    dim = manifest.get("embedding_dim")
    _need(_int(dim) and 0 < dim <= 65536, path, f"'embedding_dim' must be a positive integer, not {dim!r}")
    _check_part(manifest, "fast", FAST_TYPES, path)
    _check_part(manifest, "slow", SLOW_TYPES, path)
    _need(isinstance(manifest.get("rerank", {}), dict), path, "'rerank' must be an object")
    files = manifest.get("files")
    _need(isinstance(files, dict), path, "'files' must be an object of file name -> sha256")
    for name, digest in files.items():
        _need(isinstance(digest, str) and bool(_SHA256.fullmatch(digest)), path,
              f"the checksum of {name!r} in 'files' is not a sha256 hex digest")
    used = weight_files(manifest)
    if used:
        tok = manifest.get("tokenizer")
        _need(isinstance(tok, dict) and _int(tok.get("context_length")) and tok["context_length"] > 1,
              path, "'tokenizer' must be an object with an integer 'context_length'")
    for name in used:
        _need(name in files, path, f"the weight file {name!r} has no checksum in 'files', so it cannot be "
                                   "verified")
    return manifest


def inside_bundle(folder: Path, name: str, manifest_path: Path) -> Path:
    """The file `name` of a bundle, refused unless it resolves (symlinks included) inside the folder."""
    root = Path(folder).resolve()
    candidate = Path(name)
    if candidate.is_absolute() or not name or "\x00" in name:
        raise BundleError(f"{manifest_path} names the weight file {name!r}, which is not a path inside the "
                          "bundle folder. FastSlow only loads weights from the bundle itself.")
    resolved = (root / candidate).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise BundleError(f"{manifest_path} names the weight file {name!r}, which resolves to {resolved}, "
                          f"outside the bundle folder {root}. FastSlow only loads weights from the bundle "
                          "itself.")
    return resolved
