"""Device helpers of the CUDA quant kernels: little-endian byte reads and float decoding.

Twins of kernels/cpu/quants_base.py. Floats are built arithmetically (math.ldexp), which is exact
for every finite value and infinity; a NaN comes out as the canonical NaN (no payload).
"""

import math

import numpy as np

from kernels.cuda.simulator import device


@device
def read_u8(data, o):
    """Byte o of data (uint8[]), as int32."""
    return np.int32(data[o])


@device
def read_u16(data, o):
    """Little-endian uint16 at byte o of data, as int32."""
    return np.int32(data[o]) | (np.int32(data[o + 1]) << 8)


@device
def read_u32(data, o):
    """Little-endian uint32 at byte o of data, as int64."""
    return (np.int64(data[o]) | (np.int64(data[o + 1]) << 8) | (np.int64(data[o + 2]) << 16)
            | (np.int64(data[o + 3]) << 24))


@device
def int8_of(b):
    """The int8 whose byte is b (0..255), as int32."""
    return (np.int32(b) ^ 0x80) - 0x80


@device
def f16_to_f32(h):
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


@device
def read_f16(data, o):
    """The fp16 at byte o of data, as float32."""
    return f16_to_f32(read_u16(data, o))


@device
def f32_from_bits(u):
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
