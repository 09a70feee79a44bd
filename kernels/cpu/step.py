"""Grouped matmuls for compiled decode steps: several weights sharing one activation.

q/k/v (and gate/up) multiply the same activation row(s). llama.cpp quantizes that activation once
per weight; the result only depends on the weights' vec_dot_type, so here it is quantized once
(kernels.cpu.matmul.quantize_act) and the rows of all the group's weights are split over the
threads in ONE parallel region (one launch instead of three). Every output is computed by
kernels.cpu.matmul.matmul_q_rows exactly as matmul_q computes it, so the numbers are identical
to separate matmul_q calls.

njit entry point (no checks; the caller guarantees sizes, C-contiguity and that all weights are
fast-path types with the same vec_dot_type and n_cols):
    matmul_q3(w0, t0, r0, out0, w1, t1, r1, out1, w2, t2, r2, out2, n_cols, xq, n_tokens)
        w_i: uint8 weight i (t_i its ggml type, r_i its rows), out_i: float32[n_tokens * r_i]
        token-major; a weight with r_i == 0 is skipped (groups of two).
    matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, out, f16tab)
        parallel twin of kernels.cpu.ops.matmul_q6_k_tiled (llama.cpp's tiled Q6_K prompt path).
    llama_layer_token(x, pos, ...)
        one LLaMA-style layer for one token in a single call (decode: ~20 Python -> njit calls
        and NumPy temporaries per layer become one); see its docstring.
"""

import numpy as np
from numba import njit, prange

from kernels.cpu.attention import attention_f16kv, stf
from kernels.cpu.glu import geglu_f32, swiglu_f32
from kernels.cpu.matmul import matmul_q, matmul_q6_k_tiled_rows, matmul_q_rows, quantize_act
from kernels.cpu.ops import (
    rms_norm_f32, rope_f32, round_f16,
)

_ROWS_PER_CHUNK = 16  # rows per prange work item, decode (as kernels.cpu.matmul.matmul_q)
_PREFILL_ROWS_PER_CHUNK = 64  # rows per prange work item, prefill (as matmul_q)


@njit(cache=True, nogil=True, parallel=True)
def matmul_q3(w0, t0, r0, out0, w1, t1, r1, out1, w2, t2, r2, out2, n_cols, xq, n_tokens):
    """out_i = W_i @ x for three weights sharing the activation xq, in one parallel region.

    Work items of 16 rows for decode, 64 for prefill (kernels.cpu.matmul's tile height: each
    pass over the activation tile then serves more weight rows)."""
    rows = _ROWS_PER_CHUNK if n_tokens < 4 else _PREFILL_ROWS_PER_CHUNK
    c0 = (r0 + rows - 1) // rows
    c1 = (r1 + rows - 1) // rows
    c2 = (r2 + rows - 1) // rows
    for c in prange(c0 + c1 + c2):
        if c < c0:
            a = c * rows
            matmul_q_rows(w0, t0, r0, n_cols, xq, n_tokens, out0, a, min(a + rows, r0))
        elif c < c0 + c1:
            a = (c - c0) * rows
            matmul_q_rows(w1, t1, r1, n_cols, xq, n_tokens, out1, a, min(a + rows, r1))
        else:
            a = (c - c0 - c1) * rows
            matmul_q_rows(w2, t2, r2, n_cols, xq, n_tokens, out2, a, min(a + rows, r2))


# ---------------------------------------------------------------------------------------------
# Q6_K x Q8_K with the float order of ggml-cpu/tiled (llama.cpp's default for batches >= 8 rows)

@njit(cache=True, nogil=True, parallel=True)
def matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, out, f16tab):
    """Parallel twin of kernels.cpu.ops.matmul_q6_k_tiled: same arguments, identical numbers.

    Per (row, token) and super-block in order: the exact integer sum s1 = sum_j scale_j *
    sum_i q_i * x_i (integers: any order gives the same value), res = float(s1) * d_w and
    buf = fma(res, d_x, buf). Each weight super-block is decoded once for 4 tokens (SIMD,
    kernels.cpu.matmul.matmul_q6_k_tiled_rows) and chunks of 64 rows run in parallel.
    f16tab is unused (kept for the signature shared with ops.matmul_q6_k_tiled).
    """
    n_chunks = (n_rows + _PREFILL_ROWS_PER_CHUNK - 1) // _PREFILL_ROWS_PER_CHUNK
    for c in prange(n_chunks):
        r0 = c * _PREFILL_ROWS_PER_CHUNK
        matmul_q6_k_tiled_rows(w, n_rows, n_cols, xq, n_tokens, out, r0,
                               min(r0 + _PREFILL_ROWS_PER_CHUNK, n_rows))


# ---------------------------------------------------------------------------------------------
# One decoder layer of a LLaMA-style model for a single token, in one compiled call


@njit(cache=True, nogil=True)
def llama_layer_token(x, pos, attn_norm, ffn_norm, wq, wk, wv, wo, wg, wu, wd, types, dims, fl,
                      freq_factors, kc, vc, mask, buf, xq, rope_scratch, att_scratch):
    """x (float32[n_embd], in place) <- one llama layer for one token, with the numbers of the
    eager graph (emel.models.llama.build_graph): rms_norm, q/k/v (one activation quantization,
    one parallel region), rope, K/V rounded to F16 into cell `slot`, attention over n_kv cells,
    wo + residual, rms_norm, gate/up, swiglu, down + residual.

    types: int64[7] ggml types of wq, wk, wv, wo, wg, wu, wd (fast-path types; q/k/v and gate/up
    share a vec_dot_type); dims: int64[n_embd, n_head, n_head_kv, head_dim, n_ff, n_rot, neox,
    n_kv, slot, has_ff]; fl: float32[eps, freq_base, freq_scale, ext_factor, attn_factor, corr0,
    corr1, kq_scale]; kc, vc: uint16[cells * n_head_kv * head_dim], the F16 cells (bit patterns) of
    the sequence's stream;
    mask: float32[n_kv]; buf: float32 scratch >= 4 n_embd + 2 n_q + 2 n_kv_dim + 3 n_ff; xq:
    uint8 scratch for the largest quantized activation; rope_scratch: float32[head_dim];
    att_scratch: float32[>= 64]. The caller checks every size.
    """
    n_embd, n_head, n_head_kv, hd, n_ff = dims[0], dims[1], dims[2], dims[3], dims[4]
    n_rot, neox, n_kv, slot, has_ff = dims[5], dims[6] != 0, dims[7], dims[8], dims[9] != 0
    eps = fl[0]
    n_q = n_head * hd
    n_kd = n_head_kv * hd
    o0 = 0
    cur = buf[o0:o0 + n_embd]
    o0 += n_embd
    q = buf[o0:o0 + n_q]
    o0 += n_q
    k = buf[o0:o0 + n_kd]
    o0 += n_kd
    v = buf[o0:o0 + n_kd]
    o0 += n_kd
    att = buf[o0:o0 + n_q]
    o0 += n_q
    o = buf[o0:o0 + n_embd]
    o0 += n_embd
    ffn_inp = buf[o0:o0 + n_embd]
    o0 += n_embd
    g = buf[o0:o0 + n_ff]
    o0 += n_ff
    u = buf[o0:o0 + n_ff]
    o0 += n_ff
    h = buf[o0:o0 + n_ff]
    # attention block
    rms_norm_f32(x, attn_norm, cur, 1, n_embd, eps, True)
    quantize_act(cur, types[0], 1, n_embd, xq)
    matmul_q3(wq, types[0], n_q, q, wk, types[1], n_kd, k, wv, types[2], n_kd, v, n_embd, xq, 1)
    rope_f32(q, pos, 1, n_head, hd, n_rot, neox, fl[1], fl[2], fl[3], fl[4], fl[5], fl[6],
             freq_factors, has_ff, rope_scratch)
    rope_f32(k, pos, 1, n_head_kv, hd, n_rot, neox, fl[1], fl[2], fl[3], fl[4], fl[5], fl[6],
             freq_factors, has_ff, rope_scratch)
    base = slot * n_kd
    for i in range(n_kd):  # ggml_set_rows into the F16 cache: round to nearest even
        stf(kc, base + i, k[i])
        stf(vc, base + i, v[i])
    attention_f16kv(q, kc, vc, mask, att, 1, n_head, n_head_kv, hd, hd, n_kv, fl[7],
                    np.float32(0.0), False, False, att_scratch, att_scratch, att_scratch)
    quantize_act(att, types[3], 1, n_q, xq)
    matmul_q(wo, types[3], n_embd, n_q, xq, 1, o)
    for i in range(n_embd):
        ffn_inp[i] = o[i] + x[i]
    # feed-forward block
    rms_norm_f32(ffn_inp, ffn_norm, cur, 1, n_embd, eps, True)
    quantize_act(cur, types[4], 1, n_embd, xq)
    matmul_q3(wg, types[4], n_ff, g, wu, types[5], n_ff, u, wg, types[4], 0, g, n_embd, xq, 1)
    swiglu_f32(g, u, h, 1, n_ff, n_ff, n_ff)
    quantize_act(h, types[6], 1, n_ff, xq)
    matmul_q(wd, types[6], n_embd, n_ff, xq, 1, o)
    for i in range(n_embd):
        x[i] = o[i] + ffn_inp[i]


@njit(cache=True, nogil=True)
def gemma3_layer_token(x, pos, norms, wq, wk, wv, wo, wg, wu, wd, types, dims, fl, kc, vc, mask,
                       buf, xq, rope_scratch, att_scratch, gelu_table):
    """x (float32[n_embd], in place) <- one Gemma-3 layer for one token, with the numbers of the
    eager graph (emel.models.gemma3.build_graph): rms_norm, q/k/v in one parallel region, per-head
    q/k norms, rope, q scaled, K/V rounded to F16 into cell `slot`, attention (kq_scale 1), wo,
    post-attention norm + residual, ffn norm, gate/up, GELU-gated, down, post-ffn norm + residual.

    norms: float32[4 * n_embd + 2 * head_dim]: attn_norm, attn_post_norm, ffn_norm, ffn_post_norm,
    attn_q_norm, attn_k_norm; fl: float32[eps, freq_base, freq_scale, ext_factor, attn_factor,
    corr0, corr1, attention_scale]; the rest as llama_layer_token (dims[9] unused).
    """
    n_embd, n_head, n_head_kv, hd, n_ff = dims[0], dims[1], dims[2], dims[3], dims[4]
    n_rot, neox, n_kv, slot = dims[5], dims[6] != 0, dims[7], dims[8]
    eps = fl[0]
    n_q = n_head * hd
    n_kd = n_head_kv * hd
    attn_norm = norms[0:n_embd]
    post_norm = norms[n_embd:2 * n_embd]
    ffn_norm = norms[2 * n_embd:3 * n_embd]
    ffn_post = norms[3 * n_embd:4 * n_embd]
    q_norm = norms[4 * n_embd:4 * n_embd + hd]
    k_norm = norms[4 * n_embd + hd:4 * n_embd + 2 * hd]
    o0 = 0
    cur = buf[o0:o0 + n_embd]
    o0 += n_embd
    q = buf[o0:o0 + n_q]
    o0 += n_q
    k = buf[o0:o0 + n_kd]
    o0 += n_kd
    v = buf[o0:o0 + n_kd]
    o0 += n_kd
    att = buf[o0:o0 + n_q]
    o0 += n_q
    o = buf[o0:o0 + n_embd]
    o0 += n_embd
    sa_out = buf[o0:o0 + n_embd]
    o0 += n_embd
    g = buf[o0:o0 + n_ff]
    o0 += n_ff
    u = buf[o0:o0 + n_ff]
    o0 += n_ff
    h = buf[o0:o0 + n_ff]
    o0 += n_ff
    qn = buf[o0:o0 + n_q]
    o0 += n_q
    kn = buf[o0:o0 + n_kd]
    no_ff = buf[0:1]
    # attention block
    rms_norm_f32(x, attn_norm, cur, 1, n_embd, eps, True)
    quantize_act(cur, types[0], 1, n_embd, xq)
    matmul_q3(wq, types[0], n_q, q, wk, types[1], n_kd, k, wv, types[2], n_kd, v, n_embd, xq, 1)
    rms_norm_f32(q, q_norm, qn, n_head, hd, eps, True)
    rms_norm_f32(k, k_norm, kn, n_head_kv, hd, eps, True)
    rope_f32(qn, pos, 1, n_head, hd, n_rot, neox, fl[1], fl[2], fl[3], fl[4], fl[5], fl[6],
             no_ff, False, rope_scratch)
    rope_f32(kn, pos, 1, n_head_kv, hd, n_rot, neox, fl[1], fl[2], fl[3], fl[4], fl[5], fl[6],
             no_ff, False, rope_scratch)
    scale = fl[7]
    for i in range(n_q):
        qn[i] = qn[i] * scale
    base = slot * n_kd
    for i in range(n_kd):  # ggml_set_rows into the F16 cache: round to nearest even
        stf(kc, base + i, kn[i])
        stf(vc, base + i, v[i])
    attention_f16kv(qn, kc, vc, mask, att, 1, n_head, n_head_kv, hd, hd, n_kv, np.float32(1.0),
                    np.float32(0.0), False, False, att_scratch, att_scratch, att_scratch)
    quantize_act(att, types[3], 1, n_q, xq)
    matmul_q(wo, types[3], n_embd, n_q, xq, 1, o)
    rms_norm_f32(o, post_norm, cur, 1, n_embd, eps, True)
    for i in range(n_embd):
        sa_out[i] = cur[i] + x[i]
    # feed-forward block
    rms_norm_f32(sa_out, ffn_norm, cur, 1, n_embd, eps, True)
    quantize_act(cur, types[4], 1, n_embd, xq)
    matmul_q3(wg, types[4], n_ff, g, wu, types[5], n_ff, u, wg, types[4], 0, g, n_embd, xq, 1)
    geglu_f32(g, u, h, n_ff, gelu_table)
    quantize_act(h, types[6], 1, n_ff, xq)
    matmul_q(wd, types[6], n_embd, n_ff, xq, 1, o)
    rms_norm_f32(o, ffn_post, cur, 1, n_embd, eps, True)
    for i in range(n_embd):
        x[i] = cur[i] + sa_out[i]
