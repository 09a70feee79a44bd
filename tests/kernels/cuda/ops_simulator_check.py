"""Run every kernels.cuda.ops twin under the CUDA simulator (or a real GPU) against kernels.cpu.ops.

Run by tests/kernels/cuda/test_ops.py: in a subprocess with NUMBA_ENABLE_CUDASIM=1 and tiny shapes
(every simulated CUDA thread is a Python thread), or in-process on a real GPU with `--gpu` shapes.
Prints one JSON line per check: op, case, ok, and the largest difference in float32 ulps.

Tolerances (each with its reason):
- exact (0 ulp): element-wise ops, copies, F16 conversion, GELU table lookups, silu/swiglu on the
  ggml_v_expf part, matmul_q6_k_tiled, matmul_float_ggml: same float32 operations in the same order.
- rms_norm, 1 ulp: the double sum of squares is added in another order (tree vs left to right);
  the float32 mean can round differently when the two double sums straddle a rounding boundary.
- rope, 4 ulp of the largest |x| of the row: cosf/sinf/powf are evaluated in double and rounded
  (CPU: glibc's float versions, within ~0.5 ulp), so a cos/sin entry may differ by 1 ulp.
- silu tail, 1 ulp / tanh soft-cap, 2 ulp: expf/tanhf evaluated in double and rounded, where glibc's
  float versions are within 1 ulp (expf) and 2 ulp (tanhf) of the exact value.
- attention, 2^-10 of the largest |v|: probabilities are rounded to F16; a 1-ulp change in one
  float32 probability (tail expf, or the double softmax sum added in another order) can move it
  by one F16 ulp (2^-11 relative).
"""

import json
import math
import os
import sys

import numpy as np


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in float32 ulps between a and b (NaN must match NaN)."""
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return 1 << 30
    m = ~np.isnan(a)
    ia = a[m].view(np.int32).astype(np.int64)
    ib = b[m].view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return int(np.abs(ia - ib).max()) if ia.size else 0


class Checker:
    def __init__(self, gpu: bool) -> None:
        from numba import cuda

        from kernels.cuda import tuning

        self.cuda = cuda
        self.t = tuning.DEFAULT if gpu else tuning.SIMULATOR
        self.gpu = gpu
        self.failures = 0
        self.rng = np.random.default_rng(7)

    def dev(self, a):
        return self.cuda.to_device(np.ascontiguousarray(a))

    def report(self, op: str, case: str, ok: bool, **info) -> None:
        self.failures += not ok
        print(json.dumps({"op": op, "case": case, "ok": bool(ok), **info}), flush=True)

    def compare(self, op, case, gpu, cpu, max_ulp=0, atol=0.0):
        u = _ulps(gpu, cpu)
        diff = float(np.nanmax(np.abs(np.asarray(gpu, np.float64) - cpu))) if np.size(cpu) else 0.0
        ok = u <= max_ulp or (atol > 0 and diff <= atol)
        self.report(op, case, ok, ulps=u, max_abs=diff)

    def randn(self, *shape, scale=1.0):
        return (scale * self.rng.standard_normal(shape)).astype(np.float32).reshape(-1)


def check_elementwise(c: Checker, n: int) -> None:
    from kernels.cpu import ops as cpu
    from kernels.cuda import ops as gpu

    t = c.t
    ew = dict(threads=t.elementwise_threads, max_blocks=t.max_blocks)
    row = dict(threads=t.row_threads, max_blocks=t.max_blocks)
    a, b = c.randn(n, scale=4.0), c.randn(n)
    # edge values: zeros, tiny, huge, halfway F16 cases, inf, nan
    a[:12] = [0.0, -0.0, 1e-8, -3e-5, 6.1e-5, 65519.0, 65520.0, -70000.0, np.inf, -np.inf,
              np.nan, 1.00048828125]
    for name in ("add_f32", "mul_f32"):
        want = np.empty(n, np.float32)
        getattr(cpu, name)(a, b, want, n)
        d = c.dev(np.zeros(n, np.float32))
        getattr(gpu, "launch_" + name)(c.dev(a), c.dev(b), d, n, **ew)
        c.compare(name, f"n={n}", d.copy_to_host(), want)
    want = np.empty(n, np.float32)
    cpu.scale_f32(a, np.float32(0.37), want, n)
    d = c.dev(np.zeros(n, np.float32))
    gpu.launch_scale_f32(c.dev(a), 0.37, d, n, **ew)
    c.compare("scale_f32", f"n={n}", d.copy_to_host(), want)

    h = np.empty(n, np.uint16)
    cpu.f32_to_f16_array(a, h, n)
    d = c.dev(np.zeros(n, np.uint16))
    gpu.launch_f32_to_f16_array(c.dev(a), d, n, **ew)
    got = d.copy_to_host()
    ok = np.array_equal(got, h) and np.array_equal(h[12:], a[12:].astype(np.float16).view(np.uint16))
    c.report("f32_to_f16_array", f"n={n}", ok, mismatches=int((got != h).sum()))

    n_rows, n_cols = 3, n // 3
    x = a[:n_rows * n_cols].copy()
    x[:12] = c.randn(12)
    bias = c.randn(n_cols)
    want = np.empty(n_rows * n_cols, np.float32)
    cpu.add_rows_f32(x, bias, want, n_rows, n_cols)
    d = c.dev(np.zeros(n_rows * n_cols, np.float32))
    gpu.launch_add_rows_f32(c.dev(x), c.dev(bias), d, n_rows, n_cols, **row)
    c.compare("add_rows_f32", f"{n_rows}x{n_cols}", d.copy_to_host(), want)

    for n_cols in (7, 40):  # 40: 32 values through ggml_v_silu, 8 through expf
        x = c.randn(3 * n_cols, scale=5.0)
        want = np.empty(3 * n_cols, np.float32)
        cpu.silu_f32(x, want, 3 * n_cols)
        d = c.dev(np.zeros(3 * n_cols, np.float32))
        gpu.launch_silu_f32(c.dev(x), d, 3 * n_cols, **ew)
        c.compare("silu_f32", f"n={3 * n_cols}", d.copy_to_host(), want, max_ulp=1)
        # swiglu on strided rows (a fused gate|up tensor): x and g are two halves of each row
        xg = c.randn(3 * 2 * n_cols, scale=4.0)
        want = np.empty(3 * n_cols, np.float32)
        cpu.swiglu_f32(xg, xg[n_cols:], want, 3, n_cols, 2 * n_cols, 2 * n_cols)
        d = c.dev(np.zeros(3 * n_cols, np.float32))
        gpu.launch_swiglu_f32(c.dev(xg), c.dev(xg[n_cols:]), d, 3, n_cols, 2 * n_cols, 2 * n_cols, **row)
        c.compare("swiglu_f32", f"3x{n_cols} strided", d.copy_to_host(), want, max_ulp=1)

    table = cpu.gelu_f16_table()
    x = c.randn(n, scale=6.0)
    x[:4] = [-10.0, 10.0, -12.0, 11.0]
    g = c.randn(n)
    d_table = c.dev(table)
    want = np.empty(n, np.float32)
    cpu.gelu_f32(x, want, n, table)
    d = c.dev(np.zeros(n, np.float32))
    gpu.launch_gelu_f32(c.dev(x), d, n, d_table, **ew)
    c.compare("gelu_f32", f"n={n}", d.copy_to_host(), want)
    cpu.geglu_f32(x, g, want, n, table)
    gpu.launch_geglu_f32(c.dev(x), c.dev(g), d, n, d_table, **ew)
    c.compare("geglu_f32", f"n={n}", d.copy_to_host(), want)

    x = c.randn(n, scale=40.0)
    cpu.tanh_softcap_f32(x, want, n, np.float32(30.0))
    gpu.launch_tanh_softcap_f32(c.dev(x), d, n, 30.0, **ew)
    c.compare("tanh_softcap_f32", f"n={n}", d.copy_to_host(), want, max_ulp=2)


def check_rows(c: Checker, n_rows: int, n_cols: int) -> None:
    from kernels.cpu import ops as cpu
    from kernels.cuda import ops as gpu

    row = dict(threads=c.t.row_threads, max_blocks=c.t.max_blocks)
    x = c.randn(n_rows * n_cols, scale=3.0)
    w = c.randn(n_cols)
    for has_w in (True, False):
        want = np.empty_like(x)
        cpu.rms_norm_f32(x, w, want, n_rows, n_cols, np.float32(1e-6), has_w)
        d = c.dev(np.zeros_like(x))
        gpu.launch_rms_norm_f32(c.dev(x), c.dev(w), d, n_rows, n_cols, 1e-6, has_w, **row)
        c.compare("rms_norm_f32", f"{n_rows}x{n_cols} w={has_w}", d.copy_to_host(), want, max_ulp=1)

    n_table = 11
    table = c.randn(n_table * n_cols)
    ids = np.array([3, 0, 10, 3, 7], np.int32)
    want = np.empty(len(ids) * n_cols, np.float32)
    cpu.get_rows_f32(table, ids, want, len(ids), n_cols)
    d = c.dev(np.zeros(len(ids) * n_cols, np.float32))
    gpu.launch_get_rows_f32(c.dev(table), c.dev(ids), d, len(ids), n_cols, **row)
    c.compare("get_rows_f32", f"{len(ids)}x{n_cols}", d.copy_to_host(), want)
    t16 = table.astype(np.float16).view(np.uint16)
    f16tab = cpu.f16_table()
    cpu.get_rows_f16(t16, ids, want, len(ids), n_cols, f16tab)
    gpu.launch_get_rows_f16(c.dev(t16), c.dev(ids), d, len(ids), n_cols, c.dev(f16tab), **row)
    c.compare("get_rows_f16", f"{len(ids)}x{n_cols}", d.copy_to_host(), want)

    # KV-cache store: the CPU context rounds with astype(float16) into a float32 cache
    cells = np.array([5, 1, 8], np.int32)
    src = c.randn(len(cells) * n_cols, scale=300.0)
    src[:3] = [1e-7, 70000.0, 2049.0]
    cache = c.randn(n_table * n_cols)
    want = cache.reshape(n_table, n_cols).copy()
    want[cells] = src.reshape(len(cells), n_cols).astype(np.float16)
    d = c.dev(cache)
    gpu.launch_set_rows_f16(c.dev(src), c.dev(cells), d, len(cells), n_cols, **row)
    c.compare("set_rows_f16", f"{len(cells)}x{n_cols}", d.copy_to_host(), want.reshape(-1))
    want = cache.reshape(n_table, n_cols).copy()
    want[cells] = src.reshape(len(cells), n_cols)
    d = c.dev(cache)
    gpu.launch_set_rows_f32(c.dev(src), c.dev(cells), d, len(cells), n_cols, **row)
    c.compare("set_rows_f32", f"{len(cells)}x{n_cols}", d.copy_to_host(), want.reshape(-1))


def check_rope(c: Checker, n_tokens: int) -> None:
    from kernels.cpu import ops as cpu
    from kernels.cuda import ops as gpu

    row = dict(threads=c.t.row_threads, max_blocks=c.t.max_blocks)
    n_head, head_dim = 3, 16
    pos = np.array([0, 1, 7, 300, 5000, 2][:n_tokens] + list(range(9, 9 + max(0, n_tokens - 6))),
                   np.int32)
    ff = (1.0 + c.rng.random(head_dim // 2)).astype(np.float32)
    corr = cpu.rope_yarn_corr_dims(head_dim, 4096, 10000.0, 32.0, 1.0)
    cases = [
        # name, n_dims, neox, base, scale, ext_factor, attn_factor, corr, freq factors
        ("normal", 16, False, 10000.0, 1.0, 0.0, 1.0, (0.0, 0.0), None),
        ("neox partial", 8, True, 1e6, 1.0, 0.0, 1.0, (0.0, 0.0), None),
        ("yarn", 16, True, 10000.0, 0.25, 1.0, 0.9, corr, None),
        ("linear+freq_factors", 16, False, 500000.0, 0.5, 0.0, 1.0, (0.0, 0.0), ff),
    ]
    for name, n_dims, neox, base, scale, ext, attn, (c0, c1), factors in cases:
        x = c.randn(n_tokens * n_head * head_dim, scale=2.0)
        want = x.copy()
        has_ff = factors is not None
        fa = factors if has_ff else np.zeros(1, np.float32)
        f32 = np.float32
        cpu.rope_f32(want, pos, n_tokens, n_head, head_dim, n_dims, neox, f32(base), f32(scale),
                     f32(ext), f32(attn), f32(c0), f32(c1), fa, has_ff, np.zeros(head_dim, np.float32))
        d = c.dev(x)
        gpu.launch_rope_f32(d, c.dev(pos), n_tokens, n_head, head_dim, n_dims, neox, base, scale,
                            ext, attn, c0, c1, c.dev(fa), has_ff,
                            c.dev(np.zeros(n_tokens * head_dim, np.float32)), **row)
        # 4 ulp of the row's largest value (see the module docstring)
        atol = 4 * float(np.spacing(np.float32(np.abs(x).max())))
        c.compare("rope_f32", name, d.copy_to_host(), want, max_ulp=0, atol=atol)


def _mask(n_tokens: int, n_kv: int, first_pos: int, window: int) -> np.ndarray:
    """Causal mask of tokens at first_pos.. over cells 0..n_kv-1 holding positions 0..; 0 or -inf."""
    tpos = np.arange(first_pos, first_pos + n_tokens)[:, None]
    cpos = np.arange(n_kv)[None, :]
    ok = cpos <= tpos
    if window:
        ok &= (tpos - cpos) < window
    return np.where(ok, 0.0, -np.inf).astype(np.float32).reshape(-1)


def check_attention(c: Checker, big: bool) -> None:
    from kernels.cpu import ops as cpu
    from kernels.cuda import ops as gpu

    cases = [
        # name, n_tokens, n_head, n_head_kv, hd_k, hd_v, n_kv, softcap, sgemm_kq, sgemm_kqv, window
        ("decode vec", 1, 4, 2, 16, 16, 37, 0.0, False, False, 0),
        ("prefill sgemm softcap swa", 4, 2, 1, 32, 32, 48, 30.0, True, True, 5),
        ("gqa4 sgemm-kq vec-kqv", 3, 4, 1, 80, 80, 70, 0.0, True, False, 0),
    ]
    if big:
        cases += [
            ("gpu decode", 1, 9, 3, 64, 64, 512, 0.0, False, False, 0),
            ("gpu prefill", 37, 4, 1, 256, 256, 512, 0.0, True, True, 64),
        ]
    for name, n_t, n_h, n_hkv, hdk, hdv, n_kv, cap, sk, sv, window in cases:
        q = c.randn(n_t * n_h * hdk, scale=2.0)
        k = c.randn(n_kv * n_hkv * hdk).astype(np.float16).astype(np.float32)
        v = c.randn(n_kv * n_hkv * hdv).astype(np.float16).astype(np.float32)
        mask = _mask(n_t, n_kv, n_kv - n_t - 2, window)
        scale = np.float32(1.0 / math.sqrt(hdk))
        want = np.empty(n_t * n_h * hdv, np.float32)
        cpu.attention_f16kv(q, k, v, mask, want, n_t, n_h, n_hkv, hdk, hdv, n_kv, scale,
                            np.float32(cap), sk, sv, np.empty(n_kv, np.float32),
                            np.empty(hdk, np.float32), np.empty(64, np.float32))
        d = c.dev(np.zeros(n_t * n_h * hdv, np.float32))
        gpu.launch_attention_f16kv(
            c.dev(q), c.dev(k), c.dev(v), c.dev(mask), d, n_t, n_h, n_hkv, hdk, hdv, n_kv, scale,
            cap, sk, sv, c.dev(np.zeros(n_t * n_h * n_kv, np.float32)),
            c.dev(np.zeros(n_t * n_h * hdk, np.float32)), c.dev(np.zeros(1, np.float32)),
            threads=c.t.attn_threads, max_blocks=c.t.max_blocks)
        atol = float(np.abs(v).max()) * 2.0 ** -10
        c.compare("attention_f16kv", name, d.copy_to_host(), want, max_ulp=0, atol=atol)


def check_matmul_q6_k_tiled(c: Checker, n_rows: int, n_tokens: int) -> None:
    from gguf import GGMLQuantizationType as T

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cpu import ops as cpu
    from kernels.cuda import ops as gpu

    n_cols = 512
    # random Q6_K blocks (every bit pattern of quants and scales is valid) with finite F16 scales
    w = c.rng.integers(0, 256, (n_rows * n_cols // 256, 210), dtype=np.uint8)
    w[:, 208:210] = (c.rng.random(len(w)) * 0.01).astype(np.float16).view(np.uint8).reshape(-1, 2)
    w = w.reshape(-1)
    x = c.randn(n_tokens * n_cols)
    xq = np.empty(cpu_matmul.act_nbytes(int(T.Q6_K), n_tokens, n_cols), np.uint8)
    cpu_matmul.quantize_act(x, int(T.Q6_K), n_tokens, n_cols, xq)
    f16tab = cpu.f16_table()
    want = np.empty(n_tokens * n_rows, np.float32)
    cpu.matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, want, f16tab)
    d = c.dev(np.zeros(n_tokens * n_rows, np.float32))
    gpu.launch_matmul_q6_k_tiled(c.dev(w), n_rows, n_cols, c.dev(xq), n_tokens, d, c.dev(f16tab),
                                 threads=c.t.elementwise_threads, max_blocks=c.t.max_blocks)
    c.compare("matmul_q6_k_tiled", f"{n_rows}x{n_cols} x {n_tokens}", d.copy_to_host(), want)


def check_matmul_float_ggml(c: Checker, n_rows: int, n_tokens: int) -> None:
    """Bit-equal with the CPU in all four orders: sgemm or vec_dot, F32 or F16-rounded x."""
    from kernels.cpu import ops as cpu
    from kernels.cuda import ops as gpu

    n_cols = 80  # one 64-lane block and a tail of 16 (vec_dot), five 16-lane steps (sgemm)
    w = c.randn(n_rows * n_cols)
    x = c.randn(n_tokens * n_cols)
    for sgemm in (True, False):
        for round_x16 in (True, False):
            want = np.empty(n_tokens * n_rows, np.float32)
            cpu.matmul_float_ggml(w, n_rows, n_cols, x, n_tokens, want, sgemm, round_x16,
                                  np.empty(n_cols, np.float32), np.empty(64, np.float32))
            d = c.dev(np.zeros(n_tokens * n_rows, np.float32))
            gpu.launch_matmul_float_ggml(c.dev(w), n_rows, n_cols, c.dev(x), n_tokens, d, sgemm,
                                         round_x16, c.dev(np.zeros(n_tokens * n_cols, np.float32)),
                                         threads=c.t.elementwise_threads, max_blocks=c.t.max_blocks)
            c.compare("matmul_float_ggml", f"sgemm={sgemm} round_x16={round_x16}",
                      d.copy_to_host(), want)


def check_errors(c: Checker) -> None:
    from kernels.cuda import ops as gpu

    f = np.zeros(8, np.float32)
    cases = [
        ("short out", lambda: gpu.launch_add_f32(f, f, f[:4], 8), ValueError),
        ("wrong dtype", lambda: gpu.launch_mul_f32(f, f.astype(np.float64), f, 8), TypeError),
        ("bad row id", lambda: gpu.launch_get_rows_f32(f, np.array([4], np.int32), f, 1, 2), ValueError),
        ("threads not pow2", lambda: gpu.launch_rms_norm_f32(f, f, f, 2, 4, 1e-6, True, threads=3),
         ValueError),
        ("gqa mismatch", lambda: gpu.launch_attention_f16kv(f, f, f, f, f, 1, 3, 2, 4, 4, 1, 1.0,
                                                            0.0, False, False, f, f, f), ValueError),
    ]
    for name, call, exc in cases:
        try:
            call()
            ok = False
        except exc:
            ok = True
        c.report("errors", name, ok)


def main(argv: list[str]) -> int:
    np.seterr(all="ignore")  # inf/nan edge values are part of the inputs
    gpu = "--gpu" in argv
    if not gpu:
        assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
        # each syncthreads() waits for the simulator's polling thread, which otherwise holds the
        # GIL for the default 5 ms switch interval
        sys.setswitchinterval(1e-5)
    c = Checker(gpu)
    check_elementwise(c, 100003 if gpu else 45)
    check_rows(c, *((64, 4096) if gpu else (3, 24)))
    check_rope(c, 300 if gpu else 4)
    check_attention(c, big=gpu)
    check_matmul_q6_k_tiled(c, *((300, 37) if gpu else (5, 3)))
    check_matmul_float_ggml(c, *((300, 37) if gpu else (5, 3)))
    check_errors(c)
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
