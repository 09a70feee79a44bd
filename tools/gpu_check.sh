#!/usr/bin/env bash
# Real-GPU check (issue #9): the CUDA tests, then the prefill/decode benchmark of both default
# models on the GPU. Run on a machine with an NVIDIA GPU, from anywhere:
#   tools/gpu_check.sh
# Budget: under 5 minutes in all (each step has its own timeout, the whole script one too).
# Exits non-zero when no GPU is usable, when a CUDA test fails, or when a benchmark fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM  # the real device, never the simulator
START=$SECONDS

python - <<'PY'
from emel.device import cuda_status
ok, reason = cuda_status()
print(f"CUDA: {reason}")
raise SystemExit(0 if ok else 1)
PY

step() {  # step SECONDS CMD...: run CMD with a time limit, print its wall time
    local limit=$1; shift
    local t0=$SECONDS
    echo "== $* (limit ${limit}s)"
    timeout "$limit" "$@"
    echo "== done in $((SECONDS - t0))s"
}

# -rs shows skip reasons: on a GPU machine no cuda test may skip
step 150 python -m pytest -m cuda -q -rs -p no:cacheprovider tests
step 70 python -m emel.bench -m smollm2-135m --device cuda
step 70 python -m emel.bench -m gemma3-270m --device cuda
echo "gpu_check: all steps passed in $((SECONDS - START))s"
