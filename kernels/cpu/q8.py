"""Activation quantization for the quantized matmul: F32 rows -> Q8_0 / Q8_1 / Q8_K / F16 / BF16 blocks.

llama.cpp's CPU matmul first converts each activation row to the weight type's `vec_dot_type`
(ggml/src/ggml-cpu/ggml-cpu.c type_traits_cpu). These kernels reproduce, bit for bit, the x86
(AVX/AVX2/AVX-512) builds of the `from_float` functions, which differ from the `*_ref` versions in
ggml-quants.c:

* `quantize_row_q8_0` (arch/x86/quants.c): amax over the 32 values; d = amax / 127 stored as F16
  (F16C rounding: nearest-even); the multiplier is 127 / amax (not 1 / d); q = round-half-even
  (`_mm256_round_ps(_MM_ROUND_NEAREST)`), saturated to int8 by `packs`.
* `quantize_row_q8_1`: as Q8_0, plus s = F16(d * sum(q)) with d the float32 scale (not its F16)
  and the sum taken over the rounded integers.
* `quantize_row_q8_K` (x86 uses `quantize_row_q8_K_ref`): per 256 values the signed value of
  largest magnitude `max` (first one wins), iscale = -127 / max, q = min(127, nearest_int(iscale*x))
  with round-half-even, d = 1 / iscale as float32, bsums = int16 sums of 16 quants.
* F16 (`ggml_cpu_fp32_to_fp16`, nearest-even) and BF16 (`ggml_compute_fp32_to_bf16`).

Output is GGML block layout in a caller-provided uint8 buffer, rows one after another:
  Q8_0: 34 bytes per 32 values (f16 d, int8 qs[32])
  Q8_1: 36 bytes per 32 values (f16 d, f16 s, int8 qs[32])
  Q8_K: 292 bytes per 256 values (f32 d, int8 qs[256], int16 bsums[16])
  F16 / BF16: 2 bytes per value.
NaN inputs are not supported (llama.cpp's SIMD max ignores them differently).

`fp16_to_fp32` and `fp32_to_fp16` are exact IEEE conversions (nearest-even) written with integer
ops so that they run on every CPU.
"""

import numpy as np
from numba import njit

from kernels.cpu.q8_simd import Q8_SIMD_VERSION, q8_32, q8_k_max, q8_k_quants
from kernels.cpu.simd import f32_from_bits, f32_to_bits

# the vector IR inlines into this module's cached kernels: a q8_simd edit must edit this line
assert Q8_SIMD_VERSION == 1, "kernels.cpu.q8_simd changed: update this check"

QK8_0 = 32
QK_K = 256
Q8_0_BLOCK_BYTES = 34
Q8_1_BLOCK_BYTES = 36
Q8_K_BLOCK_BYTES = 292


@njit(cache=True, nogil=True)
def fp16_to_fp32(h):
    """IEEE half (bits in an integer 0..65535) -> float32, exact."""
    h = np.int64(h)
    s = (h >> 15) & 1
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0:
        v = np.float32(m) * np.float32(5.9604644775390625e-08)  # m * 2^-24, exact
        return -v if s else v
    if e == 31:
        bits = (s << 31) | 0x7F800000 | (m << 13)
    else:
        bits = (s << 31) | ((e + 112) << 23) | (m << 13)
    return f32_from_bits(np.uint32(bits))


@njit(cache=True, nogil=True)
def fp32_to_fp16(f):
    """float32 -> IEEE half bits (int), round-to-nearest-even like F16C `vcvtps2ph $0`.

    The float-arithmetic method of ggml_compute_fp32_to_fp16 (FP16 library); NaN -> 0x7E00.
    """
    f = np.float32(f)
    base = (abs(f) * f32_from_bits(np.uint32(0x77800000))) * f32_from_bits(np.uint32(0x08800000))
    w = np.int64(f32_to_bits(f))
    shl1_w = (w + w) & 0xFFFFFFFF
    sign = w & 0x80000000
    bias = shl1_w & 0xFF000000
    if bias < 0x71000000:
        bias = 0x71000000
    base = f32_from_bits(np.uint32((bias >> 1) + 0x07800000)) + base
    bits = np.int64(f32_to_bits(base))
    nonsign = ((bits >> 13) & 0x7C00) + (bits & 0x0FFF)
    if shl1_w > 0xFF000000:
        nonsign = 0x7E00
    return (sign >> 16) | nonsign


@njit(cache=True, nogil=True)
def fp32_to_bf16(f):
    """float32 -> bfloat16 bits (int), round-to-nearest-even like ggml_compute_fp32_to_bf16."""
    u = np.int64(f32_to_bits(np.float32(f)))
    if (u & 0x7FFFFFFF) > 0x7F800000:
        return (u >> 16) | 64
    return ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) & 0xFFFF


@njit(cache=True, nogil=True)
def _q8_0_block(x, xi, out, o, with_sum):
    """One 32-value block of Q8_0 (with_sum=False, qs at o+2) or Q8_1 (qs at o+4).

    The scalar specification that kernels.cuda.q8 mirrors; the CPU rows use _q8_0_block_simd
    (same bytes, tests/kernels/cpu/test_q8.py)."""
    amax = np.float32(0.0)
    for j in range(32):
        a = abs(x[xi + j])
        if a > amax:
            amax = a
    d = amax / np.float32(127.0)
    inv = np.float32(127.0) / amax if amax != np.float32(0.0) else np.float32(0.0)
    qo = o + 4 if with_sum else o + 2
    total = 0
    for j in range(32):
        q = np.int64(np.rint(x[xi + j] * inv))
        if q > 127:
            q = 127
        elif q < -128:
            q = -128
        total += q
        out[qo + j] = np.uint8(q & 0xFF)
    h = fp32_to_fp16(d)
    out[o] = np.uint8(h & 0xFF)
    out[o + 1] = np.uint8(h >> 8)
    if with_sum:
        hs = fp32_to_fp16(d * np.float32(total))
        out[o + 2] = np.uint8(hs & 0xFF)
        out[o + 3] = np.uint8(hs >> 8)


@njit(cache=True, nogil=True, inline="always")
def _q8_0_block_simd(x, xi, out, o, with_sum):
    """_q8_0_block in 32-lane vectors (kernels.cpu.q8_simd): the same bytes."""
    amax, total = q8_32(x, xi, out, o + 4 if with_sum else o + 2)
    d = amax / np.float32(127.0)
    h = fp32_to_fp16(d)
    out[o] = np.uint8(h & 0xFF)
    out[o + 1] = np.uint8(h >> 8)
    if with_sum:
        hs = fp32_to_fp16(d * total)
        out[o + 2] = np.uint8(hs & 0xFF)
        out[o + 3] = np.uint8(hs >> 8)


@njit(cache=True, nogil=True)
def quantize_row_q8_0(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] (n_cols % 32 == 0) -> out: uint8[n_tokens * n_cols // 32 * 34]."""
    nb = n_cols // 32
    for t in range(n_tokens):
        for ib in range(nb):
            _q8_0_block_simd(x, t * n_cols + ib * 32, out, (t * nb + ib) * Q8_0_BLOCK_BYTES, False)


@njit(cache=True, nogil=True)
def quantize_row_q8_1(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] (n_cols % 32 == 0) -> out: uint8[n_tokens * n_cols // 32 * 36]."""
    nb = n_cols // 32
    for t in range(n_tokens):
        for ib in range(nb):
            _q8_0_block_simd(x, t * n_cols + ib * 32, out, (t * nb + ib) * Q8_1_BLOCK_BYTES, True)


@njit(cache=True, nogil=True)
def quantize_row_q8_K(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] (n_cols % 256 == 0) -> out: uint8[n_tokens * n_cols // 256 * 292]."""
    nb = n_cols // QK_K
    for t in range(n_tokens):
        for ib in range(nb):
            xi = t * n_cols + ib * QK_K
            o = (t * nb + ib) * Q8_K_BLOCK_BYTES
            amax, vmax = q8_k_max(x, xi)
            if amax == np.float32(0.0):
                for j in range(Q8_K_BLOCK_BYTES):
                    out[o + j] = 0
                continue
            iscale = np.float32(-127.0) / vmax
            q8_k_quants(x, xi, iscale, out, o)
            u = np.int64(f32_to_bits(np.float32(1.0) / iscale))
            for k in range(4):
                out[o + k] = np.uint8((u >> (8 * k)) & 0xFF)


@njit(cache=True, nogil=True)
def quantize_row_f16(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] -> out: uint8[2 * n_tokens * n_cols] (F16, nearest-even)."""
    for i in range(n_tokens * n_cols):
        h = fp32_to_fp16(x[i])
        out[2 * i] = np.uint8(h & 0xFF)
        out[2 * i + 1] = np.uint8(h >> 8)


@njit(cache=True, nogil=True)
def quantize_row_bf16(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] -> out: uint8[2 * n_tokens * n_cols] (BF16, nearest-even)."""
    for i in range(n_tokens * n_cols):
        h = fp32_to_bf16(x[i])
        out[2 * i] = np.uint8(h & 0xFF)
        out[2 * i + 1] = np.uint8(h >> 8)
