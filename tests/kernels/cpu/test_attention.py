"""kernels.cpu.attention.attention_f16kv is bit-identical to kernels.cpu.ops.attention_f16kv."""

import numba
import numpy as np
import pytest

from kernels.cpu import attention, ops


def _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa):
    f16 = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731  F16-rounded cache rows
    q = rng.standard_normal(n_tokens * n_head * head_dim).astype(np.float32)
    k = f16(rng.standard_normal(n_kv * n_head_kv * head_dim) * 2)
    v = f16(rng.standard_normal(n_kv * n_head_kv * head_dim))
    # causal mask: the tokens sit at the last n_tokens cells; SWA also hides cells >= swa behind
    mask = np.full((n_tokens, n_kv), -np.inf, dtype=np.float32)
    for t in range(n_tokens):
        pos = n_kv - n_tokens + t
        lo = max(0, pos - swa + 1) if swa else 0
        mask[t, lo:pos + 1] = 0.0
    # a few holes (cells of other sequences) wherever they fall
    holes = rng.random((n_tokens, n_kv)) < 0.05
    holes[:, -1] = False
    mask[holes] = -np.inf
    return q, k, v, mask.reshape(-1)


def _run(fn, q, k, v, mask, n_tokens, n_head, n_head_kv, head_dim, n_kv, scale, cap, sk, sv):
    out = np.full(n_tokens * n_head * head_dim, np.nan, dtype=np.float32)
    fn(q, k, v, mask, out, n_tokens, n_head, n_head_kv, head_dim, head_dim, n_kv, np.float32(scale),
       np.float32(cap), sk, sv, np.empty(n_kv, np.float32), np.empty(head_dim, np.float32),
       np.empty(64, np.float32))
    return out


CASES = [  # n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, softcap
    (1, 4, 4, 64, 1, 0, 0.0),
    (1, 9, 3, 64, 600, 0, 0.0),
    (1, 4, 1, 256, 517, 0, 50.0),
    (37, 9, 3, 64, 80, 0, 0.0),
    (37, 4, 1, 256, 64, 16, 0.0),
    (37, 8, 2, 64, 48, 7, 30.0),
    (5, 3, 3, 256, 600, 0, 0.0),
    (37, 4, 2, 64, 160, 20, 0.0),
    (3, 4, 2, 40, 70, 0, 0.0),  # head_dim % 16 != 0: vec_dot kq, scalar kqv tail
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_bit_identical_to_ops(case, threads):
    n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, cap = case
    rng = np.random.default_rng(hash(case) & 0xFFFF)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa)
    scale = 1.0 / np.sqrt(head_dim)
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for sk, sv in ((n_tokens >= 2 and n_kv % 4 == 0, n_tokens >= 2 and n_kv % 16 == 0),
                       (False, False), (True, True)):
            sk = sk and head_dim % 16 == 0  # the caller only takes tinyBLAS when k % 16 == 0
            want = _run(ops.attention_f16kv, q, k, v, mask, n_tokens, n_head, n_head_kv,
                        head_dim, n_kv, scale, cap, sk, sv)
            got = _run(attention.attention_f16kv, q, k, v, mask, n_tokens, n_head, n_head_kv,
                       head_dim, n_kv, scale, cap, sk, sv)
            assert np.isfinite(want).all()
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    finally:
        numba.set_num_threads(old)


def _reference(q, k, v, mask, n_tokens, n_head, n_head_kv, head_dim, n_kv, scale):
    """float64 masked GQA attention (no rounding anywhere)."""
    q = q.reshape(n_tokens, n_head, head_dim).astype(np.float64)
    k = k.reshape(n_kv, n_head_kv, head_dim).astype(np.float64)
    v = v.reshape(n_kv, n_head_kv, head_dim).astype(np.float64)
    m = mask.reshape(n_tokens, n_kv).astype(np.float64)
    out = np.empty((n_tokens, n_head, head_dim))
    for h in range(n_head):
        hk = h // (n_head // n_head_kv)
        s = q[:, h] @ k[:, hk].T * scale + m
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[:, h] = (p / p.sum(axis=1, keepdims=True)) @ v[:, hk]
    return out.reshape(-1)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[8]])
def test_f16_bits_give_the_numbers_of_float32_f16_values(case):
    """uint16 F16 caches are widened exactly in the loads: bit-identical to float32 F16 values."""
    n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, cap = case
    rng = np.random.default_rng(n_kv)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa)
    k16, v16 = k.astype(np.float16).view(np.uint16), v.astype(np.float16).view(np.uint16)
    sk = n_tokens >= 2 and n_kv % 4 == 0 and head_dim % 16 == 0
    sv = n_tokens >= 2 and n_kv % 16 == 0
    args = (n_tokens, n_head, n_head_kv, head_dim, n_kv, 1.0 / np.sqrt(head_dim), cap, sk, sv)
    want = _run(attention.attention_f16kv, q, k, v, mask, *args)
    got = _run(attention.attention_f16kv, q, k16, v16, mask, *args)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_f32_cache_kernel_matches_float64_attention():
    """attention_f32kv keeps q and the probabilities in float32: 1e-5 of float64 (F16 rounding
    of them, as attention_f16kv does, moves the result by ~1e-3)."""
    n_tokens, n_head, n_head_kv, head_dim, n_kv = 5, 4, 2, 64, 48
    rng = np.random.default_rng(1)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, 0)
    k = k + rng.standard_normal(k.size).astype(np.float32) * 1e-3  # not F16 values
    scale = 1.0 / np.sqrt(head_dim)
    want = _reference(q, k, v, mask, n_tokens, n_head, n_head_kv, head_dim, n_kv, scale)
    args = (n_tokens, n_head, n_head_kv, head_dim, n_kv, scale, 0.0, True, True)
    got = _run(attention.attention_f32kv, q, k, v, mask, *args)
    f16 = _run(attention.attention_f16kv, q, k, v, mask, *args)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.abs(f16 - want).max() > 10 * np.abs(got - want).max()
