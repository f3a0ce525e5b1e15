"""Weight files checked before use: a sound safetensors header, then every tensor against the model.

The header is read and bounded here before the file reaches safetensors (a length of 2⁶⁰ or past
the end of the file is refused, not handed on). Then each tensor must be one the model expects,
with its exact shape and a dtype of the same kind (floating for floating: `load_state_dict` would
silently cast int64 to float), and every floating value must be finite — NaN or inf weights give NaN
embeddings that end up in the index and in JSON output.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import BundleError

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
FLOAT_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
OTHER_DTYPES = {"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_TORCH_NAMES = {torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                torch.uint8: "U8", torch.bool: "BOOL"}
_ADVICE = "Re-export or re-download the bundle; FastSlow will not load it."


def _refuse(file: Path, problem: str) -> BundleError:
    return BundleError(f"{file} is not a usable weight file: {problem}. {_ADVICE}")


def _read_raw_header(file: Path) -> tuple[object, int]:
    """The parsed header JSON and the size of the data section after it."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _refuse(file, f"it is {size} bytes, too short for a safetensors header")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise _refuse(file, f"its header claims {length} bytes but the file holds {size}")
            raw = fh.read(length)
        return json.loads(raw), size - 8 - length
    except RecursionError as exc:
        raise _refuse(file, "its header is nested too deeply") from exc
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise _refuse(file, f"its header cannot be read ({exc})") from exc


def _check_entry(file: Path, name: str, entry: object, data_bytes: int) -> tuple[str, list[int]]:
    if not isinstance(entry, dict):
        raise _refuse(file, f"the header entry of {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    itemsize = {**FLOAT_DTYPES, **OTHER_DTYPES}.get(dtype) if isinstance(dtype, str) else None
    if itemsize is None:
        raise _refuse(file, f"tensor {name!r} has dtype {dtype!r}, which a model weight cannot have")
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise _refuse(file, f"tensor {name!r} has the shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_bytes):
        raise _refuse(file, f"tensor {name!r} has data offsets {offsets!r} outside the file's data")
    numel = 1
    for d in shape:
        numel *= d
    if numel * itemsize != offsets[1] - offsets[0]:
        raise _refuse(file, f"tensor {name!r} of shape {shape} needs {numel * itemsize} bytes, "
                            f"its offsets give {offsets[1] - offsets[0]}")
    return dtype, shape


def read_header(file: Path) -> dict[str, tuple[str, list[int]]]:
    """Tensor name -> (safetensors dtype, shape), after checking the header is sound and bounded."""
    header, data_bytes = _read_raw_header(file)
    if not isinstance(header, dict):
        raise _refuse(file, "its header is not a JSON object")
    return {name: _check_entry(file, name, entry, data_bytes)
            for name, entry in header.items() if name != "__metadata__"}


def _optional(name: str) -> bool:
    return name.endswith("attn_mask")  # older open_clip kept the causal mask in the state dict


def check_against_model(file: Path, header: dict[str, tuple[str, list[int]]],
                        expected: dict[str, torch.Tensor]) -> None:
    """Refuse a file whose tensors are not exactly the model's: names, shapes, dtype kinds."""
    missing = sorted(k for k in expected if k not in header and not _optional(k))
    unexpected = sorted(k for k in header if k not in expected)
    if missing or unexpected:
        raise _refuse(file, f"it does not fit the architecture in the manifest (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})")
    for name, (dtype, shape) in header.items():
        want = expected[name]
        if list(want.shape) != shape:
            raise _refuse(file, f"tensor {name!r} has shape {shape}, the model expects {list(want.shape)}")
        if want.is_floating_point():
            ok = dtype in FLOAT_DTYPES
        else:
            ok = _TORCH_NAMES.get(want.dtype) == dtype
        if not ok:
            raise _refuse(file, f"tensor {name!r} has dtype {dtype}, the model expects {want.dtype}")


def load_checked(module: torch.nn.Module, file: Path) -> None:
    """Load a file already passed by `check_against_model` into `module`, refusing non-finite values."""
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _refuse(file, f"safetensors cannot read it ({exc})") from exc
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _refuse(file, f"tensor {name!r} holds NaN or infinite values")
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not _optional(k)]
    if missing or unexpected:  # the header check makes this unreachable; kept as the last line of defence
        raise _refuse(file, f"it does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
