"""CUDA twins of kernels/cpu/quants_iq.py (dequantize): IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S,
IQ1_S, IQ1_M, IQ4_NL, IQ4_XS, MXFP4, NVFP4.

One thread per quant block, grid-stride; see kernels/cuda/quants_legacy.py. The grids of
ggml-common.h (kernels/cpu/iq_grids.py) are module-level arrays, which Numba places in constant
memory. A set sign bit negates the value, as the CPU kernels do.
"""

import math

import numpy as np
from numba import cuda

from kernels.cpu import iq_grids
from kernels.cuda.quants_base import f16_to_f32, read_f16, read_u16, read_u32, read_u8
from kernels.cuda.simulator import device

# value j of grid entry k is GRID[8 * k + j] (4 * k + j for the IQ3 grids)
_IQ2XXS = np.ascontiguousarray(iq_grids.IQ2XXS_GRID.view(np.uint8))
_IQ2XS = np.ascontiguousarray(iq_grids.IQ2XS_GRID.view(np.uint8))
_IQ2S = np.ascontiguousarray(iq_grids.IQ2S_GRID.view(np.uint8))
_IQ3XXS = np.ascontiguousarray(iq_grids.IQ3XXS_GRID.view(np.uint8))
_IQ3S = np.ascontiguousarray(iq_grids.IQ3S_GRID.view(np.uint8))
_IQ1S = np.ascontiguousarray(iq_grids.IQ1S_GRID.view(np.int8))
_KSIGNS = iq_grids.KSIGNS_IQ2XS.astype(np.int32)
_KVALUES_IQ4NL = iq_grids.KVALUES_IQ4NL.astype(np.int32)
_KVALUES_FP4 = iq_grids.KVALUES_FP4.astype(np.int32)
_IQ1_DELTA = np.float32(0.125)


@cuda.jit(cache=True)
def dequantize_row_iq2_xxs(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 66
        d = read_f16(data, o)
        for ib in range(8):
            q_at = o + 2 + 8 * ib
            aux1 = read_u32(data, q_at + 4)
            db = d * (np.float32(0.5) + np.float32(aux1 >> 28)) * np.float32(0.25)
            for l in range(4):
                g = 8 * read_u8(data, q_at + l)
                signs = _KSIGNS[(aux1 >> (7 * l)) & 127]
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(8):
                    v = db * np.float32(_IQ2XXS[g + j])
                    out[y + j] = -v if ((signs >> j) & 1) != 0 else v


@cuda.jit(cache=True)
def dequantize_row_iq2_xs(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 74
        d = read_f16(data, o)
        for ib in range(8):
            sc = read_u8(data, o + 66 + ib)
            db0 = d * (np.float32(0.5) + np.float32(sc & 0xF)) * np.float32(0.25)
            db1 = d * (np.float32(0.5) + np.float32(sc >> 4)) * np.float32(0.25)
            for l in range(4):
                q = read_u16(data, o + 2 + 2 * (4 * ib + l))
                g = 8 * (q & 511)
                signs = _KSIGNS[q >> 9]
                dl = db0 if l < 2 else db1
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(8):
                    v = dl * np.float32(_IQ2XS[g + j])
                    out[y + j] = -v if ((signs >> j) & 1) != 0 else v


@cuda.jit(cache=True)
def dequantize_row_iq2_s(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 82
        d = read_f16(data, o)
        for ib in range(8):
            sc = read_u8(data, o + 74 + ib)
            db0 = d * (np.float32(0.5) + np.float32(sc & 0xF)) * np.float32(0.25)
            db1 = d * (np.float32(0.5) + np.float32(sc >> 4)) * np.float32(0.25)
            qh = read_u8(data, o + 66 + ib)
            for l in range(4):
                g = 8 * (read_u8(data, o + 2 + 4 * ib + l) | ((qh << (8 - 2 * l)) & 0x300))
                signs = read_u8(data, o + 34 + 4 * ib + l)
                dl = db0 if l < 2 else db1
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(8):
                    v = dl * np.float32(_IQ2S[g + j])
                    out[y + j] = -v if ((signs >> j) & 1) != 0 else v


@cuda.jit(cache=True)
def dequantize_row_iq3_xxs(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 98
        d = read_f16(data, o)
        for ib in range(8):
            aux = read_u32(data, o + 66 + 4 * ib)
            db = d * (np.float32(0.5) + np.float32(aux >> 28)) * np.float32(0.5)
            for l in range(4):
                signs = _KSIGNS[(aux >> (7 * l)) & 127]
                g1 = 4 * read_u8(data, o + 2 + 8 * ib + 2 * l)
                g2 = 4 * read_u8(data, o + 2 + 8 * ib + 2 * l + 1)
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(4):
                    v1 = db * np.float32(_IQ3XXS[g1 + j])
                    v2 = db * np.float32(_IQ3XXS[g2 + j])
                    out[y + j] = -v1 if ((signs >> j) & 1) != 0 else v1
                    out[y + j + 4] = -v2 if ((signs >> (j + 4)) & 1) != 0 else v2


@cuda.jit(cache=True)
def dequantize_row_iq3_s(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 110
        d = read_f16(data, o)
        for ib in range(8):
            sc = (read_u8(data, o + 106 + ib // 2) >> (4 * (ib % 2))) & 0xF
            db = d * np.float32(1 + 2 * sc)
            qh = read_u8(data, o + 66 + ib)
            for l in range(4):
                g1 = 4 * (read_u8(data, o + 2 + 8 * ib + 2 * l) | ((qh << (8 - 2 * l)) & 256))
                g2 = 4 * (read_u8(data, o + 2 + 8 * ib + 2 * l + 1) | ((qh << (7 - 2 * l)) & 256))
                signs = read_u8(data, o + 74 + 4 * ib + l)
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(4):
                    v1 = db * np.float32(_IQ3S[g1 + j])
                    v2 = db * np.float32(_IQ3S[g2 + j])
                    out[y + j] = -v1 if ((signs >> j) & 1) != 0 else v1
                    out[y + j + 4] = -v2 if ((signs >> (j + 4)) & 1) != 0 else v2


@cuda.jit(cache=True)
def dequantize_row_iq1_s(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 50
        d = read_f16(data, o)
        for ib in range(8):
            qh = read_u16(data, o + 34 + 2 * ib)
            dl = d * np.float32(2 * ((qh >> 12) & 7) + 1)
            delta = -_IQ1_DELTA if (qh & 0x8000) != 0 else _IQ1_DELTA
            for l in range(4):
                g = 8 * (read_u8(data, o + 2 + 4 * ib + l) | (((qh >> (3 * l)) & 7) << 8))
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(8):
                    out[y + j] = dl * (np.float32(_IQ1S[g + j]) + delta)


@cuda.jit(cache=True)
def dequantize_row_iq1_m(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
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
                qh = read_u8(data, o + 32 + 2 * ib + l // 2)
                shift = 8 if l % 2 == 0 else 4
                g = 8 * (read_u8(data, o + 4 * ib + l) | ((qh << shift) & 0x700))
                mask = 0x08 if l % 2 == 0 else 0x80
                delta = -_IQ1_DELTA if (qh & mask) != 0 else _IQ1_DELTA
                dl = dl1 if l < 2 else dl2
                y = out_offset + i * 256 + ib * 32 + l * 8
                for j in range(8):
                    out[y + j] = dl * (np.float32(_IQ1S[g + j]) + delta)


@cuda.jit(cache=True)
def dequantize_row_iq4_nl(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 18
        y = out_offset + i * 32
        d = read_f16(data, o)
        for j in range(16):
            q = read_u8(data, o + 2 + j)
            out[y + j] = d * np.float32(_KVALUES_IQ4NL[q & 0xF])
            out[y + j + 16] = d * np.float32(_KVALUES_IQ4NL[q >> 4])


@cuda.jit(cache=True)
def dequantize_row_mxfp4(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 17
        y = out_offset + i * 32
        d = np.float32(math.ldexp(1.0, int(read_u8(data, o) - 128)))
        for j in range(16):
            q = read_u8(data, o + 1 + j)
            out[y + j] = np.float32(_KVALUES_FP4[q & 0xF]) * d
            out[y + j + 16] = np.float32(_KVALUES_FP4[q >> 4]) * d




@cuda.jit(cache=True)
def dequantize_row_iq4_xs(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 136
        d = read_f16(data, o)
        scales_h = read_u16(data, o + 2)
        for ib in range(8):
            ls = ((read_u8(data, o + 4 + ib // 2) >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4)
            dl = d * np.float32(ls - 32)
            y = out_offset + i * 256 + ib * 32
            for j in range(16):
                q = read_u8(data, o + 8 + 16 * ib + j)
                out[y + j] = dl * np.float32(_KVALUES_IQ4NL[q & 0xF])
                out[y + j + 16] = dl * np.float32(_KVALUES_IQ4NL[q >> 4])


@device
def _ue4m3_to_f32(x):
    if x == 0 or x == 0x7F:
        return np.float32(0.0)
    exp = (x >> 3) & 0xF
    man = x & 0x7
    if exp == 0:
        raw = math.ldexp(np.float64(man), -9)
    else:
        raw = math.ldexp(1.0 + man / 8.0, int(exp - 7))
    return np.float32(raw * 0.5)


@cuda.jit(cache=True)
def dequantize_row_nvfp4(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 64, cuda.gridsize(1)):
        o = byte_offset + i * 36
        for s in range(4):
            d = _ue4m3_to_f32(read_u8(data, o + s))
            y = out_offset + i * 64 + s * 16
            for j in range(8):
                q = read_u8(data, o + 4 + s * 8 + j)
                out[y + j] = np.float32(_KVALUES_FP4[q & 0xF]) * d
                out[y + j + 8] = np.float32(_KVALUES_FP4[q >> 4]) * d
