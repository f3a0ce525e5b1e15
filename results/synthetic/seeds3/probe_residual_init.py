"""One-off record: the fast-stage probes of fast_stage_probes.json (`probes_2026_12_02`), as they were run.

The synthetic preset's `fast` recipe (NCE, 1 000 steps unless --steps, one cosine schedule) from seed --seed's
initial weights and batches, with one change: --bn3-one starts each residual block's last BatchNorm at 1
(open_clip starts it at 0; what fast-synth-bn1 now states), --arch another architecture JSON, --width a wider
trunk. Then validation R@1 by query kind (training.query_kinds) on the preset's validation split (600 images,
300 queries); the test sets are not touched. Not part of the package. Run from the repository root, e.g.
    PYTHONPATH=. python results/synthetic/seeds3/probe_residual_init.py --name bn3_s2 --bn3-one --seed 2
"""
import argparse, json, time
from dataclasses import replace
from pathlib import Path
import torch
from fastslow_desktop.models.fast import FastEncoder
from fastslow_desktop.models.preprocess import ImagePreprocess
from training import evaluate, stages
from training.distill import load_splits, make_tokenizer
from training.loop import init_distributed
from training.params import PRESETS
from training.query_kinds import by_kind

p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--width", type=int, default=0)
p.add_argument("--arch", default="")
p.add_argument("--bn3-one", action="store_true")
p.add_argument("--size", type=int, default=0)
p.add_argument("--steps", type=int, default=0)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--render-only", action="store_true")
a = p.parse_args()
torch.set_num_threads(a.threads)
RUN = Path("/work/probe/data")
RUN.mkdir(parents=True, exist_ok=True)
cfg = replace(PRESETS["synthetic"], seed_runs=1, seed=a.seed)
env = init_distributed()
t0 = time.time()
train, val, _, _ = load_splits(replace(cfg, test_images=10, shifted_test_images=10), RUN, env)
tok = make_tokenizer(cfg, RUN, train, env)
print("data", round(time.time() - t0), "s", flush=True)
if a.render_only:
    raise SystemExit
orig = stages.load_arch
def load_arch(name):
    arch = orig(a.arch or name)
    if a.width:
        arch["vision_cfg"]["width"] = a.width
    if a.size:
        arch["vision_cfg"]["image_size"] = a.size
        arch["preprocess"]["image_size"] = a.size
    return arch
stages.load_arch = load_arch
torch.manual_seed(a.seed)
if a.bn3_one:
    orig_new = stages.new_fast
    def new_fast(c, t):
        spec = orig_new(c, t)
        with torch.no_grad():
            for n, p_ in spec.model.visual.named_parameters():
                if n.endswith("bn3.weight") and n.startswith("layer"):
                    p_.fill_(1.0)
        return spec
    stages.new_fast = new_fast
t0 = time.time()
pcfg = replace(cfg, fast_steps=a.steps or cfg.fast_steps + cfg.fast_extra_steps, fast_extra_steps=0)
spec, info = stages.run_fast(pcfg, Path("/work/probe/runs") / a.name, train, tok, env)
minutes = (time.time() - t0) / 60
queries = evaluate.make_queries(val, cfg.eval_queries, 1)
class _NoSlow:
    def visual_tokens(self, images):
        return None
gallery = evaluate.Gallery(val, _NoSlow(), {})
gallery.add_fast(a.name, FastEncoder(spec.model, tok, ImagePreprocess(spec.preprocess), a.name, device=env.device,
                                     backend="torch"))
r1 = evaluate.evaluate_fast(gallery, a.name, queries)["R@1"]
row = {"name": a.name, "args": vars(a), "val_R@1": r1, **by_kind(gallery, a.name, queries, val),
       "minutes": round(minutes, 1)}
print(json.dumps(row), flush=True)
with open("/work/probe/results.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
