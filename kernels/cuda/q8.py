"""CUDA twins of kernels.cpu.q8: activation rows F32 -> Q8_0 / Q8_1 / Q8_K / F16 / BF16 blocks on the GPU.

Same kernel names, arguments and output layout as the CPU file (the specification, which follows
the x86 builds of llama.cpp's `from_float` functions): `quantize_row_<type>[grid, block](x,
n_tokens, n_cols, out)` with x: float32[n_tokens * n_cols] and out: uint8 GGML blocks, rows one
after another. One thread quantizes one block (32 values for Q8_0/Q8_1, 256 for Q8_K, one value for
F16/BF16/F32) in a grid-stride loop, with the CPU's float32 operations in the CPU's order, so the
blocks are bit-equal to the CPU's:
- Q8_0 / Q8_1: amax, d = amax / 127 (F16, nearest-even), q = rint(x * (127 / amax)) saturated to
  int8; Q8_1 adds s = F16(d * sum(q)).
- Q8_K: the signed value of largest magnitude (first wins), iscale = -127 / max,
  q = min(127, rint(iscale * x)), d = 1 / iscale as float32 bits, int16 sums of 16 quants.
Float bit patterns are built arithmetically (exact, in float64): a GPU kernel cannot view a
float's bytes. NaN inputs are not supported (as on the CPU). The product x * inv is `mul_rn`
(never contracted into an FMA with anything).

`quantize_row_f32` has no CPU kernel: on the CPU the F32 "conversion" is a byte copy
(kernels.cpu.matmul.quantize_act); here it writes the float32 bytes.
numba.cuda is imported only inside kernels/cuda.
"""

import math

import numpy as np
from numba import cuda

from kernels.cuda.ops_base import f32_to_f16_bits, mul_rn
from kernels.cuda.simulator import device

QK8_0 = 32
QK_K = 256
Q8_0_BLOCK_BYTES = 34
Q8_1_BLOCK_BYTES = 36
Q8_K_BLOCK_BYTES = 292


@device
def f32_to_bits(x):
    """The IEEE bits of float32 x, as int64 (NaN canonical: 0x7FC00000 with its sign).

    Arithmetic (frexp of the exact float64 value), since a kernel cannot reinterpret a float.
    """
    xf = np.float64(np.float32(x))
    sign = np.int64(0x80000000) if math.copysign(1.0, xf) < 0.0 else np.int64(0)
    a = abs(xf)
    if a != a:
        return sign | np.int64(0x7FC00000)
    if a == math.inf:
        return sign | np.int64(0x7F800000)
    if a < 1.1754943508222875e-38:  # below 2^-126: subnormal, units of 2^-149 (exact)
        return sign | np.int64(a * 7.1362384635297994e+44)
    m, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1): 24 significant bits
    return sign | (np.int64(e + 126) << 23) | (np.int64(m * 16777216.0) - np.int64(0x800000))


@device
def _put_u16(out, o, h):
    out[o] = np.uint8(h & 0xFF)
    out[o + 1] = np.uint8((h >> 8) & 0xFF)


@device
def _q8_0_block(x, xi, out, o, with_sum):
    """One 32-value block of Q8_0 (qs at o+2) or Q8_1 (with_sum: qs at o+4): kernels.cpu.q8._q8_0_block."""
    amax = np.float32(0.0)
    for j in range(32):
        a = abs(np.float32(x[xi + j]))
        if a > amax:
            amax = a
    d = np.float32(amax / np.float32(127.0))
    inv = np.float32(0.0)
    if amax != np.float32(0.0):
        inv = np.float32(np.float32(127.0) / amax)
    qo = o + 2
    if with_sum:
        qo = o + 4
    total = 0
    for j in range(32):
        q = round(mul_rn(x[xi + j], inv))  # round half to even, as _mm256_round_ps / np.rint
        if q > 127:
            q = 127
        elif q < -128:
            q = -128
        total += q
        out[qo + j] = np.uint8(q & 0xFF)
    _put_u16(out, o, f32_to_f16_bits(d))
    if with_sum:
        _put_u16(out, o + 2, f32_to_f16_bits(mul_rn(d, np.float32(total))))


@cuda.jit(cache=True)
def quantize_row_q8_0(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] (n_cols % 32 == 0) -> out: uint8[n_tokens * n_cols // 32 * 34]."""
    nb = n_cols // 32
    for b in range(cuda.grid(1), n_tokens * nb, cuda.gridsize(1)):
        t = b // nb
        _q8_0_block(x, t * n_cols + (b - t * nb) * 32, out, b * Q8_0_BLOCK_BYTES, False)


@cuda.jit(cache=True)
def quantize_row_q8_1(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] (n_cols % 32 == 0) -> out: uint8[n_tokens * n_cols // 32 * 36]."""
    nb = n_cols // 32
    for b in range(cuda.grid(1), n_tokens * nb, cuda.gridsize(1)):
        t = b // nb
        _q8_0_block(x, t * n_cols + (b - t * nb) * 32, out, b * Q8_1_BLOCK_BYTES, True)


@cuda.jit(cache=True)
def quantize_row_q8_K(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] (n_cols % 256 == 0) -> out: uint8[n_tokens * n_cols // 256 * 292]."""
    nb = n_cols // QK_K
    for b in range(cuda.grid(1), n_tokens * nb, cuda.gridsize(1)):
        t = b // nb
        xi = t * n_cols + (b - t * nb) * QK_K
        o = b * Q8_K_BLOCK_BYTES
        vmax = np.float32(0.0)
        amax = np.float32(0.0)
        for j in range(QK_K):
            v = np.float32(x[xi + j])
            if abs(v) > amax:
                amax = abs(v)
                vmax = v
        if amax == np.float32(0.0):
            for j in range(Q8_K_BLOCK_BYTES):
                out[o + j] = np.uint8(0)
            continue
        iscale = np.float32(np.float32(-127.0) / vmax)
        for g in range(16):
            bsum = 0
            for k in range(16):
                j = g * 16 + k
                q = round(mul_rn(iscale, x[xi + j]))
                if q > 127:
                    q = 127
                bsum += q
                out[o + 4 + j] = np.uint8(q & 0xFF)
            _put_u16(out, o + 260 + 2 * g, bsum)
        u = f32_to_bits(np.float32(np.float32(1.0) / iscale))
        for k in range(4):
            out[o + k] = np.uint8((u >> (8 * k)) & 0xFF)


@cuda.jit(cache=True)
def quantize_row_f16(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] -> out: uint8[2 * n_tokens * n_cols] (F16, nearest-even)."""
    for i in range(cuda.grid(1), n_tokens * n_cols, cuda.gridsize(1)):
        _put_u16(out, 2 * i, f32_to_f16_bits(x[i]))


@cuda.jit(cache=True)
def quantize_row_bf16(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] -> out: uint8[2 * n_tokens * n_cols] (BF16, nearest-even)."""
    for i in range(cuda.grid(1), n_tokens * n_cols, cuda.gridsize(1)):
        u = f32_to_bits(x[i])
        if (u & 0x7FFFFFFF) > 0x7F800000:
            h = (u >> 16) | 64
        else:
            h = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) & 0xFFFF
        _put_u16(out, 2 * i, h)


@cuda.jit(cache=True)
def quantize_row_f32(x, n_tokens, n_cols, out):
    """x: float32[n_tokens * n_cols] -> out: uint8[4 * n_tokens * n_cols] (its bytes)."""
    for i in range(cuda.grid(1), n_tokens * n_cols, cuda.gridsize(1)):
        u = f32_to_bits(x[i])
        for k in range(4):
            out[4 * i + k] = np.uint8((u >> (8 * k)) & 0xFF)
