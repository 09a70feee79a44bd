"""256-element super-block formats: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, TQ1_0, TQ2_0.

Dequantize follows ggml/src/ggml-quants.c dequantize_row_*; quantize_row_q8_k follows
quantize_row_q8_K_ref (the activation format of the K-quant dot products). Block layouts are the
block_* structs of ggml-common.h; kernel shapes are those described in kernels/cpu/quants_legacy.py.
"""

import numpy as np
from numba import njit

from kernels.cpu.quants_base import int8_of, read_f16

QK_K = 256


@njit(cache=True, nogil=True)
def dequantize_row_q2_k(data, byte_offset, n, out, out_offset):
    """block_q2_K {uint8 scales[16]; uint8 qs[64]; fp16 d, dmin}: y = d*sc * q2 - dmin*m."""
    for i in range(n // QK_K):
        o = byte_offset + i * 84
        y = out_offset + i * QK_K
        d = read_f16(data, o + 80)
        dmin = read_f16(data, o + 82)
        for half in range(2):
            for j in range(4):
                for g in range(2):
                    sc = np.int64(data[o + half * 8 + j * 2 + g])
                    dl = d * np.float32(sc & 0xF)
                    ml = dmin * np.float32(sc >> 4)
                    q_at = o + 16 + half * 32 + g * 16
                    y_at = y + half * 128 + j * 32 + g * 16
                    for l in range(16):
                        q = (np.int64(data[q_at + l]) >> (2 * j)) & 3
                        out[y_at + l] = dl * np.float32(q) - ml


@njit(cache=True, nogil=True)
def _q3_k_scale(data, s, k):
    """Signed 6-bit scale k (0..15) of the 12 packed bytes at data[s:]."""
    low = (np.int64(data[s + (k & 7)]) >> (4 * (k >> 3))) & 0xF
    high = (np.int64(data[s + 8 + (k & 3)]) >> (2 * (k >> 2))) & 3
    return (low | (high << 4)) - 32


@njit(cache=True, nogil=True)
def dequantize_row_q3_k(data, byte_offset, n, out, out_offset):
    """block_q3_K {uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; fp16 d}: y = d*sc * q3."""
    for i in range(n // QK_K):
        o = byte_offset + i * 110
        y = out_offset + i * QK_K
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
                        q = (np.int64(data[q_at + l]) >> (2 * j)) & 3
                        if (np.int64(data[h_at + l]) & m) == 0:
                            q -= 4
                        out[y_at + l] = dl * np.float32(q)


@njit(cache=True, nogil=True)
def scale_min_k4(j, data, s):
    """get_scale_min_k4: 6-bit scale and min j (0..7) of the 12 packed bytes at data[s:]."""
    if j < 4:
        sc = np.int64(data[s + j]) & 63
        m = np.int64(data[s + j + 4]) & 63
    else:
        sc = (np.int64(data[s + j + 4]) & 0xF) | ((np.int64(data[s + j - 4]) >> 6) << 4)
        m = (np.int64(data[s + j + 4]) >> 4) | ((np.int64(data[s + j]) >> 6) << 4)
    return sc, m


@njit(cache=True, nogil=True)
def dequantize_row_q4_k(data, byte_offset, n, out, out_offset):
    """block_q4_K {fp16 d, dmin; uint8 scales[12]; uint8 qs[128]}: y = d*sc * q4 - dmin*m."""
    for i in range(n // QK_K):
        o = byte_offset + i * 144
        y = out_offset + i * QK_K
        d = read_f16(data, o)
        dmin = read_f16(data, o + 2)
        for c in range(4):
            sc1, m1 = scale_min_k4(2 * c, data, o + 4)
            sc2, m2 = scale_min_k4(2 * c + 1, data, o + 4)
            d1 = d * np.float32(sc1)
            dm1 = dmin * np.float32(m1)
            d2 = d * np.float32(sc2)
            dm2 = dmin * np.float32(m2)
            q_at = o + 16 + c * 32
            y_at = y + c * 64
            for l in range(32):
                q = np.int64(data[q_at + l])
                out[y_at + l] = d1 * np.float32(q & 0xF) - dm1
                out[y_at + l + 32] = d2 * np.float32(q >> 4) - dm2


@njit(cache=True, nogil=True)
def dequantize_row_q5_k(data, byte_offset, n, out, out_offset):
    """block_q5_K {fp16 d, dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]}."""
    for i in range(n // QK_K):
        o = byte_offset + i * 176
        y = out_offset + i * QK_K
        d = read_f16(data, o)
        dmin = read_f16(data, o + 2)
        for c in range(4):
            sc1, m1 = scale_min_k4(2 * c, data, o + 4)
            sc2, m2 = scale_min_k4(2 * c + 1, data, o + 4)
            d1 = d * np.float32(sc1)
            dm1 = dmin * np.float32(m1)
            d2 = d * np.float32(sc2)
            dm2 = dmin * np.float32(m2)
            u1 = 1 << (2 * c)
            u2 = 2 << (2 * c)
            q_at = o + 48 + c * 32
            y_at = y + c * 64
            for l in range(32):
                q = np.int64(data[q_at + l])
                h = np.int64(data[o + 16 + l])
                q0 = (q & 0xF) + (16 if (h & u1) != 0 else 0)
                q1 = (q >> 4) + (16 if (h & u2) != 0 else 0)
                out[y_at + l] = d1 * np.float32(q0) - dm1
                out[y_at + l + 32] = d2 * np.float32(q1) - dm2


@njit(cache=True, nogil=True)
def dequantize_row_q6_k(data, byte_offset, n, out, out_offset):
    """block_q6_K {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; fp16 d}: y = d*sc * (q6 - 32)."""
    for i in range(n // QK_K):
        o = byte_offset + i * 210
        y = out_offset + i * QK_K
        d = read_f16(data, o + 208)
        for half in range(2):
            ql = o + half * 64
            qh = o + 128 + half * 32
            sc = o + 192 + half * 8
            y_at = y + half * 128
            for l in range(32):
                s = l // 16
                lo0 = np.int64(data[ql + l])
                lo1 = np.int64(data[ql + l + 32])
                h = np.int64(data[qh + l])
                q1 = ((lo0 & 0xF) | ((h & 3) << 4)) - 32
                q2 = ((lo1 & 0xF) | (((h >> 2) & 3) << 4)) - 32
                q3 = ((lo0 >> 4) | (((h >> 4) & 3) << 4)) - 32
                q4 = ((lo1 >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[y_at + l] = d * np.float32(int8_of(data[sc + s])) * np.float32(q1)
                out[y_at + l + 32] = d * np.float32(int8_of(data[sc + s + 2])) * np.float32(q2)
                out[y_at + l + 64] = d * np.float32(int8_of(data[sc + s + 4])) * np.float32(q3)
                out[y_at + l + 96] = d * np.float32(int8_of(data[sc + s + 6])) * np.float32(q4)


@njit(cache=True, nogil=True)
def dequantize_row_q8_k(data, byte_offset, n, out, out_offset):
    """block_q8_K {float32 d; int8 qs[256]; int16 bsums[16]}: y = d * q."""
    for i in range(n // QK_K):
        o = byte_offset + i * 292
        y = out_offset + i * QK_K
        d = data[o:o + 4].view(np.float32)[0]
        for j in range(QK_K):
            out[y + j] = d * np.float32(int8_of(data[o + 4 + j]))


@njit(cache=True, nogil=True)
def _nearest_int(v):
    """ggml nearest_int: round float32 v to nearest, ties to even, via the 1.5 * 2^23 trick."""
    t = v + np.float32(12582912.0)
    return np.int64(t) - 12582912


@njit(cache=True, nogil=True)
def quantize_row_q8_k(x, x_offset, n, out, byte_offset):
    """quantize_row_q8_K_ref: iscale = -127 / max (max = signed value of largest |x|),
    q = min(127, nearest_int(iscale * x)), d = 1 / iscale (float32), bsums = sums of 16 q.

    An all-zero block gets d = 0, q = 0 and bsums = 0 (ggml leaves bsums unwritten there).
    """
    for i in range(n // QK_K):
        b = x_offset + i * QK_K
        o = byte_offset + i * 292
        amax = np.float32(0.0)
        vmax = np.float32(0.0)
        for j in range(QK_K):
            ax = abs(x[b + j])
            if ax > amax:
                amax = ax
                vmax = x[b + j]
        if amax == 0.0:
            out[o:o + 292] = 0
            continue
        iscale = np.float32(-127.0) / vmax
        for g in range(16):
            s = 0
            for l in range(16):
                j = g * 16 + l
                v = min(127, _nearest_int(iscale * x[b + j]))
                out[o + 4 + j] = v & 0xFF
                s += v
            out[o + 260 + 2 * g] = s & 0xFF
            out[o + 261 + 2 * g] = (s >> 8) & 0xFF
        out[o:o + 4].view(np.float32)[0] = np.float32(1.0) / iscale


@njit(cache=True, nogil=True)
def dequantize_row_tq1_0(data, byte_offset, n, out, out_offset):
    """block_tq1_0 {uint8 qs[48]; uint8 qh[4]; fp16 d}: base-3 digits, y = (t - 1) * d."""
    for i in range(n // QK_K):
        o = byte_offset + i * 54
        y = out_offset + i * QK_K
        d = read_f16(data, o + 52)
        pow3 = 1
        for k in range(5):
            for m in range(32):
                q = (np.int64(data[o + m]) * pow3) & 0xFF
                out[y + k * 32 + m] = np.float32(((q * 3) >> 8) - 1) * d
            for m in range(16):
                q = (np.int64(data[o + 32 + m]) * pow3) & 0xFF
                out[y + 160 + k * 16 + m] = np.float32(((q * 3) >> 8) - 1) * d
            pow3 *= 3
        pow3 = 1
        for k in range(4):
            for m in range(4):
                q = (np.int64(data[o + 48 + m]) * pow3) & 0xFF
                out[y + 240 + k * 4 + m] = np.float32(((q * 3) >> 8) - 1) * d
            pow3 *= 3


@njit(cache=True, nogil=True)
def dequantize_row_tq2_0(data, byte_offset, n, out, out_offset):
    """block_tq2_0 {uint8 qs[64]; fp16 d}: 2-bit ternary digits, y = (t - 1) * d."""
    for i in range(n // QK_K):
        o = byte_offset + i * 66
        y = out_offset + i * QK_K
        d = read_f16(data, o + 64)
        for c in range(2):
            for l in range(4):
                for m in range(32):
                    q = (np.int64(data[o + c * 32 + m]) >> (2 * l)) & 3
                    out[y + c * 128 + l * 32 + m] = np.float32(q - 1) * d

