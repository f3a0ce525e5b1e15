#!/usr/bin/env bash
# The CUDA figures of the speed issue on a lent GPU machine, in one call of at most 8 minutes:
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# Runs `python -m benchmarks.gpu` (fast encoder per backend, indexing, re-rank K = 10/20/50, slow
# exhaustive vs re-rank; each against this machine's own CPU) and writes gpu-result.json/.md and a log
# into OUT_DIR (default: $OUT, else benchmarks/). The machine has no network: packages its image lacks
# travel as wheels in .whl/ (see the README's "GPU figures"); they are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-benchmarks}}"
mkdir -p "$out"
py="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed" >&2; exit 3; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export FASTSLOW_BENCH_CACHE="${FASTSLOW_BENCH_CACHE:-/tmp/fastslow-bench}"
# The app's own caches (backend choice, ONNX exports) go to a scratch home, not the machine's.
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-/tmp/fastslow-home/cache}" XDG_DATA_HOME="${XDG_DATA_HOME:-/tmp/fastslow-home/data}"

{
    echo "== $(date -u +%FT%TZ) $(uname -m) $(nproc) cores"
    grep -m1 "model name" /proc/cpuinfo
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
    "$py" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee "$out/gpu-machine.txt"

timeout 450 "$py" -m benchmarks.gpu --out "$out/gpu-result.json" 2>&1 | tee "$out/gpu-log.txt"
status=${PIPESTATUS[0]}
echo "gpu_check: benchmarks.gpu exited $status" | tee -a "$out/gpu-log.txt"
exit "$status"
