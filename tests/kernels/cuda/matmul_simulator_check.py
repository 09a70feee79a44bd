"""Run kernels.cuda.matmul under the CUDA simulator and compare it with kernels.cpu.matmul.

Run by tests/kernels/cuda/test_matmul.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (set before
numba.cuda is first imported). Prints one JSON line per check. Tiny shapes: the simulator runs each
CUDA thread as a Python thread.

Tolerance: the integer block dots are exact on both sides; only the float32 addition order differs
(CPU: llama.cpp's 8 AVX2 lanes; GPU: per-thread sums then a tree), so
|gpu - cpu| <= 1e-5 * sum_blocks |block term| (bounded here by |W_deq| @ |x_q|).
"""

import json
import os
import sys

import numpy as np

# name: (type id, elements per block, block bytes, f16 scale offsets)
TYPES = {
    "F32": (0, 1, 4, ()), "F16": (1, 1, 2, ()), "BF16": (30, 1, 2, ()),
    "Q4_0": (2, 32, 18, (0,)), "Q4_1": (3, 32, 20, (0, 2)), "Q5_0": (6, 32, 22, (0,)),
    "Q5_1": (7, 32, 24, (0, 2)), "Q8_0": (8, 32, 34, (0,)), "Q4_K": (12, 256, 144, (0, 2)),
    "Q5_K": (13, 256, 176, (0, 2)), "Q6_K": (14, 256, 210, (208,)),
}


def _weight(rng, name, n_rows, n_cols):
    t, qk, bb, scales = TYPES[name]
    if qk == 1:
        wf = (rng.standard_normal(n_rows * n_cols) * 0.1).astype(np.float32)
        if name == "F32":
            return wf.view(np.uint8)
        if name == "F16":
            return wf.astype(np.float16).view(np.uint8)
        return (wf.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    nb = n_rows * n_cols // qk
    w = rng.integers(0, 256, nb * bb, dtype=np.uint8).reshape(nb, bb)
    for off in scales:
        w[:, off:off + 2] = (rng.standard_normal(nb) * 0.02).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return w.reshape(-1)


def main() -> int:
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    from numba import cuda

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cpu import quants as cpu_quants
    from kernels.cuda import matmul as cuda_matmul

    failures = 0
    rng = np.random.default_rng(42)
    for name, (t, qk, _, _) in TYPES.items():
        n_rows, n_cols = (3, 256) if qk == 256 else (3, 64)
        n_tokens = 2
        w = _weight(rng, name, n_rows, n_cols)
        x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
        cpu = np.zeros((n_tokens, n_rows), np.float32)
        cpu_matmul.matmul(w, t, n_rows, n_cols, x, cpu)
        gpu = np.zeros((n_tokens, n_rows), np.float32)
        cuda_matmul.matmul(w, t, n_rows, n_cols, x, gpu, threads_per_block=4, max_blocks=4)
        gpu1 = np.zeros(n_rows, np.float32)
        cuda_matmul.matmul(cuda.to_device(w), t, n_rows, n_cols, np.ascontiguousarray(x[1]), gpu1,
                           threads_per_block=8)
        wf = np.abs(cpu_quants.dequantize(w, t, n_rows * n_cols).reshape(n_rows, n_cols)).astype(np.float64)
        scale = (np.abs(x).astype(np.float64) * 1.01) @ wf.T
        ok = bool(np.all(np.abs(gpu - cpu) <= 1e-5 * scale + 1e-30)
                  and np.all(np.abs(gpu1 - cpu[1]) <= 1e-5 * scale[1] + 1e-30))
        failures += not ok
        print(json.dumps({"type": name, "ok": ok, "max_abs_diff": float(np.abs(gpu - cpu).max())}))
    try:
        cuda_matmul.matmul(np.zeros(17, np.uint8), 2, 1, 32, np.zeros(32, np.float32), np.zeros(1, np.float32))
        ok = False
    except ValueError:
        ok = True
    failures += not ok
    print(json.dumps({"type": "error case", "ok": ok}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
