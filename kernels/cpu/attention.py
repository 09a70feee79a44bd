"""Parallel SIMD twins of `kernels.cpu.ops.attention_f16kv` / `attention_f32kv` (llama.cpp's
non-flash attention path, build_attn_mha).

Same arguments, same semantics, bit-identical outputs: every (token, head) pair computes exactly
the float operations of the ops kernel in the same order (q rounded to F16, kq by tinyBLAS's
16-lane or ggml_vec_dot_f16's 4 x 16-lane order, tanh soft-capping, soft_max_ext with scale and
mask, ggml_v_expf in blocks of 16 summed into a double, probabilities rounded to F16, kqv).

What differs is how the work is laid out (the vector pieces are in kernels/cpu/attention_simd.py):
- prompt batches (tinyBLAS kq and kqv, no soft-capping, n_tokens >= 4) run in tiles of 4 tokens x
  1 head (`_tile`): kq takes 16 cells at a time, each K load feeding 16 FMA chains (4 tokens x 4
  cells), the 16 dots reduced together by a transposing tree of reduce16's additions; softmax is
  vectorized over 16 cells (ggml_v_expf with its branches as lane selects, F16 rounding by
  fptrunc/fpext, both checked against the scalar ops in the tests); kqv reads V transposed (as
  llama.cpp's non-flash cache stores it, built once per call by `_transpose_v`): per output column
  one vector whose lane i takes the cells j & 15 == i, each V load feeding 4 tokens, cells with
  p == 0 skipped by lane masks;
- the other pairs (single tokens, soft-capping, odd head sizes, the last n_tokens % 4 tokens)
  run one by one (`_pair`) with the same vector kq / softmax / kqv pieces where the shapes allow
  and the scalar forms elsewhere;
- tiles and pairs are dealt round-robin into at most 32 chunks run by `prange` (so the causal
  mask's growing rows spread evenly over the threads); blocks of 16 cells that are wholly masked
  get no dot at all.
Skipping a masked cell, or one with p == 0, is exact: its term would add an exact zero (the sums
start at +0.0 and never become -0.0).
The caller's scratch arguments scores and q16 are accepted for signature compatibility and left
unused; `lanes`, when it holds `workspace_nbytes(...)` (a decode arena view), is the workspace of
every chunk, so a one-token call allocates nothing; a smaller `lanes` (the serial kernel's 64
floats) makes each chunk allocate its scratch. Prompt calls allocate V transposed and the tiles'
scratch.

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
from numba import njit, prange

from .attention_simd import (_axpy16, _dot16x1, _dot16x4, exp16, kq16, kq16x4, kqv4x4, kqv16,
                             kqvec16, lanes64, ldf, masked16, round16, scale16)
from .attention_simd import stf  # noqa: F401  (kernels.cpu.step takes stf from here)
from .ops import _fma32, reduce16, round_f16


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
    for d in range(0, n16, 16):
        lanes64(ln, 0, acc, head_dim_v, d)
        for i in range(16):
            dacc[d + i] = np.float64(ln[i])
    for d in range(n16, head_dim_v):
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
def _pair(q, k_cache, v_cache, vt, mask, out, t, h, n_head, n_gqa, head_dim_k, head_dim_v,
          row_k, row_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, sc, q16, ln, acc, dacc,
          round_qp):
    """One (token, head) pair of ops.attention_f16kv, same float operations in the same order
    (round_qp False: q and the probabilities are not rounded to F16, for an F32 cache)."""
    hk = h // n_gqa
    mrow = t * n_kv
    qb = (t * n_head + h) * head_dim_k
    nq16 = head_dim_k & ~15
    for d in range(0, nq16, 16):
        if round_qp:
            round16(q16, d, q, qb + d)
        else:
            for i in range(16):
                q16[d + i] = q[qb + d + i]
    for d in range(nq16, head_dim_k):
        q16[d] = _round_p(q[qb + d], round_qp)
    kbase = hk * head_dim_k
    n16 = n_kv & ~15
    # Blocks of 16 wholly outside [b0, b1) hold masked cells only: their exps are +0.0 and
    # adding their reduce16 (+0.0) leaves the sum unchanged, so they are zeroed and skipped.
    if softcap == 0.0 and head_dim_k % (16 if sgemm_kq else 64) == 0:
        mx, b0, b1 = _kq_blocks(q16, k_cache, mask, sc, mrow, kbase, row_k, head_dim_k, n16,
                                kq_scale, sgemm_kq)
        for j in range(n16, n_kv):
            m = mask[mrow + j]
            if m == -np.inf:
                sc[j] = m
                continue
            kb = j * row_k + kbase
            if sgemm_kq:
                v = _dot_sgemm16(q16, 0, k_cache, kb, head_dim_k)
            else:
                v = _dot_vec_f16(k_cache, kb, q16, 0, head_dim_k)
            v = np.float32(v * kq_scale) + m
            sc[j] = v
            if v > mx:
                mx = v
    else:
        mx = np.float32(-np.inf)
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
                v = np.float32(v * np.float32(np.float32(1.0) / softcap))
                v = np.float32(np.float32(math.tanh(v)) * softcap)
            v = np.float32(v * kq_scale) + m
            sc[j] = v
            if v > mx:
                mx = v
        b0 = jlo & ~15
        b1 = (jhi + 15) & ~15
    r0 = min(b0, n16)
    r1 = max(min(b1, n16), r0)
    total = 0.0
    for j0 in range(r0, r1, 16):
        total += np.float64(exp16(sc, j0, mx))
    for j in range(n16, n_kv):
        e = np.float32(math.exp(np.float32(sc[j] - mx)))
        sc[j] = e
        total += np.float64(e)
    inv = np.float32(1.0 / total)
    if total > 0.0 and inv != np.inf:  # zeros stay +0.0 when scaled by a finite inv
        for j0 in range(r0, r1, 16):
            scale16(sc, j0, inv, round_qp)
        for j in range(n16, n_kv):
            sc[j] = _round_p(np.float32(sc[j] * inv), round_qp)
        if not sgemm_kqv:
            _zero_outside(sc, r0, r1, n16)
    else:
        _zero_outside(sc, r0, r1, n16)
        for j in range(n_kv):
            sc[j] = _round_p(np.float32(sc[j] * inv), round_qp)
        r0 = 0
        r1 = n16
    ob = (t * n_head + h) * head_dim_v
    vbase = hk * head_dim_v
    if sgemm_kqv:
        nv16 = head_dim_v & ~15
        n_kvp = (n_kv + 15) & ~15
        for d in range(0, nv16, 16):
            kqv16(out, ob + d, vt, (vbase + d) * n_kvp, n_kvp, sc, r0, r1, n16, n_kv)
        for d in range(nv16, head_dim_v):
            for i in range(16):
                ln[i] = np.float32(0.0)
            for j in range(r0, r1):
                p = sc[j]
                if p != 0.0:
                    ln[j & 15] = _fma32(ldf(v_cache, j * row_v + vbase + d), p, ln[j & 15])
            for j in range(n16, n_kv):
                p = sc[j]
                if p != 0.0:
                    ln[j & 15] = _fma32(ldf(v_cache, j * row_v + vbase + d), p, ln[j & 15])
            out[ob + d] = reduce16(ln, 0)
    else:
        _kqv_vec(v_cache, vbase, row_v, head_dim_v, sc, n_kv, acc, ln, dacc, out, ob)


@njit(cache=True, nogil=True, inline="always")
def _kq_blocks(q16, k_cache, mask, sc, mrow, kbase, row_k, head_dim_k, n16, kq_scale, sgemm):
    """Scores of the whole blocks of 16 cells (kq16 or kqvec16; wholly masked blocks set to -inf
    without a dot), their maximum and the range [b0, b1) of blocks with an unmasked cell."""
    mx = np.float32(-np.inf)
    b0 = n16
    b1 = 0
    for j0 in range(0, n16, 16):
        if masked16(mask, mrow + j0):
            for i in range(16):
                sc[j0 + i] = np.float32(-np.inf)
            continue
        kb = j0 * row_k + kbase
        if sgemm:
            bm = kq16(sc, j0, q16, k_cache, kb, row_k, head_dim_k, mask, mrow + j0, kq_scale)
        else:
            bm = kqvec16(sc, j0, q16, k_cache, kb, row_k, head_dim_k, mask, mrow + j0, kq_scale)
        if j0 < b0:
            b0 = j0
        b1 = j0 + 16
        if bm > mx:
            mx = bm
    return mx, b0, b1


@njit(cache=True, nogil=True, inline="always")
def _zero_outside(sc, r0, r1, n16):
    """sc[j] = +0.0 for the cells of the whole blocks outside [r0, r1)."""
    for j in range(0, r0):
        sc[j] = np.float32(0.0)
    for j in range(r1, n16):
        sc[j] = np.float32(0.0)


_MAX_CHUNKS = 32  # chunks per call: scratch allocations per call, load balance over threads


@njit(cache=True, nogil=True, inline="always")
def _n_scores(n_kv):
    """Length of a score row: n_kv rounded up to 16 (kqv loads the last cells 16 at a time)."""
    return max((n_kv + 15) & ~15, 16)


@njit(cache=True, nogil=True)
def workspace_floats(n_kv, head_dim_k, head_dim_v):
    """float32 scratch of one chunk: double accumulators (2 floats each), scores, q, 64 lanes,
    64 x head_dim_v accumulators; even, so every chunk's doubles stay 8-byte aligned."""
    n = 2 * head_dim_v + _n_scores(n_kv) + head_dim_k + 64 + 64 * head_dim_v
    return n + (n & 1)


def workspace_nbytes(n_tokens: int, n_head: int, n_kv: int, head_dim_k: int,
                     head_dim_v: int) -> int:
    """Bytes of a `lanes` workspace with which attention_f16kv / attention_f32kv allocate no
    per-chunk scratch (a one-token call then allocates nothing)."""
    n = min(_MAX_CHUNKS, n_tokens * n_head)
    return 4 * n * int(workspace_floats(n_kv, head_dim_k, head_dim_v))


@njit(cache=True, nogil=True, parallel=True)
def attention_f16kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """Masked GQA attention, one ubatch: arguments and results exactly as
    kernels.cpu.ops.attention_f16kv (sizes are checked by the caller; scores, q16 and lanes are
    unused here; lanes: see workspace_nbytes). k_cache/v_cache: uint16 F16 bits or float32 F16
    values. The (token, head) pairs run in parallel in up to _MAX_CHUNKS interleaved chunks
    (numba.get_num_threads() here would stop Numba caching the function)."""
    n_chunks = min(_MAX_CHUNKS, n_tokens * n_head)
    vt = _transpose_v(v_cache, n_kv, n_head_kv, head_dim_v) if sgemm_kqv else v_cache
    for c in prange(n_chunks):
        _chunk(c, n_chunks, q, k_cache, v_cache, vt, mask, out, n_tokens, n_head, n_head_kv,
               head_dim_k, head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, True, lanes)


@njit(cache=True, nogil=True, parallel=True)
def attention_f32kv(q, k_cache, v_cache, mask, out, n_tokens, n_head, n_head_kv, head_dim_k,
                    head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, scores, q16, lanes):
    """attention_f16kv for an F32 cache (float32 k_cache/v_cache): q and the probabilities are
    not rounded to F16, as ggml multiplies F32 K/V with F32 q / kq."""
    n_chunks = min(_MAX_CHUNKS, n_tokens * n_head)
    vt = _transpose_v(v_cache, n_kv, n_head_kv, head_dim_v) if sgemm_kqv else v_cache
    for c in prange(n_chunks):
        _chunk(c, n_chunks, q, k_cache, v_cache, vt, mask, out, n_tokens, n_head, n_head_kv,
               head_dim_k, head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, False, lanes)


@njit(cache=True, nogil=True)
def _chunk(c, n_chunks, q, k_cache, v_cache, vt, mask, out, n_tokens, n_head, n_head_kv,
           head_dim_k, head_dim_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, round_qp, ws):
    """The work items (tiles of 4 tokens, single pairs) of chunk c, with the pairs' scratch taken
    once: from ws (float32, 8-byte aligned) when it holds n_chunks * workspace_floats(...), else
    allocated; the tiles' scratch is allocated once per chunk."""
    n_gqa = n_head // n_head_kv
    row_k = n_head_kv * head_dim_k
    row_v = n_head_kv * head_dim_v
    n_pairs = n_tokens * n_head
    per = workspace_floats(n_kv, head_dim_k, head_dim_v)
    if ws.size >= n_chunks * per:  # the caller's workspace (an arena view): nothing allocated
        b = c * per
        dacc = ws[b:b + 2 * head_dim_v].view(np.float64)
        b += 2 * head_dim_v
        sc = ws[b:b + _n_scores(n_kv)]
        b += _n_scores(n_kv)
        qq = ws[b:b + head_dim_k]
        b += head_dim_k
        ln = ws[b:b + 64]
        b += 64
        acc = ws[b:b + 64 * head_dim_v]
    else:
        sc = np.empty(_n_scores(n_kv), dtype=np.float32)
        qq = np.empty(head_dim_k, dtype=np.float32)
        ln = np.empty(64, dtype=np.float32)
        acc = np.empty(64 * head_dim_v, dtype=np.float32)
        dacc = np.empty(head_dim_v, dtype=np.float64)
    # work items c, c + n_chunks, ...: with a causal mask token t reads t + 1 cells, so
    # contiguous chunks would leave the thread holding the last tokens with most of the work.
    # Items are tiles of 4 tokens x 1 head where the prompt path allows, then single pairs.
    n_tiles = n_tokens // 4 if _tiled(n_tokens, head_dim_k, softcap, sgemm_kq, sgemm_kqv) else 0
    n_items = n_tiles * n_head + n_pairs - 4 * n_tiles * n_head
    if n_tiles > 0:
        n_kvp = (n_kv + 15) & ~15
        tsc = np.empty(4 * n_kvp, dtype=np.float32)
        tq = np.empty(4 * head_dim_k, dtype=np.float32)
        mxs = np.empty(4, dtype=np.float32)
        rr = np.empty(8, dtype=np.int64)
    else:
        n_kvp = 0
        tsc = tq = mxs = ln[:0]
        rr = np.empty(0, dtype=np.int64)
    for it in range(c, n_items, n_chunks):
        if it < n_tiles * n_head:
            tt = it // n_head
            _tile(q, k_cache, v_cache, vt, mask, out, 4 * tt, it - tt * n_head, n_head, n_gqa,
                  head_dim_k, head_dim_v, row_k, row_v, n_kv, n_kvp, kq_scale, tsc, tq, mxs, rr,
                  ln, round_qp)
            continue
        p = it - n_tiles * n_head + 4 * n_tiles * n_head
        t = p // n_head
        h = p - t * n_head
        _pair(q, k_cache, v_cache, vt, mask, out, t, h, n_head, n_gqa, head_dim_k, head_dim_v,
              row_k, row_v, n_kv, kq_scale, softcap, sgemm_kq, sgemm_kqv, sc, qq, ln, acc,
              dacc, round_qp)


@njit(cache=True, nogil=True)
def _transpose_v(v_cache, n_kv, n_head_kv, head_dim_v):
    """V of the n_kv cells transposed, as llama.cpp's non-flash cache stores it: column
    (hk, d) at [(hk * head_dim_v + d) * n_kvp:], n_kvp = n_kv rounded up to 16, padded with
    zeros; same dtype as v_cache."""
    n_kvp = (n_kv + 15) & ~15
    row_v = n_head_kv * head_dim_v
    vt = np.zeros(row_v * n_kvp, dtype=v_cache.dtype)
    for j0 in range(0, n_kv, 16):
        j1 = min(j0 + 16, n_kv)
        for e in range(row_v):
            for j in range(j0, j1):
                vt[e * n_kvp + j] = v_cache[j * row_v + e]
    return vt


@njit(cache=True, nogil=True, inline="always")
def _tiled(n_tokens, head_dim_k, softcap, sgemm_kq, sgemm_kqv):
    """Whether the prompt path runs tiles of 4 tokens (tinyBLAS kq and kqv, no soft-capping)."""
    return n_tokens >= 4 and sgemm_kq and sgemm_kqv and softcap == 0.0 and head_dim_k % 16 == 0


@njit(cache=True, nogil=True)
def _tile(q, k_cache, v_cache, vt, mask, out, t0, h, n_head, n_gqa, head_dim_k, head_dim_v,
          row_k, row_v, n_kv, n_kvp, kq_scale, sc, q16, mxs, rr, ln, round_qp):
    """The pairs (t0 + i, h), i < 4, as _pair computes them (tinyBLAS kq and kqv, no
    soft-capping), 4 tokens at a time: each K and V load serves the 4 tokens.
    sc: float32[4 * n_kvp] score rows, q16: float32[4 * head_dim_k], mxs: float32[4],
    rr: int64[8] the cell range of each token's probabilities."""
    hk = h // n_gqa
    kbase = hk * head_dim_k
    n16 = n_kv & ~15
    for i in range(4):
        qb = ((t0 + i) * n_head + h) * head_dim_k
        for d in range(0, head_dim_k, 16):
            if round_qp:
                round16(q16, i * head_dim_k + d, q, qb + d)
            else:
                for e in range(16):
                    q16[i * head_dim_k + d + e] = q[qb + d + e]
        mxs[i] = np.float32(-np.inf)
        rr[2 * i] = n16
        rr[2 * i + 1] = 0
    mrow = t0 * n_kv
    for j0 in range(0, n16, 16):
        live = False
        for i in range(4):
            if not masked16(mask, mrow + i * n_kv + j0):
                live = True
                if j0 < rr[2 * i]:
                    rr[2 * i] = j0
                rr[2 * i + 1] = j0 + 16
        if live:
            kq16x4(sc, j0, n_kvp, q16, head_dim_k, k_cache, j0 * row_k + kbase, row_k,
                   head_dim_k, mask, mrow + j0, n_kv, kq_scale, mxs)
        else:
            for i in range(4):
                for e in range(16):
                    sc[i * n_kvp + j0 + e] = np.float32(-np.inf)
    lo = n16
    hi = 0
    for i in range(4):
        so = i * n_kvp
        mx = mxs[i]
        for j in range(n16, n_kv):  # the last cells, one by one as _pair
            m = mask[mrow + i * n_kv + j]
            if m == -np.inf:
                sc[so + j] = m
                continue
            v = np.float32(_dot_sgemm16(q16, i * head_dim_k, k_cache, j * row_k + kbase,
                                        head_dim_k) * kq_scale) + m
            sc[so + j] = v
            if v > mx:
                mx = v
        r0 = min(rr[2 * i], n16)
        r1 = max(min(rr[2 * i + 1], n16), r0)
        total = 0.0
        for j0 in range(r0, r1, 16):
            total += np.float64(exp16(sc, so + j0, mx))
        for j in range(n16, n_kv):
            e = np.float32(math.exp(np.float32(sc[so + j] - mx)))
            sc[so + j] = e
            total += np.float64(e)
        inv = np.float32(1.0 / total)
        if total > 0.0 and inv != np.inf:
            for j0 in range(r0, r1, 16):
                scale16(sc, so + j0, inv, round_qp)
            for j in range(n16, n_kv):
                sc[so + j] = _round_p(np.float32(sc[so + j] * inv), round_qp)
        else:
            for j in range(0, r0):
                sc[so + j] = np.float32(0.0)
            for j in range(r1, n16):
                sc[so + j] = np.float32(0.0)
            for j in range(n_kv):
                sc[so + j] = _round_p(np.float32(sc[so + j] * inv), round_qp)
            r0 = 0
            r1 = n16
        rr[2 * i] = r0
        rr[2 * i + 1] = r1
        lo = min(lo, r0)
        hi = max(hi, r1)
    hi = max(hi, lo)
    for i in range(4):  # the union of the ranges: zeros where a token's own range ends
        so = i * n_kvp
        for j in range(lo, rr[2 * i]):
            sc[so + j] = np.float32(0.0)
        for j in range(max(rr[2 * i + 1], lo), hi):
            sc[so + j] = np.float32(0.0)
    ob = (t0 * n_head + h) * head_dim_v
    os = n_head * head_dim_v
    vbase = hk * head_dim_v
    nv4 = head_dim_v & ~3
    for d in range(0, nv4, 4):
        kqv4x4(out, ob + d, os, vt, (vbase + d) * n_kvp, n_kvp, sc, 0, n_kvp, lo, hi, n16, n_kv)
    for i in range(4):
        so = i * n_kvp
        for d in range(nv4, head_dim_v):
            for e in range(16):
                ln[e] = np.float32(0.0)
            for j in range(lo, hi):
                p = sc[so + j]
                if p != 0.0:
                    ln[j & 15] = _fma32(ldf(v_cache, j * row_v + vbase + d), p, ln[j & 15])
            for j in range(n16, n_kv):
                p = sc[so + j]
                if p != 0.0:
                    ln[j & 15] = _fma32(ldf(v_cache, j * row_v + vbase + d), p, ln[j & 15])
            out[ob + i * os + d] = reduce16(ln, 0)
