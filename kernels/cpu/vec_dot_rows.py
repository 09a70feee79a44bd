"""Row loops of kernels.cpu.matmul: the per-type dot dispatch and the loops over weight rows.

Picks, per weight type, the SIMD dot of kernels.cpu.simd (hosts with AVX2/FMA/F16C) or the
portable loop of kernels.cpu.vec_dot (same numbers), and runs it over a range of rows:
- decode: one token, two rows per dot (Q8_0 on AVX-512 VNNI hosts: 8 rows per
  kernels.cpu.simd_wide tile first);
- prefill: groups of 4 tokens per weight-block decode; for the 32-value block types, on AVX-512
  VNNI hosts 4 rows x 8 tokens per simd_wide tile first, then (remaining rows, or hosts without
  it) 2 rows x 8 tokens (Q4_0 / Q5_0 / Q8_0) or 2 rows x 4 tokens (Q4_1 / Q5_1) per ymm dot: the
  fastest shapes measured on Zen 4 (more accumulators spill).
The type test sits outside each loop, which keeps every loop as fast as a single-type kernel.
Internal kinds _Q4_K_R8_GEMV / _Q4_K_R8_GEMM stand for Q4_K with the float steps of llama.cpp's
repacked x86 kernels (see llama_cpp_kinds), Q6_K_TILED for Q6_K with those of its tiled prompt
kernel (ggml-cpu/tiled); their prompt tiles (kernels.cpu.simd_kquant) take 16 rows (8 without
AVX-512 VNNI) as the lanes of one register, like llama.cpp's.
"""

from numba import njit

from kernels.cpu import simd, simd_kquant, simd_wide, vec_dot

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q4_0 = 2
GGML_TYPE_Q4_1 = 3
GGML_TYPE_Q5_0 = 6
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8
GGML_TYPE_Q8_1 = 9
GGML_TYPE_Q4_K = 12
GGML_TYPE_Q5_K = 13
GGML_TYPE_Q6_K = 14
GGML_TYPE_Q8_K = 15
GGML_TYPE_IQ4_NL = 20
GGML_TYPE_IQ4_XS = 23
GGML_TYPE_BF16 = 30
# internal kinds: Q4_K with the float steps of llama.cpp's repacked x86 kernels (repack.cpp)
_Q4_K_R8_GEMV = 1012
_Q4_K_R8_GEMM = 2012
# internal kind: Q6_K with the float steps of llama.cpp's tiled prompt kernel (ggml-cpu/tiled)
Q6_K_TILED = 3014


if simd.HAS_AVX2:
    _dot_q4_k_r8_gemv, _dot_q4_k_r8_gemm = simd.dot_q4_k_r8_gemv, simd.dot_q4_k_r8_gemm
    _dot_q6_k_tiled = simd.dot_q6_k_tiled
    _dot_q4_0, _dot_q4_1 = simd.dot_q4_0_q8_0, simd.dot_q4_1_q8_1
    _dot_q5_0, _dot_q5_1 = simd.dot_q5_0_q8_0, simd.dot_q5_1_q8_1
    _dot_q8_0, _dot_q4_k, _dot_q6_k = simd.dot_q8_0_q8_0, simd.dot_q4_k_q8_k, simd.dot_q6_k_q8_k
    _dot_q5_k = simd.dot_q5_k_q8_k
    _dot_f32, _dot_f16, _dot_bf16 = simd.dot_f32_f32, simd.dot_f16_f16, simd.dot_bf16_bf16
else:
    _dot_q4_k_r8_gemv, _dot_q4_k_r8_gemm = vec_dot.vec_dot_q4_k_r8_gemv, vec_dot.vec_dot_q4_k_r8_gemm
    _dot_q6_k_tiled = vec_dot.vec_dot_q6_k_tiled
    _dot_q4_0, _dot_q4_1 = vec_dot.vec_dot_q4_0_q8_0, vec_dot.vec_dot_q4_1_q8_1
    _dot_q5_0, _dot_q5_1 = vec_dot.vec_dot_q5_0_q8_0, vec_dot.vec_dot_q5_1_q8_1
    _dot_q8_0, _dot_q4_k, _dot_q6_k = vec_dot.vec_dot_q8_0_q8_0, vec_dot.vec_dot_q4_k_q8_k, vec_dot.vec_dot_q6_k_q8_k
    _dot_q5_k = vec_dot.vec_dot_q5_k_q8_k
    _dot_f32, _dot_f16, _dot_bf16 = vec_dot.vec_dot_f32_f32, vec_dot.vec_dot_f16_f16, vec_dot.vec_dot_bf16_bf16


@njit(cache=True, nogil=True, inline="always")
def _dot(ggml_type, w, woff, xq, xoff, nb):
    if ggml_type == _Q4_K_R8_GEMV:
        return _dot_q4_k_r8_gemv(w, woff, xq, xoff, nb)
    if ggml_type == _Q4_K_R8_GEMM:
        return _dot_q4_k_r8_gemm(w, woff, xq, xoff, nb)
    if ggml_type == Q6_K_TILED:
        return _dot_q6_k_tiled(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q4_1:
        return _dot_q4_1(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q4_K:
        return _dot_q4_k(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q6_K:
        return _dot_q6_k(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q5_K:
        return _dot_q5_k(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_IQ4_NL:
        return vec_dot.vec_dot_iq4_nl_q8_0(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_IQ4_XS:
        return vec_dot.vec_dot_iq4_xs_q8_k(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q8_0:
        return _dot_q8_0(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q5_0:
        return _dot_q5_0(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q4_0:
        return _dot_q4_0(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_Q5_1:
        return _dot_q5_1(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_F16:
        return _dot_f16(w, woff, xq, xoff, nb)
    if ggml_type == GGML_TYPE_BF16:
        return _dot_bf16(w, woff, xq, xoff, nb)
    return _dot_f32(w, woff, xq, xoff, nb)


@njit(cache=True, nogil=True)
def llama_cpp_kinds(ggml_type, n_rows):
    """(kind for gemv tokens, kind for gemm tokens) that reproduce llama.cpp's x86 AVX2 CPU path.

    ggml_repack_get_optimal_repack_type repacks Q4_K weights whose row count is a multiple of 8
    (CPU_REPACK buffer, on by default); their matmul runs ggml_gemm_q4_K_8x8_q8_K for the first
    n_tokens - n_tokens % 4 tokens (when n_tokens > 3) and ggml_gemv_q4_K_8x8_q8_K for the rest.
    Every other type (and Q4_K otherwise) uses vec_dot for every token.
    """
    if ggml_type == GGML_TYPE_Q4_K and n_rows % 8 == 0:
        return _Q4_K_R8_GEMV, _Q4_K_R8_GEMM
    return ggml_type, ggml_type


@njit(cache=True, nogil=True, inline="always")
def _dot4_each(ggml_type, w, woff, xq, xoff, xstride, nb):
    return (_dot(ggml_type, w, woff, xq, xoff, nb), _dot(ggml_type, w, woff, xq, xoff + xstride, nb),
            _dot(ggml_type, w, woff, xq, xoff + 2 * xstride, nb),
            _dot(ggml_type, w, woff, xq, xoff + 3 * xstride, nb))


@njit(cache=True, nogil=True, inline="always")
def _dot2r_each(ggml_type, w, woff, wstride, xq, xoff, nb):
    return _dot(ggml_type, w, woff, xq, xoff, nb), _dot(ggml_type, w, woff + wstride, xq, xoff, nb)



# ---------------------------------------------------------------------------------------------
# Row loops with the type dispatch outside the loop: a per-row call into the whole dispatcher
# (every type's SIMD body inlined) runs ~30% slower than a loop over one type's dot.
# ---------------------------------------------------------------------------------------------

if simd.HAS_AVX2:
    @njit(cache=True, nogil=True, inline="always")
    def decode_rows(kind, w, row_bytes, r0, r1, xq, xoff, out, ooff, nb):
        """out[ooff + r] = dot(W row r, activation at xq[xoff:]) for r in r0..r1-1, two rows per
        SIMD dot (independent FMA chains)."""
        r = r0
        if kind == GGML_TYPE_Q4_1:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q4_1_q8_1(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == _Q4_K_R8_GEMV:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q4_k_r8_gemv(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q4_K:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q4_k_q8_k(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q6_K:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q6_k_q8_k(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q8_0:
            r = _decode_wide_q8_0(w, row_bytes, r0, r1, xq, xoff, out, ooff, nb)
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q8_0_q8_0(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q5_0:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q5_0_q8_0(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q4_0:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q4_0_q8_0(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q5_1:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q5_1_q8_1(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        elif kind == GGML_TYPE_Q5_K:
            while r + 2 <= r1:
                out[ooff + r], out[ooff + r + 1] = simd.dot2r_q5_k_q8_k(w, r * row_bytes, row_bytes, xq, xoff, 0, nb)
                r += 2
        while r < r1:
            out[ooff + r] = _dot(kind, w, r * row_bytes, xq, xoff, nb)
            r += 1

    @njit(cache=True, nogil=True, inline="always")
    def prefill_rows(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        """tile[(t - t0) * tile_stride + r - r0] = dot(row r, token t) for r in r0..r1-1 and t in
        t0..t4-1 (t4 - t0 a multiple of 4): each weight block decoded once for 4 or more tokens."""
        r_wide = _prefill_wide(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        if kind == GGML_TYPE_Q4_1:
            r = r_wide
            while r + 2 <= r1:
                for t in range(t0, t4, 4):
                    _store2x4(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x4_q4_1_q8_1(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                r += 2
            if r < r1:
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q4_1_q8_1(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == _Q4_K_R8_GEMM:
            simd_kquant.prefill_q4_k_r8(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        elif kind == Q6_K_TILED:
            simd_kquant.prefill_q6_k_tiled(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        elif kind == GGML_TYPE_Q4_K:
            for r in range(r0, r1):
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q4_k_q8_k(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == GGML_TYPE_Q6_K:
            for r in range(r0, r1):
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q6_k_q8_k(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == GGML_TYPE_Q8_0:
            r = r_wide
            while r + 2 <= r1:
                t = t0
                while t + 8 <= t4:
                    _store2x8(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x8_q8_0_q8_0(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                    t += 8
                if t < t4:
                    _store2x4(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x4_q8_0_q8_0(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                r += 2
            if r < r1:
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q8_0_q8_0(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == GGML_TYPE_Q5_0:
            r = r_wide
            while r + 2 <= r1:
                t = t0
                while t + 8 <= t4:
                    _store2x8(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x8_q5_0_q8_0(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                    t += 8
                if t < t4:
                    _store2x4(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x4_q5_0_q8_0(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                r += 2
            if r < r1:
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q5_0_q8_0(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == GGML_TYPE_Q4_0:
            r = r_wide
            while r + 2 <= r1:
                t = t0
                while t + 8 <= t4:
                    _store2x8(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x8_q4_0_q8_0(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                    t += 8
                if t < t4:
                    _store2x4(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x4_q4_0_q8_0(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                r += 2
            if r < r1:
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q4_0_q8_0(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == GGML_TYPE_Q5_1:
            r = r_wide
            while r + 2 <= r1:
                for t in range(t0, t4, 4):
                    _store2x4(tile, (t - t0) * tile_stride + r - r0, tile_stride, simd.dot2x4_q5_1_q8_1(
                        w, r * row_bytes, row_bytes, xq, t * x_row_bytes, x_row_bytes, nb))
                r += 2
            if r < r1:
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q5_1_q8_1(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        elif kind == GGML_TYPE_Q5_K:
            for r in range(r0, r1):
                for t in range(t0, t4, 4):
                    k = (t - t0) * tile_stride + r - r0
                    tile[k], tile[k + tile_stride], tile[k + 2 * tile_stride], tile[k + 3 * tile_stride] = \
                        simd.dot4_q5_k_q8_k(w, r * row_bytes, 0, xq, t * x_row_bytes, x_row_bytes, nb)
        else:
            _prefill_rows_each(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
else:
    @njit(cache=True, nogil=True, inline="always")
    def decode_rows(kind, w, row_bytes, r0, r1, xq, xoff, out, ooff, nb):
        for r in range(r0, r1):
            out[ooff + r] = _dot(kind, w, r * row_bytes, xq, xoff, nb)

    @njit(cache=True, nogil=True, inline="always")
    def prefill_rows(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        _prefill_rows_each(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)


if simd_wide.HAS_WIDE:
    @njit(cache=True, nogil=True, inline="always")
    def _wide_loop(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        """_prefill_wide's loops for one kind (a constant in each _wide_<type> below)."""
        r = r0
        while r + 4 <= r1:
            k0 = r - r0
            t = t0
            while t + 8 <= t4:
                k = (t - t0) * tile_stride + k0
                xo = t * x_row_bytes
                if kind == GGML_TYPE_Q4_1:
                    simd_wide.tile_q4_1(w, r * row_bytes, row_bytes, xq, xo, x_row_bytes, nb, tile, k, tile_stride)
                elif kind == GGML_TYPE_Q5_0:
                    simd_wide.tile_q5_0(w, r * row_bytes, row_bytes, xq, xo, x_row_bytes, nb, tile, k, tile_stride)
                elif kind == GGML_TYPE_Q8_0:
                    simd_wide.tile_q8_0(w, r * row_bytes, row_bytes, xq, xo, x_row_bytes, nb, tile, k, tile_stride)
                elif kind == GGML_TYPE_Q4_0:
                    simd_wide.tile_q4_0(w, r * row_bytes, row_bytes, xq, xo, x_row_bytes, nb, tile, k, tile_stride)
                elif kind == GGML_TYPE_Q5_1:
                    simd_wide.tile_q5_1(w, r * row_bytes, row_bytes, xq, xo, x_row_bytes, nb, tile, k, tile_stride)
                else:
                    return r0
                t += 8
            if t < t4:  # 4 tokens
                for rr in range(r, r + 4, 2):
                    k = (t - t0) * tile_stride + rr - r0
                    wo = rr * row_bytes
                    xo = t * x_row_bytes
                    if kind == GGML_TYPE_Q4_1:
                        _store2x4(tile, k, tile_stride, simd.dot2x4_q4_1_q8_1(w, wo, row_bytes, xq, xo, x_row_bytes, nb))
                    elif kind == GGML_TYPE_Q5_0:
                        _store2x4(tile, k, tile_stride, simd.dot2x4_q5_0_q8_0(w, wo, row_bytes, xq, xo, x_row_bytes, nb))
                    elif kind == GGML_TYPE_Q8_0:
                        _store2x4(tile, k, tile_stride, simd.dot2x4_q8_0_q8_0(w, wo, row_bytes, xq, xo, x_row_bytes, nb))
                    elif kind == GGML_TYPE_Q4_0:
                        _store2x4(tile, k, tile_stride, simd.dot2x4_q4_0_q8_0(w, wo, row_bytes, xq, xo, x_row_bytes, nb))
                    elif kind == GGML_TYPE_Q5_1:
                        _store2x4(tile, k, tile_stride, simd.dot2x4_q5_1_q8_1(w, wo, row_bytes, xq, xo, x_row_bytes, nb))
                    else:
                        return r0
            r += 4
        return r

    # One small compiled function per type, each with its loop over tiles: inlined into the
    # generic row driver (every kind's branch in one large function) the same tiles ran ~20%
    # slower (plans/perf.md section 7.2).
    @njit(cache=True, nogil=True)
    def _wide_q4_1(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        return _wide_loop(GGML_TYPE_Q4_1, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)

    @njit(cache=True, nogil=True)
    def _wide_q5_0(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        return _wide_loop(GGML_TYPE_Q5_0, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)

    @njit(cache=True, nogil=True)
    def _wide_q8_0(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        return _wide_loop(GGML_TYPE_Q8_0, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)

    @njit(cache=True, nogil=True)
    def _wide_q4_0(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        return _wide_loop(GGML_TYPE_Q4_0, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)

    @njit(cache=True, nogil=True)
    def _wide_q5_1(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        return _wide_loop(GGML_TYPE_Q5_1, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)

    @njit(cache=True, nogil=True, inline="always")
    def _prefill_wide(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        """prefill_rows for the first rows in groups of 4 (4 rows x 8 tokens per AVX-512 tile,
        kernels.cpu.simd_wide; a last group of 4 tokens as two 2 x 4 dots); returns the first
        row left to the caller (r1 - r0 < 4 rows, or all rows for other kinds)."""
        if kind == GGML_TYPE_Q4_1:
            return _wide_q4_1(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        if kind == GGML_TYPE_Q5_0:
            return _wide_q5_0(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        if kind == GGML_TYPE_Q8_0:
            return _wide_q8_0(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        if kind == GGML_TYPE_Q4_0:
            return _wide_q4_0(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        if kind == GGML_TYPE_Q5_1:
            return _wide_q5_1(w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb)
        return r0

    @njit(cache=True, nogil=True, inline="always")
    def _decode_wide_q8_0(w, row_bytes, r0, r1, xq, xoff, out, ooff, nb):
        """Q8_0 decode rows in groups of 8 (kernels.cpu.simd_wide.tile8r_q8_0); returns the
        first row left (r1 - r < 8)."""
        r = r0
        while r + 8 <= r1:
            simd_wide.tile8r_q8_0(w, r * row_bytes, row_bytes, xq, xoff, 0, nb, out, ooff + r, 1)
            r += 8
        return r
else:
    @njit(cache=True, nogil=True, inline="always")
    def _prefill_wide(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
        return r0

    @njit(cache=True, nogil=True, inline="always")
    def _decode_wide_q8_0(w, row_bytes, r0, r1, xq, xoff, out, ooff, nb):
        return r0


@njit(cache=True, nogil=True, inline="always")
def _store2x4(tile, k, stride, v):
    """tile[k + t * stride] = v[t] (row r), tile[k + 1 + t * stride] = v[4 + t] (row r + 1)."""
    tile[k], tile[k + stride], tile[k + 2 * stride], tile[k + 3 * stride] = v[0], v[1], v[2], v[3]
    tile[k + 1], tile[k + 1 + stride], tile[k + 1 + 2 * stride], tile[k + 1 + 3 * stride] = v[4], v[5], v[6], v[7]


@njit(cache=True, nogil=True, inline="always")
def _store2x8(tile, k, stride, v):
    """tile[k + t * stride] = v[t] (row r), tile[k + 1 + t * stride] = v[8 + t] (row r + 1)."""
    tile[k], tile[k + stride], tile[k + 2 * stride], tile[k + 3 * stride] = v[0], v[1], v[2], v[3]
    tile[k + 4 * stride], tile[k + 5 * stride], tile[k + 6 * stride], tile[k + 7 * stride] = v[4], v[5], v[6], v[7]
    k += 1
    tile[k], tile[k + stride], tile[k + 2 * stride], tile[k + 3 * stride] = v[8], v[9], v[10], v[11]
    tile[k + 4 * stride], tile[k + 5 * stride], tile[k + 6 * stride], tile[k + 7 * stride] = v[12], v[13], v[14], v[15]


@njit(cache=True, nogil=True)
def _prefill_rows_each(kind, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, tile_stride, nb):
    for r in range(r0, r1):
        for t in range(t0, t4):
            tile[(t - t0) * tile_stride + r - r0] = _dot(kind, w, r * row_bytes, xq, t * x_row_bytes, nb)
