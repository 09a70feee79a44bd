"""kernels.cpu.attention's parallel SIMD kernels are bit-identical to the serial kernels of
kernels.cpu.ops (attention_f16kv, attention_f32kv), and its vector pieces to their scalar ops."""

import numba
import numpy as np
import pytest
from numba import njit

from kernels.cpu import attention, attention_simd, ops


def _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, q_mul=1.0, f16=True):
    def r(a):  # F16-rounded cache rows, or plain float32 for an F32 cache
        return a.astype(np.float16).astype(np.float32) if f16 else a.astype(np.float32)

    q = (rng.standard_normal(n_tokens * n_head * head_dim) * q_mul).astype(np.float32)
    k = r(rng.standard_normal(n_kv * n_head_kv * head_dim) * 2)
    v = r(rng.standard_normal(n_kv * n_head_kv * head_dim))
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


CASES = [  # n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, softcap, q_mul
    (1, 4, 4, 64, 1, 0, 0.0, 1.0),
    (1, 9, 3, 64, 600, 0, 0.0, 1.0),
    (1, 4, 1, 256, 517, 0, 50.0, 1.0),
    (37, 9, 3, 64, 80, 0, 0.0, 1.0),  # prompt: 9 tiles of 4 tokens + 1 pair per head
    (37, 4, 1, 256, 64, 16, 0.0, 1.0),
    (37, 8, 2, 64, 48, 7, 30.0, 1.0),
    (5, 3, 3, 256, 600, 0, 0.0, 1.0),
    (37, 4, 2, 64, 160, 20, 0.0, 1.0),
    (3, 4, 2, 40, 70, 0, 0.0, 1.0),  # head_dim % 16 != 0: vec_dot kq, scalar kqv tail
    (8, 6, 2, 48, 96, 0, 0.0, 6.0),  # peaked softmax: probabilities 0 inside the range
    (6, 4, 4, 32, 45, 0, 0.0, 1.0),  # n_kv % 16 != 0 in tiles, MHA
    (12, 8, 2, 80, 211, 50, 0.0, 3.0),  # SWA, n_kv % 16 == 3, head_dim % 16 == 0, % 32 != 0
]


def _flags(n_tokens, head_dim, n_kv):
    """The caller's choice (emel.models.common.attention), vec_dot, tinyBLAS."""
    for sk, sv in ((n_tokens >= 2 and n_kv % 4 == 0, n_tokens >= 2 and n_kv % 16 == 0),
                   (False, False), (True, True)):
        yield sk and head_dim % 16 == 0, sv  # tinyBLAS kq only when k % 16 == 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_bit_identical_to_ops(case, threads):
    n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, cap, q_mul = case
    rng = np.random.default_rng(hash(case) & 0xFFFF)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, q_mul)
    k16, v16 = k.astype(np.float16).view(np.uint16), v.astype(np.float16).view(np.uint16)
    scale = 1.0 / np.sqrt(head_dim)
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        for sk, sv in _flags(n_tokens, head_dim, n_kv):
            args = (n_tokens, n_head, n_head_kv, head_dim, n_kv, scale, cap, sk, sv)
            want = _run(ops.attention_f16kv, q, k, v, mask, *args)
            assert np.isfinite(want).all()
            for kk, vv in ((k, v), (k16, v16)):  # float32 F16 values, F16 bits
                got = _run(attention.attention_f16kv, q, kk, vv, mask, *args)
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("case", [CASES[i] for i in (1, 3, 6, 9, 10, 11)])
def test_f32_cache_bit_identical_to_ops(case):
    """attention_f32kv (q and probabilities not rounded) against ops.attention_f32kv."""
    n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, cap, q_mul = case
    rng = np.random.default_rng(n_kv)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, q_mul, f16=False)
    for sk, sv in _flags(n_tokens, head_dim, n_kv):
        args = (n_tokens, n_head, n_head_kv, head_dim, n_kv, 1.0 / np.sqrt(head_dim), cap, sk, sv)
        want = _run(ops.attention_f32kv, q, k, v, mask, *args)
        got = _run(attention.attention_f32kv, q, k, v, mask, *args)
        assert np.isfinite(want).all()
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("case", [CASES[i] for i in (1, 2, 10)])
def test_caller_workspace_gives_the_same_bits(case):
    """With `lanes` of workspace_nbytes (the decode arena's view) the chunks take their scratch
    from it instead of allocating: same results as ops."""
    n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, cap, q_mul = case
    rng = np.random.default_rng(3)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, swa, q_mul)
    k16, v16 = k.astype(np.float16).view(np.uint16), v.astype(np.float16).view(np.uint16)
    ws = np.full(attention.workspace_nbytes(n_tokens, n_head, n_kv, head_dim, head_dim) // 4,
                 np.nan, np.float32)
    for sk, sv in _flags(n_tokens, head_dim, n_kv):
        args = (n_tokens, n_head, n_head_kv, head_dim, n_kv, 1.0 / np.sqrt(head_dim), cap, sk, sv)
        want = _run(ops.attention_f16kv, q, k, v, mask, *args)
        got = np.full_like(want, np.nan)
        attention.attention_f16kv(q, k16, v16, mask, got, n_tokens, n_head, n_head_kv, head_dim,
                                  head_dim, n_kv, np.float32(args[5]), np.float32(cap), sk, sv,
                                  ws, ws, ws)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


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


def test_f32_cache_kernel_matches_float64_attention():
    """attention_f32kv keeps q and the probabilities in float32: 1e-5 of float64 (F16 rounding
    of them, as attention_f16kv does, moves the result by ~1e-3)."""
    n_tokens, n_head, n_head_kv, head_dim, n_kv = 5, 4, 2, 64, 48
    rng = np.random.default_rng(1)
    q, k, v, mask = _case(rng, n_tokens, n_head, n_head_kv, head_dim, n_kv, 0, f16=False)
    scale = 1.0 / np.sqrt(head_dim)
    want = _reference(q, k, v, mask, n_tokens, n_head, n_head_kv, head_dim, n_kv, scale)
    args = (n_tokens, n_head, n_head_kv, head_dim, n_kv, scale, 0.0, True, True)
    got = _run(attention.attention_f32kv, q, k, v, mask, *args)
    f16 = _run(attention.attention_f16kv, q, k, v, mask, *args)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.abs(f16 - want).max() > 10 * np.abs(got - want).max()


@njit(cache=True)
def _exp_both(x, vec, ref):
    for j0 in range(0, x.size, 16):
        s = attention_simd.exp16(vec, j0, np.float32(0.0))
        for i in range(16):
            ref[j0 + i] = ops.v_expf(x[j0 + i])
        if s != ops.reduce16(ref, j0):
            return j0
    return -1


@njit(cache=True)
def _round_both(x, vec, ref):
    for j0 in range(0, x.size, 16):
        attention_simd.round16(vec, j0, x, j0)
        for i in range(16):
            ref[j0 + i] = ops.round_f16(x[j0 + i])


def _special_floats(rng):
    """Random floats over every exponent, with infinities, zeros, subnormals and F16's edges."""
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.99, 65520, 6.1e-5, 5.96e-8,
                      2.98e-8, 2.99e-8, -88.7, -103.9, -104, 88.7, 89, -87.33, -87.34, 192, -192,
                      -193], np.float32)
    normal = rng.standard_normal(20_000).astype(np.float32) * 40
    x = np.concatenate([x[~np.isnan(x)], edges, normal])
    return x[: x.size & ~15]


def test_vector_exp_and_f16_rounding_are_the_scalar_ops():
    """exp16 is ops.v_expf on every lane (with its reduce16), round16 is ops.round_f16, over
    random bit patterns (all exponents, no NaN), subnormals, F16 overflow and exp's range ends."""
    x = _special_floats(np.random.default_rng(0))
    vec, ref = x.copy(), np.empty_like(x)
    assert _exp_both(x, vec, ref) == -1
    np.testing.assert_array_equal(vec.view(np.uint32), ref.view(np.uint32))
    vec = np.empty_like(x)
    _round_both(x, vec, ref)
    np.testing.assert_array_equal(vec.view(np.uint32), ref.view(np.uint32))
