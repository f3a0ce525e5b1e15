"""Fuzz: random damage to a tiny bundle's manifest and safetensors header either loads or is a ModelError.

Fixed seed, time budget of about 8 s: the cases run in the same order every time, and a slow machine
only runs fewer of them.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import time
from pathlib import Path

import numpy as np

from fastslow_desktop.models import ModelError, load_bundle
from fastslow_desktop.models.checksums import sha256_file

BUDGET_S = 8.0
SEED = 20261129
# Replacement values: wrong types, edge numbers, path tricks, nesting. Integers stay small on purpose:
# a hostile manifest asking for 10⁹ layers is refused by the shape check only after the meta build.
VALUES = [None, True, False, -1, 0, 1, 2, 7, 0.5, float("nan"), 1e308, "", "x", "../x", "/etc/passwd",
          "open_clip", [], {}, [1, 2], {"a": 1}, [[[[[[[[[[[]]]]]]]]]]], "F32", "I64"]


def _paths(value, prefix=()):
    """Every (path, value) of a JSON tree, the root included."""
    yield prefix, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _set(tree, path, value):
    if not path:
        return value
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _mutate_manifest(rng: random.Random, manifest: dict) -> str:
    if rng.random() < 0.05:
        return rng.choice(["[" * 50_000 + "]" * 50_000, "[1, 2]", "{", "\ufeff{}", '"text"', "nul\0l"])
    for _ in range(rng.randint(1, 3)):
        path, node = rng.choice(list(_paths(manifest)))
        action = rng.random()
        if isinstance(node, dict) and node and action < 0.3:
            node.pop(rng.choice(list(node)))
        elif isinstance(node, dict) and action < 0.4:
            node[rng.choice(["weights", "type", "extra", "fast", "files"])] = rng.choice(VALUES)
        else:
            manifest = _set(manifest, path, rng.choice(VALUES))
    return json.dumps(manifest)


def _mutate_header(rng: random.Random, data: bytes) -> bytes:
    (length,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8 : 8 + length]), data[8 + length :]
    choice = rng.randrange(5)
    if choice == 0:  # a lying length
        length = rng.choice([0, 1, 7, length - 1, length + 1, len(data), 2**60, 2**64 - 1, rng.randrange(2**32)])
        return struct.pack("<Q", length) + data[8:]
    if choice == 1:  # garbage JSON of the same length
        return data[:8] + bytes(rng.randrange(256) for _ in range(length)) + body
    if choice == 2:  # truncated or extended file
        return data[: rng.randrange(len(data))] if rng.random() < 0.5 else data + b"\0" * rng.randrange(1, 64)
    name = rng.choice([k for k in header if k != "__metadata__"])
    field = rng.choice(["dtype", "shape", "data_offsets"])
    if choice == 3:
        header[name][field] = rng.choice(VALUES)
    else:
        header[name][field] = {"dtype": rng.choice(["I64", "F16", "BF16", "U8", "F8_E5M2", "F64"]),
                               "shape": [rng.randrange(4) for _ in range(rng.randrange(3))],
                               "data_offsets": [rng.randrange(len(body) + 9) for _ in range(2)]}[field]
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _case(rng: random.Random, good: Path, work: Path) -> tuple[str, tuple[str, ...]]:
    """Damage a copy of the bundle (re-signing the checksums, as a careless tool would); returns what
    was damaged and which models to build to reach it."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(good, work)
    manifest = json.loads((work / "manifest.json").read_text())
    if rng.random() < 0.5:
        name = rng.choice(["fast.safetensors", "slow.safetensors"])
        (work / name).write_bytes(_mutate_header(rng, (work / name).read_bytes()))
        manifest["files"][name] = sha256_file(work / name)
        text, what, parts = json.dumps(manifest), f"header of {name}", (name.split(".")[0],)
    else:
        text, what, parts = _mutate_manifest(rng, manifest), "manifest", ("fast", "slow")
    (work / "manifest.json").write_text(text)
    return f"{what}: {text[:300]}", parts


def test_random_damage_loads_or_raises_model_error(tiny_bundle, tmp_path):
    rng = random.Random(SEED)
    outcomes = {"loaded": 0, "refused": 0}
    start = time.monotonic()
    while time.monotonic() - start < BUDGET_S:
        case, parts = _case(rng, tiny_bundle, tmp_path / "case")
        try:
            models = load_bundle(tmp_path / "case", device="cpu")
            vectors = models.fast.encode_texts(["a red circle"]) if "fast" in parts else np.zeros(1)
            if "slow" in parts:
                models.slow.score("a red circle", [])
        except ModelError:
            outcomes["refused"] += 1
            continue
        except BaseException as exc:  # anything else is the bug this test exists to catch
            raise AssertionError(f"{type(exc).__name__}: {exc}\nfor the case {case}") from exc
        assert np.isfinite(vectors).all(), case
        outcomes["loaded"] += 1
    # A quiet machine runs a few hundred cases; a busy shared one still reaches the checks several times.
    assert outcomes["refused"] >= 3, outcomes
    assert sum(outcomes.values()) >= 5, outcomes
