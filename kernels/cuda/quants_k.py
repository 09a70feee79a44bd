"""CUDA twins of kernels/cpu/quants_k.py (dequantize): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, TQ1_0,
TQ2_0. One thread per 256-value super-block, grid-stride; see kernels/cuda/quants_legacy.py.
"""

import numpy as np
from numba import cuda

from kernels.cuda.quants_base import f32_from_bits, int8_of, read_f16, read_u32, read_u8
from kernels.cuda.simulator import device


@cuda.jit(cache=True)
def dequantize_row_q2_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 84
        y = out_offset + i * 256
        d = read_f16(data, o + 80)
        dmin = read_f16(data, o + 82)
        for half in range(2):
            for j in range(4):
                for g in range(2):
                    sc = read_u8(data, o + half * 8 + j * 2 + g)
                    dl = d * np.float32(sc & 0xF)
                    ml = dmin * np.float32(sc >> 4)
                    q_at = o + 16 + half * 32 + g * 16
                    y_at = y + half * 128 + j * 32 + g * 16
                    for l in range(16):
                        q = (read_u8(data, q_at + l) >> (2 * j)) & 3
                        out[y_at + l] = dl * np.float32(q) - ml


@device
def _q3_k_scale(data, s, k):
    low = (read_u8(data, s + (k & 7)) >> (4 * (k >> 3))) & 0xF
    high = (read_u8(data, s + 8 + (k & 3)) >> (2 * (k >> 2))) & 3
    return (low | (high << 4)) - 32


@cuda.jit(cache=True)
def dequantize_row_q3_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 110
        y = out_offset + i * 256
        d = read_f16(data, o + 108)
        for half in range(2):
            for j in range(4):
                m = 1 << (half * 4 + j)
                for g in range(2):
                    dl = d * np.float32(_q3_k_scale(data, o + 96, half * 8 + j * 2 + g))
                    q_at = o + 32 + half * 32 + g * 16
                    h_at = o + g * 16
                    y_at = y + half * 128 + j * 32 + g * 16
                    for l in range(16):
                        q = (read_u8(data, q_at + l) >> (2 * j)) & 3
                        if (read_u8(data, h_at + l) & m) == 0:
                            q -= 4
                        out[y_at + l] = dl * np.float32(q)


@device
def _scale_k4(j, data, s):
    if j < 4:
        return read_u8(data, s + j) & 63
    return (read_u8(data, s + j + 4) & 0xF) | ((read_u8(data, s + j - 4) >> 6) << 4)


@device
def _min_k4(j, data, s):
    if j < 4:
        return read_u8(data, s + j + 4) & 63
    return (read_u8(data, s + j + 4) >> 4) | ((read_u8(data, s + j) >> 6) << 4)


@cuda.jit(cache=True)
def dequantize_row_q4_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 144
        y = out_offset + i * 256
        d = read_f16(data, o)
        dmin = read_f16(data, o + 2)
        for c in range(4):
            d1 = d * np.float32(_scale_k4(2 * c, data, o + 4))
            dm1 = dmin * np.float32(_min_k4(2 * c, data, o + 4))
            d2 = d * np.float32(_scale_k4(2 * c + 1, data, o + 4))
            dm2 = dmin * np.float32(_min_k4(2 * c + 1, data, o + 4))
            for l in range(32):
                q = read_u8(data, o + 16 + c * 32 + l)
                out[y + c * 64 + l] = d1 * np.float32(q & 0xF) - dm1
                out[y + c * 64 + l + 32] = d2 * np.float32(q >> 4) - dm2


@cuda.jit(cache=True)
def dequantize_row_q5_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 176
        y = out_offset + i * 256
        d = read_f16(data, o)
        dmin = read_f16(data, o + 2)
        for c in range(4):
            d1 = d * np.float32(_scale_k4(2 * c, data, o + 4))
            dm1 = dmin * np.float32(_min_k4(2 * c, data, o + 4))
            d2 = d * np.float32(_scale_k4(2 * c + 1, data, o + 4))
            dm2 = dmin * np.float32(_min_k4(2 * c + 1, data, o + 4))
            u1 = 1 << (2 * c)
            u2 = 2 << (2 * c)
            for l in range(32):
                q = read_u8(data, o + 48 + c * 32 + l)
                h = read_u8(data, o + 16 + l)
                q0 = (q & 0xF) + (16 if (h & u1) != 0 else 0)
                q1 = (q >> 4) + (16 if (h & u2) != 0 else 0)
                out[y + c * 64 + l] = d1 * np.float32(q0) - dm1
                out[y + c * 64 + l + 32] = d2 * np.float32(q1) - dm2


@cuda.jit(cache=True)
def dequantize_row_q6_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 210
        y = out_offset + i * 256
        d = read_f16(data, o + 208)
        for half in range(2):
            ql = o + half * 64
            qh = o + 128 + half * 32
            sc = o + 192 + half * 8
            y_at = y + half * 128
            for l in range(32):
                s = l // 16
                lo0 = read_u8(data, ql + l)
                lo1 = read_u8(data, ql + l + 32)
                h = read_u8(data, qh + l)
                q1 = ((lo0 & 0xF) | ((h & 3) << 4)) - 32
                q2 = ((lo1 & 0xF) | (((h >> 2) & 3) << 4)) - 32
                q3 = ((lo0 >> 4) | (((h >> 4) & 3) << 4)) - 32
                q4 = ((lo1 >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[y_at + l] = d * np.float32(int8_of(data[sc + s])) * np.float32(q1)
                out[y_at + l + 32] = d * np.float32(int8_of(data[sc + s + 2])) * np.float32(q2)
                out[y_at + l + 64] = d * np.float32(int8_of(data[sc + s + 4])) * np.float32(q3)
                out[y_at + l + 96] = d * np.float32(int8_of(data[sc + s + 6])) * np.float32(q4)


@cuda.jit(cache=True)
def dequantize_row_q8_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 292
        y = out_offset + i * 256
        d = f32_from_bits(read_u32(data, o))
        for j in range(256):
            out[y + j] = d * np.float32(int8_of(data[o + 4 + j]))


@cuda.jit(cache=True)
def dequantize_row_tq1_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 54
        y = out_offset + i * 256
        d = read_f16(data, o + 52)
        pow3 = 1
        for k in range(5):
            for m in range(32):
                q = (read_u8(data, o + m) * pow3) & 0xFF
                out[y + k * 32 + m] = np.float32(((q * 3) >> 8) - 1) * d
            for m in range(16):
                q = (read_u8(data, o + 32 + m) * pow3) & 0xFF
                out[y + 160 + k * 16 + m] = np.float32(((q * 3) >> 8) - 1) * d
            pow3 *= 3
        pow3 = 1
        for k in range(4):
            for m in range(4):
                q = (read_u8(data, o + 48 + m) * pow3) & 0xFF
                out[y + 240 + k * 4 + m] = np.float32(((q * 3) >> 8) - 1) * d
            pow3 *= 3


@cuda.jit(cache=True)
def dequantize_row_tq2_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 66
        y = out_offset + i * 256
        d = read_f16(data, o + 64)
        for c in range(2):
            for l in range(4):
                for m in range(32):
                    q = (read_u8(data, o + c * 32 + m) >> (2 * l)) & 3
                    out[y + c * 128 + l * 32 + m] = np.float32(q - 1) * d
