"""Run kernels.cuda.matmul under the CUDA simulator and compare it with kernels.cpu.matmul.

Run by tests/kernels/cuda/test_matmul.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (set before
numba.cuda is first imported). Prints one JSON line per check. Tiny shapes: the simulator runs each
CUDA thread as a Python thread.

Two kinds of check:
- "act": kernels.cuda.q8 (the device activation quantizer, through kernels.cuda.matmul.quantize_act)
  against kernels.cpu.matmul.quantize_act: bit-equal blocks, on random rows plus rows built to
  hit every rounding rule (ties to even, saturation, F16-subnormal and zero scales, the first of
  two equal maxima, all-zero blocks, F16 overflow).
- "type": the matmul. The quantized types (matmul_q_lanes, matmul_q_k_lanes) are bit-equal with
  the CPU, also with 8 rows (Q4_K's repacked kinds) and 5 tokens (gemm + gemv kinds). F32/F16/
  BF16 through matmul_q: the products are exact or rounded alike, only the float32 addition
  order differs (CPU: llama.cpp's lanes; GPU: per-thread sums then a tree), so
  |gpu - cpu| <= 1e-5 * sum |terms| (bounded here by |W_deq| @ |x|).
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


# activation kind -> a weight type whose vec_dot_type it is
ACT = {"Q8_0": 8, "Q8_1": 3, "Q8_K": 14, "F16": 1, "BF16": 30, "F32": 0}


def _act_rows(rng, n_cols):
    """Activation rows: random, then the rounding rules (see the module docstring)."""
    rows = [rng.standard_normal(n_cols), rng.standard_normal(n_cols) * 1e-4,
            rng.standard_normal(n_cols) * 3e-7, rng.standard_normal(n_cols) * 1e5,
            np.zeros(n_cols)]
    ties = np.resize(np.array([127.0, 2.5, -3.5, 0.5, -0.5, 1.5, -126.5, 126.5]), n_cols)
    rows.append(ties)  # scale 1: x * 127 / amax hits exact halves
    neg = ties.copy()
    neg[0] = -127.0  # Q8_K: the signed maximum is negative
    rows.append(neg)
    first = rng.standard_normal(n_cols)
    first[3], first[9] = 4.0, -4.0  # two maxima of equal magnitude: the first one wins
    rows.append(first)
    mixed = rng.standard_normal(n_cols)
    mixed[:32] = 0.0  # an all-zero block next to non-zero ones
    mixed[40] = 70000.0  # past the F16 range
    mixed[41] = 65519.0
    mixed[42] = 1e-40  # float32 subnormal
    rows.append(mixed)
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def check_act(rng) -> int:
    """kernels.cuda.matmul.quantize_act against the CPU's: bit-equal bytes per kind."""
    from numba import cuda

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cuda import matmul as cuda_matmul

    failures = 0
    for name, t in ACT.items():
        n_cols = 512
        x = _act_rows(rng, n_cols)
        n_tokens = x.shape[0]
        cpu = np.zeros(cpu_matmul.act_nbytes(t, n_tokens, n_cols), np.uint8)
        cpu_matmul.quantize_act(x.reshape(-1), t, n_tokens, n_cols, cpu)
        d_xq = cuda.to_device(np.full(cpu.size, 0xA5, np.uint8))  # stale bytes must be overwritten
        cuda_matmul.quantize_act(cuda.to_device(x.reshape(-1)), t, n_tokens, n_cols, d_xq,
                                 threads_per_block=4, max_blocks=3)
        gpu = d_xq.copy_to_host()
        ok = bool(np.array_equal(gpu, cpu))
        failures += not ok
        print(json.dumps({"act": name, "ok": ok, "bytes": int(cpu.size),
                          "bytes_differing": int((gpu != cpu).sum())}))
    try:
        cuda_matmul.quantize_act(cuda.to_device(np.zeros(48, np.float32)), 8, 1, 48,
                                 cuda.to_device(np.zeros(64, np.uint8)))
        ok = False
    except ValueError:
        ok = True
    failures += not ok
    print(json.dumps({"act": "error case", "ok": ok}))
    return failures


def main() -> int:
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    from numba import cuda

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cpu import quants as cpu_quants
    from kernels.cuda import matmul as cuda_matmul

    failures = 0
    rng = np.random.default_rng(42)
    failures += check_act(rng)
    for name, (t, qk, _, _) in TYPES.items():
        n_rows, n_cols = (3, 256) if qk == 256 else (3, 80) if qk == 1 else (3, 64)  # 80: a tail
        n_tokens = 2
        w = _weight(rng, name, n_rows, n_cols)
        x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
        cpu = np.zeros((n_tokens, n_rows), np.float32)
        cpu_matmul.matmul(w, t, n_rows, n_cols, x, cpu)
        gpu = np.zeros((n_tokens, n_rows), np.float32)
        cuda_matmul.matmul(w, t, n_rows, n_cols, x, gpu, threads_per_block=4, max_blocks=1)
        # device arrays end to end: w, x and out on the device
        d_out = cuda.device_array(n_rows, np.float32)
        cuda_matmul.matmul(cuda.to_device(w), t, n_rows, n_cols,
                           cuda.to_device(np.ascontiguousarray(x[1])), d_out, threads_per_block=8)
        gpu1 = d_out.copy_to_host()
        wf = np.abs(cpu_quants.dequantize(w, t, n_rows * n_cols).reshape(n_rows, n_cols)).astype(np.float64)
        scale = (np.abs(x).astype(np.float64) * 1.01) @ wf.T
        ok = bool(np.all(np.abs(gpu - cpu) <= 1e-5 * scale + 1e-30)
                  and np.all(np.abs(gpu1 - cpu[1]) <= 1e-5 * scale[1] + 1e-30))
        if qk > 1 or name == "BF16":  # *_lanes kernels: the CPU's float order, bit for bit
            ok = ok and bool(np.array_equal(gpu.view(np.uint32), cpu.view(np.uint32))
                             and np.array_equal(gpu1.view(np.uint32), cpu[1].view(np.uint32)))
            # 8 rows (Q4_K: llama.cpp's repacked kind) and 5 tokens (4 by the gemm kind, 1 by gemv)
            w8 = _weight(rng, name, 8, n_cols)
            x5 = rng.standard_normal((5, n_cols)).astype(np.float32)
            cpu8 = cpu_matmul.matmul(w8, t, 8, n_cols, x5, np.zeros((5, 8), np.float32))
            gpu8 = cuda_matmul.matmul(w8, t, 8, n_cols, x5, np.zeros((5, 8), np.float32),
                                      threads_per_block=8, max_blocks=2)
            ok = ok and bool(np.array_equal(gpu8.view(np.uint32), cpu8.view(np.uint32)))
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
