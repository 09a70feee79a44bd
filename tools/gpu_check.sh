#!/usr/bin/env bash
# Real-GPU check (issue #9): the CUDA tests, then the prefill/decode benchmark of both default
# models on the GPU. Run on a machine with an NVIDIA GPU, from anywhere:
#   tools/gpu_check.sh
# Budget: under 5 minutes in all (each step has its own time limit: 200 + 2 x 45 s, plus the
# environment report). The first process compiles the CUDA kernels; they are
# @cuda.jit(cache=True), so the later steps load them from __pycache__.
# Exits non-zero when no GPU is usable, when a CUDA test fails or skips, or when a benchmark fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM  # the real device, never the simulator
export NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0  # tiny test launches would print one warning each
START=$SECONDS

python - <<'PY'
import importlib.metadata as md
import platform
for pkg in ("numpy", "numba", "numba-cuda", "llvmlite"):
    try:
        print(f"{pkg} {md.version(pkg)}")
    except md.PackageNotFoundError:
        print(f"{pkg}: not installed")
print(f"python {platform.python_version()}")
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

# the tests marked `cuda` (real GPU only): kernel twins, the activation quantizer, the 262k-row
# output matmul, and CudaContext against the CPU Context on the tiny models (5 architectures)
# and on smollm2-135m / gemma3-270m
LOG=$(mktemp)
step 200 python -m pytest -m cuda -q -rs -p no:cacheprovider tests/kernels/cuda \
    tests/test_context_cuda.py 2>&1 | tee "$LOG"
if grep -q "SKIPPED" "$LOG"; then
    echo "gpu_check: a cuda test skipped on a GPU machine (reasons above)"; exit 1
fi
# llama-bench's pp/tg tests, shortened to fit the budget (the first-token latency runs recompile
# everything in a fresh cache, so they are left out)
BENCH=(--device cuda -p 512 -n 64 -r 3 --no-latency)
step 45 python -m emel.bench -m smollm2-135m "${BENCH[@]}"
step 45 python -m emel.bench -m gemma3-270m "${BENCH[@]}"
echo "gpu_check: all steps passed in $((SECONDS - START))s"
