"""`python -m emel.bench --kernels [-t 1,2] [--types Q4_1,Q8_0] [--reps N]`: matmul speed per type.

For SmolLM2-135M's weight shapes (n_rows x n_cols: 576x1536 ffn_down, 1536x576 ffn_gate/up,
49152x576 output) it reports, per weight type and thread count:
  * matvec (one token): weight GB/s = weight bytes / median time of kernels.cpu.matmul.matmul_q.
    Several copies of the weight are cycled so that every call streams its weight from DRAM,
    as a decode step does.
  * pp (n_tokens activation rows at once, default 128): GOP/s = 2 * n_rows * n_cols * n_tokens /
    median time.
Each figure comes as the median and the best (min time) of the runs: on a busy shared host the
median includes time the threads spent descheduled; the best shows the uncontended speed.
Activation quantization is excluded (it is done once per token for all matmuls sharing x).
Random weights: random bytes with small f16 scales, so every type reads the same byte pattern.
Threads are set with numba.set_num_threads. Numbers on a shared machine are noisy: read medians.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from kernels.cpu import matmul as mm
from kernels.cpu.quants_base import TYPE_TRAITS

SHAPES = ((576, 1536), (1536, 576), (49152, 576))
TYPES = ("Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K", "Q5_1", "Q5_K", "F16", "BF16", "F32")
_NAME_TO_TYPE = {v[0]: k for k, v in TYPE_TRAITS.items()}
# f16 scale fields inside each block (byte offsets), so random blocks hold finite scales
_SCALE_FIELDS = {"Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,),
                 "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
_STREAM_BYTES = 192 << 20


def _random_weight(rng, name, n_rows, n_cols):
    _, qk, bb = TYPE_TRAITS[_NAME_TO_TYPE[name]]
    n_blocks = n_rows * n_cols // qk
    if name in ("F32", "F16", "BF16"):
        vals = rng.standard_normal(n_rows * n_cols).astype(np.float32) * np.float32(0.02)
        if name == "F32":
            return vals.view(np.uint8)
        if name == "F16":
            return vals.astype(np.float16).view(np.uint8)
        return (vals.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    w = rng.integers(0, 256, n_blocks * bb, dtype=np.uint8).reshape(n_blocks, bb)
    for off in _SCALE_FIELDS[name]:
        w[:, off:off + 2] = (rng.standard_normal(n_blocks) * 0.01).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return w.reshape(-1)


def _times(fn, reps):
    """(median, min) wall time of reps calls; the min shows the uncontended speed on a busy host."""
    times = []
    for i in range(reps):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def bench_type(name, threads, reps, n_pp, rng):
    ggml_type = _NAME_TO_TYPE[name]
    rows = []
    for n_rows, n_cols in SHAPES:
        w0 = _random_weight(rng, name, n_rows, n_cols)
        n_copies = max(1, -(-_STREAM_BYTES // w0.nbytes))
        ws = [w0] + [np.roll(w0, 64 * k) for k in range(1, n_copies)]
        x = rng.standard_normal(max(n_pp, 1) * n_cols).astype(np.float32)
        xq = np.empty(mm.act_nbytes(ggml_type, max(n_pp, 1), n_cols), np.uint8)
        mm.quantize_act(x, ggml_type, max(n_pp, 1), n_cols, xq)
        out = np.empty(max(n_pp, 1) * n_rows, np.float32)
        for t in threads:
            numba.set_num_threads(t)
            mm.matmul_q(ws[0], ggml_type, n_rows, n_cols, xq, 1, out)  # compile / warm up
            tv, tv_min = _times(lambda i: mm.matmul_q(ws[i % n_copies], ggml_type, n_rows, n_cols, xq, 1, out),
                                max(reps, n_copies))
            row = {"type": name, "shape": f"{n_rows}x{n_cols}", "threads": t, "matvec_us": tv * 1e6,
                   "gbps": w0.nbytes / tv / 1e9, "gbps_best": w0.nbytes / tv_min / 1e9}
            if n_pp > 1:
                tp, tp_min = _times(lambda i: mm.matmul_q(ws[i % n_copies], ggml_type, n_rows, n_cols, xq, n_pp, out),
                                    max(3, reps // 10))
                row["pp_gops"] = 2.0 * n_rows * n_cols * n_pp / tp / 1e9
                row["pp_gops_best"] = 2.0 * n_rows * n_cols * n_pp / tp_min / 1e9
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emel.bench --kernels", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernels", action="store_true")
    p.add_argument("-t", "--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--types", default=",".join(TYPES), help="comma-separated GGML type names")
    p.add_argument("--reps", type=int, default=30, help="timed matvec calls per case")
    p.add_argument("--pp", type=int, default=128, help="tokens of the multi-column case (0: skip)")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t]
    threads = [t for t in threads if 1 <= t <= numba.config.NUMBA_NUM_THREADS]
    names = [n.strip().upper() for n in args.types.split(",") if n.strip()]
    for n in names:
        if n not in TYPES:
            p.error(f"unknown or unsupported type {n}; choose from {','.join(TYPES)}")
    rng = np.random.default_rng(0)
    print(f"# kernels.cpu.matmul  simd={'avx2' if mm.simd.HAS_AVX2 else 'portable'}  "
          f"threads={threads}  pp={args.pp}  (shared machine: medians, expect +-15% noise)")
    print(f"{'type':6} {'shape':>10} {'thr':>3} {'matvec us':>10} {'GB/s':>6} {'best':>6} "
          f"{'pp GOP/s':>9} {'best':>6}")
    nan = float("nan")
    for name in names:
        for r in bench_type(name, threads, args.reps, args.pp, rng):
            print(f"{r['type']:6} {r['shape']:>10} {r['threads']:>3} {r['matvec_us']:>10.1f} {r['gbps']:>6.2f} "
                  f"{r['gbps_best']:>6.2f} {r.get('pp_gops', nan):>9.1f} {r.get('pp_gops_best', nan):>6.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
