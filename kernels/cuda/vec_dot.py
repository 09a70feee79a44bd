"""Row dot products in the CPU's float order, as CUDA device functions: the twins of
kernels/cpu/vec_dot.py (llama.cpp's x86 AVX2 `ggml_vec_dot_*`, its repacked Q4_K gemv/gemm steps),
used by kernels.cuda.matmul's *_lanes kernels, one thread per output.

Same contract as the CPU file: w is the weight row (blocks from byte woff), x the activation row
in its vec_dot_type (kernels/cuda/q8.py) from byte xoff; integer sums are exact, float steps are
the CPU's (one fused multiply-add where it has one, `mul_rn`/`fma32` so that NVVM neither fuses
nor splits them). Scratch lanes are the caller's local arrays. None of these uses the `cuda` API,
so under the simulator they are plain Python (kernels/cuda/simulator.py).
"""

import numpy as np

from kernels.cuda.ops_base import fma32, mul_rn
from kernels.cuda.quants_base import f32_from_bits, int8_of, read_f16, read_u16, read_u32
from kernels.cuda.simulator import device

GGML_TYPE_Q4_0 = 2
GGML_TYPE_Q4_1 = 3
GGML_TYPE_Q5_0 = 6
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8


@device
def scale_min_k4(w, s, j):
    """get_scale_min_k4: (scale, min) j of the 12 packed bytes at s."""
    if j < 4:
        return np.int32(w[s + j]) & 63, np.int32(w[s + j + 4]) & 63
    sc = (np.int32(w[s + j + 4]) & 0xF) | ((np.int32(w[s + j - 4]) >> 6) << 4)
    mn = (np.int32(w[s + j + 4]) >> 4) | ((np.int32(w[s + j]) >> 6) << 4)
    return sc, mn


@device
def bsum(x, xo, g):
    """bsums[g] of the Q8_K block at xo (the sum of its quants 16g .. 16g+15), as int32."""
    v = read_u16(x, xo + 260 + 2 * g)
    return v - ((v & 0x8000) << 1)


@device
def lane_isum_32(w, bo, x, xo, ggml_type, lane):
    """Exact integer sum of the products of elements 4*lane .. 4*lane+3 of a 32-element weight
    block (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 at byte bo) and its Q8_0/Q8_1 block (at xo): one int32 lane
    of llama.cpp's mul_sum_i8_pairs / mul_sum_us8_pairs."""
    has_min = ggml_type == GGML_TYPE_Q4_1 or ggml_type == GGML_TYPE_Q5_1
    xs = xo + 4 if has_min else xo + 2
    s = 0
    if ggml_type == GGML_TYPE_Q8_0:
        for k in range(4):
            j = 4 * lane + k
            s += int8_of(w[bo + 2 + j]) * int8_of(x[xs + j])
        return s
    five = ggml_type == GGML_TYPE_Q5_0 or ggml_type == GGML_TYPE_Q5_1
    qs = bo + 2
    qh = np.int64(0)
    off = 0
    if ggml_type == GGML_TYPE_Q4_0:
        off = 8
    elif ggml_type == GGML_TYPE_Q4_1:
        qs = bo + 4
    elif ggml_type == GGML_TYPE_Q5_0:
        qh = read_u32(w, bo + 2)
        qs = bo + 6
        off = 16
    else:  # Q5_1
        qh = read_u32(w, bo + 4)
        qs = bo + 8
    for k in range(4):
        j = 4 * lane + k  # element j: low nibble of byte j (j < 16), else high nibble of j - 16
        if j < 16:
            q = np.int32(w[qs + j]) & 15
        else:
            q = np.int32(w[qs + j - 16]) >> 4
        if five:
            q |= np.int32((qh >> j) & 1) << 4
        s += (q - off) * int8_of(x[xs + j])
    return s


@device
def scales_k4(w, s, sc, mn):
    """get_scale_min_k4 for the 8 sub-blocks: sc, mn: int32[8] (local arrays)."""
    for j in range(8):
        a, b = scale_min_k4(w, s, j)
        sc[j] = a
        mn[j] = b


@device
def pair_min(x, xo, mn, k):
    """mn[2k] * (bsums 4k, 4k+1) + mn[2k+1] * (bsums 4k+2, 4k+3): the min term of sub-blocks 2k, 2k+1."""
    return (mn[2 * k] * (bsum(x, xo, 4 * k) + bsum(x, xo, 4 * k + 1))
            + mn[2 * k + 1] * (bsum(x, xo, 4 * k + 2) + bsum(x, xo, 4 * k + 3)))


@device
def hsum8(acc):
    """hsum_float_8: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))."""
    s0 = np.float32(acc[0] + acc[4])
    s1 = np.float32(acc[1] + acc[5])
    s2 = np.float32(acc[2] + acc[6])
    s3 = np.float32(acc[3] + acc[7])
    return np.float32(np.float32(s0 + s2) + np.float32(s1 + s3))


@device
def dot_k45(w, woff, x, xoff, nb, five, acc, acc_m, sc, mn):
    """Q4_K (five=False) / Q5_K x Q8_K as kernels.cpu.vec_dot._dot_k45 (AVX2 order)."""
    bb = 176 if five else 144
    qs_at = 48 if five else 16
    for lane in range(8):
        acc[lane] = np.float32(0.0)
    for k in range(4):
        acc_m[k] = np.float32(0.0)
    summs = np.float32(0.0)
    for ib in range(nb):
        bo = woff + ib * bb
        xo = xoff + ib * 292
        yd = f32_from_bits(read_u32(x, xo))
        d = mul_rn(yd, read_f16(w, bo))
        dmin = mul_rn(-yd, read_f16(w, bo + 2))
        scales_k4(w, bo + 4, sc, mn)
        imin = 0
        for k in range(4):
            prod = pair_min(x, xo, mn, k)
            if five:
                imin += prod
            else:
                acc_m[k] = fma32(dmin, np.float32(prod), acc_m[k])
        if five:
            summs = fma32(dmin, np.float32(imin), summs)
        for lane in range(8):
            si = 0
            for j in range(4):
                lo = 0
                hi = 0
                for k in range(4):
                    e = 4 * lane + k
                    b = np.int32(w[bo + qs_at + 32 * j + e])
                    ql = b & 15
                    qh = b >> 4
                    if five:
                        hb = np.int32(w[bo + 16 + e])
                        ql += ((hb >> (2 * j)) & 1) << 4
                        qh += ((hb >> (2 * j + 1)) & 1) << 4
                    lo += ql * int8_of(x[xo + 4 + 64 * j + e])
                    hi += qh * int8_of(x[xo + 4 + 64 * j + 32 + e])
                si += sc[2 * j] * lo + sc[2 * j + 1] * hi
            acc[lane] = fma32(d, np.float32(si), acc[lane])
    if five:
        return np.float32(hsum8(acc) + summs)
    return np.float32(hsum8(acc) + np.float32(np.float32(acc_m[0] + acc_m[2])
                                               + np.float32(acc_m[1] + acc_m[3])))


@device
def vec_dot_q6_k_q8_k(w, woff, x, xoff, nb, acc):
    """Q6_K x Q8_K as kernels.cpu.vec_dot.vec_dot_q6_k_q8_k (AVX2 order)."""
    for lane in range(8):
        acc[lane] = np.float32(0.0)
    for ib in range(nb):
        bo = woff + ib * 210
        xo = xoff + ib * 292
        d = mul_rn(f32_from_bits(read_u32(x, xo)), read_f16(w, bo + 208))
        for lane in range(8):
            si = 0
            half = 1 if lane >= 4 else 0
            for j in range(2):
                for k in range(4):
                    sc = int8_of(w[bo + 192 + 8 * j + 2 * k + half])
                    p = 0
                    for e in range(4):
                        byte = 4 * lane + e
                        lo = np.int32(w[bo + 64 * j + 32 * (k & 1) + byte])
                        lo = (lo & 15) if k < 2 else (lo >> 4)
                        hb = (np.int32(w[bo + 128 + 32 * j + byte]) >> (2 * k)) & 3
                        p += (lo | (hb << 4)) * int8_of(x[xo + 4 + 128 * j + 32 * k + byte])
                    si += sc * p
            sub = (bsum(x, xo, 2 * lane) * int8_of(w[bo + 192 + 2 * lane])
                   + bsum(x, xo, 2 * lane + 1) * int8_of(w[bo + 192 + 2 * lane + 1]))
            acc[lane] = fma32(d, np.float32(si - 32 * sub), acc[lane])
    return hsum8(acc)


@device
def q4_k_r8(w, woff, x, xoff, nb, gemm, sc, mn):
    """Q4_K x Q8_K as kernels.cpu.vec_dot._q4_k_r8 (llama.cpp's repacked gemv / gemm steps)."""
    acc = np.float32(0.0)
    acc_min = np.float32(0.0)
    for ib in range(nb):
        bo = woff + ib * 144
        xo = xoff + ib * 292
        yd = f32_from_bits(read_u32(x, xo))
        dd = mul_rn(read_f16(w, bo), yd)
        dm = mul_rn(read_f16(w, bo + 2), yd)
        scales_k4(w, bo + 4, sc, mn)
        isum = 0
        imin = 0
        for p in range(4):  # pairs of 32-value sub-blocks
            ip = 0
            for h in range(2):
                j = 2 * p + h
                dot = 0
                for k in range(32):
                    b = np.int32(w[bo + 16 + 32 * p + k])
                    q = (b & 15) if h == 0 else (b >> 4)
                    dot += q * int8_of(x[xo + 4 + 32 * j + k])
                ip += sc[j] * dot
            mp = pair_min(x, xo, mn, p)
            if gemm:
                acc = fma32(np.float32(ip), dd, acc)
                acc_min = fma32(np.float32(mp), dm, acc_min)
            else:
                isum += ip
                imin += mp
        if not gemm:
            acc = fma32(np.float32(isum), dd, acc)
            acc_min = fma32(np.float32(imin), dm, acc_min)
    return np.float32(acc - acc_min)


@device
def vec_dot_bf16_bf16(w, woff, x, xoff, n, acc):
    """BF16 row dot as kernels.cpu.vec_dot.vec_dot_bf16_bf16 (ggml_vec_dot_bf16's AVX2 shape): 32
    FMA lanes over steps of 32 elements, lanes k, 8+k, 16+k, 24+k reduced as (a0+a2)+(a1+a3),
    then hsum_float_8, plus the tail (n % 32 elements) summed with scalar FMAs. acc: float32[32]."""
    for i in range(32):
        acc[i] = np.float32(0.0)
    nmain = n // 32 * 32
    tail = np.float32(0.0)
    for i in range(n):
        a = f32_from_bits(np.int64(read_u16(w, woff + 2 * i)) << 16)
        c = f32_from_bits(np.int64(read_u16(x, xoff + 2 * i)) << 16)
        if i < nmain:
            acc[i % 32] = fma32(a, c, acc[i % 32])
        else:
            tail = fma32(a, c, tail)
    for k in range(8):
        acc[k] = np.float32(np.float32(acc[k] + acc[16 + k]) + np.float32(acc[8 + k] + acc[24 + k]))
    return np.float32(hsum8(acc) + tail)
