"""CUDA twins of kernels/cpu/quants_legacy.py (dequantize): F32, F16, BF16, Q4_0, Q4_1, Q5_0,
Q5_1, Q8_0.

Same names and arguments as the CPU kernels: `dequantize_row_<type>[grid, block](data,
byte_offset, n, out, out_offset)`; one thread per quant block (per value for the float formats)
in a grid-stride loop. float32 arithmetic in ggml's order, so results equal the CPU kernels.
"""

import numpy as np
from numba import cuda

from kernels.cuda.quants_base import f32_from_bits, int8_of, read_f16, read_u16, read_u32, read_u8


@cuda.jit(cache=True)
def dequantize_row_f32(data, byte_offset, n, out, out_offset):
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[out_offset + j] = f32_from_bits(read_u32(data, byte_offset + 4 * j))


@cuda.jit(cache=True)
def dequantize_row_f16(data, byte_offset, n, out, out_offset):
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[out_offset + j] = read_f16(data, byte_offset + 2 * j)


@cuda.jit(cache=True)
def dequantize_row_bf16(data, byte_offset, n, out, out_offset):
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[out_offset + j] = f32_from_bits(np.int64(read_u16(data, byte_offset + 2 * j)) << 16)


@cuda.jit(cache=True)
def dequantize_row_q4_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 18
        y = out_offset + i * 32
        d = read_f16(data, o)
        for j in range(16):
            q = read_u8(data, o + 2 + j)
            out[y + j] = d * np.float32((q & 0xF) - 8)
            out[y + j + 16] = d * np.float32((q >> 4) - 8)


@cuda.jit(cache=True)
def dequantize_row_q4_1(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 20
        y = out_offset + i * 32
        d = read_f16(data, o)
        m = read_f16(data, o + 2)
        for j in range(16):
            q = read_u8(data, o + 4 + j)
            out[y + j] = d * np.float32(q & 0xF) + m
            out[y + j + 16] = d * np.float32(q >> 4) + m


@cuda.jit(cache=True)
def dequantize_row_q5_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 22
        y = out_offset + i * 32
        d = read_f16(data, o)
        qh = read_u32(data, o + 2)
        for j in range(16):
            q = read_u8(data, o + 6 + j)
            x0 = (q & 0xF) | np.int32(((qh >> j) << 4) & 0x10)
            x1 = (q >> 4) | np.int32((qh >> (j + 12)) & 0x10)
            out[y + j] = d * np.float32(x0 - 16)
            out[y + j + 16] = d * np.float32(x1 - 16)


@cuda.jit(cache=True)
def dequantize_row_q5_1(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 24
        y = out_offset + i * 32
        d = read_f16(data, o)
        m = read_f16(data, o + 2)
        qh = read_u32(data, o + 4)
        for j in range(16):
            q = read_u8(data, o + 8 + j)
            x0 = (q & 0xF) | np.int32(((qh >> j) << 4) & 0x10)
            x1 = (q >> 4) | np.int32((qh >> (j + 12)) & 0x10)
            out[y + j] = d * np.float32(x0) + m
            out[y + j + 16] = d * np.float32(x1) + m


@cuda.jit(cache=True)
def dequantize_row_q8_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 34
        y = out_offset + i * 32
        d = read_f16(data, o)
        for j in range(32):
            out[y + j] = d * np.float32(int8_of(data[o + 2 + j]))
