"""Matrix times activations for GGML weights: out = W @ x, with llama.cpp's CPU numerics.

Follows ggml_compute_forward_mul_mat (ggml/src/ggml-cpu/ggml-cpu.c): each activation row is first
converted to the weight type's `vec_dot_type` (kernels.cpu.q8: Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL,
Q8_1 for Q4_1/Q5_1, Q8_K for Q4_K/Q5_K/Q6_K/IQ4_XS, F16 / BF16 / F32 for themselves), then every
output is the row dot `ggml_vec_dot_<type>` of arch/x86/quants.c (AVX2 path): integer block
dots, float scaling per block. For Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_NL and
IQ4_XS the result is bit-identical to llama.cpp (proved against parity_fixtures/matmul; IQ4_NL
and IQ4_XS run plain @njit loops, without SIMD). Q4_K weights with a multiple of 8 rows follow
llama.cpp's repacked kernels instead, as its x86 AVX2 builds do by default (repack.cpp
gemv/gemm_q4_K_8x8_q8_K: same integer sums, other float steps; see llama_cpp_kinds).
llamafile's sgemm, which llama.cpp uses for Q4_0/Q5_0/Q8_0 prompts, gives the same numbers as
vec_dot. F16 weights follow ggml_vec_dot_f16 of llama.cpp's AVX-512 build (16-lane accumulators,
double tail; bit-exact with the llama-cpp-python build used for the fixtures); for prompts
(n_tokens >= 2) llama.cpp routes F16 through llamafile's tinyBLAS, another float order. Not
mirrored: llama.cpp's repacked Q4_0 / IQ4_NL kernels (weights with rows % 8 == 0; same integer
sums), F32 / BF16 float orders (ours: 4 x 8 float32 lanes). Those differ by ~1e-6 relative.

The weight is read in its GGUF block layout. Decode (fewer than 4 tokens) takes two weight rows
per SIMD dot (independent FMA chains; Q8_0: 8 rows per AVX-512 tile, kernels.cpu.simd_wide) with
a linear software prefetch a few rows ahead, so large matrices stream near memory speed. Prefill
decodes each weight block once for 4 or 8 tokens (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 on AVX-512 VNNI hosts:
4 rows x 8 tokens per tile, two rows per 512-bit register) and keeps a block of 64 weight rows
against a tile of 32 tokens. Q6_K prompts of >= 8 tokens follow llama.cpp's tiled kernel
(matmul_q6_k_tiled_rows). Prompts of those and of the repacked Q4_K run kernels.cpu.simd_kquant
tiles: 16 weight rows (8 without AVX-512 VNNI) as the lanes of one register, each super-block
interleaved once for all the tile's tokens, as llama.cpp's own kernels lay out their weights.
Every output keeps its own accumulators, so the numbers never depend on the tiling or the thread
count.

Other types (Q2_K, Q3_K, IQ1/IQ2/IQ3, TQ*, MXFP4, NVFP4) take a slower path: x is quantized to Q8_K
(Q8_0 for MXFP4/NVFP4) exactly as llama.cpp does and turned back into float32 values d*q;
each weight row is dequantized (kernels.cpu.quants.dequantize_row) and dotted with them in
float32, so only the float rounding differs from llama.cpp's integer dots (<= 1e-5 of sum|terms|).

Python entry point (checked, raises ValueError):
    matmul(w, ggml_type, n_rows, n_cols, x, out) -> out
        w: uint8[n_rows * row_nbytes]; x: float32 (n_cols,) or (n_tokens, n_cols);
        out: float32 (n_rows,) or (n_tokens, n_rows).

njit entry points for compiled decode steps (no checks; parallel over rows via prange):
    has_fast_path(ggml_type) -> bool                 True for the types matmul_q handles
    act_nbytes(ggml_type, n_tokens, n_cols) -> int   bytes of the converted activation scratch
    quantize_act(x, ggml_type, n_tokens, n_cols, xq) x: float32[n_tokens * n_cols] -> xq: uint8;
        convert once, then reuse xq for every weight that shares x and its type (q/k/v, gate/up)
    matmul_q(w, ggml_type, n_rows, n_cols, xq, n_tokens, out)
        out: float32[n_tokens * n_rows], token-major (out[t * n_rows + r]); may be an arena view
    matmul_q_rows(w, ggml_type, n_rows, n_cols, xq, n_tokens, out, row_begin, row_end)
        the same for a row range on the calling thread (no parallel launch: a step can put
        several matmuls in one prange; a launch costs ~5-10 us, a 576x576 Q4_1 matvec ~15 us)
    matmul_q6_k_tiled_rows(w, n_rows, n_cols, xq, n_tokens, out, row_begin, row_end)
        Q6_K rows with the float steps of llama.cpp's tiled prompt kernel (ggml-cpu/tiled)
    quantize_act_float(x, q8k, n_tokens, n_cols, xq, xd) and
    matmul_dequant(w, ggml_type, n_rows, n_cols, xd, n_tokens, out, buf)
        the slow path: xq: uint8 Q8_K (q8k) / Q8_0 scratch, xd: float32[n_tokens * n_cols];
        buf: float32[numba.get_num_threads() * n_cols]; returns nonzero for an unknown type.
    llama_cpp_kinds(ggml_type, n_rows)               which llama.cpp kernel each token follows
All sizes are int64; w and xq are C-contiguous uint8, x / out float32. The caller guarantees
n_cols is a multiple of the block size and every buffer is large enough (see `check_args`).
"""

import numpy as np
from numba import get_num_threads, get_thread_id, njit, prange

from kernels.cpu import simd, simd_kquant, simd_wide
from kernels.cpu.q8 import (
    fp16_to_fp32,
    quantize_row_bf16, quantize_row_f16, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_K,
)
from kernels.cpu.quants import dequantize_row
from kernels.cpu.quants_base import TYPE_TRAITS, row_nbytes, type_name
from kernels.cpu.vec_dot_rows import (
    GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_F32, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS, GGML_TYPE_Q4_0,
    GGML_TYPE_Q4_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    GGML_TYPE_Q8_0, GGML_TYPE_Q8_1, GGML_TYPE_Q8_K, Q6_K_TILED, decode_rows, llama_cpp_kinds,
    prefill_rows,
)

# Kernels inline code of kernels.cpu.simd / simd_wide / simd_kquant / vec_dot / vec_dot_rows / q8,
# whose edits do not invalidate this module's cache: changing the SIMD IR bumps simd.SIMD_VERSION,
# simd_wide.WIDE_VERSION or simd_kquant.KQUANT_VERSION, which forces an edit here; after editing
# the others, clear kernels/cpu/__pycache__ (CI starts clean). kernels.cpu.step caches callers of
# this module too.
_SIMD_VERSION = 15
_WIDE_VERSION = 3
assert simd.SIMD_VERSION == _SIMD_VERSION, "kernels.cpu.simd changed: update _SIMD_VERSION"
assert simd_wide.WIDE_VERSION == _WIDE_VERSION, "kernels.cpu.simd_wide changed: update _WIDE_VERSION"
_KQUANT_VERSION = 3
assert simd_kquant.KQUANT_VERSION == _KQUANT_VERSION, "kernels.cpu.simd_kquant changed: update _KQUANT_VERSION"

# weight type -> its vec_dot_type (ggml-cpu.c type_traits_cpu), for the fast-path types
VEC_DOT_TYPE = {
    GGML_TYPE_F32: GGML_TYPE_F32, GGML_TYPE_F16: GGML_TYPE_F16, GGML_TYPE_BF16: GGML_TYPE_BF16,
    GGML_TYPE_Q4_0: GGML_TYPE_Q8_0, GGML_TYPE_Q5_0: GGML_TYPE_Q8_0, GGML_TYPE_Q8_0: GGML_TYPE_Q8_0,
    GGML_TYPE_Q4_1: GGML_TYPE_Q8_1, GGML_TYPE_Q5_1: GGML_TYPE_Q8_1,
    GGML_TYPE_Q4_K: GGML_TYPE_Q8_K, GGML_TYPE_Q5_K: GGML_TYPE_Q8_K, GGML_TYPE_Q6_K: GGML_TYPE_Q8_K,
    GGML_TYPE_IQ4_NL: GGML_TYPE_Q8_0, GGML_TYPE_IQ4_XS: GGML_TYPE_Q8_K,
}
FAST_TYPES = frozenset(VEC_DOT_TYPE)

_ROWS_PER_CHUNK = 16   # rows per prange work item (decode)
_TILE_ROWS = 64        # weight rows per prange work item and per output tile (prefill)
_TOKENS_PER_TILE = 32  # activation rows kept hot in L1 while a block of weight rows passes

def matmul(w: np.ndarray, ggml_type: int, n_rows: int, n_cols: int, x: np.ndarray,
           out: np.ndarray) -> np.ndarray:
    """out = W @ x for a GGML weight W (n_rows x n_cols, row-major blocks in w); returns out.

    x is float32 (n_cols,) or (n_tokens, n_cols); out is float32 (n_rows,) or (n_tokens, n_rows),
    both C-contiguous. Raises ValueError for a bad type, dtype, layout or size.
    """
    ggml_type = int(ggml_type)
    n_tokens = check_args(w, ggml_type, n_rows, n_cols, x, out)
    n_rows, n_cols = int(n_rows), int(n_cols)
    if n_tokens == 0 or n_rows == 0:
        return out
    xf, of = x.reshape(-1), out.reshape(-1)
    if ggml_type in FAST_TYPES:
        xq = np.empty(act_nbytes(ggml_type, n_tokens, n_cols), np.uint8)
        quantize_act(xf, ggml_type, n_tokens, n_cols, xq)
        matmul_q(w, ggml_type, n_rows, n_cols, xq, n_tokens, of)
    else:
        q8k = _slow_path_uses_q8_k(ggml_type)
        if n_cols % (256 if q8k else 32) != 0:
            raise ValueError(f"matmul {type_name(ggml_type)}: n_cols={n_cols} is not a multiple of "
                             f"its activation block size {256 if q8k else 32}")
        xq = np.empty(n_tokens * (n_cols // 256 * 292 if q8k else n_cols // 32 * 34), np.uint8)
        xd = np.empty(n_tokens * n_cols, np.float32)
        quantize_act_float(xf, q8k, n_tokens, n_cols, xq, xd)
        buf = np.empty(get_num_threads() * n_cols, np.float32)
        if matmul_dequant(w, ggml_type, n_rows, n_cols, xd, n_tokens, of, buf) != 0:
            raise ValueError(f"matmul: no dequantize kernel for {type_name(ggml_type)}")
    return out


def check_args(w, ggml_type, n_rows, n_cols, x, out, w_size=None) -> int:
    """Validate matmul arguments (w: uint8 numpy array, or None with its size in w_size); returns
    n_tokens. Raises ValueError. Shared with the CUDA twin."""
    ggml_type = int(ggml_type)
    if ggml_type not in TYPE_TRAITS or ggml_type in (GGML_TYPE_Q8_1, GGML_TYPE_Q8_K):
        raise ValueError(f"matmul: unsupported weight type {type_name(ggml_type)}")
    n_rows, n_cols = int(n_rows), int(n_cols)
    if n_rows < 0 or n_cols <= 0:
        raise ValueError(f"matmul: bad shape n_rows={n_rows}, n_cols={n_cols}")
    row_bytes = row_nbytes(ggml_type, n_cols)
    if w is not None:
        _check(w, np.uint8, "w")
        w_size = w.size
    if w_size != n_rows * row_bytes:
        raise ValueError(f"matmul {type_name(ggml_type)}: w holds {w_size} bytes, expected "
                         f"{n_rows * row_bytes} for {n_rows} rows of {n_cols} columns")
    _check(x, np.float32, "x")
    _check(out, np.float32, "out")
    if x.ndim == 1 and out.ndim == 1:
        n_tokens = 1
    elif x.ndim == 2 and out.ndim == 2:
        n_tokens = x.shape[0]
        if out.shape[0] != n_tokens:
            raise ValueError(f"matmul: x has {n_tokens} rows but out has {out.shape[0]}")
    else:
        raise ValueError(f"matmul: x and out must both be 1-D or both 2-D, got {x.ndim}-D and {out.ndim}-D")
    if x.shape[-1] != n_cols:
        raise ValueError(f"matmul: x has {x.shape[-1]} columns, expected n_cols={n_cols}")
    if out.shape[-1] != n_rows:
        raise ValueError(f"matmul: out has {out.shape[-1]} columns, expected n_rows={n_rows}")
    return n_tokens


def _slow_path_uses_q8_k(ggml_type):
    """True when llama.cpp's vec_dot_type for ggml_type is Q8_K (else Q8_0: IQ4_NL, MXFP4, NVFP4)."""
    return TYPE_TRAITS[ggml_type][1] == 256


def _check(a, dtype, name):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"matmul: {name} must be a C-contiguous numpy array of {np.dtype(dtype).name}")


@njit(cache=True, nogil=True)
def has_fast_path(ggml_type):
    """True when matmul_q handles ggml_type (llama.cpp's integer-dot numerics)."""
    return (ggml_type == GGML_TYPE_F32 or ggml_type == GGML_TYPE_F16 or ggml_type == GGML_TYPE_BF16
            or ggml_type == GGML_TYPE_Q4_0 or ggml_type == GGML_TYPE_Q4_1 or ggml_type == GGML_TYPE_Q5_0
            or ggml_type == GGML_TYPE_Q5_1 or ggml_type == GGML_TYPE_Q8_0 or ggml_type == GGML_TYPE_Q4_K
            or ggml_type == GGML_TYPE_Q5_K or ggml_type == GGML_TYPE_Q6_K or ggml_type == GGML_TYPE_IQ4_NL
            or ggml_type == GGML_TYPE_IQ4_XS)


@njit(cache=True, nogil=True)
def _act_layout(ggml_type):
    """(elements per block, bytes per block) of ggml_type's vec_dot_type; (0, 0) if no fast path."""
    if (ggml_type == GGML_TYPE_Q4_0 or ggml_type == GGML_TYPE_Q5_0 or ggml_type == GGML_TYPE_Q8_0
            or ggml_type == GGML_TYPE_IQ4_NL):
        return 32, 34
    if ggml_type == GGML_TYPE_Q4_1 or ggml_type == GGML_TYPE_Q5_1:
        return 32, 36
    if (ggml_type == GGML_TYPE_Q4_K or ggml_type == GGML_TYPE_Q5_K or ggml_type == GGML_TYPE_Q6_K
            or ggml_type == GGML_TYPE_IQ4_XS):
        return 256, 292
    if ggml_type == GGML_TYPE_F32:
        return 1, 4
    if ggml_type == GGML_TYPE_F16 or ggml_type == GGML_TYPE_BF16:
        return 1, 2
    return 0, 0


@njit(cache=True, nogil=True)
def _weight_layout(ggml_type):
    """(elements per block, bytes per block) of the fast-path weight types."""
    if ggml_type == GGML_TYPE_Q4_0:
        return 32, 18
    if ggml_type == GGML_TYPE_Q4_1:
        return 32, 20
    if ggml_type == GGML_TYPE_Q5_0:
        return 32, 22
    if ggml_type == GGML_TYPE_Q5_1:
        return 32, 24
    if ggml_type == GGML_TYPE_Q8_0:
        return 32, 34
    if ggml_type == GGML_TYPE_Q4_K:
        return 256, 144
    if ggml_type == GGML_TYPE_Q5_K:
        return 256, 176
    if ggml_type == GGML_TYPE_Q6_K:
        return 256, 210
    if ggml_type == GGML_TYPE_IQ4_NL:
        return 32, 18
    if ggml_type == GGML_TYPE_IQ4_XS:
        return 256, 136
    if ggml_type == GGML_TYPE_F32:
        return 1, 4
    if ggml_type == GGML_TYPE_F16 or ggml_type == GGML_TYPE_BF16:
        return 1, 2
    return 0, 0


@njit(cache=True, nogil=True)
def act_nbytes(ggml_type, n_tokens, n_cols):
    """Bytes of n_tokens activation rows converted to ggml_type's vec_dot_type (0: no fast path)."""
    qk, qb = _act_layout(ggml_type)
    if qk == 0:
        return 0
    return n_tokens * (n_cols // qk) * qb


@njit(cache=True, nogil=True)
def quantize_act(x, ggml_type, n_tokens, n_cols, xq):
    """Convert x: float32[n_tokens * n_cols] to ggml_type's vec_dot_type in xq: uint8[act_nbytes]."""
    if (ggml_type == GGML_TYPE_Q4_0 or ggml_type == GGML_TYPE_Q5_0 or ggml_type == GGML_TYPE_Q8_0
            or ggml_type == GGML_TYPE_IQ4_NL):
        quantize_row_q8_0(x, n_tokens, n_cols, xq)
    elif ggml_type == GGML_TYPE_Q4_1 or ggml_type == GGML_TYPE_Q5_1:
        quantize_row_q8_1(x, n_tokens, n_cols, xq)
    elif (ggml_type == GGML_TYPE_Q4_K or ggml_type == GGML_TYPE_Q5_K or ggml_type == GGML_TYPE_Q6_K
          or ggml_type == GGML_TYPE_IQ4_XS):
        quantize_row_q8_K(x, n_tokens, n_cols, xq)
    elif ggml_type == GGML_TYPE_F16:
        quantize_row_f16(x, n_tokens, n_cols, xq)
    elif ggml_type == GGML_TYPE_BF16:
        quantize_row_bf16(x, n_tokens, n_cols, xq)
    elif ggml_type == GGML_TYPE_F32:
        xq[:n_tokens * n_cols * 4] = x[:n_tokens * n_cols].view(np.uint8)


@njit(cache=True, nogil=True)
def quantize_act_float(x, q8k, n_tokens, n_cols, xq, xd):
    """x: float32[n_tokens*n_cols] -> Q8_K (q8k) or Q8_0 blocks in xq -> their values d*q in xd.

    The activation of the slow path: what llama.cpp's integer dot sees, as float32.
    """
    if q8k:
        quantize_row_q8_K(x, n_tokens, n_cols, xq)
        for b in range(n_tokens * n_cols // 256):
            d = xq[b * 292:b * 292 + 4].view(np.float32)[0]
            for j in range(256):
                xd[b * 256 + j] = d * np.float32(np.int8(xq[b * 292 + 4 + j]))
    else:
        quantize_row_q8_0(x, n_tokens, n_cols, xq)
        for b in range(n_tokens * n_cols // 32):
            d = fp16_to_fp32(np.int64(xq[b * 34]) | (np.int64(xq[b * 34 + 1]) << 8))
            for j in range(32):
                xd[b * 32 + j] = d * np.float32(np.int8(xq[b * 34 + 2 + j]))


@njit(cache=True, nogil=True, parallel=True)
def matmul_q(w, ggml_type, n_rows, n_cols, xq, n_tokens, out):
    """out[t * n_rows + r] = dot(W row r, activation row t) for a fast-path ggml_type.

    w: uint8[n_rows * row_nbytes]; xq: uint8[act_nbytes(ggml_type, n_tokens, n_cols)] from
    quantize_act; out: float32[n_tokens * n_rows]. Rows are split over the threads in chunks of
    16 (prange); see matmul_q_rows for one chunk.
    """
    rows = _ROWS_PER_CHUNK if n_tokens < 4 else _TILE_ROWS
    n_chunks = (n_rows + rows - 1) // rows
    for c in prange(n_chunks):
        r0 = c * rows
        matmul_q_rows(w, ggml_type, n_rows, n_cols, xq, n_tokens, out, r0, min(r0 + rows, n_rows))


@njit(cache=True, nogil=True)
def matmul_q_rows(w, ggml_type, n_rows, n_cols, xq, n_tokens, out, row_begin, row_end):
    """matmul_q for rows row_begin..row_end-1 only, on the calling thread (no parallel launch).

    For a compiled step that runs its own prange (one parallel region for several matmuls, e.g.
    each thread taking a slice of the q, k and v rows). Same numbers as matmul_q.
    """
    kind_v, kind_g = llama_cpp_kinds(ggml_type, n_rows)
    _rows_of_kinds(w, ggml_type, kind_v, kind_g, n_rows, n_cols, xq, n_tokens, out, row_begin, row_end)


@njit(cache=True, nogil=True)
def matmul_q6_k_tiled_rows(w, n_rows, n_cols, xq, n_tokens, out, row_begin, row_end):
    """Q6_K rows row_begin..row_end-1 with the float steps of llama.cpp's tiled prompt kernel
    (ggml-cpu/tiled/tiled-kernel.cpp, taken for batches of >= 8 tokens): per (row, token) and
    super-block in order, res = d_w * float(exact integer sum), sum = fma(res, d_x, sum).
    Arguments as matmul_q_rows (xq: Q8_K activations). With AVX2 every token goes through
    kernels.cpu.simd_kquant's tiles (rows as vector lanes), writing out directly."""
    if simd_kquant.HAS_KQ:
        nb = n_cols // 256
        simd_kquant.rows_q6_k_tiled(w, nb * 210, row_begin, row_end, xq, nb * 292, n_tokens, out, n_rows, nb)
        return
    _rows_of_kinds(w, GGML_TYPE_Q6_K, Q6_K_TILED, Q6_K_TILED, n_rows, n_cols, xq, n_tokens, out,
                   row_begin, row_end)


@njit(cache=True, nogil=True)
def _rows_of_kinds(w, ggml_type, kind_v, kind_g, n_rows, n_cols, xq, n_tokens, out, row_begin, row_end):
    """matmul_q_rows with the row dot kinds given: kind_v for single tokens, kind_g for groups
    of 4 tokens (the first n_tokens - n_tokens % 4 when n_tokens > 3)."""
    qk, wb = _weight_layout(ggml_type)
    _, xb = _act_layout(ggml_type)
    nb = n_cols // qk
    row_bytes = nb * wb
    x_row_bytes = nb * xb
    n_gemm = n_tokens - n_tokens % 4 if n_tokens > 3 else 0  # tokens llama.cpp's repack gemm takes
    if n_tokens < 4:  # decode
        for t in range(n_tokens):
            decode_rows(kind_v, w, row_bytes, row_begin, row_end, xq, t * x_row_bytes, out, t * n_rows, nb)
        return
    # prefill: a weight row stays in L1 for a tile of tokens; results go to a (token, row) tile
    # first, since out rows of different tokens are n_rows * 4 bytes apart (often a multiple of
    # 4 KiB) and scattered writes would thrash the cache
    tile = np.empty(_TOKENS_PER_TILE * _TILE_ROWS, np.float32)
    for r0 in range(row_begin, row_end, _TILE_ROWS):
        r1 = min(r0 + _TILE_ROWS, row_end)
        for t0 in range(0, n_tokens, _TOKENS_PER_TILE):
            t1 = min(t0 + _TOKENS_PER_TILE, n_tokens)
            t4 = min(t1, n_gemm) if n_gemm > t0 else t0  # 4-token groups, then single tokens
            prefill_rows(kind_g, w, row_bytes, r0, r1, xq, x_row_bytes, t0, t4, tile, _TILE_ROWS, nb)
            for t in range(t4, t1):
                decode_rows(kind_v, w, row_bytes, r0, r1, xq, t * x_row_bytes, tile,
                            (t - t0) * _TILE_ROWS - r0, nb)
            for t in range(t0, t1):
                for r in range(r0, r1):
                    out[t * n_rows + r] = tile[(t - t0) * _TILE_ROWS + r - r0]


@njit(cache=True, nogil=True, parallel=True)
def matmul_dequant(w, ggml_type, n_rows, n_cols, x, n_tokens, out, buf):
    """Slow path for any dequantizable type: each weight row is dequantized into this thread's
    slice of buf (float32[n_threads * n_cols]) and dotted with x: float32[n_tokens * n_cols] in
    float32. Returns 0, or nonzero when ggml_type has no dequantize kernel."""
    row_bytes = 0
    if n_rows > 0:
        row_bytes = w.size // n_rows
    status = 0
    for r in prange(n_rows):
        tid = get_thread_id()
        o = tid * n_cols
        bad = dequantize_row(w, r * row_bytes, n_cols, buf, o, ggml_type)
        status += bad
        for t in range(n_tokens if bad == 0 else 0):
            out[t * n_rows + r] = _fdot_f32(buf, o, x, t * n_cols, n_cols)
    return status


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _fdot_f32(a, ao, b, bo, n):
    s = np.float32(0.0)
    for i in range(n):
        s += a[ao + i] * b[bo + i]
    return s
