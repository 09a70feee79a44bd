"""The parallel row drivers (kernels/cpu/rows.py) give the bits of one serial call."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from kernels.cpu import matmul, ops, rows

_GELU = ops.gelu_f16_table()


def _threads():
    return sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})


@pytest.mark.parametrize("n_rows", [4, 5, 37])
@pytest.mark.parametrize("n_threads", _threads())
def test_row_drivers_equal_the_serial_kernels(n_rows: int, n_threads: int) -> None:
    rng = np.random.default_rng(n_rows)
    n_cols = 80
    x = (rng.standard_normal(n_rows * n_cols) * 3).astype(np.float32)
    g = rng.standard_normal(n_rows * n_cols).astype(np.float32)
    w = rng.standard_normal(n_cols).astype(np.float32)
    numba.set_num_threads(n_threads)
    try:
        a, b = np.empty_like(x), np.empty_like(x)
        ops.rms_norm_f32(x, w, a, n_rows, n_cols, np.float32(1e-6), True)
        rows.rms_norm_rows_f32(x, w, b, n_rows, n_cols, np.float32(1e-6), True)
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))

        ops.swiglu_f32(x, g, a, n_rows, n_cols, n_cols, n_cols)
        rows.swiglu_rows_f32(x, g, b, n_rows, n_cols, n_cols, n_cols)
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))

        ops.geglu_f32(x, g, a, x.size, _GELU)
        rows.geglu_rows_f32(x, g, b, n_rows, n_cols, _GELU)
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))

        n_head, head_dim = 2, 40
        pos = rng.integers(0, 5000, n_rows).astype(np.int32)
        q = rng.standard_normal(n_rows * n_head * head_dim).astype(np.float32)
        qa, qb = q.copy(), q.copy()
        for neox in (False, True):
            args = (pos, n_rows, n_head, head_dim, 32, neox, np.float32(10000.0), np.float32(0.5),
                    np.float32(1.0), np.float32(1.0), np.float32(3.0), np.float32(20.0),
                    np.ones(20, np.float32), False)
            ops.rope_f32(qa, *args, np.empty(head_dim, np.float32))
            rows.rope_rows_f32(qb, *args)
            assert np.array_equal(qa.view(np.uint32), qb.view(np.uint32))

        for t in (8, 3, 12):  # Q8_0 (Q8_0 rows), Q4_1 (Q8_1 rows), Q4_K (Q8_K rows)
            k = 256
            xx = (rng.standard_normal(n_rows * k) * 2).astype(np.float32)
            nb = matmul.act_nbytes(t, n_rows, k)
            qa8, qb8 = np.zeros(nb, np.uint8), np.ones(nb, np.uint8)
            matmul.quantize_act(xx, t, n_rows, k, qa8)
            rows.quantize_act_rows(xx, t, n_rows, k, qb8, matmul.act_nbytes(t, 1, k))
            assert np.array_equal(qa8, qb8)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
