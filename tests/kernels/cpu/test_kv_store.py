"""kernels.cpu.kv.f32_to_f16_rows (the F16 K/V store) against NumPy's float16 rounding."""

import numpy as np

from kernels.cpu import kv


def test_f16_store_rounds_like_numpy_float16_bit_for_bit():
    rng = np.random.default_rng(3)
    x = np.concatenate([
        rng.standard_normal(1000) * np.exp(rng.uniform(-25, 12, 1000)),
        [0.0, -0.0, 65504.0, 65520.0, -65520.0, 1e9, np.inf, -np.inf, 5.96e-8, 2.98e-8, 2.9802322e-8],
        # exact ties between two F16 values
        np.arange(0x3C00, 0x3C40, dtype=np.uint16).view(np.float16).astype(np.float32) + 2.0 ** -11,
    ]).astype(np.float32)
    out = np.zeros(x.size, np.uint16)
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16).view(np.uint16)
    kv.f32_to_f16_rows(x, out, x.size - 3)
    assert np.array_equal(out[:-3], expected[:-3])
    assert not out[-3:].any()  # n bounds the writes
