"""kernels.cpu.ops against plain NumPy references (small shapes).

The exact-order helpers (v_expf, reduce16, dot_*) are checked against float64 math within
float32 rounding; bit-exactness against llama.cpp itself is proved end to end by
tests/models (tiny models and real models match llama.cpp's logits bit for bit).
"""

import math

import numpy as np
import pytest

from kernels.cpu import ops

RNG = np.random.default_rng(1234)


def _f16_cases() -> np.ndarray:
    special = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1e-5,
                        5.96e-8, 2.98e-8, 2.99e-8, 1e-9, np.inf, -np.inf, 1.0009765625,
                        1.00048828125, 1.00146484375, 3.0517578e-05], dtype=np.float32)
    rand = (RNG.standard_normal(4000) * np.exp(RNG.uniform(-20, 12, 4000))).astype(np.float32)
    return np.concatenate([special, rand])


def test_f32_to_f16_bits_rounds_to_nearest_even_like_numpy():
    x = _f16_cases()
    got = np.empty(len(x), dtype=np.uint16)
    ops.f32_to_f16_array(x, got, len(x))
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(got, want)


def test_f32_to_f16_bits_of_nan_is_a_quiet_nan():
    got = np.empty(1, dtype=np.uint16)
    ops.f32_to_f16_array(np.array([np.nan], dtype=np.float32), got, 1)
    assert np.isnan(got.view(np.float16)[0])


def test_round_f16_gives_the_f16_value_as_float32():
    x = _f16_cases()
    got = np.array([ops.round_f16(np.float32(v)) for v in x[:500]], dtype=np.float32)
    with np.errstate(over="ignore"):
        assert np.array_equal(got, x[:500].astype(np.float16).astype(np.float32))


def test_v_expf_is_within_two_ulp_of_exp_and_flushes_like_ggml():
    x = np.linspace(-87, 88, 20001).astype(np.float32)
    got = np.array([ops.v_expf(np.float32(v)) for v in x], dtype=np.float32)
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got / want - 1)) < 2.5e-7
    assert ops.v_expf(np.float32(-np.inf)) == 0.0
    assert ops.v_expf(np.float32(-200.0)) == 0.0
    assert ops.v_expf(np.float32(200.0)) == np.inf


def test_reduce16_and_dots_match_float64_sums():
    a = RNG.standard_normal(256).astype(np.float16).astype(np.float32)
    b = RNG.standard_normal(256).astype(np.float16).astype(np.float32)
    lanes = np.zeros(64, dtype=np.float32)
    want = float(np.dot(a.astype(np.float64), b.astype(np.float64)))
    assert ops.dot_sgemm16(a, 0, b, 0, 256, lanes) == pytest.approx(want, rel=1e-5, abs=1e-4)
    assert ops.dot_vec_f16(a, 0, b, 0, 256, lanes) == pytest.approx(want, rel=1e-5, abs=1e-4)
    # 100 is not a multiple of 64: the tail is summed in double
    w100 = float(np.dot(a[:100].astype(np.float64), b[:100].astype(np.float64)))
    assert ops.dot_vec_f16(a, 0, b, 0, 100, lanes) == pytest.approx(w100, rel=1e-5, abs=1e-4)
    lanes[:16] = np.arange(16, dtype=np.float32)
    assert ops.reduce16(lanes, 0) == 120.0


@pytest.mark.parametrize("has_w", [True, False])
def test_rms_norm_matches_numpy(has_w):
    x = RNG.standard_normal((3, 64)).astype(np.float32) * 5
    w = RNG.standard_normal(64).astype(np.float32)
    out = np.empty_like(x)
    ops.rms_norm_f32(x.reshape(-1), w, out.reshape(-1), 3, 64, np.float32(1e-5), has_w)
    ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1, keepdims=True) + 1e-5)
    if has_w:
        ref = ref * w
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-6)


def _rope_ref(x, pos, n_dims, neox, base, freq_scale=1.0, ff=None):
    n_tokens, n_head, hd = x.shape
    out = x.astype(np.float64).copy()
    i = np.arange(n_dims // 2)
    theta = pos[:, None].astype(np.float64) * base ** (-2.0 * i / n_dims)[None, :]
    if ff is not None:
        theta = theta / ff[None, :]
    theta *= freq_scale
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    if neox:
        a, b = out[..., :n_dims // 2].copy(), out[..., n_dims // 2:n_dims].copy()
        out[..., :n_dims // 2] = a * c - b * s
        out[..., n_dims // 2:n_dims] = a * s + b * c
    else:
        a, b = out[..., 0:n_dims:2].copy(), out[..., 1:n_dims:2].copy()
        out[..., 0:n_dims:2] = a * c - b * s
        out[..., 1:n_dims:2] = a * s + b * c
    return out


@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("use_ff", [False, True])
def test_rope_matches_numpy(neox, use_ff):
    x = RNG.standard_normal((5, 3, 32)).astype(np.float32)
    pos = np.array([0, 1, 7, 100, 1000], dtype=np.int32)
    ff = (1.0 + RNG.uniform(0, 4, 8)).astype(np.float32) if use_ff else None
    got = x.copy()
    ops.rope_f32(got.reshape(-1), pos, 5, 3, 32, 16, neox, np.float32(10000.0), np.float32(0.5),
                 np.float32(0.0), np.float32(1.0), np.float32(0.0), np.float32(15.0),
                 ff if use_ff else np.zeros(1, np.float32), use_ff, np.zeros(32, np.float32))
    ref = _rope_ref(x, pos, 16, neox, 10000.0, 0.5, ff)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-4)
    assert np.array_equal(got[..., 16:], x[..., 16:])  # dims past n_dims pass through


def test_rope_yarn_corr_dims_matches_ggml_formula():
    c0, c1 = ops.rope_yarn_corr_dims(128, 4096, 10000.0, 32.0, 1.0)
    dim = lambda r: 128 * math.log(4096 / (r * 2 * math.pi)) / (2 * math.log(10000.0))  # noqa: E731
    assert (c0, c1) == (max(0.0, math.floor(dim(32.0))), min(127.0, math.ceil(dim(1.0))))


def test_swiglu_and_silu_match_numpy():
    x = (RNG.standard_normal((2, 40)) * 4).astype(np.float32)  # 40: blocks of 16 plus a tail
    g = RNG.standard_normal((2, 40)).astype(np.float32)
    out = np.empty_like(x)
    ops.swiglu_f32(x.reshape(-1), g.reshape(-1), out.reshape(-1), 2, 40, 40, 40)
    ref = x / (1 + np.exp(-x.astype(np.float64))) * g
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
    s = np.empty(80, dtype=np.float32)
    ops.silu_f32(x.reshape(-1), s, 80)
    np.testing.assert_allclose(s, (x / (1 + np.exp(-x.astype(np.float64)))).reshape(-1), rtol=1e-6, atol=1e-7)


def test_geglu_uses_the_f16_gelu_table():
    x = np.array([-12.0, -3.0, -0.5, 0.0, 0.3, 1.7, 9.99, 10.0, 25.0], dtype=np.float32)
    g = np.full(len(x), 2.0, dtype=np.float32)
    out = np.empty_like(x)
    ops.geglu_f32(x, g, out, len(x), ops.gelu_f16_table())
    x16 = x.astype(np.float16).astype(np.float64)
    gelu = 0.5 * x16 * (1 + np.tanh(np.sqrt(2 / np.pi) * x16 * (1 + 0.044715 * x16 ** 2)))
    ref = gelu.astype(np.float16).astype(np.float32) * 2
    ref[x <= -10] = 0
    ref[x >= 10] = x[x >= 10] * 2
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-6)


def test_tanh_softcap():
    x = np.array([-100, -1, 0, 1, 100], dtype=np.float32)
    out = np.empty_like(x)
    ops.tanh_softcap_f32(x, out, 5, np.float32(30.0))
    np.testing.assert_allclose(out, np.tanh(x / 30.0) * 30.0, rtol=1e-6, atol=1e-6)


def _attention_ref(q, k, v, mask, scale):
    n_tokens, n_head, hd = q.shape
    n_head_kv = k.shape[1]
    out = np.zeros((n_tokens, n_head, v.shape[2]))
    for t in range(n_tokens):
        for h in range(n_head):
            hk = h // (n_head // n_head_kv)
            s = k[:, hk, :].astype(np.float64) @ q[t, h].astype(np.float64) * scale + mask[t]
            p = np.exp(s - s.max())
            p /= p.sum()
            out[t, h] = p @ v[:, hk, :]
    return out.reshape(n_tokens, -1)


@pytest.mark.parametrize("n_tokens,sgemm", [(1, False), (4, True), (4, False)])
def test_attention_matches_float64_softmax(n_tokens, sgemm):
    n_kv, n_head, n_head_kv, hd = 32, 4, 2, 16
    q = RNG.standard_normal((n_tokens, n_head, hd)).astype(np.float32)
    k = RNG.standard_normal((n_kv, n_head_kv, hd)).astype(np.float16).astype(np.float32)
    v = RNG.standard_normal((n_kv, n_head_kv, hd)).astype(np.float16).astype(np.float32)
    pos = np.arange(n_tokens) + 20
    mask = np.where(np.arange(n_kv)[None, :] <= pos[:, None], 0.0, -np.inf).astype(np.float32)
    out = np.empty((n_tokens, n_head * hd), dtype=np.float32)
    ops.attention_f16kv(q.reshape(-1), k.reshape(-1), v.reshape(-1), mask.reshape(-1),
                        out.reshape(-1), n_tokens, n_head, n_head_kv, hd, hd, n_kv,
                        np.float32(0.25), np.float32(0.0), sgemm, sgemm,
                        np.empty(n_kv, np.float32), np.empty(hd, np.float32),
                        np.empty(64, np.float32))
    ref = _attention_ref(q.astype(np.float16).astype(np.float32), k, v, mask, 0.25)
    # q and the probabilities are rounded to F16 like llama.cpp: ~1e-3 relative
    np.testing.assert_allclose(out, ref, rtol=0, atol=5e-3)


def test_matmul_q6_k_tiled_matches_the_dequantized_product():
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    from kernels.cpu import matmul as km

    n_rows, n_cols, n_tok = 8, 512, 9
    # random Q6_K blocks (any bytes are valid) with a small F16 scale d
    blocks = RNG.integers(0, 256, size=(n_rows * n_cols // 256, 210), dtype=np.uint8)
    blocks[:, 208:210] = np.full(len(blocks), 0.01, np.float16).view(np.uint8).reshape(-1, 2)
    wq = blocks.reshape(-1)
    x = RNG.standard_normal((n_tok, n_cols)).astype(np.float32)
    xq = np.empty(km.act_nbytes(int(T.Q6_K), n_tok, n_cols), np.uint8)
    km.quantize_act(x.reshape(-1), int(T.Q6_K), n_tok, n_cols, xq)
    out = np.empty(n_tok * n_rows, np.float32)
    ops.matmul_q6_k_tiled(wq, n_rows, n_cols, xq, n_tok, out, ops.f16_table())
    ref = x @ quants.dequantize(wq.reshape(n_rows, -1), T.Q6_K).T
    # the activation is quantized to Q8_K (8 bits per block of 256): ~1% of the row scale
    np.testing.assert_allclose(out.reshape(n_tok, n_rows), ref, rtol=0, atol=0.05 * np.abs(ref).max())


@pytest.mark.parametrize("sgemm,round_x16", [(True, False), (False, False), (True, True)])
def test_matmul_float_ggml_matches_numpy(sgemm, round_x16):
    n_rows, n_cols, n_tok = 4, 96, 3
    w = RNG.standard_normal((n_rows, n_cols)).astype(np.float32)
    x = RNG.standard_normal((n_tok, n_cols)).astype(np.float32)
    out = np.empty(n_tok * n_rows, np.float32)
    ops.matmul_float_ggml(w.reshape(-1), n_rows, n_cols, x.reshape(-1), n_tok, out, sgemm,
                          round_x16, np.empty(n_cols, np.float32), np.empty(64, np.float32))
    xr = x.astype(np.float16).astype(np.float32) if round_x16 else x
    np.testing.assert_allclose(out.reshape(n_tok, n_rows), xr.astype(np.float64) @ w.T.astype(np.float64),
                               rtol=1e-5, atol=1e-5)
