"""Portable row dot products with llama.cpp's x86 AVX2 numerics, as plain @njit loops.

The same contract and the same results (bit for bit) as the SIMD intrinsics in
`kernels.cpu.simd`; used where the host lacks AVX2/FMA/F16C, and as their executable
specification. Each function follows `ggml_vec_dot_<w>_<x>` of ggml/src/ggml-cpu/arch/x86/quants.c:
per block, 8 int32 "lanes" (lane l sums the products of vector bytes 4l..4l+3, i.e. of the block's
elements 4l..4l+3 for the 32-element types), scaled by the block's float scale into 8 float
accumulators with a fused multiply-add, reduced at the end by `hsum_float_8`.

    vec_dot_<w>_<x>(w: uint8[:], woff, x: uint8[:], xoff, nb) -> float32
w: weight blocks (row starts at byte woff); x: activation row in the vec_dot_type's GGML block
layout (kernels.cpu.q8) starting at byte xoff; nb: blocks in the row. Callers check the bounds.
"""

import numpy as np
from numba import njit

from kernels.cpu.q8 import fp16_to_fp32
from kernels.cpu.simd import f32_from_bits, fma_f32


@njit(cache=True, nogil=True, inline="always")
def _s8(v):
    v = np.int32(v)
    return v - ((v & 128) << 1)


@njit(cache=True, nogil=True, inline="always")
def _f16(a, o):
    return fp16_to_fp32(np.int64(a[o]) | (np.int64(a[o + 1]) << 8))


@njit(cache=True, nogil=True, inline="always")
def _f32(a, o):
    return a[o:o + 4].view(np.float32)[0]


@njit(cache=True, nogil=True)
def hsum8(acc):
    """llama.cpp hsum_float_8 on float32[8]: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))."""
    s0 = acc[0] + acc[4]
    s1 = acc[1] + acc[5]
    s2 = acc[2] + acc[6]
    s3 = acc[3] + acc[7]
    return (s0 + s2) + (s1 + s3)


@njit(cache=True, nogil=True)
def _unpack32(w, bo, kind, q):
    """Block of a 32-element type -> q: int32[32] (Q4_0/Q5_0 signed, Q4_1/Q5_1 unsigned, Q8_0)."""
    if kind == 0 or kind == 1:  # Q4_0 (qs at 2, minus 8) / Q4_1 (qs at 4)
        qo = bo + 2 if kind == 0 else bo + 4
        off = 8 if kind == 0 else 0
        for j in range(16):
            b = np.int32(w[qo + j])
            q[j] = (b & 15) - off
            q[j + 16] = (b >> 4) - off
    elif kind == 2 or kind == 3:  # Q5_0 (qh at 2, qs at 6, minus 16) / Q5_1 (qh at 4, qs at 8)
        ho = bo + 2 if kind == 2 else bo + 4
        off = 16 if kind == 2 else 0
        qh = (np.int64(w[ho]) | (np.int64(w[ho + 1]) << 8) | (np.int64(w[ho + 2]) << 16)
              | (np.int64(w[ho + 3]) << 24))
        for j in range(16):
            b = np.int32(w[ho + 4 + j])
            q[j] = ((b & 15) | (np.int32((qh >> j) & 1) << 4)) - off
            q[j + 16] = ((b >> 4) | (np.int32((qh >> (j + 16)) & 1) << 4)) - off
    else:  # Q8_0
        for j in range(32):
            q[j] = _s8(w[bo + 2 + j])


@njit(cache=True, nogil=True)
def _dot_32(w, woff, x, xoff, nb, kind, wbytes, xbytes):
    acc = np.zeros(8, np.float32)
    q = np.empty(32, np.int32)
    summs = np.float32(0.0)
    has_min = kind == 1 or kind == 3
    xq = 4 if has_min else 2
    for ib in range(nb):
        bo = woff + ib * wbytes
        xo = xoff + ib * xbytes
        d = _f16(w, bo) * _f16(x, xo)
        if has_min:
            summs = fma_f32(_f16(w, bo + 2), _f16(x, xo + 2), summs)
        _unpack32(w, bo, kind, q)
        for lane in range(8):
            s = 0
            for k in range(4):
                j = 4 * lane + k
                s += q[j] * _s8(x[xo + xq + j])
            acc[lane] = fma_f32(d, np.float32(s), acc[lane])
    return hsum8(acc) + summs if has_min else hsum8(acc)


@njit(cache=True, nogil=True)
def vec_dot_q4_0_q8_0(w, woff, x, xoff, nb):
    return _dot_32(w, woff, x, xoff, nb, 0, 18, 34)


@njit(cache=True, nogil=True)
def vec_dot_q4_1_q8_1(w, woff, x, xoff, nb):
    return _dot_32(w, woff, x, xoff, nb, 1, 20, 36)


@njit(cache=True, nogil=True)
def vec_dot_q5_0_q8_0(w, woff, x, xoff, nb):
    return _dot_32(w, woff, x, xoff, nb, 2, 22, 34)


@njit(cache=True, nogil=True)
def vec_dot_q5_1_q8_1(w, woff, x, xoff, nb):
    return _dot_32(w, woff, x, xoff, nb, 3, 24, 36)


@njit(cache=True, nogil=True)
def vec_dot_q8_0_q8_0(w, woff, x, xoff, nb):
    return _dot_32(w, woff, x, xoff, nb, 4, 34, 34)


@njit(cache=True, nogil=True)
def _bsum(x, xo, g):
    v = np.int32(x[xo + 260 + 2 * g]) | (np.int32(x[xo + 261 + 2 * g]) << 8)
    return v - ((v & 0x8000) << 1)


@njit(cache=True, nogil=True)
def _dot_k45(w, woff, x, xoff, nb, five):
    """Q4_K (five=False) / Q5_K (five=True) x Q8_K. Q4_K: mins in 4 float lanes (acc_m, FMA),
    added as (m0+m2)+(m1+m3); Q5_K: mins as one integer, summs = fma(dmin, imin, summs)."""
    bb = 176 if five else 144
    qs_at = 48 if five else 16
    acc = np.zeros(8, np.float32)
    acc_m = np.zeros(4, np.float32)
    summs = np.float32(0.0)
    sc = np.empty(8, np.int32)
    mn = np.empty(8, np.int32)
    for ib in range(nb):
        bo = woff + ib * bb
        xo = xoff + ib * 292
        yd = _f32(x, xo)
        d = yd * _f16(w, bo)
        dmin = -yd * _f16(w, bo + 2)
        s = bo + 4
        for j in range(8):  # get_scale_min_k4
            if j < 4:
                sc[j] = np.int32(w[s + j]) & 63
                mn[j] = np.int32(w[s + j + 4]) & 63
            else:
                sc[j] = (np.int32(w[s + j + 4]) & 0xF) | ((np.int32(w[s + j - 4]) >> 6) << 4)
                mn[j] = (np.int32(w[s + j + 4]) >> 4) | ((np.int32(w[s + j]) >> 6) << 4)
        imin = 0
        for k in range(4):
            prod = (mn[2 * k] * (_bsum(x, xo, 4 * k) + _bsum(x, xo, 4 * k + 1))
                    + mn[2 * k + 1] * (_bsum(x, xo, 4 * k + 2) + _bsum(x, xo, 4 * k + 3)))
            if five:
                imin += prod
            else:
                acc_m[k] = fma_f32(dmin, np.float32(prod), acc_m[k])
        if five:
            summs = fma_f32(dmin, np.float32(imin), summs)
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
                    lo += ql * _s8(x[xo + 4 + 64 * j + e])
                    hi += qh * _s8(x[xo + 4 + 64 * j + 32 + e])
                si += sc[2 * j] * lo + sc[2 * j + 1] * hi
            acc[lane] = fma_f32(d, np.float32(si), acc[lane])
    if five:
        return hsum8(acc) + summs
    return hsum8(acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))


@njit(cache=True, nogil=True)
def vec_dot_q4_k_q8_k(w, woff, x, xoff, nb):
    return _dot_k45(w, woff, x, xoff, nb, False)


@njit(cache=True, nogil=True)
def vec_dot_q5_k_q8_k(w, woff, x, xoff, nb):
    return _dot_k45(w, woff, x, xoff, nb, True)


@njit(cache=True, nogil=True)
def vec_dot_q6_k_q8_k(w, woff, x, xoff, nb):
    acc = np.zeros(8, np.float32)
    for ib in range(nb):
        bo = woff + ib * 210
        xo = xoff + ib * 292
        d = _f32(x, xo) * _f16(w, bo + 208)
        for lane in range(8):
            si = 0
            for j in range(2):
                for k in range(4):
                    sc = _s8(w[bo + 192 + 8 * j + 2 * k + (1 if lane >= 4 else 0)])
                    p = 0
                    for e in range(4):
                        byte = 4 * lane + e
                        lo = np.int32(w[bo + 64 * j + 32 * (k & 1) + byte])
                        lo = (lo & 15) if k < 2 else (lo >> 4)
                        hb = (np.int32(w[bo + 128 + 32 * j + byte]) >> (2 * k)) & 3
                        p += (lo | (hb << 4)) * _s8(x[xo + 4 + 128 * j + 32 * k + byte])
                    si += sc * p
            sub = (_bsum(x, xo, 2 * lane) * _s8(w[bo + 192 + 2 * lane])
                   + _bsum(x, xo, 2 * lane + 1) * _s8(w[bo + 192 + 2 * lane + 1]))
            acc[lane] = fma_f32(d, np.float32(si - 32 * sub), acc[lane])
    return hsum8(acc)


@njit(cache=True, nogil=True)
def vec_dot_q6_k_tiled(w, woff, x, xoff, nb):
    """Q6_K x Q8_K with the float steps of llama.cpp's tiled prompt kernel (ggml-cpu/tiled):
    per super-block the exact integer sum isum, res = d_w * float(isum), sum = fma(res, d_x, sum)."""
    s = np.float32(0.0)
    for ib in range(nb):
        bo = woff + ib * 210
        xo = xoff + ib * 292
        isum = 0
        for j in range(2):
            for l in range(32):
                ql0 = np.int32(w[bo + 64 * j + l])
                ql1 = np.int32(w[bo + 64 * j + l + 32])
                qh = np.int32(w[bo + 128 + 32 * j + l])
                e = 128 * j + l
                q0 = ((ql0 & 15) | ((qh & 3) << 4)) - 32
                q1 = ((ql1 & 15) | (((qh >> 2) & 3) << 4)) - 32
                q2 = ((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32
                q3 = ((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32
                isum += (q0 * _s8(w[bo + 192 + e // 16]) * _s8(x[xo + 4 + e])
                         + q1 * _s8(w[bo + 192 + (e + 32) // 16]) * _s8(x[xo + 4 + e + 32])
                         + q2 * _s8(w[bo + 192 + (e + 64) // 16]) * _s8(x[xo + 4 + e + 64])
                         + q3 * _s8(w[bo + 192 + (e + 96) // 16]) * _s8(x[xo + 4 + e + 96]))
        res = np.float32(np.float32(isum) * _f16(w, bo + 208))
        s = fma_f32(res, _f32(x, xo), s)
    return s


@njit(cache=True, nogil=True)
def _fdot(w, woff, x, xoff, n, kind):
    """Float dot; kind 0 = F32, 1 = F16, 2 = BF16 (w and x in the same format). 32 FMA lanes over
    steps of 32 elements, reduced like simd._make_fdot, then the scalar FMA tail."""
    eb = 4 if kind == 0 else 2
    acc = np.zeros(32, np.float32)
    nmain = n // 32 * 32
    tail = np.float32(0.0)
    for i in range(n):
        o = i * eb
        if kind == 0:
            a = _f32(w, woff + o)
            c = _f32(x, xoff + o)
        elif kind == 1:
            a = _f16(w, woff + o)
            c = _f16(x, xoff + o)
        else:
            a = _bf16(w, woff + o)
            c = _bf16(x, xoff + o)
        if i < nmain:
            acc[i % 32] = fma_f32(a, c, acc[i % 32])
        else:
            tail = fma_f32(a, c, tail)
    s = np.empty(8, np.float32)
    for k in range(8):
        s[k] = (acc[k] + acc[16 + k]) + (acc[8 + k] + acc[24 + k])
    return hsum8(s) + tail


@njit(cache=True, nogil=True, inline="always")
def _bf16(a, o):
    return f32_from_bits(np.uint32((np.int64(a[o]) | (np.int64(a[o + 1]) << 8)) << 16))


@njit(cache=True, nogil=True)
def vec_dot_f32_f32(w, woff, x, xoff, n):
    return _fdot(w, woff, x, xoff, n, 0)


@njit(cache=True, nogil=True)
def vec_dot_f16_f16(w, woff, x, xoff, n):
    """ggml_vec_dot_f16 of llama.cpp's AVX-512 build: see simd.dot_f16_f16."""
    acc = np.zeros(64, np.float32)
    nmain = n // 64 * 64
    for i in range(nmain):
        acc[i % 64] = fma_f32(_f16(w, woff + 2 * i), _f16(x, xoff + 2 * i), acc[i % 64])
    v = np.empty(16, np.float32)
    for k in range(16):
        v[k] = (acc[k] + acc[32 + k]) + (acc[16 + k] + acc[48 + k])
    t3 = np.empty(8, np.float32)
    for k in range(8):
        t3[k] = v[8 + k] + v[k]
    t6 = np.empty(4, np.float32)
    for k in range(4):
        t6[k] = t3[4 + k] + t3[k]
    sumf = np.float64((t6[0] + t6[2]) + (t6[1] + t6[3]))
    for i in range(nmain, n):
        sumf += np.float64(_f16(w, woff + 2 * i) * _f16(x, xoff + 2 * i))
    return np.float32(sumf)


@njit(cache=True, nogil=True)
def vec_dot_bf16_bf16(w, woff, x, xoff, n):
    return _fdot(w, woff, x, xoff, n, 2)


@njit(cache=True, nogil=True)
def _q4_k_r8(w, woff, x, xoff, nb, gemm):
    """Q4_K x Q8_K with the float steps of llama.cpp's repacked kernels (arch/x86/repack.cpp):
    gemv: acc += isum * (d * yd), acc_min += imin * (dmin * yd) once per super-block; gemm: the
    same once per 64-value pair of sub-blocks; the result is acc - acc_min."""
    acc = np.float32(0.0)
    acc_min = np.float32(0.0)
    sc = np.empty(8, np.int32)
    mn = np.empty(8, np.int32)
    for ib in range(nb):
        bo = woff + ib * 144
        xo = xoff + ib * 292
        yd = _f32(x, xo)
        dd = _f16(w, bo) * yd
        dm = _f16(w, bo + 2) * yd
        s = bo + 4
        for j in range(8):
            if j < 4:
                sc[j] = np.int32(w[s + j]) & 63
                mn[j] = np.int32(w[s + j + 4]) & 63
            else:
                sc[j] = (np.int32(w[s + j + 4]) & 0xF) | ((np.int32(w[s + j - 4]) >> 6) << 4)
                mn[j] = (np.int32(w[s + j + 4]) >> 4) | ((np.int32(w[s + j]) >> 6) << 4)
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
                    dot += q * _s8(x[xo + 4 + 32 * j + k])
                ip += sc[j] * dot
            mp = (mn[2 * p] * (_bsum(x, xo, 4 * p) + _bsum(x, xo, 4 * p + 1))
                  + mn[2 * p + 1] * (_bsum(x, xo, 4 * p + 2) + _bsum(x, xo, 4 * p + 3)))
            if gemm:
                acc = fma_f32(np.float32(ip), dd, acc)
                acc_min = fma_f32(np.float32(mp), dm, acc_min)
            else:
                isum += ip
                imin += mp
        if not gemm:
            acc = fma_f32(np.float32(isum), dd, acc)
            acc_min = fma_f32(np.float32(imin), dm, acc_min)
    return acc - acc_min


@njit(cache=True, nogil=True)
def vec_dot_q4_k_r8_gemv(w, woff, x, xoff, nb):
    return _q4_k_r8(w, woff, x, xoff, nb, False)


@njit(cache=True, nogil=True)
def vec_dot_q4_k_r8_gemm(w, woff, x, xoff, nb):
    return _q4_k_r8(w, woff, x, xoff, nb, True)


_KVALUES_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.int32)


@njit(cache=True, nogil=True)
def _iq4_lanes(w, qo, x, xq0, kv, lanes):
    """lanes[l] = sum over elements 4l..4l+3 of kvalues[nibble] * q8 for one 32-value block."""
    for lane in range(8):
        s = 0
        for k in range(4):
            e = 4 * lane + k
            b = np.int32(w[qo + (e & 15)])
            nib = (b & 15) if e < 16 else (b >> 4)
            s += kv[nib] * _s8(x[xq0 + e])
        lanes[lane] = s


@njit(cache=True, nogil=True)
def vec_dot_iq4_nl_q8_0(w, woff, x, xoff, nb):
    """ggml_vec_dot_iq4_nl_q8_0 (AVX2): even blocks into accum1, odd into accum2, then
    hsum_float_8(accum1 + accum2); an odd last block is added as sumf + d * isum (two roundings)."""
    kv = _KVALUES_IQ4NL
    acc1 = np.zeros(8, np.float32)
    acc2 = np.zeros(8, np.float32)
    lanes = np.empty(8, np.int32)
    npair = nb // 2
    for ip in range(npair):
        for h in range(2):
            ib = 2 * ip + h
            bo = woff + ib * 18
            xo = xoff + ib * 34
            d = _f16(x, xo) * _f16(w, bo)
            _iq4_lanes(w, bo + 2, x, xo + 2, kv, lanes)
            for lane in range(8):
                if h == 0:
                    acc1[lane] = fma_f32(d, np.float32(lanes[lane]), acc1[lane])
                else:
                    acc2[lane] = fma_f32(d, np.float32(lanes[lane]), acc2[lane])
    for lane in range(8):
        acc1[lane] = acc1[lane] + acc2[lane]
    sumf = hsum8(acc1)
    if nb % 2 == 1:
        ib = nb - 1
        bo = woff + ib * 18
        xo = xoff + ib * 34
        d = _f16(x, xo) * _f16(w, bo)
        _iq4_lanes(w, bo + 2, x, xo + 2, kv, lanes)
        sumf = sumf + d * np.float32(lanes.sum())  # not fused in llama.cpp's build (fixture)
    return sumf


@njit(cache=True, nogil=True)
def vec_dot_iq4_xs_q8_k(w, woff, x, xoff, nb):
    """ggml_vec_dot_iq4_xs_q8_K (AVX2): per super-block, 8 int lanes summed over the 8 sub-blocks
    (each scaled by its 6-bit scale - 32), one FMA with d * y.d per lane, hsum_float_8 at the end."""
    kv = _KVALUES_IQ4NL
    acc = np.zeros(8, np.float32)
    lanes = np.empty(8, np.int32)
    tot = np.empty(8, np.int32)
    for ibl in range(nb):
        bo = woff + ibl * 136
        xo = xoff + ibl * 292
        sh = np.int32(w[bo + 2]) | (np.int32(w[bo + 3]) << 8)
        tot[:] = 0
        for ib in range(8):
            sl = np.int32(w[bo + 4 + ib // 2])
            ls = (((sl >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4)) - 32
            _iq4_lanes(w, bo + 8 + 16 * ib, x, xo + 4 + 32 * ib, kv, lanes)
            for lane in range(8):
                tot[lane] += ls * lanes[lane]
        d = _f16(w, bo) * _f32(x, xo)
        for lane in range(8):
            acc[lane] = fma_f32(d, np.float32(tot[lane]), acc[lane])
    return hsum8(acc)
