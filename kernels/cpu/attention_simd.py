"""Vector IR for `kernels.cpu.attention`: 16 cells (or columns) at a time, same bits.

Each intrinsic computes, for a block of 16 KV cells or output columns, exactly the float
operations that the scalar helpers of kernels/cpu/ops.py perform for each of them, in the same
order; only independent work is laid side by side in <16 x float> vectors:
- `kq16` / `kqvec16`: 16 dots in tinyBLAS's order (ops.dot_sgemm16: one 16-lane FMA chain) or
  ggml_vec_dot_f16's (ops.dot_vec_f16, head_dim % 64 == 0: 4 chains, added 0+2, 1+3), run as
  independent chains sharing each q load, then reduced together by a transposing tree whose
  additions are exactly reduce16's (halves, quarters, pairs) for every cell; then soft_max_ext's
  scale and mask (`float32(dot * scale) + mask`, -inf cells kept as -inf) and the block maximum.
  `kq16x4`: kq16 for 4 tokens, each K load feeding the 4 tokens.
- `exp16`: ggml_v_expf (ops.v_expf, every branch as a lane select) of `score - max`, stored, and
  reduce16 of the 16 values for the caller's double sum.
- `scale16` / `round16`: `score * inv`, and q, rounded to the nearest F16 by fptrunc + fpext (the
  IEEE round-to-nearest-even of ops.round_f16 for every non-NaN float).
- `kqv16`: tinyBLAS kqv of 16 output columns from V transposed (one row per column, as llama.cpp's
  non-flash cache keeps V): per column one <16 x float> accumulator whose lane i takes the cells
  j with j & 15 == i in increasing order (one FMA each, cells with p == 0 skipped by a lane mask
  exactly as ops.attention_f16kv skips them), the 16 columns reduced together by the transposing
  tree. `kqv4x4`: 4 tokens x 4 columns, each V load feeding the 4 tokens.
- `lanes64`: the 64-lane combine of ggml_vec_dot_f16's kqv for 16 columns by vertical adds.
- `ldf` / `stf` (one F16 or float32 element), `_dot16x1` / `_dot16x4` (one dot), `_axpy16` (the
  one-token kqv's accumulation).
Arrays: K/V caches float32 or uint16 F16 bits (widened exactly by fpext), everything else
float32. The callers guarantee the bounds. Intrinsics are inlined into their callers, so a cached
caller misses edits here: clear kernels/cpu/__pycache__ after changing this file.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_F32 = ir.FloatType()
_V16 = ir.VectorType(_F32, 16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_I16 = ir.IntType(16)
_VH16 = ir.VectorType(ir.HalfType(), 16)
_VI16 = ir.VectorType(_I16, 16)
_VI32 = ir.VectorType(_I32, 16)
_NEG_INF = float("-inf")

# ggml_v_expf constants (ops.v_expf)
_EXP = {k: float.fromhex(v) for k, v in (
    ("R", "0x1.8p23"), ("LOG2E", "0x1.715476p+0"), ("LN2_HI", "0x1.62e4p-1"),
    ("LN2_LO", "0x1.7f7d1cp-20"), ("C5", "0x1.0e4020p-7"), ("C4", "0x1.573e2ep-5"),
    ("C3", "0x1.555e66p-3"), ("C2", "0x1.fffdb6p-2"), ("C1", "0x1.ffffecp-1"))}


def _is_kv(a) -> bool:
    return isinstance(a, types.Array) and a.dtype in (types.float32, types.uint16)


def _is_f32(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.float32


def _c16(x):
    return ir.Constant(_V16, [x] * 16)


def _i64(context, b, val, ty):
    return context.cast(b, val, ty, types.int64)


def _data(context, b, ty, val):
    return context.make_array(ty)(context, b, val).data


def _load16(b, ptr, dtype, off):
    """<16 x float> from ptr[off:off+16]: float32 as is, uint16 F16 bits widened exactly."""
    if dtype == types.uint16:
        h = b.load(b.bitcast(b.gep(ptr, [off]), _VI16.as_pointer()), align=2)
        return b.fpext(b.bitcast(h, _VH16), _V16)
    return b.load(b.bitcast(b.gep(ptr, [off]), _V16.as_pointer()), align=4)


def _store16(b, ptr, off, v):
    b.store(v, b.bitcast(b.gep(ptr, [off]), _V16.as_pointer()), align=4)


def _splat(b, x):
    v = b.insert_element(ir.Constant(_V16, ir.Undefined), x, ir.Constant(_I32, 0))
    return b.shuffle_vector(v, ir.Constant(_V16, ir.Undefined), ir.Constant(_VI32, [0] * 16))


def _shuf(b, x, y, idx):
    return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(_I32, len(idx)), list(idx)))


def _fma(b):
    return cgutils.get_or_insert_function(b.module, ir.FunctionType(_V16, [_V16] * 3),
                                          "llvm.fma.v16f32")


def _reduce16(b, v):
    """reduce16 of one vector (halves, quarters, pairs): a float."""
    t = b.fadd(_shuf(b, v, v, range(8)), _shuf(b, v, v, range(8, 16)))
    u = b.fadd(_shuf(b, t, t, range(4)), _shuf(b, t, t, range(4, 8)))
    e = [b.extract_element(u, ir.Constant(_I32, i)) for i in range(4)]
    return b.fadd(b.fadd(e[0], e[2]), b.fadd(e[1], e[3]))


# lane i of the tree's last sum holds cell _TREE_CELLS[i]
_TREE_CELLS = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15]


def _reduce16x16(b, a):
    """reduce16 of each of 16 vectors a[c], as one vector (lane c = reduce16(a[c])): the same
    additions with the same operands, four levels of two-source shuffles + vertical adds."""
    # t_k = l_k + l_{k+8}: lanes 0-7 cell c, 8-15 cell c + 8
    t = [b.fadd(_shuf(b, a[c], a[c + 8], [*range(8), *range(16, 24)]),
                _shuf(b, a[c], a[c + 8], [*range(8, 16), *range(24, 32)])) for c in range(8)]
    # u_k = t_k + t_{k+4}: groups of 4 lanes, cells c, c + 8, c + 4, c + 12
    lo = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]
    u = [b.fadd(_shuf(b, t[c], t[c + 4], lo), _shuf(b, t[c], t[c + 4], [i + 4 for i in lo]))
         for c in range(4)]
    # (u0 + u2), (u1 + u3): pairs, cells c, c+8, c+4, c+12, c+2, c+10, c+6, c+14
    ev = [g + k for g in range(0, 32, 4) for k in (0, 1)]
    w = [b.fadd(_shuf(b, u[c], u[c + 2], ev), _shuf(b, u[c], u[c + 2], [i + 2 for i in ev]))
         for c in range(2)]
    r = b.fadd(_shuf(b, w[0], w[1], range(0, 32, 2)), _shuf(b, w[0], w[1], range(1, 32, 2)))
    return _shuf(b, r, r, [_TREE_CELLS.index(c) for c in range(16)])


def _hmax16(b, v):
    """Largest lane of v (no NaN lanes): a float."""
    for n in (8, 4, 2, 1):
        lo = _shuf(b, v, v, [*range(n), *([0] * (16 - n))])
        hi = _shuf(b, v, v, [*range(n, 2 * n), *([0] * (16 - n))])
        v = b.select(b.fcmp_ordered(">", hi, lo), hi, lo)
    return b.extract_element(v, ir.Constant(_I32, 0))


@intrinsic
def ldf(typingctx, a, i):
    """a[i] as float32: an F16 bit pattern (uint16 array) widened exactly, or a float32."""
    if not _is_kv(a) or not isinstance(i, types.Integer):
        return None

    def codegen(context, b, sig, args):
        p = context.make_array(sig.args[0])(context, b, args[0]).data
        ix = context.cast(b, args[1], sig.args[1], types.int64)
        v = b.load(b.gep(p, [ix]))
        if sig.args[0].dtype == types.uint16:
            v = b.fpext(b.bitcast(v, ir.HalfType()), _F32)
        return v

    return types.float32(a, i), codegen


@intrinsic
def stf(typingctx, a, i, x):
    """a[i] = x: rounded to the nearest F16, ties to even (fptrunc, ggml's fp32 -> fp16) into a
    uint16 array, or stored as is into a float32 array."""
    if not _is_kv(a) or not isinstance(i, types.Integer) or x != types.float32:
        return None

    def codegen(context, b, sig, args):
        p = context.make_array(sig.args[0])(context, b, args[0]).data
        ix = context.cast(b, args[1], sig.args[1], types.int64)
        v = args[2]
        if sig.args[0].dtype == types.uint16:
            v = b.bitcast(b.fptrunc(v, ir.HalfType()), _I16)
        b.store(v, b.gep(p, [ix]))
        return context.get_dummy_value()

    return types.void(a, i, x), codegen


def _dot_codegen(n_acc):
    """Vector IR for n_acc x 16 float32 FMA lanes over a[ao:ao+k] * b[bo:bo+k] (k % (16*n_acc)
    == 0), lane i of accumulator r taking elements r*16 + i of each block of 16*n_acc, then
    accumulators added (0+2, 1+3, 0+1 for 4; none for 1) and reduce16."""
    def codegen(context, builder, sig, args):
        b = builder
        ap = context.make_array(sig.args[0])(context, b, args[0]).data
        bp = context.make_array(sig.args[2])(context, b, args[2]).data
        adt, bdt = sig.args[0].dtype, sig.args[2].dtype
        ao = context.cast(b, args[1], sig.args[1], types.int64)
        bo = context.cast(b, args[3], sig.args[3], types.int64)
        k = context.cast(b, args[4], sig.args[4], types.int64)
        fma = cgutils.get_or_insert_function(b.module, ir.FunctionType(_V16, [_V16] * 3),
                                             "llvm.fma.v16f32")
        accs = [cgutils.alloca_once_value(b, ir.Constant(_V16, [0.0] * 16)) for _ in range(n_acc)]
        step = ir.Constant(ir.IntType(64), 16 * n_acc)
        with cgutils.for_range_slice(b, ir.Constant(ir.IntType(64), 0), k, step) as (idx, _):
            for r in range(n_acc):
                off = b.add(idx, ir.Constant(ir.IntType(64), 16 * r))
                va = _load16(b, ap, adt, b.add(ao, off))
                vb = _load16(b, bp, bdt, b.add(bo, off))
                b.store(b.call(fma, [va, vb, b.load(accs[r])]), accs[r])
        v = [b.load(a) for a in accs]
        if n_acc == 4:
            v0 = b.fadd(b.fadd(v[0], v[2]), b.fadd(v[1], v[3]))
        else:
            v0 = v[0]
        return _reduce16(b, v0)
    return codegen


@intrinsic
def _dot16x1(typingctx, a, ao, b, bo, k):
    """dot_sgemm16 (ops.py) as one <16 x float> FMA chain: k % 16 == 0."""
    if not (_is_kv(a) and _is_kv(b)):
        return None
    return types.float32(a, ao, b, bo, k), _dot_codegen(1)


@intrinsic
def _dot16x4(typingctx, a, ao, b, bo, k):
    """The blocks-of-64 part of dot_vec_f16 (ops.py) as 4 <16 x float> chains: k % 64 == 0."""
    if not (_is_kv(a) and _is_kv(b)):
        return None
    return types.float32(a, ao, b, bo, k), _dot_codegen(4)


@intrinsic
def _axpy16(typingctx, y, yo, x, xo, p, n):
    """y[yo+i] = fma(x[xo+i], p, y[yo+i]) for i < n (n % 16 == 0), as <16 x float> FMAs: the
    same single-rounding FMA per element as the scalar loop. x: float32 or uint16 (F16 bits)."""
    if not _is_kv(x):
        return None
    sig = types.void(y, yo, x, xo, p, n)

    def codegen(context, builder, sig, args):
        b = builder
        yp = context.make_array(sig.args[0])(context, b, args[0]).data
        xp = context.make_array(sig.args[2])(context, b, args[2]).data
        xdt = sig.args[2].dtype
        yo_ = context.cast(b, args[1], sig.args[1], types.int64)
        xo_ = context.cast(b, args[3], sig.args[3], types.int64)
        pv = context.cast(b, args[4], sig.args[4], types.float32)
        n_ = context.cast(b, args[5], sig.args[5], types.int64)
        fma = cgutils.get_or_insert_function(b.module, ir.FunctionType(_V16, [_V16] * 3),
                                             "llvm.fma.v16f32")
        ps = b.insert_element(ir.Constant(_V16, ir.Undefined), pv, ir.Constant(_I32, 0))
        ps = b.shuffle_vector(ps, ir.Constant(_V16, ir.Undefined),
                              ir.Constant(ir.VectorType(_I32, 16), [0] * 16))
        i64 = ir.IntType(64)
        with cgutils.for_range_slice(b, ir.Constant(i64, 0), n_, ir.Constant(i64, 16)) as (idx, _):
            ya = b.bitcast(b.gep(yp, [b.add(yo_, idx)]), _V16.as_pointer())
            xv = _load16(b, xp, xdt, b.add(xo_, idx))
            b.store(b.call(fma, [xv, ps, b.load(ya, align=4)]), ya, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _scores16(b, scp, j0, mp, mo, scale, dots):
    """soft_max_ext's scale and mask on 16 dots, stored at sc[j0:]; returns the largest that is
    not NaN (-inf if none)."""
    m = _load16(b, mp, types.float32, mo)
    v = b.fadd(b.fmul(dots, _splat(b, scale)), m)
    v = b.select(b.fcmp_ordered("==", m, _c16(_NEG_INF)), m, v)
    _store16(b, scp, j0, v)
    return _hmax16(b, b.select(b.fcmp_ordered(">", v, _c16(_NEG_INF)), v, _c16(_NEG_INF)))


def _kq16_codegen(vec_dot):
    """kq16 / kqvec16: 16 dots as 16 <16 x float> vectors, reduced by the transposing tree."""
    def codegen(context, b, sig, args):
        scp, qp, kp, mp = (_data(context, b, sig.args[i], args[i]) for i in (0, 2, 3, 7))
        j0_, kb_, row_, hd_, mo_ = (_i64(context, b, args[i], sig.args[i]) for i in (1, 4, 5, 6, 8))
        scale = context.cast(b, args[9], sig.args[9], types.float32)
        fma = _fma(b)
        kdt = sig.args[3].dtype
        c64 = lambda x: ir.Constant(_I64, x)  # noqa: E731
        rows = [b.add(kb_, b.mul(row_, c64(c))) for c in range(16)]
        if not vec_dot:  # tinyBLAS: one chain per cell, each q load shared by the 16 cells
            accs = [cgutils.alloca_once_value(b, _c16(0.0)) for _ in range(16)]
            with cgutils.for_range_slice(b, c64(0), hd_, c64(16)) as (d, _):
                qv = _load16(b, qp, types.float32, d)
                for c in range(16):
                    kv = _load16(b, kp, kdt, b.add(rows[c], d))
                    b.store(b.call(fma, [qv, kv, b.load(accs[c])]), accs[c])
            sums = [b.load(a) for a in accs]
        else:  # ggml_vec_dot_f16: 4 chains per cell over blocks of 64, 4 cells at a time
            accs = [cgutils.alloca_once(b, _V16) for _ in range(16)]
            sums = []
            for g in range(4):
                for a in accs:
                    b.store(_c16(0.0), a)
                with cgutils.for_range_slice(b, c64(0), hd_, c64(64)) as (d, _):
                    qv = [_load16(b, qp, types.float32, b.add(d, c64(16 * r))) for r in range(4)]
                    for c in range(4):
                        for r in range(4):
                            kv = _load16(b, kp, kdt, b.add(rows[4 * g + c], b.add(d, c64(16 * r))))
                            a = accs[4 * c + r]
                            b.store(b.call(fma, [kv, qv[r], b.load(a)]), a)
                for c in range(4):
                    v = [b.load(accs[4 * c + r]) for r in range(4)]
                    sums.append(b.fadd(b.fadd(v[0], v[2]), b.fadd(v[1], v[3])))
        return _scores16(b, scp, j0_, mp, mo_, scale, _reduce16x16(b, sums))
    return codegen


@intrinsic
def kq16(typingctx, sc, j0, q16, k, kb, row_k, hd, mask, mo, kq_scale):
    """sc[j0 + c] = float32(dot_sgemm16(q16, k[kb + c*row_k:][:hd]) * kq_scale) + mask[mo + c],
    or -inf where that mask is -inf, for c < 16 (hd % 16 == 0); returns the largest of them that
    is not NaN (-inf if none)."""
    if not (_is_f32(sc) and _is_f32(q16) and _is_kv(k) and _is_f32(mask)):
        return None
    return types.float32(sc, j0, q16, k, kb, row_k, hd, mask, mo, kq_scale), _kq16_codegen(False)


@intrinsic
def kqvec16(typingctx, sc, j0, q16, k, kb, row_k, hd, mask, mo, kq_scale):
    """kq16 with ggml_vec_dot_f16's dots (ops.dot_vec_f16(k, q16) for hd % 64 == 0: 4 chains
    over blocks of 64, added 0+2, 1+3, then reduce16; no leftovers)."""
    if not (_is_f32(sc) and _is_f32(q16) and _is_kv(k) and _is_f32(mask)):
        return None
    return types.float32(sc, j0, q16, k, kb, row_k, hd, mask, mo, kq_scale), _kq16_codegen(True)


@intrinsic
def lanes64(typingctx, dst, do, acc, ld, d0):
    """dst[do + i] (i < 16) = the combined 64 lanes of ggml_vec_dot_f16 for column d0 + i: lane l
    at acc[l*ld + d0 + i]; lanes 0+32 and 16+48 added, then the two, then reduce16 (the tail of
    _kqv_vec, 16 columns at once by vertical adds)."""
    if not (_is_f32(dst) and _is_f32(acc)):
        return None
    sig = types.void(dst, do, acc, ld, d0)

    def codegen(context, b, sig, args):
        dp, ap = _data(context, b, sig.args[0], args[0]), _data(context, b, sig.args[2], args[2])
        do_, ld_, d0_ = (_i64(context, b, args[i], sig.args[i]) for i in (1, 3, 4))
        a = [_load16(b, ap, types.float32, b.add(b.mul(ld_, ir.Constant(_I64, l)), d0_))
             for l in range(64)]
        c = [b.fadd(b.fadd(a[i], a[32 + i]), b.fadd(a[16 + i], a[48 + i])) for i in range(16)]
        t = [b.fadd(c[k], c[k + 8]) for k in range(8)]
        u = [b.fadd(t[k], t[k + 4]) for k in range(4)]
        _store16(b, dp, do_, b.fadd(b.fadd(u[0], u[2]), b.fadd(u[1], u[3])))
        return context.get_dummy_value()

    return sig, codegen


def _v_expf(b, x):
    """ops.v_expf on 16 lanes: the same operations, its branches as selects."""
    c = {k: _c16(v) for k, v in _EXP.items()}
    fma = _fma(b)
    z = b.call(fma, [x, c["LOG2E"], c["R"]])
    n = b.fsub(z, c["R"])
    fabs = cgutils.get_or_insert_function(b.module, ir.FunctionType(_V16, [_V16]),
                                           "llvm.fabs.v16f32")
    special = b.fcmp_unordered(">", b.call(fabs, [n]), _c16(192.0))  # |n| > 192 or NaN
    sval = b.select(b.fcmp_unordered("<=", n, _c16(0.0)), _c16(0.0), _c16(float("inf")))
    mn = b.fneg(n)
    bb = b.call(fma, [mn, c["LN2_LO"], b.call(fma, [mn, c["LN2_HI"], x])])
    u = b.fmul(bb, bb)
    j = b.call(fma, [b.call(fma, [b.call(fma, [c["C5"], bb, c["C4"]]), u,
                                  b.call(fma, [c["C3"], bb, c["C2"]])]),
                     u, b.call(fma, [c["C1"], bb, _c16(1.0)])])
    ni = b.fptosi(b.select(special, _c16(0.0), n), _VI32)
    ci = lambda x: ir.Constant(_VI32, [x] * 16)  # noqa: E731
    lo = b.select(b.icmp_signed("<", ni, ci(-126)), ci(-126), ni)
    lo = b.select(b.icmp_signed(">", lo, ci(127)), ci(127), lo)
    s1 = b.bitcast(b.shl(b.add(lo, ci(127)), ci(23)), _V16)
    s2 = b.bitcast(b.shl(b.add(b.sub(ni, lo), ci(127)), ci(23)), _V16)  # 1.0 in range
    return b.select(special, sval, b.fmul(b.fmul(j, s1), s2))


@intrinsic
def exp16(typingctx, sc, j0, mx):
    """sc[j0 + i] = v_expf(sc[j0 + i] - mx) for i < 16; returns reduce16 of the 16 values."""
    if not _is_f32(sc):
        return None
    sig = types.float32(sc, j0, mx)

    def codegen(context, b, sig, args):
        p = _data(context, b, sig.args[0], args[0])
        j0_ = _i64(context, b, args[1], sig.args[1])
        m = context.cast(b, args[2], sig.args[2], types.float32)
        e = _v_expf(b, b.fsub(_load16(b, p, types.float32, j0_), _splat(b, m)))
        _store16(b, p, j0_, e)
        return _reduce16(b, e)

    return sig, codegen


@intrinsic
def scale16(typingctx, sc, j0, inv, rnd):
    """sc[j0 + i] = float32(sc[j0 + i] * inv), rounded to F16 when rnd, for i < 16."""
    if not _is_f32(sc) or not isinstance(rnd, types.Boolean):
        return None
    sig = types.void(sc, j0, inv, rnd)

    def codegen(context, b, sig, args):
        p = _data(context, b, sig.args[0], args[0])
        j0_ = _i64(context, b, args[1], sig.args[1])
        v = b.fmul(_load16(b, p, types.float32, j0_),
                   _splat(b, context.cast(b, args[2], sig.args[2], types.float32)))
        r = b.fpext(b.fptrunc(v, _VH16), _V16)
        _store16(b, p, j0_, b.select(args[3], r, v))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def round16(typingctx, dst, do, src, so):
    """dst[do + i] = src[so + i] rounded to the nearest F16 (as float32), for i < 16."""
    if not (_is_f32(dst) and _is_f32(src)):
        return None
    sig = types.void(dst, do, src, so)

    def codegen(context, b, sig, args):
        dp, sp = _data(context, b, sig.args[0], args[0]), _data(context, b, sig.args[2], args[2])
        v = _load16(b, sp, types.float32, _i64(context, b, args[3], sig.args[3]))
        _store16(b, dp, _i64(context, b, args[1], sig.args[1]), b.fpext(b.fptrunc(v, _VH16), _V16))
        return context.get_dummy_value()

    return sig, codegen


def _tail16(b, sp, off, n16, n_kv):
    """sp[off:off+16] with the lanes of cells n16 + i >= n_kv set to +0.0 (the row holds at least
    16 floats from off: rows are n_kv rounded up to 16 long)."""
    iota = ir.Constant(_VI32, list(range(16)))
    rem = b.trunc(b.sub(n_kv, n16), _I32)
    inside = b.icmp_signed("<", iota, _splat_i32(b, rem))
    return b.select(inside, _load16(b, sp, types.float32, off), _c16(0.0))


def _splat_i32(b, x):
    v = b.insert_element(ir.Constant(_VI32, ir.Undefined), x, ir.Constant(_I32, 0))
    return b.shuffle_vector(v, ir.Constant(_VI32, ir.Undefined), ir.Constant(_VI32, [0] * 16))


@intrinsic
def kqv16(typingctx, out, ob, vt, vo, n_kvp, sc, r0, r1, n16, n_kv):
    """out[ob + i], i < 16 = tinyBLAS kqv of V column i: vt holds V transposed (column i at
    vt[vo + i*n_kvp:], cells n_kv .. n_kvp zero); lane j & 15 accumulates fma(v_ij, sc[j], lane)
    over the cells j of [r0, r1) (whole blocks of 16) and then [n16, n_kv) (fewer than 16),
    skipping sc[j] == 0 (a lane mask per block, shared by the 16 columns); then reduce16 of the
    lanes of each column. sc holds n_kvp floats (its cells >= n_kv are not read as numbers)."""
    if not (_is_f32(out) and _is_kv(vt) and _is_f32(sc)):
        return None
    sig = types.void(out, ob, vt, vo, n_kvp, sc, r0, r1, n16, n_kv)

    def codegen(context, b, sig, args):
        op, vp, sp = (_data(context, b, sig.args[i], args[i]) for i in (0, 2, 5))
        ob_, vo_, ld, r0_, r1_, n16_, nkv_ = (_i64(context, b, args[i], sig.args[i])
                                              for i in (1, 3, 4, 6, 7, 8, 9))
        vdt = sig.args[2].dtype
        fma = _fma(b)
        accs = [cgutils.alloca_once_value(b, _c16(0.0)) for _ in range(16)]
        cols = [b.add(vo_, b.mul(ld, ir.Constant(_I64, c))) for c in range(16)]

        def block(j, p):
            keep = b.fcmp_unordered("!=", p, _c16(0.0))  # NaN is kept, as by `p != 0`
            for c in range(16):
                x = _load16(b, vp, vdt, b.add(cols[c], j))
                a = b.load(accs[c])
                b.store(b.select(keep, b.call(fma, [x, p, a]), a), accs[c])

        with cgutils.for_range_slice(b, r0_, r1_, ir.Constant(_I64, 16)) as (j, _):
            block(j, _load16(b, sp, types.float32, j))
        with b.if_then(b.icmp_signed("<", n16_, nkv_)):
            block(n16_, _tail16(b, sp, n16_, n16_, nkv_))
        _store16(b, op, ob_, _reduce16x16(b, [b.load(a) for a in accs]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def masked16(typingctx, mask, mo):
    """Whether mask[mo + i] == -inf for every i < 16."""
    if not _is_f32(mask):
        return None
    sig = types.boolean(mask, mo)

    def codegen(context, b, sig, args):
        m = _load16(b, _data(context, b, sig.args[0], args[0]), types.float32,
                    _i64(context, b, args[1], sig.args[1]))
        bits = b.bitcast(b.fcmp_ordered("==", m, _c16(_NEG_INF)), _I16)
        return b.icmp_unsigned("==", bits, ir.Constant(_I16, 0xFFFF))

    return sig, codegen


def _sub4(b, v, i):
    """Lanes 4i .. 4i + 3 of a <16 x float>, as <4 x float>."""
    return _shuf(b, v, v, range(4 * i, 4 * i + 4))


def _store4(b, ptr, off, v4):
    b.store(v4, b.bitcast(b.gep(ptr, [off]), ir.VectorType(_F32, 4).as_pointer()), align=4)


@intrinsic
def kq16x4(typingctx, sc, so, ss, q16, qs, k, kb, row_k, hd, mask, mo, ms, kq_scale, mxs):
    """kq16 for 4 tokens at once (q rows q16[i*qs:], score rows sc[so + i*ss:], mask rows
    mask[mo + i*ms:], i < 4): each K load feeds the 4 tokens' chains; mxs[i] takes the block's
    largest score of token i where larger. Every score is the single-token kq16's, bit for bit."""
    if not (_is_f32(sc) and _is_f32(q16) and _is_kv(k) and _is_f32(mask) and _is_f32(mxs)):
        return None
    sig = types.void(sc, so, ss, q16, qs, k, kb, row_k, hd, mask, mo, ms, kq_scale, mxs)

    def codegen(context, b, sig, args):
        scp, qp, kp, mp, xp = (_data(context, b, sig.args[i], args[i]) for i in (0, 3, 5, 9, 13))
        so_, ss_, qs_, kb_, row_, hd_, mo_, ms_ = (_i64(context, b, args[i], sig.args[i])
                                                   for i in (1, 2, 4, 6, 7, 8, 10, 11))
        scale = _splat(b, context.cast(b, args[12], sig.args[12], types.float32))
        fma = _fma(b)
        c64 = lambda x: ir.Constant(_I64, x)  # noqa: E731
        srow = [b.add(so_, b.mul(ss_, c64(i))) for i in range(4)]
        qrow = [b.mul(qs_, c64(i)) for i in range(4)]
        accs = [cgutils.alloca_once(b, _V16) for _ in range(16)]
        for sub in range(4):
            for a in accs:
                b.store(_c16(0.0), a)
            rows = [b.add(kb_, b.mul(row_, c64(4 * sub + c))) for c in range(4)]
            with cgutils.for_range_slice(b, c64(0), hd_, c64(16)) as (d, _):
                qv = [_load16(b, qp, types.float32, b.add(qrow[i], d)) for i in range(4)]
                for c in range(4):
                    kv = _load16(b, kp, sig.args[5].dtype, b.add(rows[c], d))
                    for i in range(4):
                        a = accs[4 * i + c]
                        b.store(b.call(fma, [qv[i], kv, b.load(a)]), a)
            dots = _reduce16x16(b, [b.load(a) for a in accs])  # lane 4i + c: token i, cell c
            for i in range(4):
                _store4(b, scp, b.add(srow[i], c64(4 * sub)), _sub4(b, dots, i))
        for i in range(4):
            m = _load16(b, mp, types.float32, b.add(mo_, b.mul(ms_, c64(i))))
            v = b.fadd(b.fmul(_load16(b, scp, types.float32, srow[i]), scale), m)
            v = b.select(b.fcmp_ordered("==", m, _c16(_NEG_INF)), m, v)
            _store16(b, scp, srow[i], v)
            bm = _hmax16(b, b.select(b.fcmp_ordered(">", v, _c16(_NEG_INF)), v, _c16(_NEG_INF)))
            xi = b.gep(xp, [c64(i)])
            old = b.load(xi)
            b.store(b.select(b.fcmp_ordered(">", bm, old), bm, old), xi)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def kqv4x4(typingctx, out, ob, os, vt, vo, n_kvp, sc, so, ss, r0, r1, n16, n_kv):
    """kqv16 for 4 tokens and 4 columns at once: out[ob + i*os + c] (i, c < 4) from the
    probability rows sc[so + i*ss:] and the V columns vt[vo + c*n_kvp:]; each V load feeds the
    4 tokens. Every value is the single-token kqv16's, bit for bit."""
    if not (_is_f32(out) and _is_kv(vt) and _is_f32(sc)):
        return None
    sig = types.void(out, ob, os, vt, vo, n_kvp, sc, so, ss, r0, r1, n16, n_kv)

    def codegen(context, b, sig, args):
        op, vp, sp = (_data(context, b, sig.args[i], args[i]) for i in (0, 3, 6))
        ob_, os_, vo_, ld, so_, ss_, r0_, r1_, n16_, nkv_ = (
            _i64(context, b, args[i], sig.args[i]) for i in (1, 2, 4, 5, 7, 8, 9, 10, 11, 12))
        vdt = sig.args[3].dtype
        fma = _fma(b)
        c64 = lambda x: ir.Constant(_I64, x)  # noqa: E731
        accs = [cgutils.alloca_once_value(b, _c16(0.0)) for _ in range(16)]
        cols = [b.add(vo_, b.mul(ld, c64(c))) for c in range(4)]
        srow = [b.add(so_, b.mul(ss_, c64(i))) for i in range(4)]

        def block(j, ps):
            keep = [b.fcmp_unordered("!=", p, _c16(0.0)) for p in ps]  # as `p != 0`
            for c in range(4):
                x = _load16(b, vp, vdt, b.add(cols[c], j))
                for i in range(4):
                    a = accs[4 * i + c]
                    av = b.load(a)
                    b.store(b.select(keep[i], b.call(fma, [x, ps[i], av]), av), a)

        with cgutils.for_range_slice(b, r0_, r1_, c64(16)) as (j, _):
            block(j, [_load16(b, sp, types.float32, b.add(srow[i], j)) for i in range(4)])
        with b.if_then(b.icmp_signed("<", n16_, nkv_)):
            block(n16_, [_tail16(b, sp, b.add(srow[i], n16_), n16_, nkv_) for i in range(4)])
        res = _reduce16x16(b, [b.load(a) for a in accs])  # lane 4i + c: token i, column c
        for i in range(4):
            _store4(b, op, b.add(ob_, b.mul(os_, c64(i))), _sub4(b, res, i))
        return context.get_dummy_value()

    return sig, codegen
