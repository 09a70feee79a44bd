"""Element-wise and row ops of the decoder graph, with ggml-cpu's numerics.

Follows ggml/src/ggml-cpu/ops.cpp and vec.h/vec.cpp (x86 build):
- `rms_norm_f32`: sum of squares in double (`ggml_float`), `scale = 1/sqrtf(mean + eps)`, then
  `x * scale` and the weight multiply in float32 (ggml_compute_forward_rms_norm_f32 + ggml_mul).
- `rope_f32`: the per-position cos/sin cache of ggml_rope_cache_init (theta multiplied by
  `theta_scale` cumulatively in float32, YaRN ramp, freq factors), NORMAL (adjacent pairs) and
  NEOX (halves) modes.
- `attention_f16kv`: llama.cpp's non-flash-attention path: `kq = mul_mat(k_f16, q)` (q rounded to
  F16, the vec_dot_type of F16), optional tanh soft-capping, `soft_max_ext` (scale, additive
  mask, max, exp, sum in double, multiply by float(1/sum)), then `kqv = mul_mat(v_f16, kq)` (the
  probabilities rounded to F16). Dot products accumulate in double here where ggml uses SIMD
  float32 lanes: both are within float32 rounding of the exact sum.
- `geglu_f32` uses ggml's F16 GELU table (GGML_GELU_FP16): `gelu(f16(x))` rounded to F16.
- `swiglu_f32`: `silu(x) * g` in float32 (ggml_vec_swiglu_f32).
F16 values are stored as uint16 bit patterns; `f32_to_f16_bits` rounds to nearest even like
ggml_compute_fp32_to_fp16 and F16C, and `f16_table()` maps all 65536 patterns back to float32.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import types
from numba.extending import intrinsic

ROPE_NORMAL = 0  # GGML_ROPE_TYPE_NORMAL
ROPE_NEOX = 2  # GGML_ROPE_TYPE_NEOX
GELU_COEF_A = np.float32(0.044715)
SQRT_2_OVER_PI = np.float32(0.79788456080286535587989211986876)


# ---------------------------------------------------------------------------------------------
# F16 conversion


@intrinsic
def _f32_as_u32(typingctx, x):
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@njit(cache=True, nogil=True, inline="always")
def f32_to_f16_bits(x):
    """Round a float32 to the nearest F16 (ties to even); returns the uint16 bit pattern."""
    w = np.uint32(_f32_as_u32(np.float32(x)))
    sign = np.uint32((w >> np.uint32(16)) & np.uint32(0x8000))
    a = w & np.uint32(0x7FFFFFFF)
    if a > np.uint32(0x7F800000):
        return np.uint16(sign | np.uint32(0x7E00))
    if a >= np.uint32(0x477FF000):
        return np.uint16(sign | np.uint32(0x7C00))
    if a < np.uint32(0x38800000):
        if a < np.uint32(0x33000000):
            return np.uint16(sign)
        e = np.int64(a >> np.uint32(23))
        m = np.int64((a & np.uint32(0x7FFFFF)) | np.uint32(0x800000))
        shift = 126 - e
        r = m >> shift
        rem = m & ((np.int64(1) << shift) - 1)
        half = np.int64(1) << (shift - 1)
        if rem > half or (rem == half and (r & 1) == 1):
            r += 1
        return np.uint16(sign | np.uint32(r))
    r = np.int64((a - np.uint32(0x38000000)) >> np.uint32(13))
    rem = np.int64(a & np.uint32(0x1FFF))
    if rem > 0x1000 or (rem == 0x1000 and (r & 1) == 1):
        r += 1
    return np.uint16(sign | np.uint32(r))


def f16_table() -> np.ndarray:
    """float32[65536]: the value of every F16 bit pattern (ggml_table_f32_f16)."""
    return np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)


def gelu_f16_table() -> np.ndarray:
    """float32[65536]: ggml_table_gelu_f16, gelu_tanh of every F16 value rounded to F16."""
    x = f16_table()
    with np.errstate(all="ignore"):
        inner = SQRT_2_OVER_PI * x * (np.float32(1.0) + GELU_COEF_A * x * x)
        y = np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner.astype(np.float32)))
    return y.astype(np.float32).astype(np.float16).astype(np.float32)


@njit(cache=True, nogil=True)
def f32_to_f16_array(x, out, n):
    """out[i] = f16 bits of x[i]; x: float32[n], out: uint16[n]."""
    for i in range(n):
        out[i] = f32_to_f16_bits(x[i])


# ---------------------------------------------------------------------------------------------
# Norms and element-wise ops


@njit(cache=True, nogil=True)
def rms_norm_f32(x, w, out, n_rows, n_cols, eps, has_w):
    """out[r] = x[r] * 1/sqrtf(mean(x[r]^2) + eps) (* w); x, out: float32[n_rows*n_cols], w: f32[n_cols]."""
    for r in range(n_rows):
        base = r * n_cols
        s = 0.0
        for c in range(n_cols):
            v = x[base + c]
            s += np.float64(np.float32(v * v))
        mean = np.float32(s / n_cols)
        scale = np.float32(1.0) / np.float32(math.sqrt(np.float32(mean + eps)))
        if has_w:
            for c in range(n_cols):
                out[base + c] = np.float32(x[base + c] * scale) * w[c]
        else:
            for c in range(n_cols):
                out[base + c] = x[base + c] * scale


@njit(cache=True, nogil=True)
def add_f32(a, b, out, n):
    """out = a + b; float32[n]."""
    for i in range(n):
        out[i] = a[i] + b[i]


@njit(cache=True, nogil=True)
def add_rows_f32(x, b, out, n_rows, n_cols):
    """out[r] = x[r] + b (a bias broadcast over rows); b: float32[n_cols]."""
    for r in range(n_rows):
        base = r * n_cols
        for c in range(n_cols):
            out[base + c] = x[base + c] + b[c]


@njit(cache=True, nogil=True)
def mul_f32(a, b, out, n):
    """out = a * b; float32[n]."""
    for i in range(n):
        out[i] = a[i] * b[i]


@njit(cache=True, nogil=True)
def scale_f32(x, s, out, n):
    """out = x * s; float32[n], s float32."""
    for i in range(n):
        out[i] = x[i] * s


@njit(cache=True, nogil=True)
def silu_f32(x, out, n):
    """out = x / (1 + exp(-x)) in float32 (ggml_silu_f32)."""
    for i in range(n):
        v = x[i]
        out[i] = v / (np.float32(1.0) + np.float32(math.exp(-v)))


@njit(cache=True, nogil=True)
def swiglu_f32(x, g, out, n_rows, n_cols, x_stride, g_stride):
    """out[r] = silu(x[r]) * g[r]; rows of x and g start at r*x_stride and r*g_stride."""
    for r in range(n_rows):
        xb = r * x_stride
        gb = r * g_stride
        ob = r * n_cols
        for c in range(n_cols):
            v = x[xb + c]
            s = v / (np.float32(1.0) + np.float32(math.exp(-v)))
            out[ob + c] = s * g[gb + c]


@njit(cache=True, nogil=True)
def gelu_f32(x, out, n, gelu_table):
    """out = gelu_tanh(x) through ggml's F16 table (ggml_vec_gelu_f32 with GGML_GELU_FP16)."""
    for i in range(n):
        v = x[i]
        if v <= np.float32(-10.0):
            out[i] = np.float32(0.0)
        elif v >= np.float32(10.0):
            out[i] = v
        else:
            out[i] = gelu_table[f32_to_f16_bits(v)]


@njit(cache=True, nogil=True)
def geglu_f32(x, g, out, n, gelu_table):
    """out = gelu_tanh(x) * g through ggml's F16 table (ggml_vec_geglu_f32)."""
    for i in range(n):
        v = x[i]
        if v <= np.float32(-10.0):
            out[i] = np.float32(0.0)
        elif v >= np.float32(10.0):
            out[i] = v * g[i]
        else:
            out[i] = gelu_table[f32_to_f16_bits(v)] * g[i]


@njit(cache=True, nogil=True)
def tanh_softcap_f32(x, out, n, cap):
    """out = tanh(x / cap) * cap (ggml_scale, ggml_tanh, ggml_scale)."""
    inv = np.float32(1.0) / cap
    for i in range(n):
        out[i] = np.float32(math.tanh(np.float32(x[i] * inv))) * cap


@njit(cache=True, nogil=True)
def get_rows_f32(table, ids, out, n_ids, n_cols):
    """out[i] = table[ids[i]]; table: float32[n_rows*n_cols], ids: int32[n_ids] (checked by caller)."""
    for i in range(n_ids):
        src = ids[i] * n_cols
        dst = i * n_cols
        for c in range(n_cols):
            out[dst + c] = table[src + c]


@njit(cache=True, nogil=True)
def get_rows_f16(table, ids, out, n_ids, n_cols, f16tab):
    """out[i] = f32(table[ids[i]]); table: uint16 F16 bits [n_rows*n_cols]."""
    for i in range(n_ids):
        src = ids[i] * n_cols
        dst = i * n_cols
        for c in range(n_cols):
            out[dst + c] = f16tab[table[src + c]]


# ---------------------------------------------------------------------------------------------
# RoPE


def rope_yarn_corr_dims(n_dims: int, n_ctx_orig: int, freq_base: float, beta_fast: float,
                        beta_slow: float) -> tuple[float, float]:
    """ggml_rope_yarn_corr_dims, in float32 like ggml.c."""
    f32 = np.float32

    def corr_dim(n_rot):
        return f32(n_dims) * f32(np.log(f32(n_ctx_orig) / (f32(n_rot) * f32(2) * f32(np.pi)))) / (
            f32(2) * f32(np.log(f32(freq_base))))

    start = np.floor(corr_dim(beta_fast))
    end = np.ceil(corr_dim(beta_slow))
    return float(max(f32(0), start)), float(min(f32(n_dims - 1), end))


@njit(cache=True, nogil=True)
def rope_f32(x, pos, n_tokens, n_head, head_dim, n_dims, neox, freq_base, freq_scale,
             ext_factor, attn_factor, corr0, corr1, freq_factors, has_ff, cache):
    """Rotate x in place; x: float32[n_tokens*n_head*head_dim], pos: int32[n_tokens],
    freq_factors: float32[>= n_dims/2] (used when has_ff), cache: float32[head_dim] scratch."""
    theta_scale = np.float32(math.pow(np.float32(freq_base), np.float32(-2.0) / np.float32(n_dims)))
    for t in range(n_tokens):
        theta = np.float32(pos[t])
        for i0 in range(0, head_dim, 2):
            ff = np.float32(1.0)
            if has_ff:
                ff = freq_factors[i0 // 2]
            theta_extrap = np.float32(theta / ff)
            theta_interp = np.float32(freq_scale * theta_extrap)
            th = theta_interp
            mscale = np.float32(attn_factor)
            if ext_factor != 0.0:
                y = np.float32((np.float32(i0 // 2) - corr0) / max(np.float32(0.001), np.float32(corr1 - corr0)))
                ramp = np.float32(1.0) - min(np.float32(1.0), max(np.float32(0.0), y))
                ramp_mix = np.float32(ramp * ext_factor)
                th = np.float32(theta_interp * (np.float32(1.0) - ramp_mix)) + np.float32(theta_extrap * ramp_mix)
                mscale = np.float32(mscale * np.float32(np.float32(1.0) + np.float32(
                    np.float32(0.1) * np.float32(math.log(np.float32(1.0) / freq_scale)))))
            cache[i0] = np.float32(math.cos(th)) * mscale
            cache[i0 + 1] = np.float32(math.sin(th)) * mscale
            theta = np.float32(theta * theta_scale)
        for h in range(n_head):
            base = (t * n_head + h) * head_dim
            if neox:
                half = n_dims // 2
                for i0 in range(0, n_dims, 2):
                    ic = i0 // 2
                    c = cache[i0]
                    s = cache[i0 + 1]
                    x0 = x[base + ic]
                    x1 = x[base + ic + half]
                    x[base + ic] = np.float32(x0 * c) - np.float32(x1 * s)
                    x[base + ic + half] = np.float32(x0 * s) + np.float32(x1 * c)
            else:
                for i0 in range(0, n_dims, 2):
                    c = cache[i0]
                    s = cache[i0 + 1]
                    x0 = x[base + i0]
                    x1 = x[base + i0 + 1]
                    x[base + i0] = np.float32(x0 * c) - np.float32(x1 * s)
                    x[base + i0 + 1] = np.float32(x0 * s) + np.float32(x1 * c)


# ---------------------------------------------------------------------------------------------
# Attention over an F16 KV cache


@njit(cache=True, nogil=True)
def attention_f16kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, f16tab, scores, q16):
    """Causal/masked GQA attention, llama.cpp's non-flash path.

    q: float32[n_tokens*n_head*head_dim_k]; k_cache: uint16 (F16) [n_kv*n_head_kv*head_dim_k];
    v_cache: uint16 (F16) [n_kv*n_head_kv*head_dim_v] (row per cell, not transposed);
    mask: float32[n_tokens*n_kv] (0 or -inf); out: float32[n_tokens*n_head*head_dim_v];
    scores: float32[n_kv] scratch; q16: float32[head_dim_k] scratch. softcap 0 means off.
    """
    n_gqa = n_head // n_head_kv
    row_k = n_head_kv * head_dim_k
    row_v = n_head_kv * head_dim_v
    acc = np.zeros(head_dim_v, dtype=np.float64)
    for t in range(n_tokens):
        mrow = t * n_kv
        for h in range(n_head):
            hk = h // n_gqa
            qb = (t * n_head + h) * head_dim_k
            for d in range(head_dim_k):
                q16[d] = f16tab[f32_to_f16_bits(q[qb + d])]
            mx = -np.inf
            for j in range(n_kv):
                kb = j * row_k + hk * head_dim_k
                s = 0.0
                for d in range(head_dim_k):
                    s += np.float64(q16[d]) * np.float64(f16tab[k_cache[kb + d]])
                v = np.float32(s)
                if softcap != 0.0:
                    v = np.float32(math.tanh(np.float32(v * np.float32(np.float32(1.0) / softcap)))) * softcap
                v = np.float32(v * kq_scale) + mask[mrow + j]
                scores[j] = v
                if v > mx:
                    mx = v
            total = 0.0
            for j in range(n_kv):
                if scores[j] == -np.inf:
                    scores[j] = np.float32(0.0)
                else:
                    e = np.float32(math.exp(np.float32(scores[j] - mx)))
                    scores[j] = e
                    total += e
            inv = np.float32(1.0 / total)
            for d in range(head_dim_v):
                acc[d] = 0.0
            for j in range(n_kv):
                p = scores[j]
                if p == 0.0:
                    continue
                p16 = np.float64(f16tab[f32_to_f16_bits(np.float32(p * inv))])
                vb = j * row_v + hk * head_dim_v
                for d in range(head_dim_v):
                    acc[d] += p16 * np.float64(f16tab[v_cache[vb + d]])
            ob = (t * n_head + h) * head_dim_v
            for d in range(head_dim_v):
                out[ob + d] = np.float32(acc[d])
