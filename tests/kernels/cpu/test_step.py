"""kernels.cpu.step: grouped matmuls and the parallel tiled Q6_K twin give bit-identical numbers.

matmul_q3 must equal three separate matmul_q calls (which are proved bit-exact with llama.cpp in
test_matmul.py); matmul_q6_k_tiled must equal kernels.cpu.ops.matmul_q6_k_tiled (llama.cpp's
tiled prompt path, proved end to end by tests/models). Random weights, every bit compared.
"""

import numpy as np
import pytest

from kernels.cpu import matmul as mm
from kernels.cpu import ops, step

from .test_matmul import FAST, random_weight

F16 = ops.f16_table()


def _act(rng, ggml_type, n_tokens, n_cols):
    x = rng.standard_normal(n_tokens * n_cols).astype(np.float32)
    xq = np.empty(mm.act_nbytes(ggml_type, n_tokens, n_cols), np.uint8)
    mm.quantize_act(x, ggml_type, n_tokens, n_cols, xq)
    return xq


@pytest.mark.parametrize("names", [("Q4_1", "Q4_1", "Q4_1"), ("Q5_0", "Q5_0", "Q8_0"),
                                   ("Q4_K", "Q6_K", None), ("Q4_0", "Q8_0", None)])
@pytest.mark.parametrize("n_tokens", [1, 2, 5])
def test_matmul_q3_equals_separate_matmuls(names, n_tokens):
    rng = np.random.default_rng(len(names) + n_tokens)
    qk = 256 if names[0].endswith("_K") else 32
    n_cols = 2 * qk
    rows = [40, 24, 17]
    ws, types, outs, refs = [], [], [], []
    xq = _act(rng, FAST[names[0]], n_tokens, n_cols)
    for name, r in zip(names, rows):
        if name is None:
            ws.append(ws[0]); types.append(types[0]); outs.append(np.zeros(0, np.float32))
            refs.append(outs[-1]); rows[len(ws) - 1] = 0
            continue
        w = random_weight(rng, name, r, n_cols)
        ref = np.empty(n_tokens * r, np.float32)
        mm.matmul_q(w, FAST[name], r, n_cols, xq, n_tokens, ref)
        ws.append(w); types.append(FAST[name]); refs.append(ref)
        outs.append(np.full(n_tokens * r, np.nan, np.float32))
    step.matmul_q3(ws[0], types[0], rows[0], outs[0], ws[1], types[1], rows[1], outs[1],
                   ws[2], types[2], rows[2], outs[2], n_cols, xq, n_tokens)
    for got, ref in zip(outs, refs):
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("n_rows,n_cols,n_tokens", [(1, 256, 8), (37, 512, 9), (20, 256, 70)])
def test_tiled_q6_k_twin_is_bit_identical(n_rows, n_cols, n_tokens):
    rng = np.random.default_rng(n_rows)
    w = random_weight(rng, "Q6_K", n_rows, n_cols)
    xq = _act(rng, FAST["Q6_K"], n_tokens, n_cols)
    ref = np.empty(n_tokens * n_rows, np.float32)
    got = np.full(n_tokens * n_rows, np.nan, np.float32)
    ops.matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, ref, F16)
    step.matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, got, F16)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_portable_tiled_q6_k_dot_is_bit_identical():
    """kernels.cpu.vec_dot.vec_dot_q6_k_tiled (hosts without AVX2) against ops.matmul_q6_k_tiled."""
    from kernels.cpu import vec_dot

    rng = np.random.default_rng(7)
    n_rows, n_cols, n_tokens = 3, 512, 2
    w = random_weight(rng, "Q6_K", n_rows, n_cols)
    xq = _act(rng, FAST["Q6_K"], n_tokens, n_cols)
    ref = np.empty(n_tokens * n_rows, np.float32)
    ops.matmul_q6_k_tiled(w, n_rows, n_cols, xq, n_tokens, ref, F16)
    got = np.array([vec_dot.vec_dot_q6_k_tiled(w, r * 420, xq, t * 584, 2)
                    for t in range(n_tokens) for r in range(n_rows)], np.float32)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
