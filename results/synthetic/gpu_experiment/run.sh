#!/usr/bin/env bash
# Four synthetic training runs side by side on one GPU (experiment for issue 16; not part of the product).
set -u
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=".:/tmp/site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=4 FASTSLOW_TORCH_THREADS=4 MPLBACKEND=Agg
export XDG_CACHE_HOME=/tmp/h/cache XDG_DATA_HOME=/tmp/h/data
declare -A V
V[g0]=""
V[g1]="--train-images 72000"
V[g2]="--train-images 72000 --slow-steps 1100"
V[g3]="--train-images 72000 --slow-steps 1100 --augment-colour 0.15 --augment-blur 0.7 --augment-noise 0.02"
for k in g0 g1 g2 g3; do
  ( timeout 480 python3 -m training.distill --preset synthetic --no-ablations ${V[$k]} --out /tmp/runs/$k > /tmp/$k.log 2>&1; echo "$k exit $?" >> /tmp/exits ) &
done
wait
cat /tmp/exits
for k in g0 g1 g2 g3; do
  cp /tmp/runs/$k/report.json "$OUT/$k-report.json" 2>/dev/null || { echo "== $k failed"; tr '\r' '\n' < /tmp/$k.log | grep -v "it/s\|s/it" | tail -25; }
  tr '\r' '\n' < /tmp/$k.log | grep -v "it/s\|s/it\|it\]" | tail -40 > "$OUT/$k-log.txt"
done
nvidia-smi --query-gpu=name --format=csv,noheader
