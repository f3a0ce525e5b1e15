"""The train loop shared by every stage: AdamW, warmup + cosine, AMP on CUDA, DDP, resumable."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from . import checkpoint

logger = logging.getLogger(__name__)


@dataclass
class Dist:
    """This process's place in a torchrun job (world 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (a no-op when run plainly)."""
        if self.world > 1:
            dist.barrier()


def init_distributed() -> Dist:
    """Join a torchrun job when WORLD_SIZE > 1; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return Dist(rank, world, device)


def finish_distributed(env: Dist) -> None:
    """Leave a torchrun job: wait for every rank (the main one evaluates last), then close the group."""
    if env.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _after_step(stage: str, step: int) -> None:
    """Called after every optimizer step; tests replace it to simulate an interruption."""


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(
    stage: str,
    folder: Path,
    modules: dict[str, torch.nn.Module],
    loss_fn: Callable[[int], dict[str, torch.Tensor]],
    steps: int,
    lr: float,
    warmup: int,
    weight_decay: float,
    checkpoint_every: int,
    env: Dist,
    snapshots: dict[int, Path] | None = None,
) -> dict:
    """Run `steps` optimizer steps on the modules, resuming from folder's checkpoint if present.

    `loss_fn(step)` returns named loss terms; their sum is minimised. `snapshots` maps a step to a
    folder where the weights at that step are also kept (e.g. where distillation branches off).
    Returns {"steps_run", "seconds", "ms_per_step", "last": {term: value}}.
    """
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # norms, biases, scales: no weight decay
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    meta = checkpoint.load(folder, modules, optimizer)
    start = meta["step"] if meta else 0
    if start:
        logger.info("%s: resuming from step %d of %d", stage, start, steps)
    amp = env.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    for m in modules.values():
        m.train()
    last: dict[str, float] = {}
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc=stage, disable=not env.main, initial=start, total=steps,
               mininterval=5, leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        with torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext():
            terms = loss_fn(step)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        last = {k: float(v.detach()) for k, v in terms.items()}
        if env.main and step % 50 == 0:
            bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()})
            logger.debug("%s step %d %s", stage, step, last)
        done = step + 1
        if env.main and (done % checkpoint_every == 0 or done == steps):
            checkpoint.save(folder, modules, optimizer, done)
        if env.main and snapshots and done in snapshots:
            checkpoint.save(snapshots[done], modules, None, done)
        _after_step(stage, done)
    for m in modules.values():
        m.eval()
    seconds = time.perf_counter() - t0
    ran = steps - start
    return {"steps_run": ran, "seconds": seconds, "ms_per_step": 1000 * seconds / max(1, ran), "last": last}
