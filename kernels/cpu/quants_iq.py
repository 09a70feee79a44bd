"""Lattice and non-linear formats: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL,
IQ4_XS, MXFP4, NVFP4 (dequantize only).

Follows ggml/src/ggml-quants.c dequantize_row_iq* / _mxfp4 / _nvfp4, with the grids of
ggml-common.h (kernels/cpu/iq_grids.py). Kernel shapes are those described in
kernels/cpu/quants_legacy.py. A sign bit set means the value is negated: (db * grid) * -1 is the
exact negation, so `-v` equals ggml's multiply by -1.f.
"""

import math

import numpy as np
from numba import njit

from kernels.cpu import iq_grids
from kernels.cpu.quants_base import f16_to_f32, read_f16, read_u16, read_u32

QK_K = 256
IQ1_DELTA = np.float32(0.125)

# byte views of the grids: value j of entry k is GRID[8 * k + j] (4 * k + j for the IQ3 grids)
_IQ2XXS = iq_grids.IQ2XXS_GRID.view(np.uint8)
_IQ2XS = iq_grids.IQ2XS_GRID.view(np.uint8)
_IQ2S = iq_grids.IQ2S_GRID.view(np.uint8)
_IQ3XXS = iq_grids.IQ3XXS_GRID.view(np.uint8)
_IQ3S = iq_grids.IQ3S_GRID.view(np.uint8)
_IQ1S = iq_grids.IQ1S_GRID.view(np.int8)
_KSIGNS = iq_grids.KSIGNS_IQ2XS
_KVALUES_IQ4NL = iq_grids.KVALUES_IQ4NL
_KVALUES_FP4 = iq_grids.KVALUES_FP4


@njit(cache=True, nogil=True)
def _put_signed(out, y, v, negate):
    out[y] = -v if negate else v


@njit(cache=True, nogil=True)
def dequantize_row_iq2_xxs(data, byte_offset, n, out, out_offset):
    """block_iq2_xxs {fp16 d; uint16 qs[32]}: per 32 values, 4 grid bytes then signs + scale."""
    for i in range(n // QK_K):
        o = byte_offset + i * 66
        d = read_f16(data, o)
        for ib in range(8):
            q_at = o + 2 + 8 * ib
            aux1 = read_u32(data, q_at + 4)
            db = d * (np.float32(0.5) + np.float32(aux1 >> 28)) * np.float32(0.25)
            for l in range(4):
                g = 8 * np.int64(data[q_at + l])
                signs = np.int64(_KSIGNS[(aux1 >> (7 * l)) & 127])
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(8):
                    _put_signed(out, y + j, db * np.float32(_IQ2XXS[g + j]), (signs >> j) & 1)


@njit(cache=True, nogil=True)
def dequantize_row_iq2_xs(data, byte_offset, n, out, out_offset):
    """block_iq2_xs {fp16 d; uint16 qs[32]; uint8 scales[8]}: 9-bit grid index + 7-bit signs."""
    for i in range(n // QK_K):
        o = byte_offset + i * 74
        d = read_f16(data, o)
        for ib in range(8):
            sc = np.int64(data[o + 66 + ib])
            db0 = d * (np.float32(0.5) + np.float32(sc & 0xF)) * np.float32(0.25)
            db1 = d * (np.float32(0.5) + np.float32(sc >> 4)) * np.float32(0.25)
            for l in range(4):
                q = read_u16(data, o + 2 + 2 * (4 * ib + l))
                g = 8 * (q & 511)
                signs = np.int64(_KSIGNS[q >> 9])
                dl = db0 if l < 2 else db1
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(8):
                    _put_signed(out, y + j, dl * np.float32(_IQ2XS[g + j]), (signs >> j) & 1)


@njit(cache=True, nogil=True)
def dequantize_row_iq2_s(data, byte_offset, n, out, out_offset):
    """block_iq2_s {fp16 d; uint8 qs[32], signs[32]; uint8 qh[8]; uint8 scales[8]}."""
    for i in range(n // QK_K):
        o = byte_offset + i * 82
        d = read_f16(data, o)
        for ib in range(8):
            sc = np.int64(data[o + 74 + ib])
            db0 = d * (np.float32(0.5) + np.float32(sc & 0xF)) * np.float32(0.25)
            db1 = d * (np.float32(0.5) + np.float32(sc >> 4)) * np.float32(0.25)
            qh = np.int64(data[o + 66 + ib])
            for l in range(4):
                g = 8 * (np.int64(data[o + 2 + 4 * ib + l]) | ((qh << (8 - 2 * l)) & 0x300))
                signs = np.int64(data[o + 34 + 4 * ib + l])
                dl = db0 if l < 2 else db1
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(8):
                    _put_signed(out, y + j, dl * np.float32(_IQ2S[g + j]), (signs >> j) & 1)


@njit(cache=True, nogil=True)
def dequantize_row_iq3_xxs(data, byte_offset, n, out, out_offset):
    """block_iq3_xxs {fp16 d; uint8 qs[64]; uint32 scales_and_signs[8]}."""
    for i in range(n // QK_K):
        o = byte_offset + i * 98
        d = read_f16(data, o)
        for ib in range(8):
            aux = read_u32(data, o + 66 + 4 * ib)
            db = d * (np.float32(0.5) + np.float32(aux >> 28)) * np.float32(0.5)
            for l in range(4):
                signs = np.int64(_KSIGNS[(aux >> (7 * l)) & 127])
                g1 = 4 * np.int64(data[o + 2 + 8 * ib + 2 * l])
                g2 = 4 * np.int64(data[o + 2 + 8 * ib + 2 * l + 1])
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(4):
                    _put_signed(out, y + j, db * np.float32(_IQ3XXS[g1 + j]), (signs >> j) & 1)
                    _put_signed(out, y + j + 4, db * np.float32(_IQ3XXS[g2 + j]), (signs >> (j + 4)) & 1)


@njit(cache=True, nogil=True)
def dequantize_row_iq3_s(data, byte_offset, n, out, out_offset):
    """block_iq3_s {fp16 d; uint8 qs[64]; uint8 qh[8]; uint8 signs[32]; uint8 scales[4]}."""
    for i in range(n // QK_K):
        o = byte_offset + i * 110
        d = read_f16(data, o)
        for ib in range(8):
            sc = (np.int64(data[o + 106 + ib // 2]) >> (4 * (ib % 2))) & 0xF
            db = d * np.float32(1 + 2 * sc)
            qh = np.int64(data[o + 66 + ib])
            for l in range(4):
                g1 = 4 * (np.int64(data[o + 2 + 8 * ib + 2 * l]) | ((qh << (8 - 2 * l)) & 256))
                g2 = 4 * (np.int64(data[o + 2 + 8 * ib + 2 * l + 1]) | ((qh << (7 - 2 * l)) & 256))
                signs = np.int64(data[o + 74 + 4 * ib + l])
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(4):
                    _put_signed(out, y + j, db * np.float32(_IQ3S[g1 + j]), (signs >> j) & 1)
                    _put_signed(out, y + j + 4, db * np.float32(_IQ3S[g2 + j]), (signs >> (j + 4)) & 1)


@njit(cache=True, nogil=True)
def dequantize_row_iq1_s(data, byte_offset, n, out, out_offset):
    """block_iq1_s {fp16 d; uint8 qs[32]; uint16 qh[8]}: y = dl * (grid + delta)."""
    for i in range(n // QK_K):
        o = byte_offset + i * 50
        d = read_f16(data, o)
        for ib in range(8):
            qh = read_u16(data, o + 34 + 2 * ib)
            dl = d * np.float32(2 * ((qh >> 12) & 7) + 1)
            delta = -IQ1_DELTA if (qh & 0x8000) != 0 else IQ1_DELTA
            for l in range(4):
                g = 8 * (np.int64(data[o + 2 + 4 * ib + l]) | (((qh >> (3 * l)) & 7) << 8))
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(8):
                    out[y + j] = dl * (np.float32(_IQ1S[g + j]) + delta)


@njit(cache=True, nogil=True)
def dequantize_row_iq1_m(data, byte_offset, n, out, out_offset):
    """block_iq1_m {uint8 qs[32]; uint8 qh[16]; uint8 scales[8]}: the fp16 d is spread over the
    top nibbles of the four uint16 scales."""
    for i in range(n // QK_K):
        o = byte_offset + i * 56
        sc0 = read_u16(data, o + 48)
        sc1 = read_u16(data, o + 50)
        sc2 = read_u16(data, o + 52)
        sc3 = read_u16(data, o + 54)
        d = f16_to_f32((sc0 >> 12) | ((sc1 >> 8) & 0x00F0) | ((sc2 >> 4) & 0x0F00) | (sc3 & 0xF000))
        for ib in range(8):
            s = read_u16(data, o + 48 + 2 * (ib // 2))
            dl1 = d * np.float32(2 * ((s >> (6 * (ib % 2))) & 7) + 1)
            dl2 = d * np.float32(2 * ((s >> (6 * (ib % 2) + 3)) & 7) + 1)
            for l in range(4):
                qh = np.int64(data[o + 32 + 2 * ib + l // 2])
                shift = 8 if l % 2 == 0 else 4
                g = 8 * (np.int64(data[o + 4 * ib + l]) | ((qh << shift) & 0x700))
                mask = 0x08 if l % 2 == 0 else 0x80
                delta = -IQ1_DELTA if (qh & mask) != 0 else IQ1_DELTA
                dl = dl1 if l < 2 else dl2
                y = out_offset + i * QK_K + ib * 32 + l * 8
                for j in range(8):
                    out[y + j] = dl * (np.float32(_IQ1S[g + j]) + delta)


@njit(cache=True, nogil=True)
def dequantize_row_iq4_nl(data, byte_offset, n, out, out_offset):
    """block_iq4_nl {fp16 d; uint8 qs[16]}: y = d * kvalues_iq4nl[nibble]."""
    for i in range(n // 32):
        o = byte_offset + i * 18
        y = out_offset + i * 32
        d = read_f16(data, o)
        for j in range(16):
            q = np.int64(data[o + 2 + j])
            out[y + j] = d * np.float32(_KVALUES_IQ4NL[q & 0xF])
            out[y + j + 16] = d * np.float32(_KVALUES_IQ4NL[q >> 4])


@njit(cache=True, nogil=True)
def dequantize_row_iq4_xs(data, byte_offset, n, out, out_offset):
    """block_iq4_xs {fp16 d; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128]}."""
    for i in range(n // QK_K):
        o = byte_offset + i * 136
        d = read_f16(data, o)
        scales_h = read_u16(data, o + 2)
        for ib in range(8):
            ls = (((np.int64(data[o + 4 + ib // 2]) >> (4 * (ib % 2))) & 0xF)
                  | (((scales_h >> (2 * ib)) & 3) << 4))
            dl = d * np.float32(ls - 32)
            y = out_offset + i * QK_K + ib * 32
            for j in range(16):
                q = np.int64(data[o + 8 + 16 * ib + j])
                out[y + j] = dl * np.float32(_KVALUES_IQ4NL[q & 0xF])
                out[y + j + 16] = dl * np.float32(_KVALUES_IQ4NL[q >> 4])


@njit(cache=True, nogil=True)
def e8m0_to_f32_half(e):
    """ggml_e8m0_to_fp32_half: 2^(e - 128) as float32 (denormal for e < 2)."""
    return np.float32(math.ldexp(1.0, np.int64(e) - 128))


@njit(cache=True, nogil=True)
def dequantize_row_mxfp4(data, byte_offset, n, out, out_offset):
    """block_mxfp4 {uint8 e; uint8 qs[16]}: y = kvalues_fp4[nibble] * 2^(e - 128)."""
    for i in range(n // 32):
        o = byte_offset + i * 17
        y = out_offset + i * 32
        d = e8m0_to_f32_half(data[o])
        for j in range(16):
            q = np.int64(data[o + 1 + j])
            out[y + j] = np.float32(_KVALUES_FP4[q & 0xF]) * d
            out[y + j + 16] = np.float32(_KVALUES_FP4[q >> 4]) * d


@njit(cache=True, nogil=True)
def ue4m3_to_f32(x):
    """ggml_ue4m3_to_fp32: unsigned E4M3 (bias 7) times 0.5; 0 and 0x7f give 0."""
    x = np.int64(x)
    if x == 0 or x == 0x7F:
        return np.float32(0.0)
    exp = (x >> 3) & 0xF
    man = x & 0x7
    if exp == 0:
        raw = math.ldexp(np.float64(man), -9)
    else:
        raw = math.ldexp(1.0 + man / 8.0, exp - 7)
    return np.float32(raw * 0.5)


@njit(cache=True, nogil=True)
def dequantize_row_nvfp4(data, byte_offset, n, out, out_offset):
    """block_nvfp4 {uint8 d[4] (UE4M3); uint8 qs[32]}: four 16-value sub-blocks."""
    for i in range(n // 64):
        o = byte_offset + i * 36
        for s in range(4):
            d = ue4m3_to_f32(data[o + s])
            y = out_offset + i * 64 + s * 16
            for j in range(8):
                q = np.int64(data[o + 4 + s * 8 + j])
                out[y + j] = np.float32(_KVALUES_FP4[q & 0xF]) * d
                out[y + j + 8] = np.float32(_KVALUES_FP4[q >> 4]) * d
