"""Prefill tiles for the 32-value block types in 512-bit registers (AVX-512 VNNI hosts).

A tile multiplies 2 * n_pairs weight rows by n_tok activation rows. Two weight rows share one
512-bit register: lanes 0..7 belong to the first row and lanes 8..15 to the second, so one
`vpdpbusd` / `vcvtdq2ps` / `vmulps` / `vfmadd` serves two (row, token) pairs. Every lane still
receives exactly the operations of llama.cpp's AVX2 `ggml_vec_dot_<w>_<x>` (and of
kernels.cpu.simd): per 32-value block the 8 exact int32 lane sums (lane l: products of values
4l..4l+3), converted to float, acc = fma(d_w * d_x, lanes, acc), reduced by hsum_float_8 at the
end (plus the m * s sum for Q4_1 / Q5_1). Results are bit-identical to the single dots.

Integer lanes: the weight is read as unsigned bytes u = q + bias (Q4_0: nibble, bias 8; Q5_0:
5-bit value, bias 16; Q8_0: q xor 0x80 = q + 128; Q4_1 / Q5_1: bias 0) and
lanes = vpdpbusd(-bias * lanesum(y), u, y) = sum q * y: exact integers (|lane| < 2^18), so equal
to llama.cpp's vpmaddubsw / vpmaddwd lanes, which never saturate for these types.

    tile_<w>(w, woff, w_stride, x, xoff, x_stride, nb, out, ooff, o_stride) -> None
        out[ooff + k + t * o_stride] = weight row woff + k * w_stride times activation row
        xoff + t * x_stride (out: float32 array), for k < 2 * n_pairs and t < n_tok

`HAS_WIDE` tells whether the host runs them (AVX-512 F/BW/VL + VNNI); kernels.cpu.vec_dot_rows
uses them only then. Intrinsics inline into their callers: bump WIDE_VERSION when the IR changes.
"""

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from kernels.cpu.simd import (
    _C, _FEATURES, _V, _add, _bits32, _f16, _f16_at, _f32, _fn, _hsum8, _i8, _i16, _i32, _i64, _load,
    _nibbles32, _shuf, _splat, _PREFETCH_BYTES,
)

WIDE_VERSION = 3

HAS_WIDE = all(_FEATURES.get(f, False) for f in ("avx512f", "avx512bw", "avx512vl", "avx512vnni",
                                                  "avx2", "fma", "f16c"))

_V16F = _V(_f32, 16)
_V16I = _V(_i32, 16)
_V64B = _V(_i8, 64)


# weight decoders: (unsigned bytes <32 x i8>, d_w, m_w or None)

def _dec_q4_0(b, w, bo):
    return _nibbles32(b, _load(b, w, _add(b, bo, 2), _V(_i8, 16))), _f16_at(b, w, bo), None


def _dec_q5_0(b, w, bo):
    nib = _nibbles32(b, _load(b, w, _add(b, bo, 6), _V(_i8, 16)))
    hi = b.select(_bits32(b, w, _add(b, bo, 2)), _C(_V(_i8, 32), 0x10), _C(_V(_i8, 32), 0))
    return b.or_(nib, hi), _f16_at(b, w, bo), None


def _dec_q8_0(b, w, bo):
    q = _load(b, w, _add(b, bo, 2), _V(_i8, 32))
    return b.xor(q, _C(_V(_i8, 32), 0x80)), _f16_at(b, w, bo), None


def _dec_q4_1(b, w, bo):
    q = _nibbles32(b, _load(b, w, _add(b, bo, 4), _V(_i8, 16)))
    return q, _f16_at(b, w, bo), _f16_at(b, w, _add(b, bo, 2))


def _dec_q5_1(b, w, bo):
    nib = _nibbles32(b, _load(b, w, _add(b, bo, 8), _V(_i8, 16)))
    hi = b.select(_bits32(b, w, _add(b, bo, 4)), _C(_V(_i8, 32), 0x10), _C(_V(_i8, 32), 0))
    return b.or_(nib, hi), _f16_at(b, w, bo), _f16_at(b, w, _add(b, bo, 2))


_WIDE_KINDS = {  # name: (weight block bytes, activation block bytes, decode, bias, has_min)
    "q4_0": (18, 34, _dec_q4_0, 8, False),
    "q5_0": (22, 34, _dec_q5_0, 16, False),
    "q8_0": (34, 34, _dec_q8_0, 128, False),
    "q4_1": (20, 36, _dec_q4_1, 0, True),
    "q5_1": (24, 36, _dec_q5_1, 0, True),
}


def _make_tile(block_bytes, x_block_bytes, decode, bias, has_min, n_pairs, n_tok, pf_groups=0):
    n_w = 2 * n_pairs
    qs_off = 4 if has_min else 2  # activation quants: after d (and s for Q8_1)

    def codegen(context, builder, signature, args):
        b = builder
        i64 = lambda k: context.cast(b, args[k], signature.args[k], types.int64)  # noqa: E731
        woff, wstride, xoff, xstride, nbv = i64(1), i64(2), i64(4), i64(5), i64(6)
        wp = context.make_array(signature.args[0])(context, b, args[0]).data
        xp = context.make_array(signature.args[3])(context, b, args[3]).data
        wrows = [b.gep(wp, [b.add(woff, b.mul(wstride, _C(_i64, k)))], inbounds=True) for k in range(n_w)]
        xrows = [b.gep(xp, [b.add(xoff, b.mul(xstride, _C(_i64, t)))], inbounds=True) for t in range(n_tok)]
        dpbusd = _fn(b, "llvm.x86.avx512.vpdpbusd.512", _V16I, [_V16I, _V64B, _V64B])
        fma16 = _fn(b, "llvm.fma.v16f32", _V16F, [_V16F] * 3)
        prefetch = _fn(b, "llvm.prefetch.p0", ir.VoidType(), [_i8.as_pointer(), _i32, _i32, _i32])
        if pf_groups:  # the same block of the rows pf_groups tiles further on (adjacent rows)
            pf_ahead = b.mul(wstride, _C(_i64, n_w * pf_groups))
        else:
            pf_ahead = _C(_i64, _PREFETCH_BYTES)
        accs = [[cgutils.alloca_once_value(b, _C(_V16F, None)) for _ in range(n_tok)] for _ in range(n_pairs)]
        # m * s sums of a row pair, lane (k % 2) * n_tok + t: one FMA per block for all its tokens
        vs = _V(_f32, 2 * n_tok)
        fma_s = _fn(b, f"llvm.fma.v{2 * n_tok}f32", vs, [vs] * 3)
        sums = [cgutils.alloca_once_value(b, _C(vs, None)) for _ in range(n_pairs)] if has_min else None
        with cgutils.for_range(b, nbv) as loop:
            bo = b.mul(loop.index, _C(_i64, block_bytes))
            xo = b.mul(loop.index, _C(_i64, x_block_bytes))
            if pf_groups:
                # the rows of a tile are adjacent: sweep the memory pf_groups tiles ahead linearly,
                # n_w blocks' worth of bytes per block step
                lin = b.add(pf_ahead, b.mul(loop.index, _C(_i64, n_w * block_bytes)))
                for j in range(0, n_w * block_bytes, 64):
                    b.call(prefetch, [b.gep(wrows[0], [_add(b, lin, j)]),
                                      _C(_i32, 0), _C(_i32, 3), _C(_i32, 1)])
            pairs = []
            for p in range(n_pairs):
                decs = []
                for k in (2 * p, 2 * p + 1):
                    if not pf_groups:
                        b.call(prefetch, [b.gep(wrows[k], [b.add(bo, pf_ahead)]),
                                          _C(_i32, 0), _C(_i32, 3), _C(_i32, 1)])
                    decs.append(decode(b, wrows[k], bo))
                q = _shuf(b, decs[0][0], decs[1][0], range(64))
                dw = _shuf(b, _splat(b, decs[0][1], 8), _splat(b, decs[1][1], 8), range(16))
                mw = None
                if has_min:
                    mw = _shuf(b, _splat(b, decs[0][2], n_tok), _splat(b, decs[1][2], n_tok), range(2 * n_tok))
                pairs.append((q, dw, mw))
            if has_min:
                sv = _C(_V(_i16, n_tok), ir.Undefined)
                for t in range(n_tok):
                    sv = b.insert_element(sv, _load(b, xrows[t], _add(b, xo, 2), _i16), _C(_i32, t))
                sv = b.fpext(b.bitcast(sv, _V(_f16, n_tok)), _V(_f32, n_tok))
                ss = _shuf(b, sv, sv, list(range(n_tok)) * 2)
                for p in range(n_pairs):
                    b.store(b.call(fma_s, [pairs[p][2], ss, b.load(sums[p])]), sums[p])
            for t in range(n_tok):
                y32 = _load(b, xrows[t], _add(b, xo, qs_off), _V(_i8, 32))
                y = _shuf(b, y32, y32, list(range(32)) * 2)
                dy = _f16_at(b, xrows[t], xo)
                start = _C(_V16I, None)
                if bias:
                    corr = b.call(dpbusd, [_C(_V16I, None), _C(_V64B, bias), y])
                    start = b.sub(_C(_V16I, None), corr)
                for p, (q, dw, _) in enumerate(pairs):
                    lanes = b.call(dpbusd, [start, q, y])
                    d = b.fmul(dw, _splat(b, dy, 16))
                    acc = accs[p][t]
                    b.store(b.call(fma16, [d, b.sitofp(lanes, _V16F), b.load(acc)]), acc)
        op = context.make_array(signature.args[7])(context, b, args[7]).data
        ooff, ostride = i64(8), i64(9)
        for k in range(n_w):
            for t in range(n_tok):
                v = b.load(accs[k // 2][t])
                half = _shuf(b, v, v, range(8 * (k % 2), 8 * (k % 2) + 8))
                r = _hsum8(b, half)
                if has_min:
                    r = b.fadd(r, b.extract_element(b.load(sums[k // 2]), _C(_i32, (k % 2) * n_tok + t)))
                idx = b.add(b.add(ooff, _C(_i64, k)), b.mul(ostride, _C(_i64, t)))
                b.store(r, b.gep(op, [idx], inbounds=True))
        return context.get_dummy_value()

    @intrinsic
    def tile(typingctx, w, woff, w_stride, x, xoff, x_stride, nb, out, ooff, o_stride):
        sig = types.void(w, woff, w_stride, x, xoff, x_stride, nb, out, ooff, o_stride)
        return sig, codegen

    return tile


# 4 rows x 8 tokens (16 accumulator registers): the fastest shape measured on Zen 4 for all five
tile_q4_0 = _make_tile(*_WIDE_KINDS["q4_0"], n_pairs=2, n_tok=8)
tile_q5_0 = _make_tile(*_WIDE_KINDS["q5_0"], n_pairs=2, n_tok=8)
tile_q8_0 = _make_tile(*_WIDE_KINDS["q8_0"], n_pairs=2, n_tok=8)
tile_q4_1 = _make_tile(*_WIDE_KINDS["q4_1"], n_pairs=2, n_tok=8)
tile_q5_1 = _make_tile(*_WIDE_KINDS["q5_1"], n_pairs=2, n_tok=8)
# decode (one token), Q8_0 only: 8 rows per tile with a linear software prefetch one tile ahead
# streams a large matrix (the output head) at ~2x the speed of simd.dot2r_q8_0_q8_0 (measured on
# Zen 4: 29 vs 12.5 GB/s by CPU time, 1 thread); the nibble types gain nothing there
tile8r_q8_0 = _make_tile(*_WIDE_KINDS["q8_0"], n_pairs=4, n_tok=1, pf_groups=1)
