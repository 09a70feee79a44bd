"""Shared pieces of the quant kernels: GGML type ids, block sizes, byte readers, fp16 conversion.

Type ids are gguf's `GGMLQuantizationType` values (ggml/include/ggml.h `enum ggml_type`), copied
here because `kernels` depends on numpy and numba alone. Block sizes and byte sizes follow
ggml/src/ggml-common.h. The fp16 conversions follow ggml's GGML_FP16_TO_FP32 / GGML_FP32_TO_FP16
(IEEE binary16, round to nearest even), which are also numpy's `astype(np.float16)`.
"""

import math

import numpy as np
from numba import njit

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q4_0 = 2
GGML_TYPE_Q4_1 = 3
GGML_TYPE_Q5_0 = 6
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8
GGML_TYPE_Q8_1 = 9
GGML_TYPE_Q2_K = 10
GGML_TYPE_Q3_K = 11
GGML_TYPE_Q4_K = 12
GGML_TYPE_Q5_K = 13
GGML_TYPE_Q6_K = 14
GGML_TYPE_Q8_K = 15
GGML_TYPE_IQ2_XXS = 16
GGML_TYPE_IQ2_XS = 17
GGML_TYPE_IQ3_XXS = 18
GGML_TYPE_IQ1_S = 19
GGML_TYPE_IQ4_NL = 20
GGML_TYPE_IQ3_S = 21
GGML_TYPE_IQ2_S = 22
GGML_TYPE_IQ4_XS = 23
GGML_TYPE_IQ1_M = 29
GGML_TYPE_BF16 = 30
GGML_TYPE_TQ1_0 = 34
GGML_TYPE_TQ2_0 = 35
GGML_TYPE_MXFP4 = 39
GGML_TYPE_NVFP4 = 40

QK_K = 256

# type id: (name, elements per block, bytes per block); ggml-common.h block_* structs.
TYPE_TRAITS = {
    GGML_TYPE_F32: ("F32", 1, 4),
    GGML_TYPE_F16: ("F16", 1, 2),
    GGML_TYPE_Q4_0: ("Q4_0", 32, 18),
    GGML_TYPE_Q4_1: ("Q4_1", 32, 20),
    GGML_TYPE_Q5_0: ("Q5_0", 32, 22),
    GGML_TYPE_Q5_1: ("Q5_1", 32, 24),
    GGML_TYPE_Q8_0: ("Q8_0", 32, 34),
    GGML_TYPE_Q8_1: ("Q8_1", 32, 36),
    GGML_TYPE_Q2_K: ("Q2_K", QK_K, 84),
    GGML_TYPE_Q3_K: ("Q3_K", QK_K, 110),
    GGML_TYPE_Q4_K: ("Q4_K", QK_K, 144),
    GGML_TYPE_Q5_K: ("Q5_K", QK_K, 176),
    GGML_TYPE_Q6_K: ("Q6_K", QK_K, 210),
    GGML_TYPE_Q8_K: ("Q8_K", QK_K, 292),
    GGML_TYPE_IQ2_XXS: ("IQ2_XXS", QK_K, 66),
    GGML_TYPE_IQ2_XS: ("IQ2_XS", QK_K, 74),
    GGML_TYPE_IQ3_XXS: ("IQ3_XXS", QK_K, 98),
    GGML_TYPE_IQ1_S: ("IQ1_S", QK_K, 50),
    GGML_TYPE_IQ4_NL: ("IQ4_NL", 32, 18),
    GGML_TYPE_IQ3_S: ("IQ3_S", QK_K, 110),
    GGML_TYPE_IQ2_S: ("IQ2_S", QK_K, 82),
    GGML_TYPE_IQ4_XS: ("IQ4_XS", QK_K, 136),
    GGML_TYPE_IQ1_M: ("IQ1_M", QK_K, 56),
    GGML_TYPE_BF16: ("BF16", 1, 2),
    GGML_TYPE_TQ1_0: ("TQ1_0", QK_K, 54),
    GGML_TYPE_TQ2_0: ("TQ2_0", QK_K, 66),
    GGML_TYPE_MXFP4: ("MXFP4", 32, 17),
    GGML_TYPE_NVFP4: ("NVFP4", 64, 36),
}


def type_name(ggml_type: int) -> str:
    """The GGML name of a type id ("Q4_K"), or "type <id>" for an id this module does not know."""
    traits = TYPE_TRAITS.get(int(ggml_type))
    return traits[0] if traits is not None else f"type {int(ggml_type)}"


def row_nbytes(ggml_type: int, n_elements: int) -> int:
    """Bytes that n_elements of ggml_type take; ValueError when n is not a whole number of blocks."""
    _, block_size, type_size = TYPE_TRAITS[int(ggml_type)]
    if n_elements < 0 or n_elements % block_size != 0:
        raise ValueError(
            f"{type_name(ggml_type)}: n_elements={n_elements} is not a non-negative multiple of "
            f"the block size {block_size}")
    return n_elements // block_size * type_size


@njit(cache=True, nogil=True)
def read_u16(data, o):
    """Little-endian uint16 at byte o of data (uint8[]), as int64."""
    return np.int64(data[o]) | (np.int64(data[o + 1]) << 8)


@njit(cache=True, nogil=True)
def read_u32(data, o):
    """Little-endian uint32 at byte o of data (uint8[]), as int64."""
    return (np.int64(data[o]) | (np.int64(data[o + 1]) << 8) | (np.int64(data[o + 2]) << 16)
            | (np.int64(data[o + 3]) << 24))


@njit(cache=True, nogil=True)
def f16_to_f32(h):
    """Value of the IEEE half with bits h, as float32 (exact; NaN payloads are not kept)."""
    exp = (h >> 10) & 0x1F
    man = h & 0x3FF
    if exp == 0x1F:
        v = np.float32(np.inf) if man == 0 else np.float32(np.nan)
    elif exp == 0:
        v = np.float32(math.ldexp(np.float64(man), -24))
    else:
        v = np.float32(math.ldexp(np.float64(man | 0x400), exp - 25))
    if h & 0x8000:
        return -v
    return v


@njit(cache=True, nogil=True)
def read_f16(data, o):
    """The fp16 at byte o of data (uint8[]), as float32."""
    return f16_to_f32(read_u16(data, o))


@njit(cache=True, nogil=True)
def f16_bits_to_f32_bits(h):
    """Bits of the float32 equal to the half with bits h; NaN payloads kept as numpy keeps them."""
    sign = (h & 0x8000) << 16
    exp = (h >> 10) & 0x1F
    man = h & 0x3FF
    if exp == 0x1F:
        return sign | 0x7F800000 | (man << 13)
    if exp == 0:
        if man == 0:
            return sign
        e = 113
        while (man & 0x400) == 0:
            man <<= 1
            e -= 1
        return sign | (e << 23) | ((man & 0x3FF) << 13)
    return sign | ((exp + 112) << 23) | (man << 13)


@njit(cache=True, nogil=True)
def _round_half_even(q):
    fl = math.floor(q)
    diff = q - fl
    if diff > 0.5 or (diff == 0.5 and (np.int64(fl) & 1) == 1):
        fl += 1.0
    return np.int64(fl)


@njit(cache=True, nogil=True)
def f32_to_f16(f):
    """Bits (int64) of the half nearest to float32 f, ties to even (ggml GGML_FP32_TO_FP16).

    Finite values and infinities are bit-exact with numpy's astype(np.float16); NaN becomes the
    quiet NaN 0x7e00 (sign kept) instead of keeping its payload.
    """
    x = np.float64(f)
    sign = 0x8000 if math.copysign(1.0, x) < 0.0 else 0
    if x != x:
        return sign | 0x7E00
    a = abs(x)
    if a >= 65520.0:
        return sign | 0x7C00
    if a < 6.103515625e-05:
        # subnormal half: units of 2^-24; a 1024 result is the smallest normal, as wanted
        return sign | _round_half_even(a * 16777216.0)
    m, e = math.frexp(a)
    r = _round_half_even(m * 2048.0)
    if r == 2048:
        r = 1024
        e += 1
    return sign | ((e + 14) << 10) | (r - 1024)


@njit(cache=True, nogil=True)
def write_u16(out, o, v):
    """Store the low 16 bits of v little-endian at byte o of out (uint8[])."""
    out[o] = v & 0xFF
    out[o + 1] = (v >> 8) & 0xFF


@njit(cache=True, nogil=True)
def int8_of(b):
    """The int8 whose byte is b (0..255), as int64."""
    return (np.int64(b) ^ 0x80) - 0x80
