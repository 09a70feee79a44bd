"""kernels.cpu.glu.geglu_f32 (16 values per step) against the scalar ops.geglu_f32, bit for bit."""

import numpy as np
import pytest

from kernels.cpu import glu, ops

_GELU = ops.gelu_f16_table()


def _edge_values(rng, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    edges = np.array([-10, 10, -10.000001, 10.000001, -9.999999, 9.999999, np.inf, -np.inf, 0.0, -0.0,
                      1e-30, -1e-30, 6.1e-5, 5.96e-8, 2.98e-8, 65504, 65520, -65520], dtype=np.float32)
    x[:len(edges)] = edges
    # exact F16 rounding ties: halfway between two F16 values (odd and even mantissas)
    h = rng.integers(0x0400, 0x4900, 64).astype(np.uint16).view(np.float16).astype(np.float32)
    x[32:96] = h + np.spacing(np.abs(h).astype(np.float16)).astype(np.float32) / 2
    return x


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100, 2048])
def test_geglu_simd_equals_the_scalar_table_kernel_bits(n):
    rng = np.random.default_rng(n)
    x = _edge_values(rng, max(n, 128))[:n].copy()
    g = rng.standard_normal(n).astype(np.float32)
    a, b = np.empty_like(x), np.empty_like(x)
    ops.geglu_f32(x, g, a, n, _GELU)
    glu.geglu_f32(x, g, b, n, _GELU)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_geglu_simd_limits_follow_ggml():
    x = np.array([-10.0, -20.0, 10.0, 20.0] * 4, dtype=np.float32)
    g = np.full(16, 3.0, dtype=np.float32)
    out = np.empty_like(x)
    glu.geglu_f32(x, g, out, 16, _GELU)
    assert list(out[:4]) == [0.0, 0.0, 30.0, 60.0]


@pytest.mark.parametrize("n_rows,n_cols,stride", [(1, 16, 16), (3, 40, 40), (2, 33, 50), (4, 2048, 2048)])
def test_swiglu_simd_equals_the_scalar_kernel_bits(n_rows, n_cols, stride):
    rng = np.random.default_rng(n_cols)
    x = (rng.standard_normal(n_rows * stride) * 6).astype(np.float32)
    x[:8] = [0.0, -0.0, 88.0, -88.0, 100.0, -100.0, np.inf, -np.inf]  # exp range ends
    if x.size > 20:
        x[8:20] = rng.standard_normal(12).astype(np.float32) * 1e-30
    g = rng.standard_normal(n_rows * stride).astype(np.float32)
    a = np.zeros(n_rows * n_cols, np.float32)
    b = np.zeros_like(a)
    ops.swiglu_f32(x, g, a, n_rows, n_cols, stride, stride)
    glu.swiglu_f32(x, g, b, n_rows, n_cols, stride, stride)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
