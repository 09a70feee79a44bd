"""Prefill tiles for the K-quant prompt kernels: weight rows as the lanes of one register.

llama.cpp's prompt kernels for Q4_K (repacked `ggml_gemm_q4_K_8x8_q8_K`, arch/x86/repack.cpp) and
Q6_K (ggml-cpu/tiled) keep one float lane per weight row: their weights are interleaved at load
time so that one `vpdpbusd` yields the integer sums of 8 or 16 rows at once. The GGUF weights here
stay in their block layout; each tile interleaves its rows on the fly instead, one super-block at
a time, into a stack scratch (chunk g of 4 values -> one vector, lane k = row k, already unpacked
to bytes), and then runs every token of the tile against it. Lanes are 16 rows (zmm) on AVX-512
VNNI hosts, 8 rows (ymm) elsewhere.

Per (row, token) the float operations and their order are exactly those of kernels.cpu.simd
`dot_q4_k_r8_gemm` / `dot_q6_k_tiled` (and so of llama.cpp); only the exact integer sums are
formed in another order, which cannot change them:
- Q4_K (r8 gemm): per super-block and pair sb of 32-value sub-blocks, in order,
  acc = fma(float(isum_sb), d_w * d_x, acc), acc_min = fma(float(imin_sb), dmin_w * d_x, acc_min);
  result acc - acc_min. isum_sb = sum over its two sub-blocks s of scale_s * (q_s . y_s), imin_sb
  = sum of min_s * (sum of y_s).
- Q6_K (tiled): per super-block in order, res = float(isum) * d_w, sum = fma(res, d_x, sum), with
  isum = sum_j scale_j * (q_j . y_j) - 32 * sum_j scale_j * bsum_j (q the unsigned 6-bit values).
Integer lanes never overflow: |q . y| <= 15 * 128 * 32 (Q4_K sub-block) or 63 * 128 * 16 (Q6_K),
|isum| < 2^29.

    tile_q4_k_r8(w, woff, w_stride, n_valid, x, xoff, x_stride, n_tok, nb, out, ooff, o_stride)
    tile_q6_k_tiled(... same ...)
        out[ooff + k + t * o_stride] = weight row woff + k * w_stride times activation row
        xoff + t * x_stride, for k < n_valid (<= KQ_LANES) and t < n_tok (<= KQ_MAX_TOK); w: GGML
        blocks (uint8), x: Q8_K blocks (uint8), out: float32; rows past n_valid read the last
        valid row and are not stored
    prefill_q4_k_r8 / prefill_q6_k_tiled(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile,
                                         tile_stride, nb)
        the tiles over rows r0..r1-1 and tokens t0..t4-1, as kernels.cpu.vec_dot_rows.prefill_rows
    rows_q6_k_tiled(w, row_bytes, r0, r1, xq, x_row_bytes, n_tokens, out, n_rows, nb)
        out[t * n_rows + r] for rows r0..r1-1 and every token (kernels.cpu.matmul's Q6_K prompts)

`HAS_KQ` tells whether the host runs them (AVX2 + FMA + F16C). Intrinsics inline into their
callers: bump KQUANT_VERSION (checked by kernels.cpu.matmul) when the IR changes.
"""

import llvmlite.ir as ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from kernels.cpu.simd import (
    _C, _FEATURES, _V, _f16, _f32, _fn, _i8, _i16, _i32, _i64, _load, _shuf, _splat, HAS_AVX2, HAS_VNNI,
)

KQUANT_VERSION = 3

HAS_KQ = HAS_AVX2
HAS_KQ16 = HAS_AVX2 and all(_FEATURES.get(f, False) for f in ("avx512f", "avx512bw", "avx512vl", "avx512vnni"))
KQ_LANES = 16 if HAS_KQ16 else 8  # weight rows per tile
KQ_MAX_TOK = 64                   # tokens per tile call (accumulators on the stack)
_NT = 4                           # tokens per pass over the interleaved super-block
_N_CHUNKS = 64                    # 4-value chunks per super-block


class _LaneOps:
    """Integer and float vector ops on L lanes (one per weight row)."""

    def __init__(self, b, lanes, vnni):
        self.b, self.L = b, lanes
        self.vi = _V(_i32, lanes)
        self.vf = _V(_f32, lanes)
        self.vb = _V(_i8, 4 * lanes)
        self.vw = _V(_i16, 2 * lanes)
        self.fma = _fn(b, f"llvm.fma.v{lanes}f32", self.vf, [self.vf] * 3)
        if lanes == 16:
            self.maddwd = _fn(b, "llvm.x86.avx512.pmaddw.d.512", self.vi, [self.vw, self.vw])
            self.dpbusd = _fn(b, "llvm.x86.avx512.vpdpbusd.512", self.vi, [self.vi, self.vb, self.vb])
        else:
            self.maddwd = _fn(b, "llvm.x86.avx2.pmadd.wd", self.vi, [self.vw, self.vw])
            self.maddubs = _fn(b, "llvm.x86.avx2.pmadd.ub.sw", self.vw, [self.vb, self.vb])
            self.dpbusd = (_fn(b, "llvm.x86.avx512.vpdpbusd.256", self.vi, [self.vi, self.vb, self.vb])
                           if vnni else None)

    def dot(self, acc, wq, y):
        """acc + per lane sum of 4 products (wq unsigned bytes, y signed bytes): exact integers."""
        b = self.b
        wq, y = b.bitcast(wq, self.vb), b.bitcast(y, self.vb)
        if self.dpbusd is not None:
            return b.call(self.dpbusd, [acc, wq, y])
        # vpmaddubsw cannot saturate here: |2 * 63 * 128| < 2^15
        ones = _C(self.vw, 1)
        return b.add(acc, b.call(self.maddwd, [b.call(self.maddubs, [wq, y]), ones]))

    def madd16(self, pairs, y):
        """Per lane lo16(pairs) * lo16(y) + hi16(pairs) * hi16(y) (signed 16-bit halves)."""
        b = self.b
        return b.call(self.maddwd, [b.bitcast(pairs, self.vw), b.bitcast(y, self.vw)])

    def bcast_i32(self, ptr, off):
        return _splat(self.b, _load(self.b, ptr, off, _i32), self.L)

    def f16_lanes(self, bits16):
        """<L x i32> whose low 16 bits are f16 -> <L x float>."""
        b = self.b
        return b.fpext(b.bitcast(b.trunc(bits16, _V(_i16, self.L)), _V(_f16, self.L)), self.vf)

    def k(self, v):
        return _C(self.vi, v)


def _transpose(b, rows):
    """rows: n_r vectors <n_c x i32> (n_r, n_c powers of 2, n_c <= n_r) -> n_c vectors <n_r x i32>
    with out[c][k] = rows[k][c], by two-source shuffles (concatenate, then halve the columns)."""
    n_r = len(rows)
    vecs = [(v, [(k, c) for c in range(v.type.count)]) for k, v in enumerate(rows)]
    while len(vecs[0][1]) < n_r:
        vecs = [(_shuf(b, vecs[i][0], vecs[i + 1][0], range(2 * len(vecs[i][1]))), vecs[i][1] + vecs[i + 1][1])
                for i in range(0, len(vecs), 2)]
    while True:
        groups = {}
        for v, lab in vecs:
            groups.setdefault(tuple(sorted({c for _, c in lab})), []).append((v, lab))
        if all(len(cols) == 1 for cols in groups):
            break
        vecs = []
        for cols, members in groups.items():
            members.sort(key=lambda m: min(r for r, _ in m[1]))
            halves = (cols[:len(cols) // 2], cols[len(cols) // 2:])
            for i in range(0, len(members), 2):
                (va, la), (vb, lb) = members[i], members[i + 1]
                both = la + lb
                for part in halves:
                    want = sorted(((r, c) for r, c in both if c in part), key=lambda rc: (rc[1], rc[0]))
                    vecs.append((_shuf(b, va, vb, [both.index(rc) for rc in want]), want))
    out = [None] * len(groups)
    for (c,), [(v, lab)] in groups.items():
        assert [r for r, _ in lab] == list(range(n_r))
        out[c] = v
    return out


def _load_rows(b, rows, off, ty):
    return [_load(b, p, off, ty) for p in rows]


# ---------------------------------------------------------------------------------------------
# Super-block interleaving (one per weight type): scratch[g] = chunk g (values 4g..4g+3) of
# every row, as unsigned bytes; returns the per-lane values the token passes need
# ---------------------------------------------------------------------------------------------

def _repack_q4_k(o, rows, bo, put):
    b = o.b
    dd, u0, u1, u2 = _transpose(b, _load_rows(b, rows, bo, _V(_i32, 4)))
    dw, dminw = o.f16_lanes(dd), o.f16_lanes(b.lshr(dd, o.k(16)))
    k1, k2, k3 = o.k(0x3F3F3F3F), o.k(0x0F0F0F0F), o.k(0x03030303)
    t0 = b.and_(u0, k1)
    t1 = b.or_(b.and_(u2, k2), b.shl(b.and_(b.lshr(u0, o.k(6)), k3), o.k(4)))
    t2 = b.and_(u1, k1)
    t3 = b.or_(b.and_(b.lshr(u2, o.k(4)), k2), b.shl(b.and_(b.lshr(u1, o.k(6)), k3), o.k(4)))
    byte = lambda t, j: b.and_(b.lshr(t, o.k(8 * j)), o.k(0xFF))  # noqa: E731
    scales = [byte(t0, j) for j in range(4)] + [byte(t1, j) for j in range(4)]
    mins = [byte(t2, j) for j in range(4)] + [byte(t3, j) for j in range(4)]
    # (m_2sb, m_2sb+1) as two i16: against the activation sums of sub-blocks 2sb and 2sb + 1
    min_pairs = [b.or_(mins[2 * sb], b.shl(mins[2 * sb + 1], o.k(16))) for sb in range(4)]
    m4 = o.k(0x0F0F0F0F)
    for j in range(4):
        cols = _transpose(b, _load_rows(b, rows, b.add(bo, _C(_i64, 16 + 32 * j)), _V(_i32, 8)))
        for c in range(8):
            put(8 * (2 * j) + c, b.and_(cols[c], m4))
            put(8 * (2 * j + 1) + c, b.and_(b.lshr(cols[c], o.k(4)), m4))
    return dw, dminw, scales, min_pairs


def _repack_q6_k(o, rows, bo, put):
    b = o.b
    _q6_k_chunks(o, rows, bo, put)
    sc4 = _transpose(b, _load_rows(b, rows, b.add(bo, _C(_i64, 192)), _V(_i32, 4)))
    scales = [b.ashr(b.shl(sc4[j // 4], o.k(24 - 8 * (j % 4))), o.k(24)) for j in range(16)]
    # (32 * scale_2m, 32 * scale_2m+1) as two i16: against the pair (bsum_2m, bsum_2m+1)
    corr_pairs = [b.or_(b.and_(b.shl(scales[2 * m], o.k(5)), o.k(0xFFFF)), b.shl(scales[2 * m + 1], o.k(21)))
                  for m in range(8)]
    dv = _C(_V(_i16, o.L), ir.Undefined)
    for k, p in enumerate(rows):
        dv = b.insert_element(dv, _load(b, p, b.add(bo, _C(_i64, 208)), _i16), _C(_i32, k))
    dw = b.fpext(b.bitcast(dv, _V(_f16, o.L)), o.vf)
    return dw, scales, corr_pairs


def _q6_k_chunks(o, rows, bo, put):
    """ql / qh of a Q6_K super-block -> the 6-bit values (0..63) in 64 chunks, as
    dequantize_row_q6_K orders them."""
    b = o.b
    m4 = o.k(0x0F0F0F0F)
    m30 = o.k(0x30303030)
    for h in range(2):
        b1 = _transpose(b, _load_rows(b, rows, b.add(bo, _C(_i64, 64 * h)), _V(_i32, 8)))
        b2 = _transpose(b, _load_rows(b, rows, b.add(bo, _C(_i64, 64 * h + 32)), _V(_i32, 8)))
        hh = _transpose(b, _load_rows(b, rows, b.add(bo, _C(_i64, 128 + 32 * h)), _V(_i32, 8)))
        for c in range(8):
            q = [
                b.or_(b.and_(b1[c], m4), b.and_(b.shl(hh[c], o.k(4)), m30)),
                b.or_(b.and_(b2[c], m4), b.and_(b.shl(hh[c], o.k(2)), m30)),
                b.or_(b.and_(b.lshr(b1[c], o.k(4)), m4), b.and_(hh[c], m30)),
                b.or_(b.and_(b.lshr(b2[c], o.k(4)), m4), b.and_(b.lshr(hh[c], o.k(2)), m30)),
            ]
            for k in range(4):  # values 128h + 32k + 4c .. +3
                put(32 * h + 8 * k + c, q[k])


# ---------------------------------------------------------------------------------------------
# Token passes: _NT tokens against the interleaved super-block
# ---------------------------------------------------------------------------------------------

def _chunk_sums(o, get, xs, first, count):
    """Per token: per lane sum over chunks first..first+count-1 of q . y (exact int32)."""
    s = [_C(o.vi, None) for _ in xs]
    for g in range(first, first + count):
        wq = get(g)
        for t, xp in enumerate(xs):
            s[t] = o.dot(s[t], wq, o.bcast_i32(xp, _C(_i64, 4 + 4 * g)))
    return s


def _pass_q4_k(o, get, hdr, xs, accs):
    b = o.b
    dw, dminw, scales, min_pairs = hdr
    acc, accm = accs
    yd = [_splat(b, _load(b, xp, _C(_i64, 0), _f32), o.L) for xp in xs]
    d = [b.fmul(dw, y) for y in yd]
    dm = [b.fmul(dminw, y) for y in yd]
    # activation sums of the 32-value sub-blocks (|sum| <= 32 * 128: an i16), as i16 pairs per sb
    q8s = []
    for xp in xs:
        bs = _load(b, xp, _C(_i64, 260), _V(_i16, 16))
        q8s.append(b.bitcast(b.add(_shuf(b, bs, bs, range(0, 16, 2)), _shuf(b, bs, bs, range(1, 16, 2))), _V(_i32, 4)))
    for sb in range(4):
        isum = None
        for s in (2 * sb, 2 * sb + 1):
            sums = _chunk_sums(o, get, xs, 8 * s, 8)
            p = [b.mul(v, scales[s]) for v in sums]
            isum = p if isum is None else [b.add(u, v) for u, v in zip(isum, p)]
        for t, xp in enumerate(xs):
            acc[t] = b.call(o.fma, [b.sitofp(isum[t], o.vf), d[t], acc[t]])
            imin = o.madd16(min_pairs[sb], _shuf(b, q8s[t], q8s[t], [sb] * o.L))
            accm[t] = b.call(o.fma, [b.sitofp(imin, o.vf), dm[t], accm[t]])


def _pass_q6_k(o, get, hdr, xs, accs):
    b = o.b
    dw, scales, corr_pairs = hdr
    (acc,) = accs
    isum = None
    for j in range(16):
        sums = _chunk_sums(o, get, xs, 4 * j, 4)
        p = [b.mul(v, scales[j]) for v in sums]
        isum = p if isum is None else [b.add(u, v) for u, v in zip(isum, p)]
    for t, xp in enumerate(xs):
        corr = None
        for m in range(8):
            c = o.madd16(corr_pairs[m], o.bcast_i32(xp, _C(_i64, 260 + 4 * m)))
            corr = c if corr is None else b.add(corr, c)
        res = b.fmul(b.sitofp(b.sub(isum[t], corr), o.vf), dw)
        acc[t] = b.call(o.fma, [res, _splat(b, _load(b, xp, _C(_i64, 0), _f32), o.L), acc[t]])


# ---------------------------------------------------------------------------------------------
# The tile: super-blocks outer (interleave once), token groups inner, accumulators on the stack
# ---------------------------------------------------------------------------------------------

def _make_tile(block_bytes, repack, token_pass, n_acc, lanes, vnni, n_t=_NT):
    def codegen(context, builder, signature, args):
        b = builder
        i64 = lambda k: context.cast(b, args[k], signature.args[k], types.int64)  # noqa: E731
        woff, wstride, nvalid, xoff, xstride, ntok, nbv, ooff, ostride = (i64(k) for k in (1, 2, 3, 5, 6, 7, 8, 10, 11))
        wp = context.make_array(signature.args[0])(context, b, args[0]).data
        xp = context.make_array(signature.args[4])(context, b, args[4]).data
        op = context.make_array(signature.args[9])(context, b, args[9]).data
        o = _LaneOps(b, lanes, vnni)
        one = _C(_i64, 1)
        last = b.sub(nvalid, one)
        rows = []
        for k in range(lanes):
            kk = b.select(b.icmp_signed("<", _C(_i64, k), nvalid), _C(_i64, k), last)
            rows.append(b.gep(wp, [b.add(woff, b.mul(wstride, kk))], inbounds=True))
        scratch = cgutils.alloca_once(b, ir.ArrayType(o.vi, _N_CHUNKS))
        bufs = [cgutils.alloca_once(b, ir.ArrayType(o.vf, KQ_MAX_TOK)) for _ in range(n_acc)]
        slot = lambda buf, t: b.gep(buf, [_C(_i32, 0), t], inbounds=True)  # noqa: E731
        n_groups = b.sdiv(b.add(ntok, _C(_i64, n_t - 1)), _C(_i64, n_t))
        with cgutils.for_range(b, b.mul(n_groups, _C(_i64, n_t))) as zl:
            for buf in bufs:
                b.store(_C(o.vf, None), slot(buf, zl.index))
        with cgutils.for_range(b, nbv) as sbl:
            bo = b.mul(sbl.index, _C(_i64, block_bytes))
            xo = b.mul(sbl.index, _C(_i64, 292))

            def put(g, v):
                b.store(v, slot(scratch, _C(_i64, g)))

            def get(g):
                return b.load(slot(scratch, _C(_i64, g)))

            hdr = repack(o, rows, bo, put)
            with cgutils.for_range(b, n_groups) as tgl:
                xs, slots = [], []
                for t in range(n_t):
                    s = b.add(b.mul(tgl.index, _C(_i64, n_t)), _C(_i64, t))
                    tok = b.select(b.icmp_signed("<", s, ntok), s, b.sub(ntok, one))
                    xs.append(b.gep(xp, [b.add(b.add(xoff, b.mul(tok, xstride)), xo)], inbounds=True))
                    slots.append(s)
                accs = [[b.load(slot(buf, s)) for s in slots] for buf in bufs]
                token_pass(o, get, hdr, xs, accs)
                for buf, acc in zip(bufs, accs):
                    for s, v in zip(slots, acc):
                        b.store(v, slot(buf, s))
        full = b.icmp_signed("==", nvalid, _C(_i64, lanes))
        with cgutils.for_range(b, ntok) as tl:
            t = tl.index
            v = b.load(slot(bufs[0], t))
            if n_acc == 2:
                v = b.fsub(v, b.load(slot(bufs[1], t)))
            base = b.add(ooff, b.mul(t, ostride))
            with b.if_else(full) as (then, otherwise):
                with then:
                    dst = b.bitcast(b.gep(op, [base], inbounds=True), o.vf.as_pointer())
                    b.store(v, dst, align=4)
                with otherwise:
                    for k in range(lanes):
                        with b.if_then(b.icmp_signed("<", _C(_i64, k), nvalid)):
                            b.store(b.extract_element(v, _C(_i32, k)),
                                    b.gep(op, [b.add(base, _C(_i64, k))], inbounds=True))
        return context.get_dummy_value()

    @intrinsic
    def tile(typingctx, w, woff, w_stride, n_valid, x, xoff, x_stride, n_tok, nb, out, ooff, o_stride):
        sig = types.void(w, woff, w_stride, n_valid, x, xoff, x_stride, n_tok, nb, out, ooff, o_stride)
        return sig, codegen

    return tile


def make_tiles(lanes, vnni, n_t=_NT):
    """(tile_q4_k_r8, tile_q6_k_tiled) with the given lane count (16: AVX-512 VNNI; 8: AVX2, with
    vpdpbusd if vnni else vpmaddubsw + vpmaddwd). Tests build the variants this host can run."""
    return (_make_tile(144, _repack_q4_k, _pass_q4_k, 2, lanes, vnni, n_t),
            _make_tile(210, _repack_q6_k, _pass_q6_k, 1, lanes, vnni, n_t))


tile_q4_k_r8, tile_q6_k_tiled = make_tiles(KQ_LANES, HAS_KQ16 or HAS_VNNI)


@njit(cache=True, nogil=True)
def prefill_q4_k_r8(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
    """tile[(t - t0) * tile_stride + r - r0] = dot_q4_k_r8_gemm(row r, token t) for r0 <= r < r1,
    t0 <= t < t4, KQ_LANES rows x up to KQ_MAX_TOK tokens per tile."""
    for r in range(r0, r1, KQ_LANES):
        nv = min(KQ_LANES, r1 - r)
        for t in range(t0, t4, KQ_MAX_TOK):
            tile_q4_k_r8(w, r * row_bytes, row_bytes, nv, xq, t * x_row_bytes, x_row_bytes,
                         min(KQ_MAX_TOK, t4 - t), nb, tile, (t - t0) * tile_stride + r - r0, tile_stride)


@njit(cache=True, nogil=True, inline="always")
def prefill_q6_k_tiled(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
    """prefill_q4_k_r8 for Q6_K with the float steps of llama.cpp's tiled kernel (dot_q6_k_tiled)."""
    for r in range(r0, r1, KQ_LANES):
        nv = min(KQ_LANES, r1 - r)
        for t in range(t0, t4, KQ_MAX_TOK):
            tile_q6_k_tiled(w, r * row_bytes, row_bytes, nv, xq, t * x_row_bytes, x_row_bytes,
                            min(KQ_MAX_TOK, t4 - t), nb, tile, (t - t0) * tile_stride + r - r0, tile_stride)


@njit(cache=True, nogil=True, inline="always")
def rows_q6_k_tiled(w, row_bytes, r0, r1, xq, x_row_bytes, n_tokens, out, n_rows, nb):
    """out[t * n_rows + r] = dot_q6_k_tiled(row r, token t) for r0 <= r < r1 and every token
    (the tiled steps take any token count): each tile writes its 16 outputs of a token at once."""
    for r in range(r0, r1, KQ_LANES):
        nv = min(KQ_LANES, r1 - r)
        for t in range(0, n_tokens, KQ_MAX_TOK):
            tile_q6_k_tiled(w, r * row_bytes, row_bytes, nv, xq, t * x_row_bytes, x_row_bytes,
                            min(KQ_MAX_TOK, n_tokens - t), nb, out, t * n_rows + r, n_rows)
