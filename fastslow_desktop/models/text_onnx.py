"""The lean query path: a bundle's fast text tower as an ONNX Runtime session, run without torch.

A one-shot `fastslow search` spent nearly all its time importing torch and open_clip and building
the whole dual encoder to embed one sentence. The text tower (with its projection) is exported once
per set of weights into the per-user cache, next to a meta.json holding its own sha256, and later
queries tokenize with bpe.py and run it in ONNX Runtime: no torch, no image tower, no slow model.

The cache key is the fast weight file's sha256 from the bundle manifest (checked when the bundle is
opened), its architecture and tokenizer, so a changed bundle never meets a stale export. An export
is kept only if its embeddings of probe texts match torch's (cosine >= EXPORT_GUARD). A cache that
is broken (missing file, wrong checksum, unreadable by ONNX Runtime) is removed and torch is used.
`FASTSLOW_TEXT_ONNX=0`, or `--backend torch/bf16/fp16`, or a CUDA device keeps text on torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..paths import cache_dir
from .backends import onnx_available, requested, torch_threads
from .checksums import sha256_file, trusted_sha256s

if TYPE_CHECKING:
    from .fast import FastEncoder

Models = Any  # bundle.Models, not imported: bundle imports this module when it loads the text encoder

logger = logging.getLogger(__name__)

ENV = "FASTSLOW_TEXT_ONNX"
EXPORT_VERSION = 1  # bump when the export changes: older caches are then never read
OPSET = 17
FILE, DATA, META = "text.onnx", "text.data", "meta.json"  # weights apart from the graph: ONNX Runtime maps them
EXPORT_GUARD = 0.9999  # same fp32 arithmetic in another order: anything less is a wrong export
PROBE_TEXTS = ("a photo", "a red circle to the left of a blue square", "two dogs playing in the snow at sunset",
               "Café crème, 3 cups & a croissant!")


def enabled(models: Models) -> bool:
    """Whether text queries of `models` may run on the lean path at all (see the module docstring)."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    spec = models.manifest.get("fast", {})
    return (spec.get("type") == "open_clip" and models.folder is not None
            and requested() in ("auto", "onnx") and not str(models.device or "").startswith("cuda"))


def cache_folder(models: Models) -> Path:
    """<cache>/text-onnx/<key>: the key covers the weights' sha256, architecture, tokenizer and export version."""
    spec = models.manifest["fast"]
    what = {"weights": models.manifest["files"][spec["weights"]], "arch": spec["arch"],
            "tokenizer": models.manifest["tokenizer"], "export_version": EXPORT_VERSION, "opset": OPSET}
    key = hashlib.blake2b(json.dumps(what, sort_keys=True).encode(), digest_size=12).hexdigest()
    return cache_dir() / "text-onnx" / key


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (floored at 1e-12, as torch.nn.functional.normalize does)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class LeanTextEncoder:
    """Texts -> (n, d) float32 unit rows, like FastEncoder.encode_texts, from the exported text tower."""

    def __init__(self, folder: Path, tokenizer, dim: int, model_id: str, prepack: bool = True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if not prepack:  # a one-shot query: a faster session start matters more than each run
            options.add_session_config_entry("session.disable_prepacking", "1")
            # No graph rewrites either: for the ViT-B-32 tower, session + first run took 0.32 s instead
            # of 0.42 s on a 2-core EPYC (the rewrites save 0.02 s a run and cost 0.12 s to make).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = torch_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        self.folder, self.tokenizer, self.dim, self.model_id = folder, tokenizer, dim, model_id
        self._session = ort.InferenceSession(str(folder / FILE), options, providers=["CPUExecutionProvider"])

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """list of strings -> (n, d) float32, rows L2-normalised."""
        out = [self._session.run(None, {"input": self.tokenizer.ids(list(texts[i: i + batch_size]))})[0]
               for i in range(0, len(texts), batch_size)]
        return _unit_rows(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)


def _remove(folder: Path, why: str) -> None:
    logger.warning("the cached text encoder %s is unusable (%s); it was removed, and queries use torch until "
                   "it is exported again", folder, why)
    shutil.rmtree(folder, ignore_errors=True)


def load_lean(models: Models) -> LeanTextEncoder | None:
    """The lean text encoder of `models` if it is enabled and exported; None means: use torch."""
    if not enabled(models) or importlib.util.find_spec("onnxruntime") is None:
        return None
    folder = cache_folder(models)
    if not (folder / META).is_file():
        return None
    from .tokenizer import TextTokenizer

    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        actual = trusted_sha256s({name: folder / name for name in (FILE, DATA)})
        if actual != meta["sha256"] or meta["dim"] != models.embedding_dim:
            _remove(folder, f"its files' sha256 or its dim {meta['dim']} differ from what was exported")
            return None
        tokenizer = TextTokenizer.from_config(models.manifest["tokenizer"])
        return LeanTextEncoder(folder, tokenizer, int(meta["dim"]), models.model_id,
                               prepack=models.text_prepack)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _remove(folder, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors (invalid protobuf, ...)
        _remove(folder, f"{type(exc).__name__}: {exc}")
    return None


def _torch_texts(encoder: FastEncoder, texts: Sequence[str]) -> np.ndarray:
    """The reference: the torch text tower in fp32 (whatever backend the encoder chose for itself)."""
    import torch

    with torch.no_grad():
        return _unit_rows(encoder.model.encode_text(encoder.tokenizer(list(texts)).to(encoder.device)).float().cpu().numpy())


def _write_export(encoder: FastEncoder, tmp: Path) -> None:
    import warnings

    import onnx
    import torch

    from .onnx_backend import _Tower

    # nn.MultiheadAttention's eval fast path is one fused op that ONNX has no export for
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Tower(encoder.model, "text").eval(), (encoder.tokenizer(list(PROBE_TEXTS[:2])),),
                              str(tmp / "whole.onnx"), input_names=["input"], output_names=["embedding"],
                              opset_version=OPSET, dynamo=False, dynamic_axes={"input": {0: "n"}, "embedding": {0: "n"}})
        # Initialisers in a file of their own: ONNX Runtime maps it instead of parsing them (half the load)
        onnx.save_model(onnx.load(str(tmp / "whole.onnx")), str(tmp / FILE), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=DATA, size_threshold=0)
        (tmp / "whole.onnx").unlink()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        encoder.model.eval()


def needs_export(models: Models) -> bool:
    """Whether `export_text_tower` would export now: the lean path applies here and nothing is cached."""
    if not (enabled(models) and onnx_available()):  # before cache_folder: hub presets name no weights file
        return False
    folder = cache_folder(models)
    return not (folder / META).is_file() and not _failed_marker(folder).is_file()


def _failed_marker(folder: Path) -> Path:
    """Written when an export of these weights failed: every later search would otherwise pay for the
    same failed attempt (tens of seconds). Delete it, or the whole cache folder, to try again."""
    return folder.with_name(folder.name + ".failed")


def export_text_tower(models: Models) -> Path | None:
    """Export the fast text tower of `models` for the lean path, unless it is cached already or cannot
    be used here; returns the cache folder, or None (logged). Loads the fast model (torch) if needed."""
    if not enabled(models) or not onnx_available():
        return None
    folder = cache_folder(models)
    if (folder / META).is_file():
        return folder
    encoder = models.fast
    if encoder.device.type != "cpu":  # the lean path runs on the CPU; a GPU machine keeps torch
        return None
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        _write_export(encoder, tmp)
        lean = LeanTextEncoder(tmp, encoder.tokenizer, encoder.dim, models.model_id)
        cosine = float(np.min(np.sum(lean.encode_texts(PROBE_TEXTS) * _torch_texts(encoder, PROBE_TEXTS), axis=1)))
        if not cosine >= EXPORT_GUARD:  # `not >=` so that NaN fails too
            raise ValueError(f"its embeddings differ from torch's (cosine {cosine:.6f} < {EXPORT_GUARD})")
        meta = {"export_version": EXPORT_VERSION, "sha256": {name: sha256_file(tmp / name) for name in (FILE, DATA)},
                "dim": encoder.dim, "cosine": cosine, "model_id": models.model_id}
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            tmp.replace(folder)
        except OSError:
            if not (folder / META).is_file():  # not another process's export of the same weights
                raise
        trusted_sha256s({name: folder / name for name in (FILE, DATA)})  # hashed once more, under the final path
        logger.info("exported the fast text tower to %s (cosine %.6f with torch)", folder, cosine)
        return folder
    except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot trace, a full disk
        logger.warning("the fast text tower was not exported for quick searches (%s: %s); text queries keep "
                       "using torch", type(exc).__name__, exc)
        with contextlib.suppress(OSError):
            _failed_marker(folder).write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
