"""Bad bundles are refused with a sentence: structure, paths, headers, tensors, checksums (issue 18)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fastslow_desktop.models import BundleError, ModelError, load_bundle
from fastslow_desktop.models import checksums
from fastslow_desktop.models.slow_scorer import score_by_length


def _copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "b"))


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _write_manifest(bundle: Path, manifest: object) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _resign(bundle: Path) -> None:
    """What an attacker or a careless tool does: recompute the checksums after editing the weights."""
    manifest = _manifest(bundle)
    manifest["files"] = {name: checksums.sha256_file(bundle / name) for name in manifest["files"]}
    _write_manifest(bundle, manifest)


def _edit_weights(bundle: Path, name: str, edit) -> None:
    tensors = load_file(str(bundle / name))
    edit(tensors)
    save_file(tensors, str(bundle / name))
    _resign(bundle)


def _load_all(bundle: Path):
    models = load_bundle(bundle, device="cpu")
    return models.fast, models.slow


# -- item 5: tensors checked before use ---------------------------------------------------------------------

def _first_float(tensors: dict) -> str:
    return next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim == 2)


def test_int64_weights_are_refused_not_cast(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)

    def to_int(t):
        key = _first_float(t)
        t[key] = torch.ones_like(t[key], dtype=torch.int64)

    _edit_weights(bundle, "fast.safetensors", to_int)
    with pytest.raises(BundleError, match=r"fast.safetensors.*dtype I64"):
        load_bundle(bundle, device="cpu").fast


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tiny_bundle, tmp_path, value):
    bundle = _copy(tiny_bundle, tmp_path)

    def poison(t):
        t[_first_float(t)][0, 0] = value

    _edit_weights(bundle, "slow.safetensors", poison)
    with pytest.raises(BundleError, match=r"slow.safetensors.*NaN or infinite"):
        load_bundle(bundle, device="cpu").slow


def test_a_tensor_of_the_wrong_shape_is_refused(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)

    def reshape(t):
        key = _first_float(t)
        t[key] = torch.zeros(t[key].shape[0] + 1, t[key].shape[1])

    _edit_weights(bundle, "fast.safetensors", reshape)
    with pytest.raises(BundleError, match=r"fast.safetensors.*has shape"):
        load_bundle(bundle, device="cpu").fast


def test_a_missing_tensor_is_refused(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    _edit_weights(bundle, "slow.safetensors", lambda t: t.pop(_first_float(t)))
    with pytest.raises(BundleError, match=r"slow.safetensors.*missing"):
        load_bundle(bundle, device="cpu").slow


# -- item 8: safetensors headers bounded before safetensors sees them ----------------------------------------

def _raw_weights(bundle: Path, header_length: int, header: bytes = b"{}", data: bytes = b"") -> None:
    (bundle / "fast.safetensors").write_bytes(struct.pack("<Q", header_length) + header + data)
    _resign(bundle)


@pytest.mark.parametrize("length", [2**60, 10_000, 2**64 - 1])
def test_header_length_past_the_end_of_the_file_is_refused(tiny_bundle, tmp_path, length):
    bundle = _copy(tiny_bundle, tmp_path)
    _raw_weights(bundle, length, b'{"a": 1}')
    with pytest.raises(BundleError, match=r"fast.safetensors.*header claims"):
        load_bundle(bundle, device="cpu").fast


@pytest.mark.parametrize("header", [b"[1, 2]", b"\xff\xfe garbage", b'{"w": {"dtype": "F32", "shape": [4], '
                                    b'"data_offsets": [0, 999]}}', b"[" * 100_000 + b"]" * 100_000])
def test_garbage_headers_are_refused(tiny_bundle, tmp_path, header):
    bundle = _copy(tiny_bundle, tmp_path)
    _raw_weights(bundle, len(header), header, b"\0" * 16)
    with pytest.raises(BundleError, match=r"fast.safetensors is not a usable weight file"):
        load_bundle(bundle, device="cpu").fast


# -- item 8: manifest structure ---------------------------------------------------------------------------------

def _mutated(tiny_bundle, tmp_path, edit) -> Path:
    bundle = _copy(tiny_bundle, tmp_path)
    manifest = _manifest(bundle)
    result = edit(manifest)  # edits change `manifest` in place, or return a whole replacement wrapped in a tuple
    _write_manifest(bundle, result[0] if isinstance(result, tuple) else manifest)
    return bundle


@pytest.mark.parametrize("edit, message", [
    (lambda m: ([m],), "JSON list, not an object"),
    (lambda m: m.pop("fast"), "'fast' must be an object"),
    (lambda m: m.update(files=list(m["files"])), "'files' must be an object"),
    (lambda m: m.update(files={}), "no checksum"),
    (lambda m: m["files"].pop("slow.safetensors"), "'slow.safetensors' has no checksum"),
    (lambda m: m.update(embedding_dim="128"), "'embedding_dim' must be a positive integer"),
    (lambda m: m["fast"].update(type=["open_clip"]), "'fast.type'"),
    (lambda m: m["slow"].update(weights=7), "'slow.weights' must be a str"),
    (lambda m: m.update(format_version=True), "format version True"),
    (lambda m: m.setdefault("rerank", {}).update(beta="x"), "beta must be a finite number"),
    (lambda m: m.setdefault("rerank", {}).update(k=-3), "k must be a whole number"),
    (lambda m: m.setdefault("rerank", {}).update(k=2.5), "k must be a whole number"),
])
def test_malformed_manifests_are_refused_with_a_sentence(tiny_bundle, tmp_path, edit, message):
    bundle = _mutated(tiny_bundle, tmp_path, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle, device="cpu")


def test_a_manifest_nested_200_000_deep_is_refused(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    (bundle / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BundleError, match="nested too deeply"):
        load_bundle(bundle)


def test_a_wrong_embedding_dim_is_refused_at_load(tiny_bundle, tmp_path):
    bundle = _mutated(tiny_bundle, tmp_path, lambda m: m.update(embedding_dim=m["embedding_dim"] + 1))
    with pytest.raises(BundleError, match=r"declares embedding_dim \d+, but its fast model produces"):
        load_bundle(bundle, device="cpu").fast


def test_an_architecture_that_cannot_be_built_is_refused(tiny_bundle, tmp_path):
    bundle = _mutated(tiny_bundle, tmp_path, lambda m: m["slow"]["config"].update(heads="four"))
    with pytest.raises(BundleError, match="slow model of the bundle .* cannot be built"):
        load_bundle(bundle, device="cpu").slow


def test_an_architecture_far_larger_than_its_weights_is_refused_without_allocating(tiny_bundle, tmp_path):
    # 2**40 parameters would need 4 TB: the meta-device shape check refuses it before any allocation.
    bundle = _mutated(tiny_bundle, tmp_path, lambda m: m["fast"]["arch"].update(embed_dim=2**20))
    with pytest.raises(BundleError, match="fast.safetensors.*has shape"):
        load_bundle(bundle, device="cpu").fast


# -- item 8: weight paths stay inside the bundle ----------------------------------------------------------------

def _point_weights_at(bundle: Path, name: str) -> None:
    manifest = _manifest(bundle)
    manifest["slow"]["weights"] = name
    target = bundle / name if not Path(name).is_absolute() else Path(name)
    manifest["files"] = {"fast.safetensors": manifest["files"]["fast.safetensors"],
                         name: checksums.sha256_file(target)}
    _write_manifest(bundle, manifest)


def test_weights_outside_the_bundle_are_refused(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(bundle / "slow.safetensors", tmp_path / "elsewhere" / "x")
    for name in ("../elsewhere/x", str(tmp_path / "elsewhere" / "x")):
        _point_weights_at(bundle, name)
        with pytest.raises(BundleError, match="outside the bundle folder|not a path inside the bundle"):
            load_bundle(bundle, device="cpu")


def test_a_symlink_resolving_outside_the_bundle_is_refused(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    (tmp_path / "elsewhere").mkdir()
    shutil.copy(bundle / "slow.safetensors", tmp_path / "elsewhere" / "x")
    (bundle / "link.safetensors").symlink_to(tmp_path / "elsewhere" / "x")
    _point_weights_at(bundle, "link.safetensors")
    with pytest.raises(BundleError, match="resolves to .*elsewhere.*outside the bundle folder"):
        load_bundle(bundle, device="cpu")


def test_a_symlink_inside_the_bundle_still_loads(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    (bundle / "weights").mkdir()
    shutil.move(bundle / "slow.safetensors", bundle / "weights" / "slow.safetensors")
    (bundle / "slow.safetensors").symlink_to(bundle / "weights" / "slow.safetensors")
    assert load_bundle(bundle, device="cpu").slow.score("a red circle", []).shape == (0,)


# -- issue 15 item 3: checksums trusted until a file changes -------------------------------------------------

@pytest.fixture
def hash_calls(monkeypatch):
    calls: list[Path] = []
    real = checksums.sha256_file

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(checksums, "sha256_file", counting)
    return calls


def test_checksums_are_hashed_once_then_trusted(tiny_bundle, tmp_path, hash_calls):
    bundle = _copy(tiny_bundle, tmp_path)
    load_bundle(bundle)
    assert sorted(p.name for p in hash_calls) == ["fast.safetensors", "slow.safetensors"]
    load_bundle(bundle)
    assert len(hash_calls) == 2  # the second load read no weight file in full
    record = json.loads((Path(os.environ["FASTSLOW_CACHE"]) / checksums.RECORD).read_text())
    assert str((bundle / "fast.safetensors").resolve()) in record


def test_a_changed_file_is_hashed_again_and_refused(tiny_bundle, tmp_path, hash_calls):
    bundle = _copy(tiny_bundle, tmp_path)
    load_bundle(bundle)
    weights = bundle / "slow.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: ctime still differs
    with pytest.raises(BundleError, match="slow.safetensors is damaged or was modified"):
        load_bundle(bundle)
    with pytest.raises(BundleError, match="slow.safetensors is damaged or was modified"):
        load_bundle(bundle)  # a known-bad file stays refused


@pytest.mark.parametrize("garbage", [b"not json", b"[1, 2]", b'{"x": 3}', b"[" * 100_000, b"\xff" * 10])
def test_a_garbage_trust_record_only_costs_a_rehash(tiny_bundle, tmp_path, hash_calls, garbage):
    bundle = _copy(tiny_bundle, tmp_path)
    record = Path(os.environ["FASTSLOW_CACHE"]) / checksums.RECORD
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(garbage)
    assert load_bundle(bundle).embedding_dim > 0
    assert len(hash_calls) == 2
    load_bundle(bundle)
    assert len(hash_calls) == 2  # the rewritten record is trusted next time


def test_a_forged_record_does_not_let_a_modified_file_through(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    load_bundle(bundle)
    record_path = Path(os.environ["FASTSLOW_CACHE"]) / checksums.RECORD
    weights = bundle / "fast.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    record = json.loads(record_path.read_text())
    record[str(weights.resolve())]["stat"][0] = weights.stat().st_size + 1  # stale stat: must re-hash
    record_path.write_text(json.dumps(record))
    with pytest.raises(BundleError, match="fast.safetensors is damaged"):
        load_bundle(bundle)


# -- issue 13 item 7: one batching-by-length function ---------------------------------------------------------

def test_score_by_length_batches_equal_lengths_and_keeps_order():
    calls = []

    def score_tokens(text, tokens):
        calls.append(tokens.shape[0])
        return tokens.sum(dim=(1, 2)).numpy()

    memories = [torch.full((1, n, 2), float(i)) for i, n in enumerate([3, 5, 3, 5, 4])]
    scores = score_by_length(score_tokens, "q", memories)
    np.testing.assert_allclose(scores, [0 * 6, 1 * 10, 2 * 6, 3 * 10, 4 * 8])
    assert sorted(calls) == [1, 2, 2]  # one call per distinct token count


def test_every_refusal_is_a_model_error():
    assert issubclass(BundleError, ModelError)


def test_a_training_run_folder_given_as_a_bundle_points_at_its_bundle(tiny_bundle, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")
    with pytest.raises(BundleError, match=f"its bundle is {run / 'bundle'}"):
        load_bundle(run, device="cpu")
