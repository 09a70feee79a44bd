"""Explicit SIMD for the quantized dot products: Numba @intrinsic functions that emit LLVM vector IR.

Each `dot_<w>_<x>` intrinsic computes one weight row times one quantized activation row and
returns float32, with exactly the instruction sequence and float accumulation order of llama.cpp's
x86 AVX2 `ggml_vec_dot_<w>_<x>` (ggml/src/ggml-cpu/arch/x86/quants.c): per 32-byte block,
`vpmaddubsw` + `vpmaddwd` give 8 int32 lanes (lane l sums the products of bytes 4l..4l+3), the
lanes are converted to float and accumulated with one FMA chain per row, and `hsum_float_8`
reduces the 8 lanes in llama.cpp's order. Integer lane sums are exact whatever instruction
produces them (VNNI `vpdpbusd` gives the same lanes), so results are bit-identical to llama.cpp's
vec_dot on AVX2 and AVX-512 builds. `dot*_q4_k_r8_gemv` / `dot*_q4_k_r8_gemm` reproduce instead the
float steps of llama.cpp's repacked Q4_K kernels (ggml_gemv / ggml_gemm_q4_K_8x8_q8_K of
arch/x86/repack.cpp), which AVX2 builds use for Q4_K weights with a multiple of 8 rows.

Signatures (w: GGML weight blocks, row at byte woff; x: the activation row already converted to
the weight type's vec_dot_type in GGML block layout, at byte xoff; nb: blocks per row; the caller
guarantees the bounds):
    dot_<w>_<x>(w, woff, x, xoff, nb) -> float32
    dot4_<w>_<x>(w, woff, 0, x, xoff, x_stride, nb) -> 4 x float32: one weight row, 4 tokens
    dot2r_<w>_<x>(w, woff, w_stride, x, xoff, 0, nb) -> 2 x float32: 2 weight rows, one token
    dot2x4_ / dot2x8_<w>_<x>(w, woff, w_stride, x, xoff, x_stride, nb) -> 8 / 16 x float32:
        2 weight rows x 4 / 8 tokens (prefill of the 32-value block types), row-major results
    dot_q6_k_tiled: Q6_K with the float steps of llama.cpp's tiled prompt kernel
Prompts of the repacked Q4_K and the tiled Q6_K run kernels.cpu.simd_kquant's tiles instead,
which keep these float steps per output with the weight rows as vector lanes.
The multi-row / multi-token forms decode each weight block once and keep one accumulator set per
(row, token), so each result equals the single dot bit for bit. The multi-row one-token forms
expect adjacent rows (w_stride = row bytes, as a matvec reads them) and prefetch linearly
_PF_GROUPS row groups ahead.

The portable helpers at the top (`fma_f32`, `f32_to_bits`, `f32_from_bits`) use only generic
LLVM IR and work on every CPU. `HAS_AVX2` tells whether the host can run the dot intrinsics
(AVX2 + FMA + F16C); `kernels.cpu.matmul` falls back to `kernels.cpu.vec_dot` without them.

Intrinsics are inlined into their callers, so editing this file does not invalidate cached
callers: bump `SIMD_VERSION` (referenced by kernels.cpu.matmul) when the IR changes.
"""

import llvmlite.binding as _llvm_binding
import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

SIMD_VERSION = 15

_FEATURES = _llvm_binding.get_host_cpu_features()
HAS_AVX2 = all(_FEATURES.get(f, False) for f in ("avx2", "fma", "f16c"))
# vpdpbusd (AVX512-VNNI with VL, or AVX-VNNI): the 8 int32 lanes of vpmaddubsw + vpmaddwd(ones)
# in one instruction; equal to them whenever vpmaddubsw does not saturate, which holds for every
# dot here (|weight byte| <= 128 against |activation| <= 127, or weight < 64 against any int8)
HAS_VNNI = HAS_AVX2 and (_FEATURES.get("avxvnni", False)
                         or (_FEATURES.get("avx512vnni", False) and _FEATURES.get("avx512vl", False)))

_i1, _i8, _i16, _i32, _i64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
_f16, _f32 = ir.HalfType(), ir.FloatType()
_V = ir.VectorType
_C = ir.Constant
_V8F = _V(_f32, 8)
_V4F = _V(_f32, 4)
_PREFETCH_BYTES = 1024
_PF_GROUPS = 2  # multi-row decode dots: linear prefetch this many row groups ahead


# ---------------------------------------------------------------------------------------------
# Portable scalar helpers
# ---------------------------------------------------------------------------------------------

@intrinsic
def fma_f32(typingctx, a, b, c):
    """Fused a*b + c in float32 (llvm.fma.f32: one rounding, like _mm256_fmadd_ps lanes)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_f32, [_f32] * 3),
                                            "llvm.fma.f32")
        vals = [context.cast(builder, v, t, types.float32) for v, t in zip(args, signature.args)]
        return builder.call(fn, vals)

    return sig, codegen


@intrinsic
def f32_to_bits(typingctx, x):
    """The IEEE-754 bits of a float32 as uint32."""
    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _i32)

    return sig, codegen


@intrinsic
def f32_from_bits(typingctx, u):
    """The float32 whose IEEE-754 bits are u (uint32)."""
    sig = types.float32(types.uint32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(context.cast(builder, args[0], signature.args[0], types.uint32), _f32)

    return sig, codegen


# ---------------------------------------------------------------------------------------------
# IR building blocks
# ---------------------------------------------------------------------------------------------

def _shuf(b, a, c, idx):
    return b.shuffle_vector(a, c, _C(_V(_i32, len(idx)), [_C(_i32, i) for i in idx]))


def _splat(b, val, n):
    t = _V(val.type, n)
    v = b.insert_element(_C(t, ir.Undefined), val, _C(_i32, 0))
    return b.shuffle_vector(v, _C(t, ir.Undefined), _C(_V(_i32, n), [_C(_i32, 0)] * n))


def _hsum8(b, v):
    """llama.cpp hsum_float_8: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))."""
    s = b.fadd(_shuf(b, v, v, range(4, 8)), _shuf(b, v, v, range(4)))
    s2 = b.fadd(_shuf(b, s, s, range(2)), _shuf(b, s, s, range(2, 4)))
    return b.fadd(b.extract_element(s2, _C(_i32, 0)), b.extract_element(s2, _C(_i32, 1)))


def _hsum4(b, v):
    """acc_m reduction of the K-quant dots: (a0+a2) + (a1+a3)."""
    s2 = b.fadd(_shuf(b, v, v, range(2)), _shuf(b, v, v, range(2, 4)))
    return b.fadd(b.extract_element(s2, _C(_i32, 0)), b.extract_element(s2, _C(_i32, 1)))


def _fn(b, name, ret, args):
    return cgutils.get_or_insert_function(b.module, ir.FunctionType(ret, args), name)


def _load(b, base, off, ty):
    """Unaligned load of type ty at byte offset off (i64 value) from i8* base."""
    return b.load(b.bitcast(b.gep(base, [off], inbounds=True), ty.as_pointer()), align=1)


def _f16_at(b, base, off):
    return b.fpext(b.bitcast(_load(b, base, off, _i16), _f16), _f32)


def _add(b, v, k):
    return b.add(v, _C(_i64, k))


class _Ops:
    """The AVX2 integer instructions used by the dots, as LLVM intrinsic calls."""

    def __init__(self, b):
        self.b = b
        self.maddubs = _fn(b, "llvm.x86.avx2.pmadd.ub.sw", _V(_i16, 16), [_V(_i8, 32), _V(_i8, 32)])
        self.psign = _fn(b, "llvm.x86.avx2.psign.b", _V(_i8, 32), [_V(_i8, 32), _V(_i8, 32)])
        self.maddwd = _fn(b, "llvm.x86.avx2.pmadd.wd", _V(_i32, 8), [_V(_i16, 16), _V(_i16, 16)])
        self.maddwd128 = _fn(b, "llvm.x86.sse2.pmadd.wd", _V(_i32, 4), [_V(_i16, 8), _V(_i16, 8)])
        self.fma8 = _fn(b, "llvm.fma.v8f32", _V8F, [_V8F] * 3)
        self.fma4 = _fn(b, "llvm.fma.v4f32", _V4F, [_V4F] * 3)
        self.fma1 = _fn(b, "llvm.fma.f32", _f32, [_f32] * 3)
        self.prefetch = _fn(b, "llvm.prefetch.p0", ir.VoidType(), [_i8.as_pointer(), _i32, _i32, _i32])
        self.ones16 = _C(_V(_i16, 16), 1)
        if HAS_VNNI:
            self.dpbusd = _fn(b, "llvm.x86.avx512.vpdpbusd.256", _V(_i32, 8),
                              [_V(_i32, 8), _V(_i8, 32), _V(_i8, 32)])

    def us8_lanes(self, ux, sy):
        """8 int32 lanes: lane l = sum of ux[k]*sy[k] for k in 4l..4l+3 (ux unsigned bytes)."""
        if HAS_VNNI:
            return self.b.call(self.dpbusd, [_C(_V(_i32, 8), None), ux, sy])
        return self.b.call(self.maddwd, [self.b.call(self.maddubs, [ux, sy]), self.ones16])

    def fma_acc(self, acc_ptr, scale, lanes):
        b = self.b
        b.store(b.call(self.fma8, [_splat(b, scale, 8), b.sitofp(lanes, _V8F), b.load(acc_ptr)]), acc_ptr)

    def prefetch_at(self, base, off):
        self.b.call(self.prefetch, [self.b.gep(base, [off]), _C(_i32, 0), _C(_i32, 3), _C(_i32, 1)])


def _nibbles32(b, qs16):
    """16 packed bytes -> 32 bytes: low nibbles (elements 0..15) then high nibbles (16..31)."""
    m15 = _C(_V(_i8, 16), 15)
    return _shuf(b, b.and_(qs16, m15), b.lshr(qs16, _C(_V(_i8, 16), 4)), range(32))


def _bits32(b, base, off):
    """The 32 bits of the u32 at base+off as a <32 x i1> (bit k -> element k), like bytes_from_bits_32."""
    qh = _load(b, base, off, _V(_i8, 4))
    spread = _shuf(b, qh, qh, [k // 8 for k in range(32)])
    mask = _C(_V(_i8, 32), [1 << (k % 8) for k in range(32)])
    return b.icmp_unsigned("!=", b.and_(spread, mask), _C(_V(_i8, 32), 0))


def _make_dot(block_bytes, x_block_bytes, decode, apply, finish, n_w=1, n_tok=1):
    """Build a row-dot intrinsic from decode(ops, w, bo) -> dec (a weight block, decoded once per
    block) and apply(ops, dec, x, xo, state) (one activation block), finish(ops, state) -> float32.

    n_w == n_tok == 1: dot(w, woff, x, xoff, nb) -> float32.
    otherwise: dot(w, woff, w_stride, x, xoff, x_stride, nb) -> UniTuple(float32, n_w * n_tok),
    result k * n_tok + t = weight row at woff + k * w_stride times activation row at
    xoff + t * x_stride. Every pair keeps its own accumulators (independent FMA chains, which hide
    the FMA latency), so each result equals the single dot bit for bit.
    """
    single = n_w == 1 and n_tok == 1

    def codegen(context, builder, signature, args):
        b = builder
        a = [context.cast(b, args[k], signature.args[k], types.int64) if k not in (0, 2 if single else 3)
             else None for k in range(len(args))]
        if single:
            wv, xv, woffv, xoffv, nbv = args[0], args[2], a[1], a[3], a[4]
            wstride = xstride = _C(_i64, 0)
            wty, xty = signature.args[0], signature.args[2]
        else:
            wv, xv, woffv, wstride, xoffv, xstride, nbv = args[0], args[3], a[1], a[2], a[4], a[5], a[6]
            wty, xty = signature.args[0], signature.args[3]
        wp = context.make_array(wty)(context, b, wv).data
        xp = context.make_array(xty)(context, b, xv).data
        wrows = [b.gep(wp, [b.add(woffv, b.mul(wstride, _C(_i64, k)))], inbounds=True) for k in range(n_w)]
        xrows = [b.gep(xp, [b.add(xoffv, b.mul(xstride, _C(_i64, t)))], inbounds=True) for t in range(n_tok)]
        ops = _Ops(b)
        states = [[{
            "acc": cgutils.alloca_once_value(b, _C(_V8F, None)),
            "acc4": cgutils.alloca_once_value(b, _C(_V4F, None)),
            "sum": cgutils.alloca_once_value(b, _C(_f32, 0.0)),
            "sum2": cgutils.alloca_once_value(b, _C(_f32, 0.0)),
        } for _ in range(n_tok)] for _ in range(n_w)]
        linear = n_w > 1 and n_tok == 1 and _PF_GROUPS > 0
        if linear:
            pf_ahead = b.mul(wstride, _C(_i64, n_w * _PF_GROUPS))
        with cgutils.for_range(b, nbv) as loop:
            bo = b.mul(loop.index, _C(_i64, block_bytes))
            xo = b.mul(loop.index, _C(_i64, x_block_bytes))
            if linear:
                # decode reads adjacent rows n_w at a time: sweep the memory _PF_GROUPS row
                # groups ahead linearly, n_w blocks' worth of bytes per block step (prefetching
                # a fixed distance inside each row lands in rows this group already reads)
                lin = b.add(pf_ahead, b.mul(loop.index, _C(_i64, n_w * block_bytes)))
                for j in range(0, n_w * block_bytes, 64):
                    ops.prefetch_at(wrows[0], _add(b, lin, j))
            for k in range(n_w):
                if not linear:
                    ops.prefetch_at(wrows[k], _add(b, bo, _PREFETCH_BYTES))
                dec = decode(ops, wrows[k], bo)
                for t in range(n_tok):
                    apply(ops, dec, xrows[t], xo, states[k][t])
        results = [finish(ops, st) for row in states for st in row]
        if single:
            return results[0]
        return context.make_tuple(b, signature.return_type, results)

    if single:
        @intrinsic
        def dot(typingctx, w, woff, x, xoff, nb):
            return types.float32(w, woff, x, xoff, nb), codegen
    else:
        @intrinsic
        def dot(typingctx, w, woff, w_stride, x, xoff, x_stride, nb):
            sig = types.UniTuple(types.float32, n_w * n_tok)(w, woff, w_stride, x, xoff, x_stride, nb)
            return sig, codegen

    return dot


def _finish_acc(ops, st):
    return _hsum8(ops.b, ops.b.load(st["acc"]))


def _finish_acc_plus_sum(ops, st):
    return ops.b.fadd(_hsum8(ops.b, ops.b.load(st["acc"])), ops.b.load(st["sum"]))


def _finish_sum_minus_sum2(ops, st):
    return ops.b.fsub(ops.b.load(st["sum"]), ops.b.load(st["sum2"]))


def _finish_acc_plus_acc4(ops, st):
    return ops.b.fadd(_hsum8(ops.b, ops.b.load(st["acc"])), _hsum4(ops.b, ops.b.load(st["acc4"])))


# ---------------------------------------------------------------------------------------------
# Weight decoders and activation steps (one pair per weight type), mirroring the AVX2 loops
# ---------------------------------------------------------------------------------------------

def _signed_decoded(ops, dw, qx):
    """Q4_0 / Q5_0 / Q8_0: mul_sum_i8_pairs takes |qx| once and signs each activation by qx."""
    return dw, qx, ops.b.call(ops.psign, [qx, qx])


def _dec_q4_0(ops, w, bo):
    b = ops.b
    qx = b.sub(_nibbles32(b, _load(b, w, _add(b, bo, 2), _V(_i8, 16))), _C(_V(_i8, 32), 8))
    return _signed_decoded(ops, _f16_at(b, w, bo), qx)


def _dec_q8_0(ops, w, bo):
    b = ops.b
    return _signed_decoded(ops, _f16_at(b, w, bo), _load(b, w, _add(b, bo, 2), _V(_i8, 32)))


def _dec_q5_0(ops, w, bo):
    b = ops.b
    nib = _nibbles32(b, _load(b, w, _add(b, bo, 6), _V(_i8, 16)))
    hi = b.select(_bits32(b, w, _add(b, bo, 2)), _C(_V(_i8, 32), 0), _C(_V(_i8, 32), 0xF0))
    return _signed_decoded(ops, _f16_at(b, w, bo), b.or_(nib, hi))


def _app_signed(ops, dec, x, xo, st):
    b = ops.b
    dw, qx, ax = dec
    d = b.fmul(dw, _f16_at(b, x, xo))
    sy = b.call(ops.psign, [_load(b, x, _add(b, xo, 2), _V(_i8, 32)), qx])
    ops.fma_acc(st["acc"], d, ops.us8_lanes(ax, sy))


def _dec_q4_1(ops, w, bo):
    b = ops.b
    qx = _nibbles32(b, _load(b, w, _add(b, bo, 4), _V(_i8, 16)))
    return _f16_at(b, w, bo), _f16_at(b, w, _add(b, bo, 2)), qx


def _dec_q5_1(ops, w, bo):
    b = ops.b
    nib = _nibbles32(b, _load(b, w, _add(b, bo, 8), _V(_i8, 16)))
    hi = b.select(_bits32(b, w, _add(b, bo, 4)), _C(_V(_i8, 32), 0x10), _C(_V(_i8, 32), 0))
    return _f16_at(b, w, bo), _f16_at(b, w, _add(b, bo, 2)), b.or_(nib, hi)


def _app_min(ops, dec, x, xo, st):
    """Q4_1 / Q5_1 times Q8_1: d0*d1 * lanes into acc, m * s into the scalar sum (both FMA)."""
    b = ops.b
    dw, mw, qx = dec
    d = b.fmul(dw, _f16_at(b, x, xo))
    b.store(b.call(ops.fma1, [mw, _f16_at(b, x, _add(b, xo, 2)), b.load(st["sum"])]), st["sum"])
    qy = _load(b, x, _add(b, xo, 4), _V(_i8, 32))
    ops.fma_acc(st["acc"], d, ops.us8_lanes(qx, qy))


def _dec_q4_k_head(ops, w, bo):
    """d, dmin, mins (<8 x i16>) and the 8 splatted scale vectors of a Q4_K / Q5_K block."""
    b = ops.b
    # 12 scale bytes -> utmp[0..3] (scales in bytes 0..7, mins in bytes 8..15), as in llama.cpp
    u0 = _load(b, w, _add(b, bo, 4), _i32)
    u1 = _load(b, w, _add(b, bo, 8), _i32)
    u2 = _load(b, w, _add(b, bo, 12), _i32)
    k1, k2, k3 = _C(_i32, 0x3F3F3F3F), _C(_i32, 0x0F0F0F0F), _C(_i32, 0x03030303)
    t3 = b.or_(b.and_(b.lshr(u2, _C(_i32, 4)), k2), b.shl(b.and_(b.lshr(u1, _C(_i32, 6)), k3), _C(_i32, 4)))
    t2 = b.and_(u1, k1)
    t1 = b.or_(b.and_(u2, k2), b.shl(b.and_(b.lshr(u0, _C(_i32, 6)), k3), _C(_i32, 4)))
    t0 = b.and_(u0, k1)
    vec = _C(_V(_i32, 4), ir.Undefined)
    for k, t in enumerate((t0, t1, t2, t3)):
        vec = b.insert_element(vec, t, _C(_i32, k))
    ms = b.zext(b.bitcast(vec, _V(_i8, 16)), _V(_i16, 16))
    mins = _shuf(b, ms, ms, range(8, 16))
    scales = [_splat(b, b.extract_element(ms, _C(_i32, j)), 16) for j in range(8)]
    return _f16_at(b, w, bo), _f16_at(b, w, _add(b, bo, 2)), mins, scales


def _nibble_quants(b, w, qs_at):
    """4 x 32 bytes at qs_at -> 8 vectors: low then high nibbles of each 32-byte chunk."""
    m15 = _C(_V(_i8, 32), 15)
    quants = []
    for j in range(4):
        q4 = _load(b, w, _add(b, qs_at, 32 * j), _V(_i8, 32))
        quants += [b.and_(q4, m15), b.lshr(q4, _C(_V(_i8, 32), 4))]
    return quants


def _dec_q4_k(ops, w, bo):
    dw, dminw, mins, scales = _dec_q4_k_head(ops, w, bo)
    return dw, dminw, mins, _nibble_quants(ops.b, w, _add(ops.b, bo, 16)), scales


def _app_q4_k(ops, dec, x, xo, st):
    b = ops.b
    dw, dminw, mins, quants, scales = dec
    yd = _load(b, x, xo, _f32)
    d = b.fmul(yd, dw)
    dmin = b.fmul(b.fneg(yd), dminw)
    bs = _load(b, x, _add(b, xo, 260), _V(_i16, 16))
    q8s = b.add(_shuf(b, bs, bs, range(0, 16, 2)), _shuf(b, bs, bs, range(1, 16, 2)))
    prod = b.call(ops.maddwd128, [mins, q8s])
    acc4 = b.call(ops.fma4, [_splat(b, dmin, 4), b.sitofp(prod, _V4F), b.load(st["acc4"])])
    b.store(acc4, st["acc4"])
    sumi = None
    for j in range(4):
        q8l = _load(b, x, _add(b, xo, 4 + 64 * j), _V(_i8, 32))
        q8h = _load(b, x, _add(b, xo, 4 + 64 * j + 32), _V(_i8, 32))
        pl = b.call(ops.maddwd, [scales[2 * j], b.call(ops.maddubs, [quants[2 * j], q8l])])
        ph = b.call(ops.maddwd, [scales[2 * j + 1], b.call(ops.maddubs, [quants[2 * j + 1], q8h])])
        sj = b.add(pl, ph)
        sumi = sj if sumi is None else b.add(sumi, sj)
    ops.fma_acc(st["acc"], d, sumi)


def _dec_q5_k(ops, w, bo):
    """Q5_K: Q4_K's scales and nibbles (qs at 48) plus bit j of qh[l] as 16 for sub-block j."""
    b = ops.b
    dw, dminw, mins, scales = _dec_q4_k_head(ops, w, bo)
    quants = _nibble_quants(b, w, _add(b, bo, 48))
    hb = _load(b, w, _add(b, bo, 16), _V(_i8, 32))
    q5 = []
    for j in range(8):
        bit = b.and_(b.lshr(hb, _C(_V(_i8, 32), j)), _C(_V(_i8, 32), 1))
        q5.append(b.add(quants[j], b.shl(bit, _C(_V(_i8, 32), 4))))
    return dw, dminw, mins, q5, scales


def _app_q5_k(ops, dec, x, xo, st):
    """ggml_vec_dot_q5_K_q8_K (AVX2): lanes as Q4_K; mins as a scalar, summs += dmin * imin."""
    b = ops.b
    dw, dminw, mins, quants, scales = dec
    yd = _load(b, x, xo, _f32)
    d = b.fmul(yd, dw)
    dmin = b.fmul(b.fneg(yd), dminw)
    bs = _load(b, x, _add(b, xo, 260), _V(_i16, 16))
    q8s = b.add(_shuf(b, bs, bs, range(0, 16, 2)), _shuf(b, bs, bs, range(1, 16, 2)))
    imin = _hsum_i32(b, b.call(ops.maddwd128, [mins, q8s]), 4)
    b.store(b.call(ops.fma1, [dmin, b.sitofp(imin, _f32), b.load(st["sum"])]), st["sum"])
    sumi = None
    for j in range(4):
        q8l = _load(b, x, _add(b, xo, 4 + 64 * j), _V(_i8, 32))
        q8h = _load(b, x, _add(b, xo, 4 + 64 * j + 32), _V(_i8, 32))
        pl = b.call(ops.maddwd, [scales[2 * j], b.call(ops.maddubs, [quants[2 * j], q8l])])
        ph = b.call(ops.maddwd, [scales[2 * j + 1], b.call(ops.maddubs, [quants[2 * j + 1], q8h])])
        sj = b.add(pl, ph)
        sumi = sj if sumi is None else b.add(sumi, sj)
    ops.fma_acc(st["acc"], d, sumi)


def _hsum_i32(b, v, n):
    s = b.extract_element(v, _C(_i32, 0))
    for k in range(1, n):
        s = b.add(s, b.extract_element(v, _C(_i32, k)))
    return s


def _q4_k_r8_step(ops, st, isum, imin, dw, dminw, yd):
    """acc += isum * (dw * yd); acc_min += imin * (dmin * yd): the float steps of llama.cpp's
    repacked Q4_K gemv / gemm (arch/x86/repack.cpp), one FMA each, result acc - acc_min."""
    b = ops.b
    b.store(b.call(ops.fma1, [b.sitofp(isum, _f32), b.fmul(dw, yd), b.load(st["sum"])]), st["sum"])
    b.store(b.call(ops.fma1, [b.sitofp(imin, _f32), b.fmul(dminw, yd), b.load(st["sum2"])]), st["sum2"])


def _q4_k_r8_parts(ops, dec, x, xo):
    """Per 64-value pair of sub-blocks k: integer scaled dot (8 lanes) and the min term."""
    b = ops.b
    dw, dminw, mins, quants, scales = dec
    bs = _load(b, x, _add(b, xo, 260), _V(_i16, 16))
    q8s = b.add(_shuf(b, bs, bs, range(0, 16, 2)), _shuf(b, bs, bs, range(1, 16, 2)))
    prod = b.call(ops.maddwd128, [mins, q8s])
    sums = []
    for j in range(4):
        q8l = _load(b, x, _add(b, xo, 4 + 64 * j), _V(_i8, 32))
        q8h = _load(b, x, _add(b, xo, 4 + 64 * j + 32), _V(_i8, 32))
        pl = b.call(ops.maddwd, [scales[2 * j], b.call(ops.maddubs, [quants[2 * j], q8l])])
        ph = b.call(ops.maddwd, [scales[2 * j + 1], b.call(ops.maddubs, [quants[2 * j + 1], q8h])])
        sums.append(b.add(pl, ph))
    return dw, dminw, _load(b, x, xo, _f32), sums, prod


def _app_q4_k_r8_gemv(ops, dec, x, xo, st):
    """ggml_gemv_q4_K_8x8_q8_K: one FMA per super-block with the whole block's integer sums."""
    b = ops.b
    dw, dminw, yd, sums, prod = _q4_k_r8_parts(ops, dec, x, xo)
    total = b.add(b.add(sums[0], sums[1]), b.add(sums[2], sums[3]))
    _q4_k_r8_step(ops, st, _hsum_i32(b, total, 8), _hsum_i32(b, prod, 4), dw, dminw, yd)


def _app_q4_k_r8_gemm(ops, dec, x, xo, st):
    """ggml_gemm_q4_K_8x8_q8_K: one FMA per 64-value pair of sub-blocks. The four exact integer
    sums are reduced together (a transposing add tree: integers, so the order is free) and
    converted in one vector; the FMA chains stay scalar and in llama.cpp's order."""
    b = ops.b
    dw, dminw, yd, sums, prod = _q4_k_r8_parts(ops, dec, x, xo)
    lo, hi = list(range(4)) + list(range(8, 12)), list(range(4, 8)) + list(range(12, 16))
    x01 = b.add(_shuf(b, sums[0], sums[1], lo), _shuf(b, sums[0], sums[1], hi))
    x23 = b.add(_shuf(b, sums[2], sums[3], lo), _shuf(b, sums[2], sums[3], hi))
    y = b.add(_shuf(b, x01, x23, [0, 1, 8, 9, 4, 5, 12, 13]), _shuf(b, x01, x23, [2, 3, 10, 11, 6, 7, 14, 15]))
    tot = b.add(_shuf(b, y, y, [0, 4, 2, 6]), _shuf(b, y, y, [1, 5, 3, 7]))
    totf = b.sitofp(tot, _V4F)
    prodf = b.sitofp(prod, _V4F)
    d = b.fmul(dw, yd)
    dm = b.fmul(dminw, yd)
    for j in range(4):
        jj = _C(_i32, j)
        b.store(b.call(ops.fma1, [b.extract_element(totf, jj), d, b.load(st["sum"])]), st["sum"])
        b.store(b.call(ops.fma1, [b.extract_element(prodf, jj), dm, b.load(st["sum2"])]), st["sum2"])


def _dec_q6_k(ops, w, bo):
    b = ops.b
    sc16 = b.sext(_load(b, w, _add(b, bo, 192), _V(_i8, 16)), _V(_i16, 16))
    c = lambda v: _C(_V(_i8, 32), v)  # noqa: E731
    quants, scales = [], []
    for j in range(2):
        b1 = _load(b, w, _add(b, bo, 64 * j), _V(_i8, 32))
        b2 = _load(b, w, _add(b, bo, 64 * j + 32), _V(_i8, 32))
        hh = _load(b, w, _add(b, bo, 128 + 32 * j), _V(_i8, 32))
        quants += [
            b.or_(b.and_(b1, c(15)), b.shl(b.and_(hh, c(3)), c(4))),
            b.or_(b.and_(b2, c(15)), b.shl(b.and_(hh, c(12)), c(2))),
            b.or_(b.lshr(b1, c(4)), b.and_(hh, c(48))),
            b.or_(b.lshr(b2, c(4)), b.lshr(b.and_(hh, c(0xC0)), c(2))),
        ]
        for k in range(4):
            s = 8 * j + 2 * k
            scales.append(_shuf(b, sc16, sc16, [s] * 8 + [s + 1] * 8))
    return _f16_at(b, w, _add(b, bo, 208)), sc16, quants, scales


def _q6_k_lanes(ops, dec, x, xo):
    """The 8 exact int32 lanes of a Q6_K x Q8_K super-block (ggml_vec_dot_q6_K_q8_K's sumi minus
    the 32 * bsums correction): integers, so any summation order gives the same lanes."""
    b = ops.b
    _, sc16, quants, scales = dec
    bs = _load(b, x, _add(b, xo, 260), _V(_i16, 16))
    sub = b.shl(b.call(ops.maddwd, [bs, sc16]), _C(_V(_i32, 8), 5))
    sumi = _C(_V(_i32, 8), 0)
    for j in range(2):
        p = []
        for k in range(4):
            q8 = _load(b, x, _add(b, xo, 4 + 128 * j + 32 * k), _V(_i8, 32))
            p.append(b.call(ops.maddwd, [scales[4 * j + k], b.call(ops.maddubs, [quants[4 * j + k], q8])]))
        sumi = b.add(sumi, b.add(b.add(p[0], p[1]), b.add(p[2], p[3])))
    return b.sub(sumi, sub)


def _app_q6_k(ops, dec, x, xo, st):
    b = ops.b
    d = b.fmul(_load(b, x, xo, _f32), dec[0])
    ops.fma_acc(st["acc"], d, _q6_k_lanes(ops, dec, x, xo))


def _app_q6_k_tiled(ops, dec, x, xo, st):
    """Q6_K x Q8_K with the float steps of llama.cpp's tiled kernel (ggml-cpu/tiled, default for
    prompts of >= 8 tokens): the exact integer sum isum of the super-block (lanes as
    ggml_vec_dot_q6_K_q8_K, then summed: integers, any order), res = d_w * float(isum),
    sum = fma(res, d_x, sum)."""
    b = ops.b
    isum = _hsum_i32(b, _q6_k_lanes(ops, dec, x, xo), 8)
    res = b.fmul(b.sitofp(isum, _f32), dec[0])
    b.store(b.call(ops.fma1, [res, _load(b, x, xo, _f32), b.load(st["sum"])]), st["sum"])


def _finish_sum(ops, st):
    return ops.b.load(st["sum"])


_KINDS = {  # name: (weight block bytes, activation block bytes, decode, apply, finish)
    "q4_0": (18, 34, _dec_q4_0, _app_signed, _finish_acc),
    "q5_0": (22, 34, _dec_q5_0, _app_signed, _finish_acc),
    "q8_0": (34, 34, _dec_q8_0, _app_signed, _finish_acc),
    "q4_1": (20, 36, _dec_q4_1, _app_min, _finish_acc_plus_sum),
    "q5_1": (24, 36, _dec_q5_1, _app_min, _finish_acc_plus_sum),
    "q4_k": (144, 292, _dec_q4_k, _app_q4_k, _finish_acc_plus_acc4),
    "q6_k": (210, 292, _dec_q6_k, _app_q6_k, _finish_acc),
    "q5_k": (176, 292, _dec_q5_k, _app_q5_k, _finish_acc_plus_sum),
    "q4_k_r8_gemv": (144, 292, _dec_q4_k, _app_q4_k_r8_gemv, _finish_sum_minus_sum2),
    "q4_k_r8_gemm": (144, 292, _dec_q4_k, _app_q4_k_r8_gemm, _finish_sum_minus_sum2),
    "q6_k_tiled": (210, 292, _dec_q6_k, _app_q6_k_tiled, _finish_sum),
}
N_TOK = 4  # tokens per multi-token dot (prefill)
N_W = 2    # weight rows per multi-row dot (decode)

dot_q4_0_q8_0 = _make_dot(*_KINDS["q4_0"])
dot_q5_0_q8_0 = _make_dot(*_KINDS["q5_0"])
dot_q8_0_q8_0 = _make_dot(*_KINDS["q8_0"])
dot_q4_1_q8_1 = _make_dot(*_KINDS["q4_1"])
dot_q5_1_q8_1 = _make_dot(*_KINDS["q5_1"])
dot_q4_k_q8_k = _make_dot(*_KINDS["q4_k"])
dot_q6_k_q8_k = _make_dot(*_KINDS["q6_k"])
dot_q5_k_q8_k = _make_dot(*_KINDS["q5_k"])
dot_q4_k_r8_gemv = _make_dot(*_KINDS["q4_k_r8_gemv"])
dot_q4_k_r8_gemm = _make_dot(*_KINDS["q4_k_r8_gemm"])
dot_q6_k_tiled = _make_dot(*_KINDS["q6_k_tiled"])
# 1 weight row x 4 tokens
dot4_q4_0_q8_0 = _make_dot(*_KINDS["q4_0"], n_tok=N_TOK)
dot4_q5_0_q8_0 = _make_dot(*_KINDS["q5_0"], n_tok=N_TOK)
dot4_q8_0_q8_0 = _make_dot(*_KINDS["q8_0"], n_tok=N_TOK)
dot4_q4_1_q8_1 = _make_dot(*_KINDS["q4_1"], n_tok=N_TOK)
dot4_q5_1_q8_1 = _make_dot(*_KINDS["q5_1"], n_tok=N_TOK)
dot4_q4_k_q8_k = _make_dot(*_KINDS["q4_k"], n_tok=N_TOK)
dot4_q6_k_q8_k = _make_dot(*_KINDS["q6_k"], n_tok=N_TOK)
dot4_q5_k_q8_k = _make_dot(*_KINDS["q5_k"], n_tok=N_TOK)
# 2 weight rows x 4 tokens (prefill of the 32-value block types)
dot2x4_q4_0_q8_0 = _make_dot(*_KINDS["q4_0"], n_w=N_W, n_tok=N_TOK)
dot2x4_q5_0_q8_0 = _make_dot(*_KINDS["q5_0"], n_w=N_W, n_tok=N_TOK)
dot2x4_q8_0_q8_0 = _make_dot(*_KINDS["q8_0"], n_w=N_W, n_tok=N_TOK)
dot2x4_q4_1_q8_1 = _make_dot(*_KINDS["q4_1"], n_w=N_W, n_tok=N_TOK)
dot2x4_q5_1_q8_1 = _make_dot(*_KINDS["q5_1"], n_w=N_W, n_tok=N_TOK)
# 2 weight rows x 8 tokens (the sign-trick types: more accumulators fit, fewer decodes per dot)
N_TOK8 = 8
dot2x8_q4_0_q8_0 = _make_dot(*_KINDS["q4_0"], n_w=N_W, n_tok=N_TOK8)
dot2x8_q5_0_q8_0 = _make_dot(*_KINDS["q5_0"], n_w=N_W, n_tok=N_TOK8)
dot2x8_q8_0_q8_0 = _make_dot(*_KINDS["q8_0"], n_w=N_W, n_tok=N_TOK8)
# 2 weight rows x 1 token
dot2r_q4_0_q8_0 = _make_dot(*_KINDS["q4_0"], n_w=N_W)
dot2r_q5_0_q8_0 = _make_dot(*_KINDS["q5_0"], n_w=N_W)
dot2r_q8_0_q8_0 = _make_dot(*_KINDS["q8_0"], n_w=N_W)
dot2r_q4_1_q8_1 = _make_dot(*_KINDS["q4_1"], n_w=N_W)
dot2r_q5_1_q8_1 = _make_dot(*_KINDS["q5_1"], n_w=N_W)
dot2r_q4_k_q8_k = _make_dot(*_KINDS["q4_k"], n_w=N_W)
dot2r_q6_k_q8_k = _make_dot(*_KINDS["q6_k"], n_w=N_W)
dot2r_q5_k_q8_k = _make_dot(*_KINDS["q5_k"], n_w=N_W)
dot2r_q4_k_r8_gemv = _make_dot(*_KINDS["q4_k_r8_gemv"], n_w=N_W)


# ---------------------------------------------------------------------------------------------
# Float dots (F32 / F16 / BF16 weights with activations in the same format)
# ---------------------------------------------------------------------------------------------

def _ld8_f32(b, base, off):
    return _load(b, base, off, _V8F)


def _ld8_f16(b, base, off):
    return b.fpext(b.bitcast(_load(b, base, off, _V(_i16, 8)), _V(_f16, 8)), _V8F)


def _ld8_bf16(b, base, off):
    v = b.shl(b.zext(_load(b, base, off, _V(_i16, 8)), _V(_i32, 8)), _C(_V(_i32, 8), 16))
    return b.bitcast(v, _V8F)


def _ld1_f32(b, base, off):
    return _load(b, base, off, _f32)


def _ld1_f16(b, base, off):
    return _f16_at(b, base, off)


def _ld1_bf16(b, base, off):
    return b.bitcast(b.shl(b.zext(_load(b, base, off, _i16), _i32), _C(_i32, 16)), _f32)


def _make_fdot(eb, ld8, ld1):
    """Float row dot over n elements of eb bytes: 4 x 8-lane FMA accumulators over steps of 32
    elements (ggml_vec_dot_f16/f32's AVX2 shape), reduced (a0+a2)+(a1+a3) then hsum_float_8, plus
    the tail (n % 32 elements) summed with scalar FMAs. Same numerics as vec_dot.vec_dot_f*."""

    @intrinsic
    def fdot(typingctx, w, woff, x, xoff, n):
        sig = types.float32(w, woff, x, xoff, n)

        def codegen(context, builder, signature, args):
            b = builder
            wp = context.make_array(signature.args[0])(context, b, args[0]).data
            xp = context.make_array(signature.args[2])(context, b, args[2]).data
            wrow = b.gep(wp, [context.cast(b, args[1], signature.args[1], types.int64)], inbounds=True)
            xrow = b.gep(xp, [context.cast(b, args[3], signature.args[3], types.int64)], inbounds=True)
            nv = context.cast(b, args[4], signature.args[4], types.int64)
            ops = _Ops(b)
            accs = [cgutils.alloca_once_value(b, _C(_V8F, None)) for _ in range(4)]
            tail = cgutils.alloca_once_value(b, _C(_f32, 0.0))
            nsteps = b.sdiv(nv, _C(_i64, 32))
            with cgutils.for_range(b, nsteps) as loop:
                base = b.mul(loop.index, _C(_i64, 32 * eb))
                ops.prefetch_at(wrow, _add(b, base, _PREFETCH_BYTES))
                for a in range(4):
                    off = _add(b, base, 8 * eb * a)
                    v = b.call(ops.fma8, [ld8(b, wrow, off), ld8(b, xrow, off), b.load(accs[a])])
                    b.store(v, accs[a])
            start = b.mul(nsteps, _C(_i64, 32))
            with cgutils.for_range(b, b.sub(nv, start)) as loop:
                off = b.mul(b.add(start, loop.index), _C(_i64, eb))
                b.store(b.call(ops.fma1, [ld1(b, wrow, off), ld1(b, xrow, off), b.load(tail)]), tail)
            a = [b.load(p) for p in accs]
            s = b.fadd(b.fadd(a[0], a[2]), b.fadd(a[1], a[3]))
            return b.fadd(_hsum8(b, s), b.load(tail))

        return sig, codegen

    return fdot


@intrinsic
def dot_f16_f16(typingctx, w, woff, x, xoff, n):
    """F16 row dot with the numerics of ggml_vec_dot_f16 in llama.cpp's AVX-512 build (vec.cpp,
    GGML_F16 STEP 64 / EPR 16): 4 x 16-lane FMA accumulators over steps of 64 values, reduced
    (a0+a2)+(a1+a3), then _mm512_reduce_add_ps's tree (halves 8, 4, then (t0+t2)+(t1+t3)), then the
    n % 64 tail as float32 products added in double, rounded to float32 at the end."""
    sig = types.float32(w, woff, x, xoff, n)

    def codegen(context, builder, signature, args):
        b = builder
        f64 = ir.DoubleType()
        v16 = _V(_f32, 16)
        wp = context.make_array(signature.args[0])(context, b, args[0]).data
        xp = context.make_array(signature.args[2])(context, b, args[2]).data
        wrow = b.gep(wp, [context.cast(b, args[1], signature.args[1], types.int64)], inbounds=True)
        xrow = b.gep(xp, [context.cast(b, args[3], signature.args[3], types.int64)], inbounds=True)
        nv = context.cast(b, args[4], signature.args[4], types.int64)
        ops = _Ops(b)
        fma16 = _fn(b, "llvm.fma.v16f32", v16, [v16] * 3)
        ld16 = lambda base, off: b.fpext(b.bitcast(_load(b, base, off, _V(_i16, 16)), _V(_f16, 16)), v16)  # noqa: E731
        accs = [cgutils.alloca_once_value(b, _C(v16, None)) for _ in range(4)]
        tail = cgutils.alloca_once_value(b, _C(f64, 0.0))
        nsteps = b.sdiv(nv, _C(_i64, 64))
        with cgutils.for_range(b, nsteps) as loop:
            base = b.mul(loop.index, _C(_i64, 128))
            ops.prefetch_at(wrow, _add(b, base, _PREFETCH_BYTES))
            for a in range(4):
                off = _add(b, base, 32 * a)
                b.store(b.call(fma16, [ld16(wrow, off), ld16(xrow, off), b.load(accs[a])]), accs[a])
        a = [b.load(p) for p in accs]
        v = b.fadd(b.fadd(a[0], a[2]), b.fadd(a[1], a[3]))
        t3 = b.fadd(_shuf(b, v, v, range(8, 16)), _shuf(b, v, v, range(8)))
        t6 = b.fadd(_shuf(b, t3, t3, range(4, 8)), _shuf(b, t3, t3, range(4)))
        t8 = b.fadd(t6, _shuf(b, t6, t6, [2, 3, 0, 1]))
        r = b.fadd(b.extract_element(t8, _C(_i32, 0)), b.extract_element(t8, _C(_i32, 1)))
        b.store(b.fpext(r, f64), tail)
        start = b.mul(nsteps, _C(_i64, 64))
        with cgutils.for_range(b, b.sub(nv, start)) as loop:
            off = b.mul(b.add(start, loop.index), _C(_i64, 2))
            prod = b.fmul(_f16_at(b, wrow, off), _f16_at(b, xrow, off))
            b.store(b.fadd(b.load(tail), b.fpext(prod, f64)), tail)
        return b.fptrunc(b.load(tail), _f32)

    return sig, codegen


dot_f32_f32 = _make_fdot(4, _ld8_f32, _ld1_f32)
dot_bf16_bf16 = _make_fdot(2, _ld8_bf16, _ld1_bf16)
