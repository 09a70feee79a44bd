"""CUDA twins of kernels.cpu.quants: dequantize GGUF tensor data on the GPU.

Each kernel has the name and arguments of its CPU twin (kernels/cpu/quants_legacy.py,
quants_k.py, quants_iq.py): `dequantize_row_<type>[grid, block](data, byte_offset, n, out,
out_offset)`. One thread dequantizes one quant block (one value for F32/F16/BF16), in a
grid-stride loop, so any launch size is correct. Arithmetic is float32 in ggml's order, so
results equal the CPU kernels bit for bit, except that NaNs of F32/F16/BF16 data come out as the
canonical NaN (their payload is not kept: the CUDA kernels build floats arithmetically).

Host entry point: `dequantize(data, ggml_type, n_elements, out=None, threads_per_block=...)`,
checked like the CPU one. Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
Q5_K, Q6_K, Q8_K, IQ4_NL, MXFP4. numba.cuda is imported only inside kernels/cuda.
"""

import math

import numpy as np
from numba import cuda

from kernels.cpu import quants_base as qb
from kernels.cpu.iq_grids import KVALUES_FP4, KVALUES_IQ4NL

THREADS_PER_BLOCK = 128
MAX_BLOCKS = 4096  # grid size cap; the grid-stride loops cover the rest

# global arrays become constant memory on the device
_KVALUES_IQ4NL = KVALUES_IQ4NL.astype(np.int32)
_KVALUES_FP4 = KVALUES_FP4.astype(np.int32)


@cuda.jit(device=True)
def _u8(data, o):
    return np.int32(data[o])


@cuda.jit(device=True)
def _u16(data, o):
    return np.int32(data[o]) | (np.int32(data[o + 1]) << 8)


@cuda.jit(device=True)
def _u32(data, o):
    return (np.int64(data[o]) | (np.int64(data[o + 1]) << 8) | (np.int64(data[o + 2]) << 16)
            | (np.int64(data[o + 3]) << 24))


@cuda.jit(device=True)
def _s8(b):
    return (np.int32(b) ^ 0x80) - 0x80


@cuda.jit(device=True)
def _half(h):
    """float32 value of the IEEE half with bits h (exact; NaN canonical)."""
    exp = (h >> 10) & 0x1F
    man = h & 0x3FF
    if exp == 0x1F:
        v = np.float32(math.inf) if man == 0 else np.float32(math.nan)
    elif exp == 0:
        v = np.float32(math.ldexp(np.float64(man), -24))
    else:
        v = np.float32(math.ldexp(np.float64(man | 0x400), int(exp - 25)))
    return -v if (h & 0x8000) != 0 else v


@cuda.jit(device=True)
def _f16(data, o):
    return _half(_u16(data, o))


@cuda.jit(device=True)
def _f32_bits(u):
    """float32 value with bits u (exact; NaN canonical)."""
    exp = (u >> 23) & 0xFF
    man = u & 0x7FFFFF
    if exp == 0xFF:
        v = np.float32(math.inf) if man == 0 else np.float32(math.nan)
    elif exp == 0:
        v = np.float32(math.ldexp(np.float64(man), -149))
    else:
        v = np.float32(math.ldexp(np.float64(man | 0x800000), int(exp - 150)))
    return -v if (u & 0x80000000) != 0 else v


@cuda.jit
def dequantize_row_f32(data, byte_offset, n, out, out_offset):
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[out_offset + j] = _f32_bits(_u32(data, byte_offset + 4 * j))


@cuda.jit
def dequantize_row_f16(data, byte_offset, n, out, out_offset):
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[out_offset + j] = _f16(data, byte_offset + 2 * j)


@cuda.jit
def dequantize_row_bf16(data, byte_offset, n, out, out_offset):
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        out[out_offset + j] = _f32_bits(np.int64(_u16(data, byte_offset + 2 * j)) << 16)


@cuda.jit
def dequantize_row_q4_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 18
        y = out_offset + i * 32
        d = _f16(data, o)
        for j in range(16):
            q = _u8(data, o + 2 + j)
            out[y + j] = d * np.float32((q & 0xF) - 8)
            out[y + j + 16] = d * np.float32((q >> 4) - 8)


@cuda.jit
def dequantize_row_q4_1(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 20
        y = out_offset + i * 32
        d = _f16(data, o)
        m = _f16(data, o + 2)
        for j in range(16):
            q = _u8(data, o + 4 + j)
            out[y + j] = d * np.float32(q & 0xF) + m
            out[y + j + 16] = d * np.float32(q >> 4) + m


@cuda.jit
def dequantize_row_q5_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 22
        y = out_offset + i * 32
        d = _f16(data, o)
        qh = _u32(data, o + 2)
        for j in range(16):
            q = _u8(data, o + 6 + j)
            x0 = (q & 0xF) | np.int32(((qh >> j) << 4) & 0x10)
            x1 = (q >> 4) | np.int32((qh >> (j + 12)) & 0x10)
            out[y + j] = d * np.float32(x0 - 16)
            out[y + j + 16] = d * np.float32(x1 - 16)


@cuda.jit
def dequantize_row_q5_1(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 24
        y = out_offset + i * 32
        d = _f16(data, o)
        m = _f16(data, o + 2)
        qh = _u32(data, o + 4)
        for j in range(16):
            q = _u8(data, o + 8 + j)
            x0 = (q & 0xF) | np.int32(((qh >> j) << 4) & 0x10)
            x1 = (q >> 4) | np.int32((qh >> (j + 12)) & 0x10)
            out[y + j] = d * np.float32(x0) + m
            out[y + j + 16] = d * np.float32(x1) + m


@cuda.jit
def dequantize_row_q8_0(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 34
        y = out_offset + i * 32
        d = _f16(data, o)
        for j in range(32):
            out[y + j] = d * np.float32(_s8(data[o + 2 + j]))


@cuda.jit
def dequantize_row_q2_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 84
        y = out_offset + i * 256
        d = _f16(data, o + 80)
        dmin = _f16(data, o + 82)
        for half in range(2):
            for j in range(4):
                for g in range(2):
                    sc = _u8(data, o + half * 8 + j * 2 + g)
                    dl = d * np.float32(sc & 0xF)
                    ml = dmin * np.float32(sc >> 4)
                    q_at = o + 16 + half * 32 + g * 16
                    y_at = y + half * 128 + j * 32 + g * 16
                    for l in range(16):
                        q = (_u8(data, q_at + l) >> (2 * j)) & 3
                        out[y_at + l] = dl * np.float32(q) - ml


@cuda.jit(device=True)
def _q3_k_scale(data, s, k):
    low = (_u8(data, s + (k & 7)) >> (4 * (k >> 3))) & 0xF
    high = (_u8(data, s + 8 + (k & 3)) >> (2 * (k >> 2))) & 3
    return (low | (high << 4)) - 32


@cuda.jit
def dequantize_row_q3_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 110
        y = out_offset + i * 256
        d = _f16(data, o + 108)
        for half in range(2):
            for j in range(4):
                m = 1 << (half * 4 + j)
                for g in range(2):
                    dl = d * np.float32(_q3_k_scale(data, o + 96, half * 8 + j * 2 + g))
                    q_at = o + 32 + half * 32 + g * 16
                    h_at = o + g * 16
                    y_at = y + half * 128 + j * 32 + g * 16
                    for l in range(16):
                        q = (_u8(data, q_at + l) >> (2 * j)) & 3
                        if (_u8(data, h_at + l) & m) == 0:
                            q -= 4
                        out[y_at + l] = dl * np.float32(q)


@cuda.jit(device=True)
def _scale_k4(j, data, s):
    if j < 4:
        return _u8(data, s + j) & 63
    return (_u8(data, s + j + 4) & 0xF) | ((_u8(data, s + j - 4) >> 6) << 4)


@cuda.jit(device=True)
def _min_k4(j, data, s):
    if j < 4:
        return _u8(data, s + j + 4) & 63
    return (_u8(data, s + j + 4) >> 4) | ((_u8(data, s + j) >> 6) << 4)


@cuda.jit
def dequantize_row_q4_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 144
        y = out_offset + i * 256
        d = _f16(data, o)
        dmin = _f16(data, o + 2)
        for c in range(4):
            d1 = d * np.float32(_scale_k4(2 * c, data, o + 4))
            dm1 = dmin * np.float32(_min_k4(2 * c, data, o + 4))
            d2 = d * np.float32(_scale_k4(2 * c + 1, data, o + 4))
            dm2 = dmin * np.float32(_min_k4(2 * c + 1, data, o + 4))
            for l in range(32):
                q = _u8(data, o + 16 + c * 32 + l)
                out[y + c * 64 + l] = d1 * np.float32(q & 0xF) - dm1
                out[y + c * 64 + l + 32] = d2 * np.float32(q >> 4) - dm2


@cuda.jit
def dequantize_row_q5_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 176
        y = out_offset + i * 256
        d = _f16(data, o)
        dmin = _f16(data, o + 2)
        for c in range(4):
            d1 = d * np.float32(_scale_k4(2 * c, data, o + 4))
            dm1 = dmin * np.float32(_min_k4(2 * c, data, o + 4))
            d2 = d * np.float32(_scale_k4(2 * c + 1, data, o + 4))
            dm2 = dmin * np.float32(_min_k4(2 * c + 1, data, o + 4))
            u1 = 1 << (2 * c)
            u2 = 2 << (2 * c)
            for l in range(32):
                q = _u8(data, o + 48 + c * 32 + l)
                h = _u8(data, o + 16 + l)
                q0 = (q & 0xF) + (16 if (h & u1) != 0 else 0)
                q1 = (q >> 4) + (16 if (h & u2) != 0 else 0)
                out[y + c * 64 + l] = d1 * np.float32(q0) - dm1
                out[y + c * 64 + l + 32] = d2 * np.float32(q1) - dm2


@cuda.jit
def dequantize_row_q6_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 210
        y = out_offset + i * 256
        d = _f16(data, o + 208)
        for half in range(2):
            ql = o + half * 64
            qh = o + 128 + half * 32
            sc = o + 192 + half * 8
            y_at = y + half * 128
            for l in range(32):
                s = l // 16
                lo0 = _u8(data, ql + l)
                lo1 = _u8(data, ql + l + 32)
                h = _u8(data, qh + l)
                q1 = ((lo0 & 0xF) | ((h & 3) << 4)) - 32
                q2 = ((lo1 & 0xF) | (((h >> 2) & 3) << 4)) - 32
                q3 = ((lo0 >> 4) | (((h >> 4) & 3) << 4)) - 32
                q4 = ((lo1 >> 4) | (((h >> 6) & 3) << 4)) - 32
                out[y_at + l] = d * np.float32(_s8(data[sc + s])) * np.float32(q1)
                out[y_at + l + 32] = d * np.float32(_s8(data[sc + s + 2])) * np.float32(q2)
                out[y_at + l + 64] = d * np.float32(_s8(data[sc + s + 4])) * np.float32(q3)
                out[y_at + l + 96] = d * np.float32(_s8(data[sc + s + 6])) * np.float32(q4)


@cuda.jit
def dequantize_row_q8_k(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 256, cuda.gridsize(1)):
        o = byte_offset + i * 292
        y = out_offset + i * 256
        d = _f32_bits(_u32(data, o))
        for j in range(256):
            out[y + j] = d * np.float32(_s8(data[o + 4 + j]))


@cuda.jit
def dequantize_row_iq4_nl(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 18
        y = out_offset + i * 32
        d = _f16(data, o)
        for j in range(16):
            q = _u8(data, o + 2 + j)
            out[y + j] = d * np.float32(_KVALUES_IQ4NL[q & 0xF])
            out[y + j + 16] = d * np.float32(_KVALUES_IQ4NL[q >> 4])


@cuda.jit
def dequantize_row_mxfp4(data, byte_offset, n, out, out_offset):
    for i in range(cuda.grid(1), n // 32, cuda.gridsize(1)):
        o = byte_offset + i * 17
        y = out_offset + i * 32
        d = np.float32(math.ldexp(1.0, int(_u8(data, o) - 128)))
        for j in range(16):
            q = _u8(data, o + 1 + j)
            out[y + j] = np.float32(_KVALUES_FP4[q & 0xF]) * d
            out[y + j + 16] = np.float32(_KVALUES_FP4[q >> 4]) * d


KERNELS = {
    qb.GGML_TYPE_F32: dequantize_row_f32,
    qb.GGML_TYPE_F16: dequantize_row_f16,
    qb.GGML_TYPE_BF16: dequantize_row_bf16,
    qb.GGML_TYPE_Q4_0: dequantize_row_q4_0,
    qb.GGML_TYPE_Q4_1: dequantize_row_q4_1,
    qb.GGML_TYPE_Q5_0: dequantize_row_q5_0,
    qb.GGML_TYPE_Q5_1: dequantize_row_q5_1,
    qb.GGML_TYPE_Q8_0: dequantize_row_q8_0,
    qb.GGML_TYPE_Q2_K: dequantize_row_q2_k,
    qb.GGML_TYPE_Q3_K: dequantize_row_q3_k,
    qb.GGML_TYPE_Q4_K: dequantize_row_q4_k,
    qb.GGML_TYPE_Q5_K: dequantize_row_q5_k,
    qb.GGML_TYPE_Q6_K: dequantize_row_q6_k,
    qb.GGML_TYPE_Q8_K: dequantize_row_q8_k,
    qb.GGML_TYPE_IQ4_NL: dequantize_row_iq4_nl,
    qb.GGML_TYPE_MXFP4: dequantize_row_mxfp4,
}
DEQUANTIZE_TYPES = frozenset(KERNELS)


def dequantize(data, ggml_type: int, n_elements: int, out=None,
               threads_per_block: int = THREADS_PER_BLOCK, max_blocks: int = MAX_BLOCKS):
    """Dequantize n_elements values of ggml_type from data (uint8 numpy or device array).

    A numpy `data` gives a numpy float32[n_elements] result; a device array gives a device array
    (`out`, when given, must be a float32 device array of n_elements). Raises TypeError /
    ValueError / NotImplementedError like kernels.cpu.quants.dequantize.
    """
    if isinstance(ggml_type, (bool, np.bool_)) or not isinstance(ggml_type, (int, np.integer)):
        raise TypeError(f"dequantize: ggml_type must be an int, got {type(ggml_type).__name__}")
    kernel = KERNELS.get(int(ggml_type))
    if kernel is None:
        raise NotImplementedError(f"CUDA dequantize: no kernel for GGML {qb.type_name(ggml_type)}")
    if isinstance(n_elements, (bool, np.bool_)) or not isinstance(n_elements, (int, np.integer)) or n_elements < 0:
        raise ValueError(f"n_elements must be a non-negative int, got {n_elements!r}")
    n_elements = int(n_elements)
    nbytes = qb.row_nbytes(ggml_type, n_elements)
    on_device = _on_device(data)
    if not on_device and not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a numpy or CUDA device array, got {type(data).__name__}")
    if data.dtype != np.uint8:
        raise TypeError(f"data must have dtype uint8, got {data.dtype}")
    if data.ndim != 1 or (not on_device and not data.flags.c_contiguous):
        raise TypeError("data must be a 1-D C-contiguous array")
    if data.size != nbytes:
        raise ValueError(
            f"dequantize {qb.type_name(ggml_type)}: data holds {data.size} bytes, expected {nbytes} "
            f"for {n_elements} elements")
    d_data = data if on_device else cuda.to_device(data)
    if out is None:
        d_out = cuda.device_array(n_elements, dtype=np.float32)
    else:
        if not _on_device(out) or out.dtype != np.float32 or out.ndim != 1 or out.size != n_elements:
            raise ValueError(f"out must be a 1-D float32 device array of {n_elements} values")
        d_out = out
    _, block_size, _ = qb.TYPE_TRAITS[int(ggml_type)]
    n_units = n_elements // block_size
    if n_units:
        blocks = max(1, min(max_blocks, (n_units + threads_per_block - 1) // threads_per_block))
        kernel[blocks, threads_per_block](d_data, 0, n_elements, d_out, 0)
    return d_out if on_device else d_out.copy_to_host()


def _on_device(a) -> bool:
    # numba's device arrays (real or simulated); cuda.is_cuda_array is missing in the simulator
    return cuda.devicearray.is_cuda_ndarray(a)
