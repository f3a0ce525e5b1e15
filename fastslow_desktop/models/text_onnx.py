"""The lean query path: a bundle's fast text tower as an ONNX Runtime session, run without torch.

A one-shot `fastslow search` spent nearly all its time importing torch and open_clip and building
the whole dual encoder to embed one sentence. The text tower (with its projection) is exported once
per set of weights into the per-user cache, next to a meta.json holding its own sha256, and later
queries tokenize with bpe.py and run it in ONNX Runtime: no torch, no image tower, no slow model.

For a long context, a second graph takes the first SHORT positions only (`short_length`) and reads
the full graph's weight file. CLIP's text transformer is causal and pools at the end-of-text token,
so the padding after it changes nothing, and a query of up to SHORT tokens costs SHORT positions
instead of the whole context (77 for CLIP). Each graph's session is made when a query first needs
it. The export guard checks the short graph's embeddings against torch's full-length ones; a tower
where they differ (pooling at the last position, attention without a causal mask) gets the
full-length graph only. (One graph of variable length does not export: nn.MultiheadAttention's
traced reshapes keep the example's length.)

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
import threading
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
EXPORT_VERSION = 2  # bump when the export changes: older caches are then never read (2: short graph)
OPSET = 17
FILE, DATA, META = "text.onnx", "text.data", "meta.json"  # weights apart from the graph: ONNX Runtime maps them
SHORT_FILE = "text-short.onnx"
SHORT = 16  # positions of the short graph: start, up to 14 word pieces, end (a typed query rarely needs more)
EXPORT_GUARD = 0.9999  # same fp32 arithmetic in another order: anything less is a wrong export
PROBE_TEXTS = ("a photo", "a red circle to the left of a blue square", "two dogs playing in the snow at sunset",
               "Café crème, 3 cups & a croissant!")


def short_length(context_length: int) -> int | None:
    """The short graph's positions, or None when the context is too short for one to pay: two sessions
    of one small tower, used in turn, cost more than the positions saved (each session's threads spin
    after its run; a model with a 16-position context embedded a text in 1.9–2.6 ms instead of 0.7–1.0)."""
    return SHORT if context_length >= 4 * SHORT else None


def enabled(models: Models) -> bool:
    """Whether text queries of `models` may run on the lean path at all (see the module docstring)."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    spec = models.manifest.get("fast", {})
    return (spec.get("type") == "open_clip" and models.folder is not None
            and requested() in ("auto", "onnx", "int8") and not str(models.device or "").startswith("cuda"))


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

    def __init__(self, folder: Path, tokenizer, dim: int, model_id: str, prepack: bool = True,
                 short: bool = False):
        import onnxruntime as ort

        self._ort = ort
        self.options = options = ort.SessionOptions()
        if not prepack:  # a one-shot query: a faster session start matters more than each run
            options.add_session_config_entry("session.disable_prepacking", "1")
            # No graph rewrites either: for the ViT-B-32 tower, session + first run took 0.32 s instead
            # of 0.42 s on a 2-core EPYC (the rewrites save 0.02 s a run and cost 0.12 s to make).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = torch_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        self.folder, self.tokenizer, self.dim, self.model_id, self.short = folder, tokenizer, dim, model_id, short
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def session(self, file: str):
        """The ONNX Runtime session of `file` (FILE or SHORT_FILE), made on first use."""
        with self._lock:  # the app's start-up job and its first query may ask at once
            if file not in self._sessions:
                self._sessions[file] = self._ort.InferenceSession(str(self.folder / file), self.options,
                                                                  providers=["CPUExecutionProvider"])
            return self._sessions[file]

    def _run(self, ids: np.ndarray) -> np.ndarray:
        # 0 pads every tokenizer's rows after their last token; those positions change no embedding here
        cut = short_length(ids.shape[1])
        if self.short and cut and not ids[:, cut:].any():
            return self.session(SHORT_FILE).run(None, {"input": ids[:, :cut]})[0]
        return self.session(FILE).run(None, {"input": ids})[0]

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """list of strings -> (n, d) float32, rows L2-normalised."""
        out = [self._run(self.tokenizer.ids(list(texts[i: i + batch_size]))) for i in range(0, len(texts), batch_size)]
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
        actual = trusted_sha256s({name: folder / name for name in meta["sha256"]})
        if set(meta["sha256"]) < {FILE, DATA} or actual != meta["sha256"] or meta["dim"] != models.embedding_dim:
            _remove(folder, f"its files' sha256 or its dim {meta['dim']} differ from what was exported")
            return None
        tokenizer = TextTokenizer.from_config(models.manifest["tokenizer"])
        return LeanTextEncoder(folder, tokenizer, int(meta["dim"]), models.model_id,
                               prepack=models.text_prepack, short=SHORT_FILE in meta["sha256"])
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


def _short_tower(model):
    """open_clip's text tower on the first SHORT positions: its positional embedding and causal mask
    cut to them. CustomTextCLIP's tower already cuts to the ids' length; CLIP's inlines encode_text
    with the full-length tables, so its steps are repeated here with the tables cut."""
    import torch

    class ShortText(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            m = self.model
            if hasattr(m, "text"):
                return m.encode_text(ids)
            from open_clip.transformer import text_global_pool

            n = ids.shape[1]
            x = m.token_embedding(ids) + m.positional_embedding[:n]
            mask = None if m.attn_mask is None else m.attn_mask[:n, :n]
            x = m.ln_final(m.transformer(x, attn_mask=mask))
            x = text_global_pool(x, ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
            if m.text_projection is None:
                return x
            return m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection

    return ShortText().eval()


def _share_weights(short_path: Path, full_path: Path) -> None:
    """Point the short graph's weights at the full graph's weight file, so the two graphs cost one copy
    on disk. Matched by content, not name: the exporter names its folded, transposed copies of weights
    per graph. What only the short graph has (its cut tables) stays inline."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import ExternalDataInfo

    def key(tensor) -> tuple:
        array = numpy_helper.to_array(tensor, base_dir=str(full_path.parent))
        return tuple(tensor.dims), tensor.data_type, hashlib.blake2b(array.tobytes(), digest_size=16).digest()

    full = {key(t): ExternalDataInfo(t) for t in onnx.load(str(full_path), load_external_data=False).graph.initializer
            if t.data_location == onnx.TensorProto.EXTERNAL}
    short = onnx.load(str(short_path))
    for tensor in short.graph.initializer:
        info = full.get(key(tensor))
        if info is None:
            continue
        tensor.ClearField("raw_data")
        del tensor.external_data[:]
        for name, value in (("location", info.location), ("offset", info.offset), ("length", info.length)):
            entry = tensor.external_data.add()
            entry.key, entry.value = name, str(value)
        tensor.data_location = onnx.TensorProto.EXTERNAL
    onnx.save_model(short, str(short_path))


def _write_export(encoder: FastEncoder, tmp: Path, short: bool) -> None:
    """The full graph into `tmp` (raises when it cannot be exported), then, with `short` and a long
    enough context, the short graph (left out, logged, when the tower cannot be traced that way)."""
    import onnx

    from .onnx_backend import _Tower, export_tower, exporting

    ids = encoder.tokenizer(list(PROBE_TEXTS[:2]))
    with exporting(encoder.model):
        export_tower(_Tower(encoder.model, "text").eval(), ids, tmp / "whole.onnx", OPSET)
        # Initialisers in a file of their own: ONNX Runtime maps it instead of parsing them (half the load)
        onnx.save_model(onnx.load(str(tmp / "whole.onnx")), str(tmp / FILE), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=DATA, size_threshold=0)
        (tmp / "whole.onnx").unlink()
        cut = short_length(ids.shape[1])
        if short and cut:
            try:
                export_tower(_short_tower(encoder.model), ids[:, :cut], tmp / SHORT_FILE, OPSET)
                _share_weights(tmp / SHORT_FILE, tmp / FILE)
            except Exception as exc:  # noqa: BLE001 - a tower the short graph cannot be traced through
                logger.debug("no short text graph (%s: %s); the full length only", type(exc).__name__, exc)
                (tmp / SHORT_FILE).unlink(missing_ok=True)


def _export_guarded(encoder: FastEncoder, tmp: Path, model_id: str) -> tuple[list[str], float]:
    """Export into `tmp` and check it against torch: (the files kept, the smallest cosine). The short
    graph is dropped when it cannot be exported or differs; ValueError when the full one differs."""
    reference = _torch_texts(encoder, PROBE_TEXTS)
    _write_export(encoder, tmp, short=True)

    def cosine(short: bool, texts: Sequence[str], expected: np.ndarray) -> float:
        lean = LeanTextEncoder(tmp, encoder.tokenizer, encoder.dim, model_id, short=short)
        return float(np.min(np.sum(lean.encode_texts(texts) * expected, axis=1)))

    full = cosine(False, PROBE_TEXTS, reference)
    if not full >= EXPORT_GUARD:  # `not >=` so that NaN fails too
        raise ValueError(f"its embeddings differ from torch's (cosine {full:.6f} < {EXPORT_GUARD})")
    files = [FILE, DATA]
    if (tmp / SHORT_FILE).is_file():
        try:
            fitting = _short_probes(encoder.tokenizer)  # texts the short graph itself must answer
            short = cosine(True, fitting, _torch_texts(encoder, fitting))
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime refusing the short graph
            short = float("nan")
            logger.debug("the short text graph does not run (%s: %s)", type(exc).__name__, exc)
        if short >= EXPORT_GUARD:
            return [*files, SHORT_FILE], min(full, short)
        logger.debug("the short text graph's embeddings differ from torch's (cosine %.6f); full length only", short)
        (tmp / SHORT_FILE).unlink()
    return files, full


def _short_probes(tokenizer) -> list[str]:
    """Each probe text cut to the words whose ids fit the short graph (so the guard runs it)."""
    cut = short_length(tokenizer.context_length) or tokenizer.context_length
    probes = []
    for text in PROBE_TEXTS:
        words = text.split()
        while len(words) > 1 and tokenizer.ids([" ".join(words)])[:, cut:].any():
            words.pop()
        probes.append(" ".join(words))
    return probes


def _remove_older_exports(folder: Path, model_id: str) -> None:
    """Earlier export versions of the same model are never read again: free their hundreds of MB."""
    for other in folder.parent.glob(f"*/{META}"):
        try:
            meta = json.loads(other.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if other.parent != folder and meta.get("model_id") == model_id and meta.get("export_version") != EXPORT_VERSION:
            shutil.rmtree(other.parent, ignore_errors=True)
            logger.info("removed the older text export %s", other.parent)


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
        files, cosine = _export_guarded(encoder, tmp, models.model_id)
        meta = {"export_version": EXPORT_VERSION, "sha256": {name: sha256_file(tmp / name) for name in files},
                "dim": encoder.dim, "cosine": cosine, "model_id": models.model_id}
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            tmp.replace(folder)
        except OSError:
            if not (folder / META).is_file():  # not another process's export of the same weights
                raise
        trusted_sha256s({name: folder / name for name in files})  # hashed once more, under the final path
        logger.info("exported the fast text tower to %s (cosine %.6f with torch)", folder, cosine)
        _remove_older_exports(folder, models.model_id)
        return folder
    except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot trace, a full disk
        logger.warning("the fast text tower was not exported for quick searches (%s: %s); text queries keep "
                       "using torch", type(exc).__name__, exc)
        with contextlib.suppress(OSError):
            _failed_marker(folder).write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
