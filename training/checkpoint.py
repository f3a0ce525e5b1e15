"""Checkpoints without pickles: tensors (model and optimizer) in safetensors, the rest in JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save(folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None,
         step: int, extra: dict | None = None) -> None:
    """Write folder/state.safetensors then folder/state.json; the JSON is the commit marker."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model/{name}/{k}": v.detach().cpu().contiguous()
               for name, module in modules.items() for k, v in module.state_dict().items()}
    groups = []
    if optimizer is not None:
        state = optimizer.state_dict()
        for idx, slots in state["state"].items():
            for key, value in slots.items():
                tensors[f"optim/{idx}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        groups = state["param_groups"]
    tmp = folder / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / "state.safetensors")
    _atomic_json(folder / "state.json", {"step": step, "param_groups": groups, "extra": extra or {}})


def load(folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None) -> dict | None:
    """Restore modules (and optimizer) from folder; returns the JSON state, or None if there is none."""
    meta_path = folder / "state.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    tensors = load_file(str(folder / "state.safetensors"))
    for name, module in modules.items():
        prefix = f"model/{name}/"
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    if optimizer is not None and meta["param_groups"]:
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, idx, slot = key.split("/", 2)
                state.setdefault(int(idx), {})[slot] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


def load_modules(folder: Path, modules: dict[str, torch.nn.Module]) -> None:
    """Weights only (e.g. a frozen teacher, or a student's starting point)."""
    if load(folder, modules, None) is None:
        raise FileNotFoundError(f"no checkpoint in {folder}")


def mark_done(folder: Path, info: dict) -> None:
    _atomic_json(folder / "done.json", info)


def done_info(folder: Path) -> dict | None:
    """The info of a stage an earlier run finished, marked so (its time was not spent by this run)."""
    path = folder / "done.json"
    return {**json.loads(path.read_text()), "from_earlier_run": True} if path.is_file() else None
