"""Device helpers of the CUDA op kernels (kernels/cuda/ops.py): float32 arithmetic in ggml-cpu's order.

Twins of the helpers of kernels/cpu/ops.py: F16 rounding to nearest even, ggml_v_expf, the
AVX-512 lane orders of the F16 dot products (dot_sgemm16, dot_vec_f16), and unfused float32
multiply/add (NVVM contracts a*b + c into an FMA by default; `mul_rn`/`add_rn` are libdevice's
__fmul_rn/__fadd_rn, which it never contracts). None of them uses the `cuda` API, so under the
simulator they are plain Python functions (`device`, kernels/cuda/simulator.py): the simulator's
device-function wrapper swaps module globals on every call, which is not thread-safe and makes
the tests ~10x slower.
"""

import math

import numpy as np
from numba import config

from kernels.cuda.simulator import device

_EXP_R = np.float32(float.fromhex("0x1.8p23"))
_EXP_LOG2E = np.float32(float.fromhex("0x1.715476p+0"))
_EXP_LN2_HI = np.float32(float.fromhex("0x1.62e4p-1"))
_EXP_LN2_LO = np.float32(float.fromhex("0x1.7f7d1cp-20"))
_EXP_C5 = np.float32(float.fromhex("0x1.0e4020p-7"))
_EXP_C4 = np.float32(float.fromhex("0x1.573e2ep-5"))
_EXP_C3 = np.float32(float.fromhex("0x1.555e66p-3"))
_EXP_C2 = np.float32(float.fromhex("0x1.fffdb6p-2"))
_EXP_C1 = np.float32(float.fromhex("0x1.ffffecp-1"))


# ---------------------------------------------------------------------------------------------
# Float helpers (device functions)

# Under the simulator, device functions are plain Python functions called by the simulated
# kernels (kernels/cuda/simulator.py). ops.py also marks its syncthreads helpers with `device`:
# `cuda` there is ops.py's global, which the simulator swaps for its kernel API while one of
# ops.py's kernels runs.

if config.ENABLE_CUDASIM:
    # The simulator runs kernels as Python on NumPy scalars: its cuda.fma rounds twice and it has
    # no libdevice. The float64 product of two float32 values is exact, so one rounding remains.
    @device
    def fma32(a, b, c):
        """a*b + c in float32 with one rounding."""
        return np.float32(np.float64(a) * np.float64(b) + np.float64(c))

    @device
    def mul_rn(a, b):
        return np.float32(np.float32(a) * np.float32(b))

    @device
    def add_rn(a, b):
        return np.float32(np.float32(a) + np.float32(b))
else:
    from numba.cuda import libdevice

    @device
    def fma32(a, b, c):
        """a*b + c in float32 with one rounding."""
        return libdevice.fmaf(np.float32(a), np.float32(b), np.float32(c))

    @device
    def mul_rn(a, b):
        return libdevice.fmul_rn(np.float32(a), np.float32(b))

    @device
    def add_rn(a, b):
        return libdevice.fadd_rn(np.float32(a), np.float32(b))


@device
def _round_half_even(q):
    """q (float64, >= 0) rounded to the nearest integer, ties to even; exact."""
    r = math.floor(q)
    rem = q - r
    if rem > 0.5 or (rem == 0.5 and math.fmod(r, 2.0) == 1.0):
        r += 1.0
    return r


@device
def f32_to_f16_bits(x):
    """Round a float32 to the nearest F16 (ties to even); returns the bit pattern as int32.

    Arithmetic twin of kernels.cpu.ops.f32_to_f16_bits: every step is exact in float64.
    """
    xf = np.float64(np.float32(x))
    sign = 0x8000 if math.copysign(1.0, xf) < 0.0 else 0
    a = abs(xf)
    if a != a:
        return np.int32(sign | 0x7E00)
    if a >= 65520.0:
        return np.int32(sign | 0x7C00)
    if a < 6.103515625e-05:  # below 2^-14: subnormal F16, units of 2^-24
        return np.int32(sign | int(_round_half_even(a * 16777216.0)))
    m, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1)
    r = int(_round_half_even(m * 2048.0))
    be = e + 14
    if r == 2048:
        r = 1024
        be += 1
    return np.int32(sign | (be << 10) | (r - 1024))


@device
def round_f16(x):
    """x rounded to the nearest F16 value, as float32 (the value of f32_to_f16_bits(x))."""
    h = f32_to_f16_bits(x)
    e = (h >> 10) & 0x1F
    m = h & 0x3FF
    if e == 0x1F:
        v = np.float32(math.inf) if m == 0 else np.float32(math.nan)
    elif e == 0:
        v = np.float32(math.ldexp(np.float64(m), -24))
    else:
        v = np.float32(math.ldexp(np.float64(m | 0x400), int(e - 25)))
    return -v if (h & 0x8000) != 0 else v


@device
def v_expf(x):
    """One lane of ggml_v_expf (vec.h, AVX-512 build), as kernels.cpu.ops.v_expf."""
    x = np.float32(x)
    z = fma32(x, _EXP_LOG2E, _EXP_R)
    n = np.float32(z - _EXP_R)
    if abs(n) > np.float32(192.0) or n != n:
        if n <= np.float32(0.0) or n != n:
            return np.float32(0.0)
        return np.float32(math.inf)
    b = fma32(-n, _EXP_LN2_LO, fma32(-n, _EXP_LN2_HI, x))
    u = np.float32(b * b)
    j = fma32(fma32(fma32(_EXP_C5, b, _EXP_C4), u, fma32(_EXP_C3, b, _EXP_C2)), u,
              fma32(_EXP_C1, b, np.float32(1.0)))
    ni = int(n)
    if ni >= -126 and ni <= 127:
        return mul_rn(j, np.float32(math.ldexp(1.0, ni)))
    if ni < -126:
        return mul_rn(mul_rn(j, np.float32(math.ldexp(1.0, -126))),
                       np.float32(math.ldexp(1.0, ni + 126)))
    return mul_rn(mul_rn(j, np.float32(math.ldexp(1.0, 127))), np.float32(math.ldexp(1.0, ni - 127)))


@device
def expf_libm(x):
    """expf (libm) of a float32: evaluated in double, rounded to float32."""
    return np.float32(math.exp(np.float64(np.float32(x))))


@device
def reduce16(lanes, o):
    """_mm512_reduce_add_ps of lanes[o:o+16] in GCC's order (halves, quarters, pairs)."""
    t0 = lanes[o + 0] + lanes[o + 8]
    t1 = lanes[o + 1] + lanes[o + 9]
    t2 = lanes[o + 2] + lanes[o + 10]
    t3 = lanes[o + 3] + lanes[o + 11]
    t4 = lanes[o + 4] + lanes[o + 12]
    t5 = lanes[o + 5] + lanes[o + 13]
    t6 = lanes[o + 6] + lanes[o + 14]
    t7 = lanes[o + 7] + lanes[o + 15]
    u0 = np.float32(t0 + t4)
    u1 = np.float32(t1 + t5)
    u2 = np.float32(t2 + t6)
    u3 = np.float32(t3 + t7)
    return np.float32(np.float32(u0 + u2) + np.float32(u1 + u3))


@device
def dot_sgemm16(a, ao, b, bo, k, lanes):
    """llamafile tinyBLAS<16> order: one FMA chain per lane over k (k % 16 == 0), then reduce16."""
    for i in range(16):
        lanes[i] = np.float32(0.0)
    for l in range(0, k, 16):
        for i in range(16):
            lanes[i] = fma32(a[ao + l + i], b[bo + l + i], lanes[i])
    return reduce16(lanes, 0)


@device
def fold64(lanes):
    """ggml_vec_dot_f16's reduction of 64 lanes: (0+2, 1+3), (0+1), reduce16."""
    for i in range(16):
        lanes[i] = np.float32(lanes[i] + lanes[32 + i])
        lanes[16 + i] = np.float32(lanes[16 + i] + lanes[48 + i])
    for i in range(16):
        lanes[i] = np.float32(lanes[i] + lanes[16 + i])
    return np.float64(reduce16(lanes, 0))


@device
def dot_vec_f16(a, ao, b, bo, n, lanes):
    """ggml_vec_dot_f16 order (AVX-512): 64 FMA lanes over blocks of 64, tail in double."""
    np64 = n & ~63
    for i in range(64):
        lanes[i] = np.float32(0.0)
    for i in range(0, np64, 64):
        for j in range(64):
            lanes[j] = fma32(a[ao + i + j], b[bo + i + j], lanes[j])
    s = fold64(lanes)
    for i in range(np64, n):
        s += np.float64(mul_rn(a[ao + i], b[bo + i]))
    return np.float32(s)


@device
def dot_vec_f16_strided(v, vo, stride, p, po, n, lanes):
    """dot_vec_f16 of v[vo + j*stride] (j < n) with p[po + j], skipping p == 0 terms (exact)."""
    np64 = n & ~63
    for i in range(64):
        lanes[i] = np.float32(0.0)
    for j in range(np64):
        pj = p[po + j]
        if pj != 0.0:
            lanes[j & 63] = fma32(v[vo + j * stride], pj, lanes[j & 63])
    s = fold64(lanes)
    for j in range(np64, n):
        s += np.float64(mul_rn(v[vo + j * stride], p[po + j]))
    return np.float32(s)
