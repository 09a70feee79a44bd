"""KV cache kernels: the KQ mask of a ubatch over one stream of cells.

Follows llama.cpp src/llama-kv-cache.cpp (set_input_kq_mask) and src/llama-hparams.cpp
(is_masked_swa). emel.kv_cache.KVCache.get_mask groups the ubatch's tokens by stream and calls
`kq_mask_rows_f32` once per stream.
"""

import numpy as np
from numba import njit

from kernels.cpu.attention import stf

# llama_swa_type values (emel.kv_cache.SwaType)
SWA_NONE = 0
SWA_STANDARD = 1
SWA_CHUNKED = 2
SWA_SYMMETRIC = 3


@njit(cache=True, nogil=True, inline="always")
def _masked_swa(swa_type, n_swa, p0, p1):
    """llama_hparams::is_masked_swa for cell position p0 and token position p1."""
    if swa_type == SWA_STANDARD:
        return p1 - p0 >= n_swa
    if swa_type == SWA_CHUNKED:
        return p0 < (p1 // n_swa) * n_swa
    if swa_type == SWA_SYMMETRIC:
        h = n_swa // 2
        return p1 - p0 < -h or p1 - p0 > h
    return False


@njit(cache=True, nogil=True)
def kq_mask_rows_f32(cell_pos, cell_seq, n_kv, tok_pos, tok_seq, rows, causal, swa_type, n_swa,
                     out):
    """out[r * n_kv + j] = 0 where token r (each r in rows) attends cell j, else -inf.

    cell_pos: int32[>= n_kv] (-1 empty), cell_seq: uint64[>= n_kv] sequence bits of each cell;
    tok_pos: int32[n_tokens], tok_seq: int32[n_tokens] first sequence of each token; rows:
    int64[] tokens of this stream; out: float32[n_tokens * n_kv]. A token attends a non-empty
    cell of its sequence that is not in its future (causal) nor outside its window (SWA).
    """
    for k in range(rows.size):
        r = rows[k]
        p1 = np.int64(tok_pos[r])
        bit = np.uint64(1) << np.uint64(tok_seq[r])
        base = r * n_kv
        for j in range(n_kv):
            p0 = np.int64(cell_pos[j])
            keep = p0 >= 0 and (cell_seq[j] & bit) != 0
            if keep and causal and p0 > p1:
                keep = False
            if keep and swa_type != SWA_NONE and _masked_swa(swa_type, n_swa, p0, p1):
                keep = False
            out[base + j] = np.float32(0.0) if keep else np.float32(-np.inf)


@njit(cache=True, nogil=True)
def f32_to_f16_rows(x, out, n):
    """out[i] = the F16 bits of x[i] rounded to nearest, ties to even (ggml's fp32 -> fp16, the
    K/V cache store); x: float32[>= n], out: uint16[>= n]. NumPy's astype(float16) gives the same
    bits (tests/kernels/cpu/test_kv_store.py) at ~10x the time."""
    for i in range(n):
        stf(out, i, x[i])
