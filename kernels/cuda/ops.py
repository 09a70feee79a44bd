"""CUDA twins of kernels.cpu.ops: the element-wise, row and attention ops of the decoder graph.

Each kernel has the name, argument order and meaning of its CPU twin (the specification); a host
launcher `launch_<name>(...)` next to it checks dtypes and lengths (Numba does not bounds-check),
works out the grid from the sizes (block sizes from kernels/cuda/tuning.py) and launches. One
thread does what one iteration of the CPU outer loop does for element-wise ops; one block does it
for row ops (rms_norm, rope, get_rows, swiglu, add_rows) and for attention (one block per
(token, head)). Every kernel loops grid-stride, so any launch size is correct.

Numerics follow the CPU kernels, which follow ggml-cpu: the same float32 operation order,
ggml_v_expf, the AVX-512 lane orders of the F16 dot products (dot_sgemm16 / dot_vec_f16), F16
rounding to nearest even. Where this file differs on purpose:
- sums the CPU keeps in double, left to right (rms_norm's sum of squares, softmax's sum of
  exponentials) are summed per thread then by a shared-memory tree; in double, the float32
  result is the same except where the two double sums straddle a float32 rounding boundary.
- libm float functions (cosf, sinf, powf, logf, expf, tanhf) are evaluated in double and rounded
  to float32 (correctly rounded in practice; glibc's float versions are within ~0.5 ulp), because
  CUDA's float versions are only accurate to 1-2 ulp.
- NVVM contracts a*b + c into an FMA by default; where the CPU rounds the product first, the
  kernels use `mul_rn`/`add_rn` (libdevice __fmul_rn/__fadd_rn, never contracted).
F16 values of the KV cache are held as float32 (exact), as the CPU context holds them.
`numba.cuda` is imported only inside kernels/cuda.
"""

import math

import numpy as np
from numba import cuda

from kernels.cuda import tuning
from kernels.cuda.quants_base import f32_from_bits, read_u32
from kernels.cuda.ops_base import (add_rn, device, dot_sgemm16, dot_vec_f16, dot_vec_f16_strided,
                                   expf_libm, f32_to_f16_bits, fma32, mul_rn, reduce16,
                                   round_f16, v_expf)

_ROW_MAX = tuning.ROW_THREADS_MAX
_ATTN_MAX = tuning.ATTN_THREADS_MAX


@device
def _tree_sum_f64(partial, tid, nthreads):
    """partial[0] = sum of partial[:nthreads] (a power of two): pairs at distance n/2, n/4 .. 1."""
    s = nthreads // 2
    while s > 0:
        if tid < s:
            partial[tid] += partial[tid + s]
        cuda.syncthreads()
        s //= 2


@device
def _tree_max_f32(partial, tid, nthreads):
    """partial[0] = max of partial[:nthreads] (a power of two), same pairing as _tree_sum_f64."""
    s = nthreads // 2
    while s > 0:
        if tid < s and partial[tid + s] > partial[tid]:
            partial[tid] = partial[tid + s]
        cuda.syncthreads()
        s //= 2


# ---------------------------------------------------------------------------------------------
# F16 conversion


@cuda.jit(cache=True)
def f32_to_f16_array(x, out, n):
    """out[i] = f16 bits of x[i]; x: float32[n], out: uint16[n]. One thread per element."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = f32_to_f16_bits(x[i])


# ---------------------------------------------------------------------------------------------
# Norms and element-wise ops


@cuda.jit(cache=True)
def rms_norm_f32(x, w, out, n_rows, n_cols, eps, has_w):
    """out[r] = x[r] * 1/sqrtf(mean(x[r]^2) + eps) (* w); one block per row.

    The sum of squares is in double: each thread sums its columns (c = tid, tid + blockDim, ...)
    left to right, then _tree_sum_f64 adds the thread sums (the CPU adds left to right).
    """
    partial = cuda.shared.array(_ROW_MAX, np.float64)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    for r in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        base = r * n_cols
        s = 0.0
        for c in range(tid, n_cols, nt):
            v = x[base + c]
            s += np.float64(mul_rn(v, v))
        partial[tid] = s
        cuda.syncthreads()
        _tree_sum_f64(partial, tid, nt)
        mean = np.float32(partial[0] / n_cols)
        scale = np.float32(1.0) / np.float32(math.sqrt(np.float32(mean + eps)))
        for c in range(tid, n_cols, nt):
            if has_w:
                out[base + c] = mul_rn(mul_rn(x[base + c], scale), w[c])
            else:
                out[base + c] = mul_rn(x[base + c], scale)
        cuda.syncthreads()


@cuda.jit(cache=True)
def add_f32(a, b, out, n):
    """out = a + b; float32[n]."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


@cuda.jit(cache=True)
def add_rows_f32(x, b, out, n_rows, n_cols):
    """out[r] = x[r] + b (a bias broadcast over rows); one block per row."""
    for r in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        base = r * n_cols
        for c in range(cuda.threadIdx.x, n_cols, cuda.blockDim.x):
            out[base + c] = x[base + c] + b[c]


@cuda.jit(cache=True)
def mul_f32(a, b, out, n):
    """out = a * b; float32[n]."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@cuda.jit(cache=True)
def scale_f32(x, s, out, n):
    """out = x * s; float32[n], s float32."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = x[i] * s


@device
def _silu_at(v, i, n16):
    """silu as the CPU computes element i: ggml_v_silu below n16, ggml_silu_f32 (expf) after."""
    e = v_expf(-v) if i < n16 else expf_libm(-v)
    return np.float32(v / (np.float32(1.0) + e))


@cuda.jit(cache=True)
def silu_f32(x, out, n):
    """out = x / (1 + exp(-x)); ggml_v_silu on blocks of 16, expf on the tail."""
    n16 = n & ~15
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = _silu_at(x[i], i, n16)


@cuda.jit(cache=True)
def swiglu_f32(x, g, out, n_rows, n_cols, x_stride, g_stride):
    """out[r] = silu(x[r]) * g[r]; rows of x and g start at r*x_stride and r*g_stride.
    One block per row."""
    n16 = n_cols & ~15
    for r in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
        xb = r * x_stride
        gb = r * g_stride
        ob = r * n_cols
        for c in range(cuda.threadIdx.x, n_cols, cuda.blockDim.x):
            out[ob + c] = mul_rn(_silu_at(x[xb + c], c, n16), g[gb + c])


@cuda.jit(cache=True)
def gelu_f32(x, out, n, gelu_table):
    """out = gelu_tanh(x) through ggml's F16 table; gelu_table: float32[65536]."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        v = x[i]
        if v <= np.float32(-10.0):
            out[i] = np.float32(0.0)
        elif v >= np.float32(10.0):
            out[i] = v
        else:
            out[i] = gelu_table[f32_to_f16_bits(v)]


@cuda.jit(cache=True)
def geglu_f32(x, g, out, n, gelu_table):
    """out = gelu_tanh(x) * g through ggml's F16 table (ggml_vec_geglu_f32)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        v = x[i]
        if v <= np.float32(-10.0):
            out[i] = np.float32(0.0)
        elif v >= np.float32(10.0):
            out[i] = v * g[i]
        else:
            out[i] = gelu_table[f32_to_f16_bits(v)] * g[i]


@cuda.jit(cache=True)
def tanh_softcap_f32(x, out, n, cap):
    """out = tanh(x / cap) * cap (ggml_scale, ggml_tanh, ggml_scale)."""
    inv = np.float32(1.0) / cap
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        t = np.float32(math.tanh(np.float64(mul_rn(x[i], inv))))
        out[i] = mul_rn(t, cap)


@cuda.jit(cache=True)
def get_rows_f32(table, ids, out, n_ids, n_cols):
    """out[i] = table[ids[i]]; one block per id (ids checked by the launcher)."""
    for i in range(cuda.blockIdx.x, n_ids, cuda.gridDim.x):
        src = ids[i] * n_cols
        dst = i * n_cols
        for c in range(cuda.threadIdx.x, n_cols, cuda.blockDim.x):
            out[dst + c] = table[src + c]


@cuda.jit(cache=True)
def get_rows_f16(table, ids, out, n_ids, n_cols, f16tab):
    """out[i] = f32(table[ids[i]]); table: uint16 F16 bits; one block per id."""
    for i in range(cuda.blockIdx.x, n_ids, cuda.gridDim.x):
        src = ids[i] * n_cols
        dst = i * n_cols
        for c in range(cuda.threadIdx.x, n_cols, cuda.blockDim.x):
            out[dst + c] = f16tab[table[src + c]]


@cuda.jit(cache=True)
def set_rows_f16(x, ids, dst, n_ids, n_cols):
    """dst[ids[i]] = x[i] rounded to F16 (held as float32): the KV-cache store (ggml_set_rows into
    an F16 cache; the CPU context rounds with astype(float16)). One block per row."""
    for i in range(cuda.blockIdx.x, n_ids, cuda.gridDim.x):
        src = i * n_cols
        d = ids[i] * n_cols
        for c in range(cuda.threadIdx.x, n_cols, cuda.blockDim.x):
            dst[d + c] = round_f16(x[src + c])


@cuda.jit(cache=True)
def set_rows_f32(x, ids, dst, n_ids, n_cols):
    """dst[ids[i]] = x[i] (a row scatter, the inverse of get_rows_f32). One block per row."""
    for i in range(cuda.blockIdx.x, n_ids, cuda.gridDim.x):
        src = i * n_cols
        d = ids[i] * n_cols
        for c in range(cuda.threadIdx.x, n_cols, cuda.blockDim.x):
            dst[d + c] = x[src + c]


# ---------------------------------------------------------------------------------------------
# RoPE


@cuda.jit(cache=True)
def rope_f32(x, pos, n_tokens, n_head, head_dim, n_dims, neox, freq_base, freq_scale,
             ext_factor, attn_factor, corr0, corr1, freq_factors, has_ff, cache):
    """Rotate x in place, one block per token; cache: float32[n_tokens * head_dim] scratch (the
    CPU's cache row, one per token). Thread 0 fills the token's cos/sin row (theta is a running
    float32 product, so the order matters), then the threads rotate the (head, pair) values."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    expo = np.float32(np.float32(-2.0) / np.float32(n_dims))
    theta_scale = np.float32(math.pow(np.float64(freq_base), np.float64(expo)))
    half = n_dims // 2
    for t in range(cuda.blockIdx.x, n_tokens, cuda.gridDim.x):
        cb = t * head_dim
        if tid == 0:
            theta = np.float32(pos[t])
            for i0 in range(0, n_dims, 2):  # ggml fills the cache over ne0; only n_dims are used
                ff = np.float32(1.0)
                if has_ff:
                    ff = freq_factors[i0 // 2]
                theta_extrap = np.float32(theta / ff)
                theta_interp = mul_rn(freq_scale, theta_extrap)
                th = theta_interp
                mscale = np.float32(attn_factor)
                if ext_factor != 0.0:
                    den = np.float32(corr1 - corr0)
                    if den < np.float32(0.001):  # max(0.001, corr1 - corr0)
                        den = np.float32(0.001)
                    y = np.float32(np.float32(np.float32(i0 // 2) - corr0) / den)
                    if y < np.float32(0.0):  # min(1, max(0, y)); max/min fail to type in CUDA
                        y = np.float32(0.0)
                    if y > np.float32(1.0):
                        y = np.float32(1.0)
                    ramp = np.float32(np.float32(1.0) - y)
                    ramp_mix = mul_rn(ramp, ext_factor)
                    th = add_rn(mul_rn(theta_interp, np.float32(np.float32(1.0) - ramp_mix)),
                                 mul_rn(theta_extrap, ramp_mix))
                    lg = np.float32(math.log(np.float64(np.float32(np.float32(1.0) / freq_scale))))
                    mscale = mul_rn(mscale, add_rn(np.float32(1.0), mul_rn(np.float32(0.1), lg)))
                cache[cb + i0] = mul_rn(np.float32(math.cos(np.float64(th))), mscale)
                cache[cb + i0 + 1] = mul_rn(np.float32(math.sin(np.float64(th))), mscale)
                theta = mul_rn(theta, theta_scale)
        cuda.syncthreads()
        for k in range(tid, n_head * half, nt):
            h = k // half
            ic = k - h * half
            i0 = 2 * ic
            base = (t * n_head + h) * head_dim
            c = cache[cb + i0]
            s = cache[cb + i0 + 1]
            if neox:
                a = base + ic
                b = base + ic + half
            else:
                a = base + i0
                b = base + i0 + 1
            x0 = x[a]
            x1 = x[b]
            x[a] = fma32(x0, c, -mul_rn(x1, s))
            x[b] = fma32(x0, s, mul_rn(x1, c))
        cuda.syncthreads()


# ---------------------------------------------------------------------------------------------
# Attention over an F16 KV cache


@cuda.jit(cache=True)
def attention_f16kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """Masked GQA attention (llama.cpp's non-flash path), one block per (token, head).

    Arrays as kernels.cpu.ops.attention_f16kv, except the scratch, which holds one row per
    (token, head) item: scores float32[n_tokens*n_head*n_kv], q16
    float32[n_tokens*n_head*head_dim_k]; `lanes` is unused (each thread keeps its lanes in
    local memory) and may be any float32 array. Threads split the cells for kq, soft-capping,
    scale, mask, max and exp, then the output values for kqv; each score and each output is
    summed in the CPU's lane order. The max is a shared-memory tree (exact); the sum of the
    exponentials is per thread (its groups of 16 in order) then a double shared-memory tree
    (pairs at distance blockDim/2 .. 1), where the CPU adds the groups left to right in double.
    """
    smax = cuda.shared.array(_ATTN_MAX, np.float32)
    ssum = cuda.shared.array(_ATTN_MAX, np.float64)
    loc = cuda.local.array(64, np.float32)
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    n_gqa = n_head // n_head_kv
    row_k = n_head_kv * head_dim_k
    row_v = n_head_kv * head_dim_v
    n16 = n_kv & ~15
    inv_cap = np.float32(0.0)
    if softcap != 0.0:
        inv_cap = np.float32(np.float32(1.0) / softcap)
    for item in range(cuda.blockIdx.x, n_tokens * n_head, cuda.gridDim.x):
        t = item // n_head
        h = item - t * n_head
        hk = h // n_gqa
        qb = item * head_dim_k
        sb = item * n_kv
        mrow = t * n_kv
        for d in range(tid, head_dim_k, nt):
            q16[qb + d] = round_f16(q[qb + d])
        cuda.syncthreads()
        mx = np.float32(-math.inf)
        for j in range(tid, n_kv, nt):
            m = mask[mrow + j]
            if m == -math.inf:
                scores[sb + j] = m
                continue
            kb = j * row_k + hk * head_dim_k
            if sgemm_kq:
                v = dot_sgemm16(q16, qb, k_cache, kb, head_dim_k, loc)
            else:
                v = dot_vec_f16(k_cache, kb, q16, qb, head_dim_k, loc)
            if softcap != 0.0:
                v = mul_rn(np.float32(math.tanh(np.float64(mul_rn(v, inv_cap)))), softcap)
            v = add_rn(mul_rn(v, kq_scale), m)
            scores[sb + j] = v
            if v > mx:
                mx = v
        smax[tid] = mx
        cuda.syncthreads()
        _tree_max_f32(smax, tid, nt)
        mx = smax[0]
        total = 0.0
        for j0 in range(16 * tid, n16, 16 * nt):
            for i in range(16):
                e = v_expf(np.float32(scores[sb + j0 + i] - mx))
                scores[sb + j0 + i] = e
                loc[i] = e
            total += np.float64(reduce16(loc, 0))
        for j in range(n16 + tid, n_kv, nt):
            e = expf_libm(np.float32(scores[sb + j] - mx))
            scores[sb + j] = e
            total += np.float64(e)
        ssum[tid] = total
        cuda.syncthreads()
        _tree_sum_f64(ssum, tid, nt)
        inv = np.float32(1.0 / ssum[0])
        for j in range(tid, n_kv, nt):
            scores[sb + j] = round_f16(mul_rn(scores[sb + j], inv))
        cuda.syncthreads()
        ob = item * head_dim_v
        for d in range(tid, head_dim_v, nt):
            vb = hk * head_dim_v + d
            if sgemm_kqv:
                for i in range(16):
                    loc[i] = np.float32(0.0)
                for j in range(n_kv):
                    p = scores[sb + j]
                    if p != 0.0:
                        loc[j & 15] = fma32(v_cache[j * row_v + vb], p, loc[j & 15])
                out[ob + d] = reduce16(loc, 0)
            else:
                out[ob + d] = dot_vec_f16_strided(v_cache, vb, row_v, scores, sb, n_kv, loc)
        cuda.syncthreads()


# ---------------------------------------------------------------------------------------------
# F32 / F16 weights in ggml-cpu's float order


@cuda.jit(cache=True)
def matmul_float_ggml(w, n_rows, n_cols, x, n_tokens, out, sgemm, round_x16, xs, lanes):
    """out[t*n_rows + r] = dot(w row r, x row t) for F32/F16 weights held as float32 values, in
    the CPU's order (kernels.cpu.ops.matmul_float_ggml): tinyBLAS<16> when `sgemm`, else
    ggml_vec_dot_f16's 64 lanes; bit-equal with the CPU. One thread per output (t, r), its lanes
    in local memory (`lanes` is unused). xs: float32[n_tokens*n_cols], the activation rounded to
    F16 when round_x16 (launch_matmul_float_ggml fills it first: the CPU's per-token xs).
    """
    loc = cuda.local.array(64, np.float32)
    for item in range(cuda.grid(1), n_tokens * n_rows, cuda.gridsize(1)):
        t = item // n_rows
        r = item - t * n_rows
        if round_x16:
            if sgemm:
                v = dot_sgemm16(w, r * n_cols, xs, t * n_cols, n_cols, loc)
            else:
                v = dot_vec_f16(w, r * n_cols, xs, t * n_cols, n_cols, loc)
        elif sgemm:
            v = dot_sgemm16(w, r * n_cols, x, t * n_cols, n_cols, loc)
        else:
            v = dot_vec_f16(w, r * n_cols, x, t * n_cols, n_cols, loc)
        out[item] = v


@cuda.jit(cache=True)
def _round_f16_f32(x, out, n):
    """out[i] = x[i] rounded to the nearest F16, as float32 (the CPU's xs of matmul_float_ggml)."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[i] = round_f16(x[i])


# ---------------------------------------------------------------------------------------------
# Q6_K x Q8_K with the float order of ggml-cpu/tiled (llama.cpp's default for batches >= 8 rows)


@cuda.jit(cache=True)
def matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, out, f16tab):
    """out[t*n_rows + r] = row r of a Q6_K weight times activation t (already Q8_K blocks).

    One thread per output (t, r), super-blocks in order as on the CPU: the exact integer sum of
    a super-block, res = float(isum) * d_w, buf = fma(res, d_x, buf); bit-exact with the CPU.
    """
    nb = n_cols // 256
    for item in range(cuda.grid(1), n_tokens * n_rows, cuda.gridsize(1)):
        t = item // n_rows
        r = item - t * n_rows
        xbase = t * nb * 292
        wbase = r * nb * 210
        buf = np.float32(0.0)
        for b in range(nb):
            wb = wbase + b * 210
            xb = xbase + b * 292
            dx = f32_from_bits(read_u32(xq, xb))
            xs = xb + 4
            isum = 0
            for n in range(2):
                for l in range(32):
                    ql0 = np.int64(w[wb + 64 * n + l])
                    ql1 = np.int64(w[wb + 64 * n + l + 32])
                    qh = np.int64(w[wb + 128 + 32 * n + l])
                    e = 128 * n + l
                    for k in range(4):
                        if k == 0:
                            q = ((ql0 & 0xF) | ((qh & 3) << 4)) - 32
                        elif k == 1:
                            q = ((ql1 & 0xF) | (((qh >> 2) & 3) << 4)) - 32
                        elif k == 2:
                            q = ((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32
                        else:
                            q = ((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32
                        ei = e + 32 * k
                        xv = np.int64(xq[xs + ei])
                        if xv >= 128:
                            xv -= 256
                        sc = np.int64(w[wb + 192 + ei // 16])
                        if sc >= 128:
                            sc -= 256
                        isum += sc * q * xv
            d = f16tab[np.int64(w[wb + 208]) | (np.int64(w[wb + 209]) << 8)]
            res = mul_rn(np.float32(isum), d)
            buf = fma32(res, dx, buf)
        out[t * n_rows + r] = buf


# ---------------------------------------------------------------------------------------------
# Host launchers: check, size the grid, launch. Arrays may be NumPy (copied by Numba) or device
# arrays; every array is 1-D and at least as long as the sizes need.


def _check(name: str, a, dtype, n: int) -> None:
    if a.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if a.size < n:
        raise ValueError(f"{name}: needs {n} values, has {a.size}")


def _pow2(name: str, threads: int, limit: int) -> int:
    threads = int(threads)
    if threads < 1 or threads > limit or threads & (threads - 1):
        raise ValueError(f"{name}: threads_per_block must be a power of two <= {limit}, got {threads}")
    return threads


def _blocks(n_items: int, per_block: int, max_blocks: int) -> int:
    return max(1, min(int(max_blocks), -(-int(n_items) // per_block)))


def _ids(name: str, ids, n_ids: int, n_rows: int) -> None:
    _check(name, ids, np.int32, n_ids)
    if isinstance(ids, np.ndarray) and n_ids and (ids[:n_ids].min() < 0 or ids[:n_ids].max() >= n_rows):
        raise ValueError(f"{name}: row ids must be in [0, {n_rows})")


def launch_f32_to_f16_array(x, out, n, threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n)
    _check("out", out, np.uint16, n)
    f32_to_f16_array[_blocks(n, threads, max_blocks), threads](x, out, n)


def launch_rms_norm_f32(x, w, out, n_rows, n_cols, eps, has_w, threads=tuning.ROW_THREADS,
                        max_blocks=tuning.MAX_BLOCKS):
    threads = _pow2("rms_norm_f32", threads, _ROW_MAX)
    _check("x", x, np.float32, n_rows * n_cols)
    _check("out", out, np.float32, n_rows * n_cols)
    _check("w", w, np.float32, n_cols if has_w else 0)
    rms_norm_f32[_blocks(n_rows, 1, max_blocks), threads](x, w, out, n_rows, n_cols,
                                                          np.float32(eps), bool(has_w))


def launch_add_f32(a, b, out, n, threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    for name, arr in (("a", a), ("b", b), ("out", out)):
        _check(name, arr, np.float32, n)
    add_f32[_blocks(n, threads, max_blocks), threads](a, b, out, n)


def launch_add_rows_f32(x, b, out, n_rows, n_cols, threads=tuning.ROW_THREADS,
                        max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n_rows * n_cols)
    _check("out", out, np.float32, n_rows * n_cols)
    _check("b", b, np.float32, n_cols)
    add_rows_f32[_blocks(n_rows, 1, max_blocks), threads](x, b, out, n_rows, n_cols)


def launch_mul_f32(a, b, out, n, threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    for name, arr in (("a", a), ("b", b), ("out", out)):
        _check(name, arr, np.float32, n)
    mul_f32[_blocks(n, threads, max_blocks), threads](a, b, out, n)


def launch_scale_f32(x, s, out, n, threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n)
    _check("out", out, np.float32, n)
    scale_f32[_blocks(n, threads, max_blocks), threads](x, np.float32(s), out, n)


def launch_silu_f32(x, out, n, threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n)
    _check("out", out, np.float32, n)
    silu_f32[_blocks(n, threads, max_blocks), threads](x, out, n)


def launch_swiglu_f32(x, g, out, n_rows, n_cols, x_stride, g_stride, threads=tuning.ROW_THREADS,
                      max_blocks=tuning.MAX_BLOCKS):
    if n_rows and (x_stride < n_cols or g_stride < n_cols):
        raise ValueError("swiglu_f32: row strides must be >= n_cols")
    last = (n_rows - 1) if n_rows else 0
    _check("x", x, np.float32, last * x_stride + n_cols if n_rows else 0)
    _check("g", g, np.float32, last * g_stride + n_cols if n_rows else 0)
    _check("out", out, np.float32, n_rows * n_cols)
    swiglu_f32[_blocks(n_rows, 1, max_blocks), threads](x, g, out, n_rows, n_cols, x_stride, g_stride)


def launch_gelu_f32(x, out, n, gelu_table, threads=tuning.ELEMENTWISE_THREADS,
                    max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n)
    _check("out", out, np.float32, n)
    _check("gelu_table", gelu_table, np.float32, 65536)
    gelu_f32[_blocks(n, threads, max_blocks), threads](x, out, n, gelu_table)


def launch_geglu_f32(x, g, out, n, gelu_table, threads=tuning.ELEMENTWISE_THREADS,
                     max_blocks=tuning.MAX_BLOCKS):
    for name, arr in (("x", x), ("g", g), ("out", out)):
        _check(name, arr, np.float32, n)
    _check("gelu_table", gelu_table, np.float32, 65536)
    geglu_f32[_blocks(n, threads, max_blocks), threads](x, g, out, n, gelu_table)


def launch_tanh_softcap_f32(x, out, n, cap, threads=tuning.ELEMENTWISE_THREADS,
                            max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n)
    _check("out", out, np.float32, n)
    if cap == 0:
        raise ValueError("tanh_softcap_f32: cap must be non-zero")
    tanh_softcap_f32[_blocks(n, threads, max_blocks), threads](x, out, n, np.float32(cap))


def launch_get_rows_f32(table, ids, out, n_ids, n_cols, threads=tuning.ROW_THREADS,
                        max_blocks=tuning.MAX_BLOCKS):
    _check("table", table, np.float32, n_cols)
    _ids("ids", ids, n_ids, table.size // max(n_cols, 1))
    _check("out", out, np.float32, n_ids * n_cols)
    get_rows_f32[_blocks(n_ids, 1, max_blocks), threads](table, ids, out, n_ids, n_cols)


def launch_get_rows_f16(table, ids, out, n_ids, n_cols, f16tab, threads=tuning.ROW_THREADS,
                        max_blocks=tuning.MAX_BLOCKS):
    _check("table", table, np.uint16, n_cols)
    _ids("ids", ids, n_ids, table.size // max(n_cols, 1))
    _check("out", out, np.float32, n_ids * n_cols)
    _check("f16tab", f16tab, np.float32, 65536)
    get_rows_f16[_blocks(n_ids, 1, max_blocks), threads](table, ids, out, n_ids, n_cols, f16tab)


def launch_set_rows_f16(x, ids, dst, n_ids, n_cols, threads=tuning.ROW_THREADS,
                        max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n_ids * n_cols)
    _check("dst", dst, np.float32, n_cols)
    _ids("ids", ids, n_ids, dst.size // max(n_cols, 1))
    set_rows_f16[_blocks(n_ids, 1, max_blocks), threads](x, ids, dst, n_ids, n_cols)


def launch_set_rows_f32(x, ids, dst, n_ids, n_cols, threads=tuning.ROW_THREADS,
                        max_blocks=tuning.MAX_BLOCKS):
    _check("x", x, np.float32, n_ids * n_cols)
    _check("dst", dst, np.float32, n_cols)
    _ids("ids", ids, n_ids, dst.size // max(n_cols, 1))
    set_rows_f32[_blocks(n_ids, 1, max_blocks), threads](x, ids, dst, n_ids, n_cols)


def launch_rope_f32(x, pos, n_tokens, n_head, head_dim, n_dims, neox, freq_base, freq_scale,
                    ext_factor, attn_factor, corr0, corr1, freq_factors, has_ff, cache,
                    threads=tuning.ROW_THREADS, max_blocks=tuning.MAX_BLOCKS):
    if n_dims % 2 or n_dims > head_dim or head_dim % 2:
        raise ValueError(f"rope_f32: n_dims={n_dims} must be even and <= head_dim={head_dim} (even)")
    _check("x", x, np.float32, n_tokens * n_head * head_dim)
    _check("pos", pos, np.int32, n_tokens)
    _check("freq_factors", freq_factors, np.float32, head_dim // 2 if has_ff else 0)
    _check("cache", cache, np.float32, n_tokens * head_dim)
    f32 = np.float32
    rope_f32[_blocks(n_tokens, 1, max_blocks), threads](
        x, pos, n_tokens, n_head, head_dim, n_dims, bool(neox), f32(freq_base), f32(freq_scale),
        f32(ext_factor), f32(attn_factor), f32(corr0), f32(corr1), freq_factors, bool(has_ff), cache)


def launch_attention_f16kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv,
                           head_dim_k, head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv,
                           scores, q16, lanes, threads=tuning.ATTN_THREADS,
                           max_blocks=tuning.MAX_BLOCKS):
    threads = _pow2("attention_f16kv", threads, _ATTN_MAX)
    if n_head_kv <= 0 or n_head % n_head_kv:
        raise ValueError(f"attention_f16kv: n_head={n_head} is not a multiple of n_head_kv={n_head_kv}")
    if sgemm_kq and head_dim_k % 16:
        raise ValueError("attention_f16kv: the sgemm kq order needs head_dim_k % 16 == 0")
    _check("q", q, np.float32, n_tokens * n_head * head_dim_k)
    _check("k_cache", k_cache, np.float32, n_kv * n_head_kv * head_dim_k)
    _check("v_cache", v_cache, np.float32, n_kv * n_head_kv * head_dim_v)
    _check("mask", mask, np.float32, n_tokens * n_kv)
    _check("out", out, np.float32, n_tokens * n_head * head_dim_v)
    _check("scores", scores, np.float32, n_tokens * n_head * n_kv)
    _check("q16", q16, np.float32, n_tokens * n_head * head_dim_k)
    _check("lanes", lanes, np.float32, 1)
    attention_f16kv[_blocks(n_tokens * n_head, 1, max_blocks), threads](
        q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k, head_dim_v, n_kv,
        np.float32(kq_scale), np.float32(softcap), bool(sgemm_kq), bool(sgemm_kqv), scores, q16,
        lanes)


def launch_matmul_float_ggml(w, n_rows, n_cols, x, n_tokens, out, sgemm, round_x16, xs,
                             threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    """xs: float32[n_tokens*n_cols] scratch (filled here when round_x16)."""
    if sgemm and n_cols % 16:
        raise ValueError("matmul_float_ggml: the sgemm order needs n_cols % 16 == 0")
    _check("w", w, np.float32, n_rows * n_cols)
    _check("x", x, np.float32, n_tokens * n_cols)
    _check("out", out, np.float32, n_tokens * n_rows)
    _check("xs", xs, np.float32, n_tokens * n_cols if round_x16 else 0)
    if round_x16:
        _round_f16_f32[_blocks(n_tokens * n_cols, threads, max_blocks), threads](
            x, xs, n_tokens * n_cols)
    matmul_float_ggml[_blocks(n_tokens * n_rows, threads, max_blocks), threads](
        w, n_rows, n_cols, x, n_tokens, out, bool(sgemm), bool(round_x16), xs, xs)


def launch_matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, out, f16tab,
                             threads=tuning.ELEMENTWISE_THREADS, max_blocks=tuning.MAX_BLOCKS):
    if n_cols % 256:
        raise ValueError(f"matmul_q6_k_tiled: n_cols={n_cols} is not a multiple of 256")
    _check("w", w, np.uint8, n_rows * (n_cols // 256) * 210)
    _check("xq", xq, np.uint8, n_tokens * (n_cols // 256) * 292)
    _check("out", out, np.float32, n_tokens * n_rows)
    _check("f16tab", f16tab, np.float32, 65536)
    matmul_q6_k_tiled[_blocks(n_tokens * n_rows, threads, max_blocks), threads](
        w, n_rows, n_cols, xq, n_tokens, out, f16tab)
