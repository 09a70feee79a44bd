"""Activation quantization (kernels.cpu.q8) against llama.cpp's x86 from_float functions.

Two references: a slow NumPy transcription of the AVX2 code of ggml-cpu arch/x86/quants.c
(quantize_row_q8_0 / quantize_row_q8_1) and of quantize_row_q8_K_ref, and the bytes llama.cpp
itself produced (parity_fixtures/matmul/vec_dot.npz, from make_fixtures.py). All comparisons are
exact (byte for byte).
"""

import numpy as np
import pytest

from kernels.cpu import q8

# ---------------------------------------------------------------------------------------------
# NumPy transcription of llama.cpp's x86 code
# ---------------------------------------------------------------------------------------------


def _f16_bytes(v):
    with np.errstate(over="ignore"):  # a huge block maximum gives d = inf, as in llama.cpp
        return np.array([v], np.float32).astype(np.float16).view(np.uint8)


def ref_q8_0_avx2(x, with_sum=False):
    """quantize_row_q8_0 / quantize_row_q8_1, AVX2 branch, one row (float32[n])."""
    out = []
    for blk in x.reshape(-1, 32):
        amax = np.float32(np.max(np.abs(blk)))
        d = np.float32(amax / np.float32(127.0))
        mul = np.float32(np.float32(127.0) / amax) if amax != 0 else np.float32(0.0)
        v = (blk * mul).astype(np.float32)                  # _mm256_mul_ps
        q = np.clip(np.rint(v), -128, 127).astype(np.int32)  # _mm256_round_ps(NEAREST), packs
        head = [_f16_bytes(d)]
        if with_sum:
            head.append(_f16_bytes(np.float32(d * np.float32(q.sum()))))
        out.append(np.concatenate(head + [q.astype(np.int8).view(np.uint8)]))
    return np.concatenate(out)


def ref_q8_k(x):
    """quantize_row_q8_K_ref (used by the x86 build), one row (float32[n])."""
    out = []
    for blk in x.reshape(-1, 256):
        ax = np.abs(blk)
        if ax.max() == 0:
            out.append(np.zeros(292, np.uint8))
            continue
        vmax = blk[np.argmax(ax)]  # first index of the largest magnitude, like the strict '>'
        iscale = np.float32(np.float32(-127.0) / vmax)
        q = np.minimum(127, np.rint((iscale * blk).astype(np.float32))).astype(np.int32)
        bsums = q.reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.array([np.float32(1.0) / iscale], np.float32)
        out.append(np.concatenate([d.view(np.uint8), q.astype(np.int8).view(np.uint8), bsums.view(np.uint8)]))
    return np.concatenate(out)


def _rows(fn, x):
    return np.concatenate([fn(r) for r in x])


def _inputs(rng):
    n = 512
    rows = [
        rng.standard_normal(n),
        rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n)),
        rng.integers(-126, 126, n) + 0.5,  # ties once the block maximum is 127 (below)
        np.zeros(n),
        rng.standard_normal(n) * 1e-30,
        np.where(rng.random(n) < 0.5, -1.0, 1.0) * rng.integers(0, 3, n),
    ]
    x = np.array(rows, np.float32)
    x[2, ::32] = 127.0
    x[2, 16::64] = -127.0
    x[3, 7] = -2.5
    return x


QUANTIZERS = [
    ("q8_0", q8.quantize_row_q8_0, lambda r: ref_q8_0_avx2(r), 32, 34),
    ("q8_1", q8.quantize_row_q8_1, lambda r: ref_q8_0_avx2(r, with_sum=True), 32, 36),
    ("q8_K", q8.quantize_row_q8_K, ref_q8_k, 256, 292),
]


@pytest.mark.parametrize("name,fn,ref,qk,qb", QUANTIZERS, ids=[q[0] for q in QUANTIZERS])
def test_quantize_matches_numpy_transcription_of_llama_cpp(name, fn, ref, qk, qb):
    x = _inputs(np.random.default_rng(7))
    n_tokens, n_cols = x.shape
    out = np.zeros(n_tokens * n_cols // qk * qb, np.uint8)
    fn(x.reshape(-1), n_tokens, n_cols, out)
    expected = _rows(ref, x)
    assert np.array_equal(out, expected)


def test_ties_round_half_to_even():
    # block maximum 127 -> multiplier exactly 1.0: 2.5 -> 2, 3.5 -> 4, -0.5 -> 0, -1.5 -> -2
    x = np.zeros(32, np.float32)
    x[:5] = [127.0, 2.5, 3.5, -0.5, -1.5]
    out = np.zeros(34, np.uint8)
    q8.quantize_row_q8_0(x, 1, 32, out)
    assert out[2:7].view(np.int8).tolist() == [127, 2, 4, 0, -2]
    xk = np.zeros(256, np.float32)
    xk[:4] = [-127.0, 2.5, -3.5, 0.5]  # iscale = -127 / -127 = 1
    outk = np.zeros(292, np.uint8)
    q8.quantize_row_q8_K(xk, 1, 256, outk)
    assert outk[4:8].view(np.int8).tolist() == [-127, 2, -4, 0]


@pytest.mark.parametrize("name", ["q8_0", "q8_1", "q8_K"])
def test_quantize_matches_llama_cpp_bytes(name, fixtures_dir):
    f = np.load(fixtures_dir / "matmul" / "vec_dot.npz")
    x = f["x"]
    fn = {"q8_0": q8.quantize_row_q8_0, "q8_1": q8.quantize_row_q8_1, "q8_K": q8.quantize_row_q8_K}[name]
    expected = f[f"xq_{name}"]
    out = np.zeros_like(expected)
    fn(np.ascontiguousarray(x).reshape(-1), x.shape[0], x.shape[1], out)
    assert np.array_equal(out, expected)


def test_fp16_conversions_are_exact():
    bits = np.arange(65536, dtype=np.uint16)
    vals = bits.view(np.float16).astype(np.float32)
    got = np.array([q8.fp16_to_fp32(int(b)) for b in bits[::61]], np.float32)
    want = vals[::61]
    same = (got.view(np.uint32) == want.view(np.uint32)) | np.isnan(want)
    assert same.all()
    rng = np.random.default_rng(3)
    x = np.concatenate([
        (rng.standard_normal(3000) * 10.0 ** rng.integers(-9, 6, 3000)).astype(np.float32),
        np.array([65504.0, 65519.99, 65520.0, 1e-8, 2.98e-8, 2.9802322e-08, -0.0, 6.1035156e-05], np.float32),
        (vals[np.isfinite(vals)][::97].astype(np.float64) * (1 + 2.0 ** -11)).astype(np.float32),  # ties
    ])
    out = np.zeros(2 * x.size, np.uint8)
    q8.quantize_row_f16(x, 1, x.size, out)
    with np.errstate(over="ignore"):
        assert np.array_equal(out.view(np.uint16), x.astype(np.float16).view(np.uint16))


def test_bf16_rounds_to_nearest_even():
    x = np.array([1.0, 1.00390625, 1.01171875, -3.0e38, 1e-40, 0.1], np.float32)
    out = np.zeros(2 * x.size, np.uint8)
    q8.quantize_row_bf16(x, 1, x.size, out)
    u = x.view(np.uint32).astype(np.uint64)
    want = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    assert np.array_equal(out.view(np.uint16), want)


def test_vector_block_quantizer_equals_the_scalar_specification():
    # kernels.cuda.q8 mirrors the scalar _q8_0_block; the CPU rows run the vector one
    x = _inputs(np.random.default_rng(11)).reshape(-1)
    for with_sum, qb in ((False, 34), (True, 36)):
        a = np.zeros(x.size // 32 * qb, np.uint8)
        b = np.zeros_like(a)
        for i in range(x.size // 32):
            q8._q8_0_block(x, 32 * i, a, qb * i, with_sum)
        (q8.quantize_row_q8_1 if with_sum else q8.quantize_row_q8_0)(x, 1, x.size, b)
        assert np.array_equal(a, b)
