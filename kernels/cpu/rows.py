"""Parallel drivers of the row-wise ops, for ubatches of several tokens.

Each driver deals the rows (tokens) into chunks run by `prange` and calls the serial kernel
(kernels.cpu.ops, kernels.cpu.matmul.quantize_act) on each chunk. Rows are independent, so the
bits are those of one serial call (tests/kernels/cpu/test_rows.py); llama.cpp splits these ops
over its threads by rows too (ggml_compute_forward_rms_norm, _glu, _rope, from_float).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels.cpu.glu import GLU_VERSION, geglu_f32, swiglu_f32
from kernels.cpu.matmul import quantize_act
from kernels.cpu.ops import rms_norm_f32, rope_f32

# glu's vector IR inlines into these cached kernels: a glu edit must edit this line
assert GLU_VERSION == 3, "kernels.cpu.glu changed: update this check"

_MAX_CHUNKS = 16  # chunks per call: enough to balance 2-16 threads, few launches of scratch


@njit(cache=True, nogil=True, parallel=True)
def rms_norm_rows_f32(x, w, out, n_rows, n_cols, eps, has_w):
    """ops.rms_norm_f32 with the rows split over the threads (same arguments)."""
    n_chunks = min(_MAX_CHUNKS, n_rows)
    for c in prange(n_chunks):
        r0 = c * n_rows // n_chunks
        r1 = (c + 1) * n_rows // n_chunks
        rms_norm_f32(x[r0 * n_cols:r1 * n_cols], w, out[r0 * n_cols:r1 * n_cols], r1 - r0, n_cols,
                     eps, has_w)


@njit(cache=True, nogil=True, parallel=True)
def swiglu_rows_f32(x, g, out, n_rows, n_cols, x_stride, g_stride):
    """glu.swiglu_f32 (ops.swiglu_f32's bits, 16 values per step) with the rows split over the
    threads (same arguments)."""
    n_chunks = min(_MAX_CHUNKS, n_rows)
    for c in prange(n_chunks):
        r0 = c * n_rows // n_chunks
        r1 = (c + 1) * n_rows // n_chunks
        swiglu_f32(x[r0 * x_stride:], g[r0 * g_stride:], out[r0 * n_cols:r1 * n_cols], r1 - r0,
                   n_cols, x_stride, g_stride)


@njit(cache=True, nogil=True, parallel=True)
def geglu_rows_f32(x, g, out, n_rows, n_cols, gelu_table):
    """glu.geglu_f32 (ops.geglu_f32's bits, 16 values per step) over n_rows * n_cols values with the rows split over the threads."""
    n_chunks = min(_MAX_CHUNKS, n_rows)
    for c in prange(n_chunks):
        a = (c * n_rows // n_chunks) * n_cols
        b = ((c + 1) * n_rows // n_chunks) * n_cols
        geglu_f32(x[a:b], g[a:b], out[a:b], b - a, gelu_table)


@njit(cache=True, nogil=True, parallel=True)
def rope_rows_f32(x, pos, n_tokens, n_head, head_dim, n_dims, neox, freq_base, freq_scale,
                  ext_factor, attn_factor, corr0, corr1, freq_factors, has_ff):
    """ops.rope_f32 in place with the tokens split over the threads (each chunk its own
    float32[head_dim] scratch)."""
    n_chunks = min(_MAX_CHUNKS, n_tokens)
    row = n_head * head_dim
    for c in prange(n_chunks):
        t0 = c * n_tokens // n_chunks
        t1 = (c + 1) * n_tokens // n_chunks
        cache = np.empty(max(head_dim, n_dims, 2), dtype=np.float32)
        rope_f32(x[t0 * row:t1 * row], pos[t0:t1], t1 - t0, n_head, head_dim, n_dims, neox,
                 freq_base, freq_scale, ext_factor, attn_factor, corr0, corr1, freq_factors,
                 has_ff, cache)


@njit(cache=True, nogil=True, parallel=True)
def quantize_act_rows(x, ggml_type, n_tokens, n_cols, xq, row_nbytes):
    """matmul.quantize_act with the tokens split over the threads; row_nbytes is
    act_nbytes(ggml_type, 1, n_cols), the bytes of one quantized row."""
    n_chunks = min(_MAX_CHUNKS, n_tokens)
    for c in prange(n_chunks):
        t0 = c * n_tokens // n_chunks
        t1 = (c + 1) * n_tokens // n_chunks
        quantize_act(x[t0 * n_cols:t1 * n_cols], ggml_type, t1 - t0, n_cols,
                     xq[t0 * row_nbytes:t1 * row_nbytes])
