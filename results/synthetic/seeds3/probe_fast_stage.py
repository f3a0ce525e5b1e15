"""One-off record: the fast-stage probes of fast_stage_probes.json (`probes_2026_12_01`), as they were run.

The fast stage of the `synthetic` preset (NCE, 1 000 steps unless --fast-steps) on the data, tokenizer and
teacher of a finished `--seeds 3` run, from initial weights chosen per tower (--vis-seed, --txt-seed,
--pool-seed: torch.manual_seed before open_clip builds the model) with seed --data-seed's batches, then
validation R@1 by query kind (training.query_kinds). Not part of the package: it swaps
training.stages.new_fast / load_arch for the probe. Run from the repository root, e.g.
    PYTHONPATH=. python results/synthetic/seeds3/probe_fast_stage.py --name steps2000_s2 --fast-steps 1700
"""
import argparse, json, math, time
from dataclasses import replace
from pathlib import Path
import torch
from fastslow_desktop.models.fast import FastEncoder
from fastslow_desktop.models.preprocess import ImagePreprocess
from training import evaluate, stages
from training.distill import load_splits, make_tokenizer, synthscenes_run_config
from training.loop import init_distributed
from training.results import Evaluation
from training.query_kinds import by_kind

p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--vis-seed", type=int, default=2)
p.add_argument("--txt-seed", type=int, default=2)
p.add_argument("--data-seed", type=int, default=2)
p.add_argument("--pos", default="random", choices=["random", "sincos", "zero"])
p.add_argument("--pos-scale", type=float, default=1.0)
p.add_argument("--width", type=int, default=0)
p.add_argument("--size", type=int, default=0)
p.add_argument("--pool-seed", type=int, default=-1)
p.add_argument("--fast-steps", type=int, default=0)
p.add_argument("--threads", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(a.threads)
RUN = Path("/work/runs/seeds3")  # the finished 3-seed run
OUT = Path("/work/runs/exp2")
cfg = synthscenes_run_config(RUN, "probe")
env = init_distributed()
train, val, _, _ = load_splits(cfg, RUN, env)
tok = make_tokenizer(cfg, RUN, train, env)
slow, _ = stages.run_slow(cfg, RUN, train, tok, env)

def sincos_2d(n_side: int, dim: int) -> torch.Tensor:
    """(n_side² + 1, dim): row 0 (the mean token) zero, then 2-D sin-cos per grid cell."""
    half, quarter = dim // 2, dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(torch.arange(n_side, dtype=torch.float32), torch.arange(n_side, dtype=torch.float32),
                            indexing="ij")
    def enc(v):
        out = v.reshape(-1, 1) * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)
    grid = torch.cat([enc(ys), enc(xs)], dim=1)
    return torch.cat([torch.zeros(1, dim), grid], dim=0)

orig_load_arch = stages.load_arch
def load_arch(name):
    arch = orig_load_arch(name)
    if a.width:
        arch["vision_cfg"]["width"] = a.width
    if a.size:
        arch["vision_cfg"]["image_size"] = a.size
        arch["preprocess"]["image_size"] = a.size
    return arch
stages.load_arch = load_arch
orig_new_fast = stages.new_fast
def new_fast(c, t):
    torch.manual_seed(a.vis_seed); vis = orig_new_fast(c, t)
    torch.manual_seed(a.txt_seed); spec = orig_new_fast(c, t)
    spec.model.visual.load_state_dict(vis.model.visual.state_dict())
    if a.pool_seed >= 0:
        torch.manual_seed(a.pool_seed); pool = orig_new_fast(c, t)
        spec.model.visual.attnpool.load_state_dict(pool.model.visual.attnpool.state_dict())
    pe = spec.model.visual.attnpool.positional_embedding
    with torch.no_grad():
        if a.pos == "sincos":
            n = int(math.isqrt(pe.shape[0] - 1))
            s = sincos_2d(n, pe.shape[1])
            s = s * (pe[1:].pow(2).mean().sqrt() / s[1:].pow(2).mean().sqrt())  # the random init's RMS
            pe.copy_(s * a.pos_scale)
        elif a.pos == "zero":
            pe.zero_()
    torch.manual_seed(a.data_seed)
    return spec
stages.new_fast = new_fast
folder = OUT / a.name
t0 = time.time()
probe_cfg = replace(cfg, seed=a.data_seed, fast_steps=a.fast_steps or cfg.fast_steps)
spec, info = stages.run_fast(probe_cfg, folder, train, tok, env)
minutes = (time.time() - t0) / 60
ev = Evaluation(cfg, RUN, tok, slow, val, {"test": []}, env.device, time.perf_counter())
queries = evaluate.make_queries(val, cfg.eval_queries, cfg.seed + 1)
gallery = evaluate.Gallery(val, ev.scorer, {})
gallery.add_fast(a.name, FastEncoder(spec.model, tok, ImagePreprocess(spec.preprocess), a.name, device=env.device,
                                     backend="torch"))
r1 = evaluate.evaluate_fast(gallery, a.name, queries)["R@1"]
row = {"name": a.name, "args": vars(a), "val_R@1": r1, **by_kind(gallery, a.name, queries, val),
       "minutes": round(minutes, 1)}
print(json.dumps(row))
with open(OUT / "results.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
