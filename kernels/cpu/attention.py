"""Parallel twin of `kernels.cpu.ops.attention_f16kv` (llama.cpp's non-flash attention path).

Same arguments, same semantics, bit-identical outputs: every (token, head) pair computes exactly
the float operations of ops.attention_f16kv in the same order (q rounded to F16, kq by tinyBLAS's
16-lane or ggml_vec_dot_f16's 4 x 16-lane order, tanh soft-capping, soft_max_ext with scale and
mask, ggml_v_expf in blocks of 16 summed into a double, probabilities rounded to F16, kqv).

What differs is how the work is laid out:
- the (token, head) pairs are dealt round-robin into at most 32 chunks run by `prange` (so the
  causal mask's growing rows spread evenly over the threads); each chunk takes its scratch once,
  nothing is allocated per pair or per cell;
- kqv walks V row by row (contiguous head_dim_v values per cell) into `lanes x head_dim_v`
  accumulators instead of reading V column-wise with a stride of a whole cache row; each
  accumulator still sees its cells in increasing order, so every FMA chain is unchanged, and the
  inner loop over head_dim_v vectorizes.
The caller's scratch arguments scores and q16 are accepted for signature compatibility and left
unused; `lanes`, when it holds `workspace_nbytes(...)` (a decode arena view), is the workspace of
every chunk, so the call allocates nothing; a smaller `lanes` (the serial kernel's 64 floats) makes
each chunk allocate its scratch.

K/V caches come either as uint16 arrays of F16 bit patterns (the KV cache's real storage, as
llama.cpp's F16 cache) or as float32 arrays. F16 values are widened to float32 in the loads
(LLVM `fpext <16 x half>`, vcvtph2ps with F16C): the conversion is exact, so the numbers equal
those of a float32 array holding the same F16 values. `attention_f32kv` is the same kernel for an
F32 cache (llama.cpp with type_k = type_v = f32): q and the probabilities stay float32 (ggml's
vec_dot_type of F32 is F32), every other operation is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .ops import _fma32, reduce16, round_f16, v_expf

_F32 = ir.FloatType()
_V16 = ir.VectorType(_F32, 16)
_I32 = ir.IntType(32)
_I16 = ir.IntType(16)
_VH16 = ir.VectorType(ir.HalfType(), 16)
_VI16 = ir.VectorType(_I16, 16)


def _is_kv_array(a) -> bool:
    return isinstance(a, types.Array) and a.dtype in (types.float32, types.uint16)


def _load16(b, ptr, dtype, off):
    """<16 x float> from ptr[off:off+16]: float32 as is, uint16 F16 bits widened exactly."""
    if dtype == types.uint16:
        h = b.load(b.bitcast(b.gep(ptr, [off]), _VI16.as_pointer()), align=2)
        return b.fpext(b.bitcast(h, _VH16), _V16)
    return b.load(b.bitcast(b.gep(ptr, [off]), _V16.as_pointer()), align=4)


@intrinsic
def ldf(typingctx, a, i):
    """a[i] as float32: an F16 bit pattern (uint16 array) widened exactly, or a float32."""
    if not _is_kv_array(a) or not isinstance(i, types.Integer):
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
    if not _is_kv_array(a) or not isinstance(i, types.Integer) or x != types.float32:
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


def _reduce16_ir(b, v):
    """reduce16 (GCC's _mm512_reduce_add_ps order) of a <16 x float>: halves, quarters, pairs."""
    def shuf(x, idx):
        return b.shuffle_vector(x, x, ir.Constant(ir.VectorType(_I32, len(idx)), list(idx)))
    t = b.fadd(shuf(v, range(8)), shuf(v, range(8, 16)))
    u = b.fadd(shuf(t, range(4)), shuf(t, range(4, 8)))
    e = [b.extract_element(u, ir.Constant(_I32, i)) for i in range(4)]
    return b.fadd(b.fadd(e[0], e[2]), b.fadd(e[1], e[3]))


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
        return _reduce16_ir(b, v0)
    return codegen


@intrinsic
def _dot16x1(typingctx, a, ao, b, bo, k):
    """dot_sgemm16 (ops.py) as one <16 x float> FMA chain: k % 16 == 0."""
    if not (_is_kv_array(a) and _is_kv_array(b)):
        return None
    return types.float32(a, ao, b, bo, k), _dot_codegen(1)


@intrinsic
def _dot16x4(typingctx, a, ao, b, bo, k):
    """The blocks-of-64 part of dot_vec_f16 (ops.py) as 4 <16 x float> chains: k % 64 == 0."""
    if not (_is_kv_array(a) and _is_kv_array(b)):
        return None
    return types.float32(a, ao, b, bo, k), _dot_codegen(4)


@intrinsic
def _axpy16(typingctx, y, yo, x, xo, p, n):
    """y[yo+i] = fma(x[xo+i], p, y[yo+i]) for i < n (n % 16 == 0), as <16 x float> FMAs: the
    same single-rounding FMA per element as the scalar loop. x: float32 or uint16 (F16 bits)."""
    if not _is_kv_array(x):
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


@njit(cache=True, nogil=True, inline="always")
def _dot_sgemm16(a, ao, b, bo, k):
    """ops.dot_sgemm16, bit for bit (k % 16 == 0)."""
    return _dot16x1(a, ao, b, bo, k)


@njit(cache=True, nogil=True, inline="always")
def _dot_vec_f16(a, ao, b, bo, n):
    """ops.dot_vec_f16, bit for bit: 4 x 16 lanes over blocks of 64, leftovers in double."""
    np64 = n & ~63
    s = np.float64(_dot16x4(a, ao, b, bo, np64))
    for i in range(np64, n):
        s += np.float64(np.float32(ldf(a, ao + i) * ldf(b, bo + i)))
    return np.float32(s)


@njit(cache=True, nogil=True, inline="always")
def _kqv_sgemm(v_cache, vbase, row_v, head_dim_v, scores, n_kv, acc, ln, out, ob):
    """tinyBLAS kqv: out[ob+d] = reduce16 of 16 lanes, lane j&15 accumulating v[j,d]*p[j]."""
    n16 = head_dim_v & ~15
    for i in range(16 * head_dim_v):
        acc[i] = np.float32(0.0)
    for j in range(n_kv):
        p = scores[j]
        if p != 0.0:
            ab = (j & 15) * head_dim_v
            vb = j * row_v + vbase
            _axpy16(acc, ab, v_cache, vb, p, n16)
            for d in range(n16, head_dim_v):
                acc[ab + d] = _fma32(ldf(v_cache, vb + d), p, acc[ab + d])
    for d in range(head_dim_v):
        for i in range(16):
            ln[i] = acc[i * head_dim_v + d]
        out[ob + d] = reduce16(ln, 0)


@njit(cache=True, nogil=True, inline="always")
def _kqv_vec(v_cache, vbase, row_v, head_dim_v, scores, n_kv, acc, ln, dacc, out, ob):
    """ggml_vec_dot_f16 kqv (4 x 16 lanes over blocks of 64, the tail in double), p == 0 skipped
    in the blocks exactly as ops._dot_vec_f16_strided does."""
    np64 = n_kv & ~63
    n16 = head_dim_v & ~15
    for i in range(64 * head_dim_v):
        acc[i] = np.float32(0.0)
    for j in range(np64):
        p = scores[j]
        if p != 0.0:
            ab = (j & 63) * head_dim_v
            vb = j * row_v + vbase
            _axpy16(acc, ab, v_cache, vb, p, n16)
            for d in range(n16, head_dim_v):
                acc[ab + d] = _fma32(ldf(v_cache, vb + d), p, acc[ab + d])
    for d in range(head_dim_v):
        for i in range(64):
            ln[i] = acc[i * head_dim_v + d]
        for i in range(16):
            ln[i] = ln[i] + ln[32 + i]
            ln[16 + i] = ln[16 + i] + ln[48 + i]
        for i in range(16):
            ln[i] = ln[i] + ln[16 + i]
        dacc[d] = np.float64(reduce16(ln, 0))
    for j in range(np64, n_kv):
        p = scores[j]
        vb = j * row_v + vbase
        for d in range(head_dim_v):
            dacc[d] += np.float64(np.float32(ldf(v_cache, vb + d) * p))
    for d in range(head_dim_v):
        out[ob + d] = np.float32(dacc[d])


@njit(cache=True, nogil=True, inline="always")
def _round_p(x, round_qp):
    return round_f16(x) if round_qp else x


@njit(cache=True, nogil=True, inline="always")
def _pair(q, k_cache, v_cache, mask, out, t, h, n_head, n_gqa, head_dim_k, head_dim_v, row_k,
          row_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, sc, q16, ln, acc, dacc, round_qp):
    """One (token, head) pair of ops.attention_f16kv, same float operations in the same order
    (round_qp False: q and the probabilities are not rounded to F16, for an F32 cache)."""
    hk = h // n_gqa
    mrow = t * n_kv
    qb = (t * n_head + h) * head_dim_k
    for d in range(head_dim_k):
        q16[d] = round_f16(q[qb + d]) if round_qp else q[qb + d]
    mx = np.float32(-np.inf)
    kbase = hk * head_dim_k
    jlo = n_kv  # first and last + 1 unmasked cells
    jhi = 0
    for j in range(n_kv):
        m = mask[mrow + j]
        if m == -np.inf:
            sc[j] = m
            continue
        if j < jlo:
            jlo = j
        jhi = j + 1
        kb = j * row_k + kbase
        if sgemm_kq:
            v = _dot_sgemm16(q16, 0, k_cache, kb, head_dim_k)
        else:
            v = _dot_vec_f16(k_cache, kb, q16, 0, head_dim_k)
        if softcap != 0.0:
            v = np.float32(np.float32(math.tanh(np.float32(v * np.float32(np.float32(1.0) / softcap)))) * softcap)
        v = np.float32(v * kq_scale) + m
        sc[j] = v
        if v > mx:
            mx = v
    # Blocks of 16 wholly outside [jlo, jhi) hold masked cells only: their exps are +0.0 and
    # adding their reduce16 (+0.0) leaves the sum unchanged, so they are zeroed and skipped.
    total = 0.0
    n16 = n_kv & ~15
    b0 = jlo & ~15
    b1 = (jhi + 15) & ~15
    for j0 in range(0, n16, 16):
        if j0 < b0 or j0 >= b1:
            for i in range(16):
                sc[j0 + i] = np.float32(0.0)
            continue
        for i in range(16):
            e = v_expf(np.float32(sc[j0 + i] - mx))
            sc[j0 + i] = e
            ln[i] = e
        total += np.float64(reduce16(ln, 0))
    for j in range(n16, n_kv):
        e = np.float32(math.exp(np.float32(sc[j] - mx)))
        sc[j] = e
        total += np.float64(e)
    inv = np.float32(1.0 / total)
    if total > 0.0 and inv != np.inf:  # zeros stay +0.0 when scaled by a finite inv
        r0 = min(b0, n16)
        r1 = min(b1, n16)
        for j in range(r0, r1):
            sc[j] = _round_p(np.float32(sc[j] * inv), round_qp)
        for j in range(n16, n_kv):
            sc[j] = _round_p(np.float32(sc[j] * inv), round_qp)
    else:
        for j in range(n_kv):
            sc[j] = _round_p(np.float32(sc[j] * inv), round_qp)
    ob = (t * n_head + h) * head_dim_v
    if sgemm_kqv:
        _kqv_sgemm(v_cache, hk * head_dim_v, row_v, head_dim_v, sc, n_kv, acc, ln, out, ob)
    else:
        _kqv_vec(v_cache, hk * head_dim_v, row_v, head_dim_v, sc, n_kv, acc, ln, dacc, out, ob)


_MAX_CHUNKS = 32  # chunks per call: scratch allocations per call, load balance over threads


@njit(cache=True, nogil=True)
def workspace_floats(n_kv, head_dim_k, head_dim_v):
    """float32 scratch of one chunk: double accumulators (2 floats each), scores, q, 64 lanes,
    64 x head_dim_v accumulators; even, so every chunk's doubles stay 8-byte aligned."""
    n = 2 * head_dim_v + max(n_kv, 1) + head_dim_k + 64 + 64 * head_dim_v
    return n + (n & 1)


def workspace_nbytes(n_tokens: int, n_head: int, n_kv: int, head_dim_k: int, head_dim_v: int) -> int:
    """Bytes of a `lanes` workspace with which attention_f16kv / attention_f32kv allocate nothing."""
    return 4 * min(_MAX_CHUNKS, n_tokens * n_head) * int(workspace_floats(n_kv, head_dim_k, head_dim_v))


@njit(cache=True, nogil=True, parallel=True)
def attention_f16kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """Masked GQA attention, one ubatch: arguments and results exactly as
    kernels.cpu.ops.attention_f16kv (sizes are checked by the caller; scores, q16 and lanes are
    unused here; lanes: see workspace_nbytes). k_cache/v_cache: uint16 F16 bits or float32 F16
    values. The (token, head) pairs run in parallel in up to _MAX_CHUNKS interleaved chunks
    (numba.get_num_threads() here would stop Numba caching the function)."""
    n_chunks = min(_MAX_CHUNKS, n_tokens * n_head)
    for c in prange(n_chunks):
        _chunk(c, n_chunks, q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv,
               head_dim_k, head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, True, lanes)


@njit(cache=True, nogil=True, parallel=True)
def attention_f32kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """attention_f16kv for an F32 cache (float32 k_cache/v_cache): q and the probabilities are
    not rounded to F16, as ggml multiplies F32 K/V with F32 q / kq."""
    n_chunks = min(_MAX_CHUNKS, n_tokens * n_head)
    for c in prange(n_chunks):
        _chunk(c, n_chunks, q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv,
               head_dim_k, head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, False, lanes)


@njit(cache=True, nogil=True)
def _chunk(c, n_chunks, q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
           head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, round_qp, ws):
    """The (token, head) pairs of chunk c, with their scratch taken once: from ws (float32, 8-byte
    aligned) when it holds n_chunks * workspace_floats(...), else allocated."""
    n_gqa = n_head // n_head_kv
    row_k = n_head_kv * head_dim_k
    row_v = n_head_kv * head_dim_v
    n_pairs = n_tokens * n_head
    per = workspace_floats(n_kv, head_dim_k, head_dim_v)
    if ws.size >= n_chunks * per:  # the caller's workspace (an arena view): nothing allocated
        b = c * per
        dacc = ws[b:b + 2 * head_dim_v].view(np.float64)
        b += 2 * head_dim_v
        sc = ws[b:b + max(n_kv, 1)]
        b += max(n_kv, 1)
        qq = ws[b:b + head_dim_k]
        b += head_dim_k
        ln = ws[b:b + 64]
        b += 64
        acc = ws[b:b + 64 * head_dim_v]
    else:
        sc = np.empty(max(n_kv, 1), dtype=np.float32)
        qq = np.empty(head_dim_k, dtype=np.float32)
        ln = np.empty(64, dtype=np.float32)
        acc = np.empty(64 * head_dim_v, dtype=np.float32)
        dacc = np.empty(head_dim_v, dtype=np.float64)
    # pairs c, c + n_chunks, ...: with a causal mask token t reads t + 1 cells, so contiguous
    # chunks would leave the thread holding the last tokens with most of the work
    for p in range(c, n_pairs, n_chunks):
        t = p // n_head
        h = p - t * n_head
        _pair(q, k_cache, v_cache, mask, out, t, h, n_head, n_gqa, head_dim_k, head_dim_v,
              row_k, row_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, sc, qq, ln, acc,
              dacc, round_qp)
