"""ONNX Runtime backend: each fast tower is exported once per set of weights into the per-user cache
folder (never into the shipped, read-only resources) and run in fp32 on the CPU; the `int8` variant
runs a dynamically quantized copy of the image tower (made from that export, once) for indexing.

The cache folder is keyed by a digest of the weights themselves (plus the input shapes and the torch
version that exported it), so a changed bundle never meets a stale export. A cache that is missing is
exported; one that is broken (a file missing, truncated or unreadable by ONNX Runtime) is removed and
the caller falls back to torch for this run. Content that loads but computes something else is caught
by the cosine guard in `backends.select_backend`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..paths import cache_dir

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the export itself changes: older caches are then never read
OPSET = 17
META = "meta.json"
FILES = {"image": "image.onnx", "text": "text.onnx"}
INT8_IMAGE = "image-int8.onnx"
INT8_META = "int8.json"


class OnnxUnavailable(RuntimeError):
    """The export cannot be made or used here; the message says why (backends falls back to torch)."""


def weights_digest(model: torch.nn.Module) -> str:
    """blake2b of every tensor of the state dict (names, shapes, dtypes, bytes): the export's key."""
    digest = hashlib.blake2b(digest_size=20)
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return digest.hexdigest()


def _example_inputs(encoder) -> tuple[torch.Tensor, torch.Tensor]:
    size = int(encoder.preprocess.config.image_size)
    return torch.zeros(2, 3, size, size), encoder.tokenizer(["a photo", "a red car"])


def cache_folder(encoder) -> Path:
    """Where this encoder's export lives: <cache>/onnx/<key>."""
    pixels, ids = _example_inputs(encoder)
    key = hashlib.blake2b(digest_size=12)
    key.update(f"{weights_digest(encoder.model)}|{tuple(pixels.shape[1:])}|{tuple(ids.shape[1:])}|{ids.dtype}|"
               f"{torch.__version__}|{EXPORT_VERSION}|{OPSET}".encode())
    return cache_dir() / "onnx" / key.hexdigest()


class _Tower(torch.nn.Module):
    """One tower of the CLIP model as a module of its own (what torch.onnx.export traces)."""

    def __init__(self, model: torch.nn.Module, which: str):
        super().__init__()
        self.model, self.which = model, which

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x) if self.which == "image" else self.model.encode_text(x)


@contextlib.contextmanager
def exporting(model: torch.nn.Module) -> Iterator[None]:
    """Around torch.onnx.export of `model`'s towers: nn.MultiheadAttention's eval fast path is one fused
    op that ONNX has no export for, so it is off meanwhile; afterwards `model` is in eval mode again."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.eval()


def export_tower(tower: torch.nn.Module, example: torch.Tensor, path: Path, opset: int = OPSET) -> None:
    """Trace one tower (input "input", output "embedding", batch axis dynamic) into the ONNX file `path`."""
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tower, (example,), str(path), input_names=["input"], output_names=["embedding"],
                          opset_version=opset, dynamo=False, dynamic_axes={"input": {0: "n"}, "embedding": {0: "n"}})


def _export(encoder, folder: Path) -> None:
    """Export both towers into a temporary sibling folder, then move it into place (never half-written)."""
    pixels, ids = _example_inputs(encoder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        with exporting(encoder.model):
            for which, example in (("image", pixels), ("text", ids)):
                # the wrapper must be in eval mode: export restores the wrapper's mode afterwards, and a
                # fresh module's default (training) would otherwise switch the live model to training
                export_tower(_Tower(encoder.model, which).eval(), example, tmp / FILES[which])
        meta = {"export_version": EXPORT_VERSION, "torch": torch.__version__,
                "sizes": {name: (tmp / name).stat().st_size for name in FILES.values()}}
        (tmp / META).write_text(json.dumps(meta, indent=1))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class OnnxBackend:
    """Both towers as ONNX Runtime sessions with torch's thread count (same threads, fair comparison);
    `image_file` picks the image tower's graph (the int8 backend runs the quantized one), and a
    `text_model` answers texts in torch instead (int8 leaves the text tower in fp32, so a second
    copy of it in ONNX Runtime would only cost memory: 430 MB more for ViT-B-32 while indexing)."""

    def __init__(self, folder: Path, threads: int | None = None, image_file: str = FILES["image"],
                 name: str = "onnx", text_model: torch.nn.Module | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        # No spinning between runs: while indexing, the decode threads need the cores ONNX Runtime's idle
        # threads would spin on (int8 ViT-B-32-256, 100 camera JPEGs, 2 cores: 7.7-7.8 -> 8.1-8.6 images/s)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.folder, self.name, self._options, self.text_model, self._ort = folder, name, options, text_model, ort
        self._files = {**FILES, "image": image_file}
        self._sessions: dict = {}
        self._lock = threading.Lock()
        self._session("image")  # a graph ONNX Runtime cannot read fails here, at load, not mid-run

    def _session(self, which: str):
        # Made on first use: indexing never needs the text tower's session (hundreds of MB for ViT-B/32)
        with self._lock:
            if which not in self._sessions:
                self._sessions[which] = self._ort.InferenceSession(str(self.folder / self._files[which]), self._options,
                                                             providers=["CPUExecutionProvider"])
            return self._sessions[which]

    def _run(self, which: str, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self._session(which).run(None, {"input": array})[0]).float()

    def image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S) pixels -> (n, d) float32, not normalised."""
        return self._run("image", pixels.detach().cpu().numpy().astype(np.float32, copy=False))

    def text(self, ids: torch.Tensor) -> torch.Tensor:
        """(n, L) token ids -> (n, d) float32, not normalised."""
        if self.text_model is not None:
            with torch.no_grad():
                return self.text_model.encode_text(ids).float()
        wanted = np.int32 if self._session("text").get_inputs()[0].type == "tensor(int32)" else np.int64
        return self._run("text", ids.detach().cpu().numpy().astype(wanted, copy=False))


def _cache_problem(folder: Path) -> str | None:
    """Why the export in `folder` cannot be used, or None when its files are all there, whole."""
    try:
        meta = json.loads((folder / META).read_text())
        for name in FILES.values():
            size = (folder / name).stat().st_size
            if size != meta["sizes"][name]:
                return f"{name} has {size} bytes, the export wrote {meta['sizes'][name]}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _broken(folder: Path, why: str) -> OnnxUnavailable:
    shutil.rmtree(folder, ignore_errors=True)  # best effort: the next start exports afresh
    return OnnxUnavailable(f"the ONNX cache {folder} is broken ({why}); it was removed and is rebuilt "
                              "on the next start")


def load_or_export(encoder) -> OnnxBackend:
    """The ONNX backend for `encoder`: exported on first use, then loaded from the cache."""
    folder = _exported(encoder)
    try:
        return OnnxBackend(folder)
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors (invalid protobuf, ...)
        raise _broken(folder, f"{type(exc).__name__}: {exc}") from exc


def _exported(encoder) -> Path:
    """The folder of `encoder`'s fp32 export, made if missing; raises OnnxUnavailable when it is broken."""
    folder = cache_folder(encoder)
    if not folder.exists():
        logger.info("exporting the fast towers to ONNX in %s (once per model)", folder)
        try:
            _export(encoder, folder)
        except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot trace, a full disk
            raise OnnxUnavailable(f"the ONNX export failed ({type(exc).__name__}: {exc})") from exc
    problem = _cache_problem(folder)
    if problem is not None:
        raise _broken(folder, problem)
    return folder


def _quantize(folder: Path) -> None:
    """The image tower with int8 weights for its matrix products (activations quantized per batch at
    run time), written beside the fp32 export through a temporary file.

    Unsigned weights: on ViT-B/32 with random weights their embeddings kept cosine 0.9998 with fp32,
    signed ones 0.994, at the same speed (2-core AMD EPYC, AVX2). The patch convolution stays fp32.
    """
    import warnings

    from onnxruntime.quantization import QuantType, quantize_dynamic

    def advice(record: logging.LogRecord) -> bool:  # the quantizer's advice, logged on the root logger
        return not str(record.msg).startswith("Please consider to run pre-processing")

    tmp = folder / f".{INT8_IMAGE}.tmp"
    logging.getLogger().addFilter(advice)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(folder / FILES["image"], tmp, weight_type=QuantType.QUInt8,
                             op_types_to_quantize=["MatMul", "Gemm"])
        (folder / INT8_META).write_text(json.dumps({"size": tmp.stat().st_size}))
        tmp.replace(folder / INT8_IMAGE)
    finally:
        logging.getLogger().removeFilter(advice)
        tmp.unlink(missing_ok=True)


def _int8_problem(folder: Path) -> str | None:
    try:
        size, wrote = (folder / INT8_IMAGE).stat().st_size, json.loads((folder / INT8_META).read_text())["size"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if size == wrote else f"{INT8_IMAGE} has {size} bytes, the quantizer wrote {wrote}"


def load_or_quantize(encoder) -> OnnxBackend:
    """The int8 backend for `encoder`: the fp32 export (made if missing), its image tower quantized once."""
    folder = _exported(encoder)  # no fp32 session: hundreds of MB the int8 backend never runs
    if not (folder / INT8_IMAGE).exists():
        logger.info("quantizing the image tower to int8 in %s (once per model)", folder)
        try:
            _quantize(folder)
        except Exception as exc:  # noqa: BLE001 - the quantizer's own errors, a full disk
            raise OnnxUnavailable(f"the int8 quantization failed ({type(exc).__name__}: {exc})") from exc
    problem = _int8_problem(folder)
    if problem is not None:
        raise _broken(folder, problem)
    try:
        return OnnxBackend(folder, image_file=INT8_IMAGE, name="int8", text_model=encoder.model)
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's own errors (invalid protobuf, ...)
        raise _broken(folder, f"{type(exc).__name__}: {exc}") from exc
