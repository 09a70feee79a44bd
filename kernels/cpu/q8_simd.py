"""Vector IR for the activation quantizers of kernels.cpu.q8 (Q8_0 / Q8_1 / Q8_K blocks).

Same arithmetic as the scalar kernels in kernels.cpu.q8 (which give llama.cpp's x86 from_float
bits), one block at a time in 32-lane vectors: |x| and its maximum are exact in any order, the
scale is one float32 division, every value gets one float32 multiply and a round-half-even
(`llvm.rint` in the default rounding mode, as np.rint and _mm256_round_ps(NEAREST)), and the
integer sums are exact. So the bytes are those of the scalar kernels (tests/kernels/cpu/test_q8.py
compares them). NaN inputs are not supported, as in kernels.cpu.q8.

    q8_32(x, xi, out, qo) -> (amax, sum): the 32 values at x[xi] quantized with 127 / amax into
        out[qo:qo+32] (int8); amax = max |x|, sum = the sum of the 32 quants (as float32, exact)
    q8_k_max(x, xi) -> (amax, vmax): max |x| over x[xi:xi+256] and the first value reaching it
    q8_k_quants(x, xi, iscale, out, o): quants min(127, rint(iscale * x)) into out[o+4:o+260] and
        their int16 sums per 16 into out[o+260:o+292]

Intrinsics inline into their callers: bump Q8_SIMD_VERSION when the IR changes.
"""

from __future__ import annotations

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

Q8_SIMD_VERSION = 1

_F32 = ir.FloatType()
_I8, _I16, _I32, _I64 = (ir.IntType(n) for n in (8, 16, 32, 64))
_V32F = ir.VectorType(_F32, 32)
_V32I = ir.VectorType(_I32, 32)


def _decl(b, name, ty):
    """The overload of LLVM intrinsic `name` for one float / int / vector type ty: T (T, T...)."""
    if isinstance(ty, ir.VectorType):
        elem = ty.element
        suffix = f"v{ty.count}" + ("f32" if isinstance(elem, ir.FloatType) else f"i{elem.width}")
    else:
        suffix = "f32" if isinstance(ty, ir.FloatType) else f"i{ty.width}"
    n_args = {"llvm.fabs": 1, "llvm.rint": 1, "llvm.maxnum": 2}.get(name)
    args = [ty] * n_args if n_args else [ty, ir.IntType(1)]  # llvm.cttz(x, is_zero_poison)
    return cgutils.get_or_insert_function(b.module, ir.FunctionType(ty, args), f"{name}.{suffix}")


def _vload(b, context, sig, args, k_arr, k_idx, n_lanes=32):
    p = context.make_array(sig.args[k_arr])(context, b, args[k_arr]).data
    i = context.cast(b, args[k_idx], sig.args[k_idx], types.int64)
    vt = ir.VectorType(_F32, n_lanes)
    return p, i, b.load(b.bitcast(b.gep(p, [i], inbounds=True), vt.as_pointer()), align=4)


def _shuf(b, v, idx):
    return b.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, len(idx)), list(idx)))


def _tree(b, v, n, op):
    """Reduce a <n x T> vector by halving (exact for max and integer add)."""
    while n > 1:
        n //= 2
        v = op(_shuf(b, v, range(n)), _shuf(b, v, range(n, 2 * n)))
    return b.extract_element(v, ir.Constant(_I32, 0))


def _splat(b, s, n):
    v = b.insert_element(ir.Constant(ir.VectorType(s.type, n), None), s, ir.Constant(_I32, 0))
    return _shuf(b, v, [0] * n)


def _quants(b, v, scale, lo):
    """<32 x i32>: rint(v * scale) clamped to [lo, 127]."""
    rint = _decl(b, "llvm.rint", _V32F)
    q = b.fptosi(b.call(rint, [b.fmul(v, _splat(b, scale, 32))]), _V32I)
    hi = ir.Constant(_V32I, [127] * 32)
    q = b.select(b.icmp_signed(">", q, hi), hi, q)
    if lo is not None:
        lov = ir.Constant(_V32I, [lo] * 32)
        q = b.select(b.icmp_signed("<", q, lov), lov, q)
    return q


def _store_bytes(b, context, sig, args, k_arr, off, v):
    p = context.make_array(sig.args[k_arr])(context, b, args[k_arr]).data
    b.store(v, b.bitcast(b.gep(p, [off], inbounds=True), v.type.as_pointer()), align=1)


@intrinsic
def q8_32(typingctx, x, xi, out, qo):
    """Quantize 32 floats with 127 / amax (0 when amax is 0); returns (amax, sum of quants)."""
    sig = types.UniTuple(types.float32, 2)(x, xi, out, qo)

    def codegen(context, b, sig, args):
        _, _, v = _vload(b, context, sig, args, 0, 1)
        fabs = _decl(b, "llvm.fabs", _V32F)
        a = b.call(fabs, [v])
        amax = _tree(b, a, 32, lambda p, q: b.call(_decl(b, "llvm.maxnum", p.type), [p, q]))
        zero = ir.Constant(_F32, 0.0)
        inv = b.select(b.fcmp_ordered("!=", amax, zero), b.fdiv(ir.Constant(_F32, 127.0), amax), zero)
        q = _quants(b, v, inv, -128)
        qo_ = context.cast(b, args[3], sig.args[3], types.int64)
        _store_bytes(b, context, sig, args, 2, qo_, b.trunc(q, ir.VectorType(_I8, 32)))
        total = b.sitofp(_tree(b, q, 32, b.add), _F32)
        return context.make_tuple(b, sig.return_type, [amax, total])

    return sig, codegen


@intrinsic
def q8_k_max(typingctx, x, xi):
    """(max |x|, the first x reaching it) over the 256 values at x[xi]."""
    sig = types.UniTuple(types.float32, 2)(x, xi)

    def codegen(context, b, sig, args):
        p = context.make_array(sig.args[0])(context, b, args[0]).data
        i0 = context.cast(b, args[1], sig.args[1], types.int64)
        fabs = _decl(b, "llvm.fabs", _V32F)
        maxnum = _decl(b, "llvm.maxnum", _V32F)
        chunks = []
        for c in range(8):
            ptr = b.gep(p, [b.add(i0, ir.Constant(_I64, 32 * c))], inbounds=True)
            chunks.append(b.call(fabs, [b.load(b.bitcast(ptr, _V32F.as_pointer()), align=4)]))
        m = chunks[0]
        for c in chunks[1:]:
            m = b.call(maxnum, [m, c])
        amax = _tree(b, m, 32, lambda u, w: b.call(_decl(b, "llvm.maxnum", u.type), [u, w]))
        cttz = _decl(b, "llvm.cttz", _I32)
        idx = ir.Constant(_I64, 0)
        for c in reversed(range(8)):  # the first chunk with a lane equal to amax, its first lane
            hit = b.bitcast(b.fcmp_ordered("==", chunks[c], _splat(b, amax, 32)), _I32)
            lane = b.zext(b.call(cttz, [hit, ir.Constant(ir.IntType(1), 0)]), _I64)
            idx = b.select(b.icmp_unsigned("!=", hit, ir.Constant(_I32, 0)),
                           b.add(lane, ir.Constant(_I64, 32 * c)), idx)
        vmax = b.load(b.gep(p, [b.add(i0, idx)], inbounds=True))
        return context.make_tuple(b, sig.return_type, [amax, vmax])

    return sig, codegen


@intrinsic
def q8_k_quants(typingctx, x, xi, iscale, out, o):
    """out[o+4+j] = min(127, rint(iscale * x[xi+j])) for j < 256; int16 sums per 16 at o+260."""
    sig = types.void(x, xi, iscale, out, o)

    def codegen(context, b, sig, args):
        p = context.make_array(sig.args[0])(context, b, args[0]).data
        i0 = context.cast(b, args[1], sig.args[1], types.int64)
        o0 = context.cast(b, args[4], sig.args[4], types.int64)
        for c in range(8):
            ptr = b.gep(p, [b.add(i0, ir.Constant(_I64, 32 * c))], inbounds=True)
            v = b.load(b.bitcast(ptr, _V32F.as_pointer()), align=4)
            q = _quants(b, v, args[2], None)
            _store_bytes(b, context, sig, args, 3, b.add(o0, ir.Constant(_I64, 4 + 32 * c)),
                         b.trunc(q, ir.VectorType(_I8, 32)))
            # two groups of 16: lanes 0..15 and 16..31, each an exact int sum
            g = [_tree(b, _shuf(b, q, range(16 * h, 16 * h + 16)), 16, b.add) for h in range(2)]
            sums = ir.Constant(ir.VectorType(_I16, 2), None)
            for h in range(2):
                sums = b.insert_element(sums, b.trunc(g[h], _I16), ir.Constant(_I32, h))
            _store_bytes(b, context, sig, args, 3, b.add(o0, ir.Constant(_I64, 260 + 4 * c)), sums)
        return context.get_dummy_value()

    return sig, codegen
