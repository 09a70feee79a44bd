"""Float and 32-element ("legacy") quant formats: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.

Dequantize follows ggml/src/ggml-quants.c dequantize_row_*; quantize follows the *_ref functions
there (quantize_row_q4_0_ref, ...), which is what gguf-py's gguf.quants implements and what these
kernels are tested bit-exact against. All arithmetic is float32 in ggml's operation order.

Every kernel has the shape
    dequantize_row_<type>(data, byte_offset, n, out, out_offset)
        data: uint8[], out: float32[]; reads n // block elements' blocks from data[byte_offset:],
        writes out[out_offset:out_offset + n]
    quantize_row_<type>(x, x_offset, n, out, byte_offset)
        x: float32[], out: uint8[]; the reverse.
n must be a multiple of the block size and the ranges in bounds: callers check (kernels do not).
"""

import numpy as np
from numba import njit

from kernels.cpu.quants_base import f16_bits_to_f32_bits, f32_to_f16, int8_of, read_f16, read_u32, write_u16


@njit(cache=True, nogil=True)
def dequantize_row_f32(data, byte_offset, n, out, out_offset):
    """Copy n float32 (bit patterns kept, NaNs included)."""
    bits = out.view(np.uint32)
    for j in range(n):
        bits[out_offset + j] = read_u32(data, byte_offset + 4 * j)


@njit(cache=True, nogil=True)
def dequantize_row_f16(data, byte_offset, n, out, out_offset):
    """Widen n fp16 to float32 (exact, NaN payloads kept as numpy keeps them)."""
    bits = out.view(np.uint32)
    for j in range(n):
        o = byte_offset + 2 * j
        h = np.int64(data[o]) | (np.int64(data[o + 1]) << 8)
        bits[out_offset + j] = f16_bits_to_f32_bits(h)


@njit(cache=True, nogil=True)
def dequantize_row_bf16(data, byte_offset, n, out, out_offset):
    """Widen n bf16 to float32: the bf16 bits become the float's high half."""
    bits = out.view(np.uint32)
    for j in range(n):
        o = byte_offset + 2 * j
        bits[out_offset + j] = (np.int64(data[o]) << 16) | (np.int64(data[o + 1]) << 24)


@njit(cache=True, nogil=True)
def dequantize_row_q4_0(data, byte_offset, n, out, out_offset):
    """block_q4_0 {fp16 d; uint8 qs[16]}: y = d * (nibble - 8); low nibbles first."""
    for i in range(n // 32):
        o = byte_offset + i * 18
        y = out_offset + i * 32
        d = read_f16(data, o)
        for j in range(16):
            q = np.int64(data[o + 2 + j])
            out[y + j] = d * np.float32((q & 0xF) - 8)
            out[y + j + 16] = d * np.float32((q >> 4) - 8)


@njit(cache=True, nogil=True)
def dequantize_row_q4_1(data, byte_offset, n, out, out_offset):
    """block_q4_1 {fp16 d, m; uint8 qs[16]}: y = d * nibble + m."""
    for i in range(n // 32):
        o = byte_offset + i * 20
        y = out_offset + i * 32
        d = read_f16(data, o)
        m = read_f16(data, o + 2)
        for j in range(16):
            q = np.int64(data[o + 4 + j])
            out[y + j] = d * np.float32(q & 0xF) + m
            out[y + j + 16] = d * np.float32(q >> 4) + m


@njit(cache=True, nogil=True)
def dequantize_row_q5_0(data, byte_offset, n, out, out_offset):
    """block_q5_0 {fp16 d; uint32 qh; uint8 qs[16]}: y = d * (nibble | high bit << 4 - 16)."""
    for i in range(n // 32):
        o = byte_offset + i * 22
        y = out_offset + i * 32
        d = read_f16(data, o)
        qh = read_u32(data, o + 2)
        for j in range(16):
            q = np.int64(data[o + 6 + j])
            x0 = (q & 0xF) | (((qh >> j) << 4) & 0x10)
            x1 = (q >> 4) | ((qh >> (j + 12)) & 0x10)
            out[y + j] = d * np.float32(x0 - 16)
            out[y + j + 16] = d * np.float32(x1 - 16)


@njit(cache=True, nogil=True)
def dequantize_row_q5_1(data, byte_offset, n, out, out_offset):
    """block_q5_1 {fp16 d, m; uint32 qh; uint8 qs[16]}: y = d * q5 + m."""
    for i in range(n // 32):
        o = byte_offset + i * 24
        y = out_offset + i * 32
        d = read_f16(data, o)
        m = read_f16(data, o + 2)
        qh = read_u32(data, o + 4)
        for j in range(16):
            q = np.int64(data[o + 8 + j])
            x0 = (q & 0xF) | (((qh >> j) << 4) & 0x10)
            x1 = (q >> 4) | ((qh >> (j + 12)) & 0x10)
            out[y + j] = d * np.float32(x0) + m
            out[y + j + 16] = d * np.float32(x1) + m


@njit(cache=True, nogil=True)
def dequantize_row_q8_0(data, byte_offset, n, out, out_offset):
    """block_q8_0 {fp16 d; int8 qs[32]}: y = d * q."""
    for i in range(n // 32):
        o = byte_offset + i * 34
        y = out_offset + i * 32
        d = read_f16(data, o)
        for j in range(32):
            out[y + j] = d * np.float32(int8_of(data[o + 2 + j]))


@njit(cache=True, nogil=True)
def quantize_row_f32(x, x_offset, n, out, byte_offset):
    """Store n float32 as bytes (bit patterns kept)."""
    bits = x.view(np.uint32)
    for j in range(n):
        v = np.int64(bits[x_offset + j])
        o = byte_offset + 4 * j
        out[o] = v & 0xFF
        out[o + 1] = (v >> 8) & 0xFF
        out[o + 2] = (v >> 16) & 0xFF
        out[o + 3] = (v >> 24) & 0xFF


@njit(cache=True, nogil=True)
def quantize_row_f16(x, x_offset, n, out, byte_offset):
    """Round n float32 to fp16, ties to even (NaN becomes 0x7e00 with its sign)."""
    for j in range(n):
        write_u16(out, byte_offset + 2 * j, f32_to_f16(x[x_offset + j]))


@njit(cache=True, nogil=True)
def quantize_row_bf16(x, x_offset, n, out, byte_offset):
    """Round n float32 to bf16 like ggml_compute_fp32_to_bf16: NaN made quiet, ties to even."""
    bits = x.view(np.uint32)
    for j in range(n):
        u = np.int64(bits[x_offset + j])
        if (u & 0x7FFFFFFF) > 0x7F800000:
            h = (u >> 16) | 64
        else:
            h = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
        write_u16(out, byte_offset + 2 * j, h)


@njit(cache=True, nogil=True)
def _absmax_signed(x, b):
    """The first x[b:b + 32] value of largest magnitude, with its sign (quantize_row_q4_0_ref)."""
    amax = np.float32(0.0)
    vmax = np.float32(0.0)
    for j in range(32):
        v = x[b + j]
        if amax < abs(v):
            amax = abs(v)
            vmax = v
    return vmax


@njit(cache=True, nogil=True)
def _min_max(x, b):
    vmin = x[b]
    vmax = x[b]
    for j in range(1, 32):
        v = x[b + j]
        if v < vmin:
            vmin = v
        if v > vmax:
            vmax = v
    return vmin, vmax


@njit(cache=True, nogil=True)
def _trunc_clip(v, hi):
    """Truncation then MIN(hi, .) as ggml's *_ref. Values no finite block gives (inf, NaN, past
    int32, from a subnormal scale whose inverse overflows) follow x86's float -> int conversion
    then the uint8 cast, as gguf-py's numpy and ggml both do: inf and NaN give 0."""
    if not (v >= 0.0) or v >= 2147483648.0:
        return 0
    q = np.int64(v) & 0xFF
    return q if q < hi else hi


@njit(cache=True, nogil=True)
def _inverse(d):
    return np.float32(1.0) / d if d != 0.0 else np.float32(0.0)


@njit(cache=True, nogil=True)
def quantize_row_q4_0(x, x_offset, n, out, byte_offset):
    """quantize_row_q4_0_ref: d = max / -8 (max = signed value of largest |x|), q = x/d + 8.5."""
    for i in range(n // 32):
        b = x_offset + i * 32
        o = byte_offset + i * 18
        d = _absmax_signed(x, b) / np.float32(-8.0)
        inv = _inverse(d)
        write_u16(out, o, f32_to_f16(d))
        for j in range(16):
            q0 = _trunc_clip(x[b + j] * inv + np.float32(8.5), 15)
            q1 = _trunc_clip(x[b + j + 16] * inv + np.float32(8.5), 15)
            out[o + 2 + j] = q0 | (q1 << 4)


@njit(cache=True, nogil=True)
def quantize_row_q4_1(x, x_offset, n, out, byte_offset):
    """quantize_row_q4_1_ref: d = (max - min) / 15, m = min, q = (x - min)/d + 0.5."""
    for i in range(n // 32):
        b = x_offset + i * 32
        o = byte_offset + i * 20
        vmin, vmax = _min_max(x, b)
        d = (vmax - vmin) / np.float32(15.0)
        inv = _inverse(d)
        write_u16(out, o, f32_to_f16(d))
        write_u16(out, o + 2, f32_to_f16(vmin))
        for j in range(16):
            q0 = _trunc_clip((x[b + j] - vmin) * inv + np.float32(0.5), 15)
            q1 = _trunc_clip((x[b + j + 16] - vmin) * inv + np.float32(0.5), 15)
            out[o + 4 + j] = q0 | (q1 << 4)


@njit(cache=True, nogil=True)
def _store_q5(out, o, qs_at, q0, q1, j, qh):
    out[o + qs_at + j] = (q0 & 0xF) | ((q1 & 0xF) << 4)
    return qh | ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16))


@njit(cache=True, nogil=True)
def quantize_row_q5_0(x, x_offset, n, out, byte_offset):
    """quantize_row_q5_0_ref: d = max / -16, q = x/d + 16.5, fifth bits in qh."""
    for i in range(n // 32):
        b = x_offset + i * 32
        o = byte_offset + i * 22
        d = _absmax_signed(x, b) / np.float32(-16.0)
        inv = _inverse(d)
        write_u16(out, o, f32_to_f16(d))
        qh = np.int64(0)
        for j in range(16):
            q0 = _trunc_clip(x[b + j] * inv + np.float32(16.5), 31)
            q1 = _trunc_clip(x[b + j + 16] * inv + np.float32(16.5), 31)
            qh = _store_q5(out, o, 6, q0, q1, j, qh)
        for k in range(4):
            out[o + 2 + k] = (qh >> (8 * k)) & 0xFF


@njit(cache=True, nogil=True)
def quantize_row_q5_1(x, x_offset, n, out, byte_offset):
    """quantize_row_q5_1_ref: d = (max - min) / 31, m = min, q = (x - min)/d + 0.5."""
    for i in range(n // 32):
        b = x_offset + i * 32
        o = byte_offset + i * 24
        vmin, vmax = _min_max(x, b)
        d = (vmax - vmin) / np.float32(31.0)
        inv = _inverse(d)
        write_u16(out, o, f32_to_f16(d))
        write_u16(out, o + 2, f32_to_f16(vmin))
        qh = np.int64(0)
        for j in range(16):
            q0 = _trunc_clip((x[b + j] - vmin) * inv + np.float32(0.5), 31)
            q1 = _trunc_clip((x[b + j + 16] - vmin) * inv + np.float32(0.5), 31)
            qh = _store_q5(out, o, 8, q0, q1, j, qh)
        for k in range(4):
            out[o + 4 + k] = (qh >> (8 * k)) & 0xFF


@njit(cache=True, nogil=True)
def roundf(v):
    """C roundf on a float32 (halves away from zero), as gguf-py's np_roundf; returns int64."""
    a = abs(v)
    fl = np.floor(a)
    r = fl + np.floor(np.float32(2.0) * (a - fl))
    return np.int64(-r) if v < 0 else np.int64(r)


@njit(cache=True, nogil=True)
def quantize_row_q8_0(x, x_offset, n, out, byte_offset):
    """quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d) (1/d taken in float32)."""
    for i in range(n // 32):
        b = x_offset + i * 32
        o = byte_offset + i * 34
        amax = np.float32(0.0)
        for j in range(32):
            amax = max(amax, abs(x[b + j]))
        d = amax / np.float32(127.0)
        inv = _inverse(d)
        write_u16(out, o, f32_to_f16(d))
        for j in range(32):
            out[o + 2 + j] = roundf(x[b + j] * inv) & 0xFF
