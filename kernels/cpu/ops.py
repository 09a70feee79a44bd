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
  probabilities rounded to F16). Dot products take tinyBLAS's 16 FMA lanes (prompt batches) or
  ggml_vec_dot_f16's 4 x 16 lanes with leftovers in double (single tokens), reduced as
  _mm512_reduce_add_ps.
  `attention_f32kv` is the same for an F32 cache (q and the probabilities not rounded). These two
  serial kernels are the specification of kernels/cpu/attention.py's parallel SIMD twins.
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
from numba.core import cgutils, types
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
    out = np.empty(65536, dtype=np.float32)
    _gelu_table(f16_table(), out)
    return out


@njit(cache=True, nogil=True)
def f32_to_f16_array(x, out, n):
    """out[i] = f16 bits of x[i]; x: float32[n], out: uint16[n]."""
    for i in range(n):
        out[i] = f32_to_f16_bits(x[i])


# ---------------------------------------------------------------------------------------------
# Float helpers with ggml's x86 (AVX-512) operation order


@intrinsic
def _fma32(typingctx, a, b, c):
    """a*b + c with one rounding (llvm.fma.f32, like _mm512_fmadd_ps)."""
    if not (a == types.float32 and b == types.float32 and c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32] * 3),
                                            "llvm.fma.f32")
        return builder.call(fn, list(args))

    return types.float32(types.float32, types.float32, types.float32), codegen


@intrinsic
def _u32_as_f32(typingctx, x):
    """The float32 whose bits are the low 32 bits of the integer x."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.uint32)
        return builder.bitcast(v, ir.FloatType())

    return types.float32(x), codegen


@njit(cache=True, nogil=True, inline="always")
def fma32(a, b, c):
    """Fused a*b + c in float32."""
    return _fma32(np.float32(a), np.float32(b), np.float32(c))


@njit(cache=True, nogil=True, inline="always")
def _pow2(n):
    """2**n as float32 for integer n in [-126, 127]."""
    return _u32_as_f32(np.uint32((n + 127) << 23))


_EXP_R = np.float32(float.fromhex("0x1.8p23"))
_EXP_LOG2E = np.float32(float.fromhex("0x1.715476p+0"))
_EXP_LN2_HI = np.float32(float.fromhex("0x1.62e4p-1"))
_EXP_LN2_LO = np.float32(float.fromhex("0x1.7f7d1cp-20"))
_EXP_C5 = np.float32(float.fromhex("0x1.0e4020p-7"))
_EXP_C4 = np.float32(float.fromhex("0x1.573e2ep-5"))
_EXP_C3 = np.float32(float.fromhex("0x1.555e66p-3"))
_EXP_C2 = np.float32(float.fromhex("0x1.fffdb6p-2"))
_EXP_C1 = np.float32(float.fromhex("0x1.ffffecp-1"))


@njit(cache=True, nogil=True, inline="always")
def v_expf(x):
    """One lane of ggml_v_expf (vec.h, AVX-512 build): exp(x) to ~1.5 ulp."""
    x = np.float32(x)
    z = _fma32(x, _EXP_LOG2E, _EXP_R)
    n = np.float32(z - _EXP_R)
    if abs(n) > np.float32(192.0) or n != n:
        if n <= np.float32(0.0) or n != n:
            return np.float32(0.0)
        return np.float32(np.inf)
    b = _fma32(-n, _EXP_LN2_LO, _fma32(-n, _EXP_LN2_HI, x))
    u = np.float32(b * b)
    j = _fma32(_fma32(_fma32(_EXP_C5, b, _EXP_C4), u, _fma32(_EXP_C3, b, _EXP_C2)), u,
               _fma32(_EXP_C1, b, np.float32(1.0)))
    ni = np.int64(n)
    if ni >= -126 and ni <= 127:
        return np.float32(j * _pow2(ni))
    if ni < -126:
        return np.float32(np.float32(j * _pow2(-126)) * _pow2(ni + 126))
    return np.float32(np.float32(j * _pow2(127)) * _pow2(ni - 127))


@njit(cache=True, nogil=True, inline="always")
def reduce16(lanes, o):
    """_mm512_reduce_add_ps of lanes[o:o+16] in GCC's order (halves, quarters, pairs)."""
    t0 = lanes[o + 0] + lanes[o + 8]
    t1 = lanes[o + 1] + lanes[o + 9]
    t2 = lanes[o + 2] + lanes[o + 10]
    t3 = lanes[o + 3] + lanes[o + 11]
    t4 = lanes[o + 4] + lanes[o + 12]
    t5 = lanes[o + 5] + lanes[o + 13]
    t6 = lanes[o + 6] + lanes[o + 14]
    t7 = lanes[o + 7] + lanes[o + 15]
    u0 = t0 + t4
    u1 = t1 + t5
    u2 = t2 + t6
    u3 = t3 + t7
    return np.float32(np.float32(u0 + u2) + np.float32(u1 + u3))


@njit(cache=True, nogil=True, inline="always")
def dot_sgemm16(a, ao, b, bo, k, lanes):
    """One output of llamafile's tinyBLAS<16, __m512> (F16 x F16, values as float32): 16 lanes,
    one FMA chain per lane over k (k % 16 == 0), then reduce16. lanes: float32[>= 16] scratch."""
    for i in range(16):
        lanes[i] = np.float32(0.0)
    for l in range(0, k, 16):
        for i in range(16):
            lanes[i] = _fma32(a[ao + l + i], b[bo + l + i], lanes[i])
    return reduce16(lanes, 0)


@njit(cache=True, nogil=True, inline="always")
def dot_vec_f16(a, ao, b, bo, n, lanes):
    """ggml_vec_dot_f16 (AVX-512, values as float32): 4 x 16 FMA lanes over blocks of 64, reduced
    (0+2, 1+3, 0+1, reduce16), leftovers added in double. lanes: float32[>= 64] scratch."""
    np64 = n & ~63
    for i in range(64):
        lanes[i] = np.float32(0.0)
    for i in range(0, np64, 64):
        for j in range(64):
            lanes[j] = _fma32(a[ao + i + j], b[bo + i + j], lanes[j])
    for i in range(16):
        lanes[i] = lanes[i] + lanes[32 + i]
        lanes[16 + i] = lanes[16 + i] + lanes[48 + i]
    for i in range(16):
        lanes[i] = lanes[i] + lanes[16 + i]
    s = np.float64(reduce16(lanes, 0))
    for i in range(np64, n):
        s += np.float64(np.float32(a[ao + i] * b[bo + i]))
    return np.float32(s)


@njit(cache=True, nogil=True, inline="always")
def round_f16(x):
    """x rounded to the nearest F16 value, as float32."""
    h = np.uint32(f32_to_f16_bits(x))
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    e = (h >> np.uint32(10)) & np.uint32(0x1F)
    m = h & np.uint32(0x3FF)
    if e == 0:
        v = np.float32(m) * np.float32(5.960464477539063e-08)  # m * 2^-24, exact
        return -v if sign else v
    if e == 31:
        return _u32_as_f32(sign | np.uint32(0x7F800000) | (m << np.uint32(13)))
    return _u32_as_f32(sign | ((e + np.uint32(112)) << np.uint32(23)) | (m << np.uint32(13)))


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
    """out = x / (1 + exp(-x)): ggml_v_silu on blocks of 16, ggml_silu_f32 (expf) on the tail."""
    n16 = n & ~15
    for i in range(n16):
        v = x[i]
        out[i] = v / (np.float32(1.0) + v_expf(-v))
    for i in range(n16, n):
        v = x[i]
        out[i] = v / (np.float32(1.0) + np.float32(math.exp(-v)))


@njit(cache=True, nogil=True)
def swiglu_f32(x, g, out, n_rows, n_cols, x_stride, g_stride):
    """out[r] = silu(x[r]) * g[r] (ggml_vec_swiglu_f32); rows of x and g start at r*x_stride
    and r*g_stride."""
    n16 = n_cols & ~15
    for r in range(n_rows):
        xb = r * x_stride
        gb = r * g_stride
        ob = r * n_cols
        for c in range(n16):
            v = x[xb + c]
            out[ob + c] = np.float32(v / (np.float32(1.0) + v_expf(-v))) * g[gb + c]
        for c in range(n16, n_cols):
            v = x[xb + c]
            out[ob + c] = np.float32(v / (np.float32(1.0) + np.float32(math.exp(-v)))) * g[gb + c]


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
        for i0 in range(0, n_dims, 2):  # ggml fills the cache over ne0; only n_dims are used
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
                    x[base + ic] = _fma32(x0, c, -np.float32(x1 * s))
                    x[base + ic + half] = _fma32(x0, s, np.float32(x1 * c))
            else:
                for i0 in range(0, n_dims, 2):
                    c = cache[i0]
                    s = cache[i0 + 1]
                    x0 = x[base + i0]
                    x1 = x[base + i0 + 1]
                    x[base + i0] = _fma32(x0, c, -np.float32(x1 * s))
                    x[base + i0 + 1] = _fma32(x0, s, np.float32(x1 * c))


# ---------------------------------------------------------------------------------------------
# Attention over an F16 KV cache


@njit(cache=True, nogil=True)
def attention_f16kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """Masked GQA attention, llama.cpp's non-flash path (build_attn_mha), one ubatch.

    q: float32[n_tokens*n_head*head_dim_k]; k_cache: float32[n_kv*n_head_kv*head_dim_k] and
    v_cache: float32[n_kv*n_head_kv*head_dim_v], one row per cell, holding F16-rounded values;
    mask: float32[n_tokens*n_kv] (0 or -inf); out: float32[n_tokens*n_head*head_dim_v].
    sgemm_kq/sgemm_kqv choose llamafile's tinyBLAS order (prompt batches) over ggml_vec_dot_f16's
    (single tokens), as ggml_compute_forward_mul_mat does. softcap 0 means off.
    Scratch: scores float32[n_kv], q16 float32[head_dim_k], lanes float32[64].
    Masked cells are skipped: their terms are exact zeros in every sum, wherever they sit.
    """
    _attention(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k, head_dim_v,
               n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes, True)


@njit(cache=True, nogil=True)
def attention_f32kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """attention_f16kv for an F32 cache (llama.cpp with type_k = type_v = f32): q and the
    probabilities stay float32 (ggml's vec_dot_type of F32 is F32), all else is unchanged."""
    _attention(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k, head_dim_v,
               n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes, False)


@njit(cache=True, nogil=True, inline="always")
def _attention(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k, head_dim_v,
               n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes, round_qp):
    """attention_f16kv (round_qp: q and the probabilities rounded to F16) or attention_f32kv."""
    n_gqa = n_head // n_head_kv
    row_k = n_head_kv * head_dim_k
    row_v = n_head_kv * head_dim_v
    for t in range(n_tokens):
        mrow = t * n_kv
        for h in range(n_head):
            hk = h // n_gqa
            qb = (t * n_head + h) * head_dim_k
            for d in range(head_dim_k):
                q16[d] = round_f16(q[qb + d]) if round_qp else q[qb + d]
            # kq, soft-capping, soft_max_ext (scale, mask, max)
            mx = np.float32(-np.inf)
            for j in range(n_kv):
                m = mask[mrow + j]
                if m == -np.inf:
                    scores[j] = m
                    continue
                kb = j * row_k + hk * head_dim_k
                if sgemm_kq:
                    v = dot_sgemm16(q16, 0, k_cache, kb, head_dim_k, lanes)
                else:
                    v = dot_vec_f16(k_cache, kb, q16, 0, head_dim_k, lanes)
                if softcap != 0.0:
                    v = np.float32(np.float32(math.tanh(np.float32(v * np.float32(np.float32(1.0) / softcap)))) * softcap)
                v = np.float32(v * kq_scale) + m
                scores[j] = v
                if v > mx:
                    mx = v
            # exp in blocks of 16 (ggml_v_expf, reduce16 into a double), expf on the tail
            total = 0.0
            n16 = n_kv & ~15
            for j0 in range(0, n16, 16):
                for i in range(16):
                    e = v_expf(np.float32(scores[j0 + i] - mx))
                    scores[j0 + i] = e
                    lanes[i] = e
                total += np.float64(reduce16(lanes, 0))
            for j in range(n16, n_kv):
                e = np.float32(math.exp(np.float32(scores[j] - mx)))
                scores[j] = e
                total += np.float64(e)
            inv = np.float32(1.0 / total)
            for j in range(n_kv):
                p = np.float32(scores[j] * inv)
                scores[j] = round_f16(p) if round_qp else p
            # kqv: one dot per output value over the cells (V read column-wise)
            ob = (t * n_head + h) * head_dim_v
            for d in range(head_dim_v):
                vb = hk * head_dim_v + d
                if sgemm_kqv:
                    for i in range(16):
                        lanes[i] = np.float32(0.0)
                    for j in range(n_kv):
                        p = scores[j]
                        if p != 0.0:
                            lanes[j & 15] = _fma32(v_cache[j * row_v + vb], p, lanes[j & 15])
                    out[ob + d] = reduce16(lanes, 0)
                else:
                    out[ob + d] = _dot_vec_f16_strided(v_cache, vb, row_v, scores, n_kv, lanes)


@njit(cache=True, nogil=True, inline="always")
def _dot_vec_f16_strided(v, vo, stride, p, n, lanes):
    """dot_vec_f16 of v[vo + j*stride] (j < n) with p[j], skipping p == 0 terms (exact)."""
    np64 = n & ~63
    for i in range(64):
        lanes[i] = np.float32(0.0)
    for j in range(np64):
        pj = p[j]
        if pj != 0.0:
            lanes[j & 63] = _fma32(v[vo + j * stride], pj, lanes[j & 63])
    for i in range(16):
        lanes[i] = lanes[i] + lanes[32 + i]
        lanes[16 + i] = lanes[16 + i] + lanes[48 + i]
    for i in range(16):
        lanes[i] = lanes[i] + lanes[16 + i]
    s = np.float64(reduce16(lanes, 0))
    for j in range(np64, n):
        s += np.float64(np.float32(v[vo + j * stride] * p[j]))
    return np.float32(s)


@njit(cache=True, nogil=True)
def _gelu_table(x16, out):
    """ggml_gelu_f32 of every F16 value (tanhf; GCC contracts 1 + a*x*x into an FMA), to F16."""
    for i in range(65536):
        x = x16[i]
        inner = np.float32(np.float32(SQRT_2_OVER_PI * x) * _fma32(np.float32(GELU_COEF_A * x), x, np.float32(1.0)))
        y = np.float32(np.float32(np.float32(0.5) * x) * np.float32(np.float32(1.0) + np.float32(math.tanh(inner))))
        out[i] = round_f16(y)


# ---------------------------------------------------------------------------------------------
# Q6_K x Q8_K with the float order of ggml-cpu/tiled (llama.cpp's default for batches >= 8 rows)


@njit(cache=True, nogil=True)
def matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, out, f16tab):
    """out[t*n_rows + r] = row r of a Q6_K weight times activation t (already Q8_K blocks).

    Follows ggml_compute_forward_mul_mat_tiled (ggml-cpu/tiled/tiled-kernel.cpp, FMA path), which
    llama.cpp takes for K-quant weights that are not repacked when src1 has >= 8 rows: per
    super-block the exact integer sum s1 = sum_j scale_j * sum_i q_i * x_i, then
    res = float(s1) * d_w and buf = fma(res, d_x, buf), super-blocks in order.
    w: uint8[n_rows * n_cols/256 * 210]; xq: uint8[n_tokens * n_cols/256 * 292] (block_q8_K);
    out: float32[n_tokens * n_rows]; f16tab: float32[65536]. Sizes are checked by the caller.
    """
    nb = n_cols // 256
    for t in range(n_tokens):
        xbase = t * nb * 292
        for r in range(n_rows):
            wbase = r * nb * 210
            buf = np.float32(0.0)
            for b in range(nb):
                wb = wbase + b * 210
                xb = xbase + b * 292
                dx = _u32_as_f32(np.uint32(xq[xb]) | (np.uint32(xq[xb + 1]) << np.uint32(8))
                                 | (np.uint32(xq[xb + 2]) << np.uint32(16))
                                 | (np.uint32(xq[xb + 3]) << np.uint32(24)))
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
                res = np.float32(np.float32(isum) * d)
                buf = _fma32(res, dx, buf)
            out[t * n_rows + r] = buf


@njit(cache=True, nogil=True)
def matmul_float_ggml(w, n_rows, n_cols, x, n_tokens, out, sgemm, round_x16, xs, lanes):
    """out[t*n_rows + r] = dot(w row r, x row t) for F32/F16 weights (held as float32 values), in
    ggml-cpu's order: llamafile tinyBLAS<16> (one 16-lane FMA chain, reduce16) when `sgemm`
    (prompt batches), else ggml_vec_dot_f32/f16 (4 x 16 lanes over blocks of 64). With
    `round_x16` the activation is first rounded to F16 (the vec_dot_type of F16 weights).
    w: float32[n_rows*n_cols]; x: float32[n_tokens*n_cols]; xs: float32[n_cols] scratch;
    lanes: float32[64] scratch."""
    for t in range(n_tokens):
        xb = t * n_cols
        for c in range(n_cols):
            xs[c] = round_f16(x[xb + c]) if round_x16 else x[xb + c]
        for r in range(n_rows):
            if sgemm:
                out[t * n_rows + r] = dot_sgemm16(w, r * n_cols, xs, 0, n_cols, lanes)
            else:
                out[t * n_rows + r] = dot_vec_f16(w, r * n_cols, xs, 0, n_cols, lanes)
