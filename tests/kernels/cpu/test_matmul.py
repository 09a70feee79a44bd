"""kernels.cpu.matmul against llama.cpp's vec_dot, a NumPy integer-dot reference and gguf-py.

Tolerances:
* llama.cpp fixture (parity_fixtures/matmul, ggml_vec_dot_* called through ctypes): bit-exact for
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, for the SIMD kernels and the
  portable fallback;
  Q4_K with a multiple of 8 rows bit-exact with the repacked ggml_gemv/gemm_q4_K_8x8_q8_K;
  F16 bit-exact with ggml_vec_dot_f16 (AVX-512 build).
* NumPy integer reference (block integer dots, float64 scaling): |diff| <= 1e-5 * sum|terms|,
  the float32 rounding of the per-block FMA chain.
* dequantize (gguf-py) + float64 matmul on the activation as the kernel sees it: 1e-5 of
  |W| @ |x| (Q4_1/Q5_1: 2e-3, since llama.cpp's Q8_1 block sum s is rounded to f16).
* slow path types (x quantized to Q8_K / Q8_0 as llama.cpp does, then dequantized; weight rows
  dequantized; float32 dot): 1e-5 of |W| @ |x_q| against llama.cpp and against gguf-py.
"""

import numba
import numpy as np
import pytest
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from kernels.cpu import matmul as mm
from kernels.cpu import vec_dot

FAST = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}
# qk, block bytes, f16 scale offsets, activation block bytes
LAYOUT = {"Q4_0": (32, 18, (0,), 34), "Q4_1": (32, 20, (0, 2), 36), "Q5_0": (32, 22, (0,), 34),
          "Q5_1": (32, 24, (0, 2), 36), "Q8_0": (32, 34, (0,), 34), "Q4_K": (256, 144, (0, 2), 292),
          "Q5_K": (256, 176, (0, 2), 292), "Q6_K": (256, 210, (208,), 292)}
PORTABLE = {"Q4_0": vec_dot.vec_dot_q4_0_q8_0, "Q4_1": vec_dot.vec_dot_q4_1_q8_1,
            "Q5_0": vec_dot.vec_dot_q5_0_q8_0, "Q5_1": vec_dot.vec_dot_q5_1_q8_1,
            "Q8_0": vec_dot.vec_dot_q8_0_q8_0, "Q4_K": vec_dot.vec_dot_q4_k_q8_k,
            "Q5_K": vec_dot.vec_dot_q5_k_q8_k, "Q6_K": vec_dot.vec_dot_q6_k_q8_k}
# bit-exact with llama.cpp, without a NumPy integer reference here: name -> (qk, block bytes, act bytes)
EXACT_ONLY = {"IQ4_NL": (32, 18, 34), "IQ4_XS": (256, 136, 292)}
PORTABLE.update({"IQ4_NL": vec_dot.vec_dot_iq4_nl_q8_0, "IQ4_XS": vec_dot.vec_dot_iq4_xs_q8_k})
SLOW = ["Q2_K", "Q3_K", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "TQ1_0", "TQ2_0"]


@pytest.fixture(scope="module")
def fixture(fixtures_dir):
    return np.load(fixtures_dir / "matmul" / "vec_dot.npz")


def _f16(a):
    return np.ascontiguousarray(a).view(np.float16).astype(np.float64).reshape(a.shape[:-1])


def _s8(a):
    return a.view(np.int8).astype(np.int64)


def random_weight(rng, name, n_rows, n_cols):
    qk, bb, scales, _ = LAYOUT[name]
    nb = n_rows * n_cols // qk
    w = rng.integers(0, 256, nb * bb, dtype=np.uint8).reshape(nb, bb)
    for off in scales:
        w[:, off:off + 2] = (rng.standard_normal(nb) * 0.02).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return w.reshape(-1)


# ---------------------------------------------------------------------------------------------
# NumPy reference with llama.cpp's integer numerics
# ---------------------------------------------------------------------------------------------

def _decode_weight(name, w, n_rows, n_cols):
    """-> ints q[n_rows, n_blocks, qk], per-block float scales (d, extra) as in vec_dot."""
    qk, bb, _, _ = LAYOUT[name]
    b = w.reshape(n_rows, n_cols // qk, bb)
    if name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
        qs_at = {"Q4_0": 2, "Q4_1": 4, "Q5_0": 6, "Q5_1": 8}[name]
        qs = b[..., qs_at:qs_at + 16].astype(np.int64)
        q = np.concatenate([qs & 15, qs >> 4], axis=-1)
        if name in ("Q5_0", "Q5_1"):
            h_at = 2 if name == "Q5_0" else 4
            qh = np.ascontiguousarray(b[..., h_at:h_at + 4]).view(np.uint32).astype(np.int64)
            q = q | (((qh >> np.arange(32)) & 1) << 4)
        q = q - {"Q4_0": 8, "Q5_0": 16}.get(name, 0)
        return q, _f16(b[..., 0:2]), (_f16(b[..., 2:4]) if name in ("Q4_1", "Q5_1") else None)
    if name == "Q8_0":
        return _s8(np.ascontiguousarray(b[..., 2:])), _f16(b[..., 0:2]), None
    if name in ("Q4_K", "Q5_K"):
        s = b[..., 4:16].astype(np.int64)
        sc = np.empty(s.shape[:-1] + (8,), np.int64)
        mn = np.empty_like(sc)
        for j in range(8):
            if j < 4:
                sc[..., j], mn[..., j] = s[..., j] & 63, s[..., j + 4] & 63
            else:
                sc[..., j] = (s[..., j + 4] & 15) | ((s[..., j - 4] >> 6) << 4)
                mn[..., j] = (s[..., j + 4] >> 4) | ((s[..., j] >> 6) << 4)
        qs_at = 16 if name == "Q4_K" else 48
        qs = b[..., qs_at:qs_at + 128].astype(np.int64).reshape(n_rows, -1, 4, 32)
        q = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(n_rows, -1, 8, 32)
        if name == "Q5_K":  # bit j of qh[l] is the fifth bit of value l of sub-block j
            qh = b[..., 16:48].astype(np.int64)[..., None, :]
            q = q | (((qh >> np.arange(8)[:, None]) & 1) << 4)
        return q.reshape(n_rows, -1, 256), (_f16(b[..., 0:2]), _f16(b[..., 2:4])), (sc, mn)
    # Q6_K
    ql = b[..., :128].astype(np.int64).reshape(n_rows, -1, 2, 2, 32)
    qh = b[..., 128:192].astype(np.int64).reshape(n_rows, -1, 2, 32)
    parts = [(ql[..., 0, :] & 15) | ((qh & 3) << 4), (ql[..., 1, :] & 15) | (((qh >> 2) & 3) << 4),
             (ql[..., 0, :] >> 4) | (((qh >> 4) & 3) << 4), (ql[..., 1, :] >> 4) | (((qh >> 6) & 3) << 4)]
    q = np.stack(parts, axis=-2).reshape(n_rows, -1, 256) - 32
    return q, _f16(b[..., 208:210]), _s8(np.ascontiguousarray(b[..., 192:208]))


def _decode_act(name, xq, n_tokens, n_cols):
    """-> ints qx[n_tokens, n_blocks, qk], d[n_tokens, n_blocks], extra (s of Q8_1 or bsums)."""
    qk, _, _, xb = LAYOUT[name]
    b = xq.reshape(n_tokens, n_cols // qk, xb)
    if xb == 34:
        return _s8(np.ascontiguousarray(b[..., 2:])), _f16(b[..., 0:2]), None
    if xb == 36:
        return _s8(np.ascontiguousarray(b[..., 4:])), _f16(b[..., 0:2]), _f16(b[..., 2:4])
    d = np.ascontiguousarray(b[..., 0:4]).view(np.float32).astype(np.float64)[..., 0]
    bs = np.ascontiguousarray(b[..., 260:292]).view(np.int16).astype(np.int64)
    return _s8(np.ascontiguousarray(b[..., 4:260])), d, bs


def reference_int_dot(name, w, n_rows, n_cols, xq, n_tokens):
    """(out[n_tokens, n_rows], scale[n_tokens, n_rows] = sum |terms|) with llama.cpp's numerics:
    exact integer block dots, the block's float32 scale product, terms summed in float64."""
    q, dw, extra_w = _decode_weight(name, w, n_rows, n_cols)
    qx, dx, extra_x = _decode_act(name, xq, n_tokens, n_cols)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    if name in ("Q4_K", "Q5_K"):
        isub = np.einsum("rbjk,tbjk->trbj", q.reshape(n_rows, -1, 8, 32), qx.reshape(n_tokens, -1, 8, 32))
        sc, mn = extra_w
        isum = (isub * sc[None]).sum(-1)
        msum = (mn[None] * extra_x.reshape(n_tokens, -1, 8, 2).sum(-1)[:, None]).sum(-1)
        d = f32(dx[:, None] * dw[0][None])
        dmin = f32(-dx[:, None] * dw[1][None])
        terms = np.concatenate([d * isum, dmin * msum], axis=-1)
    elif name == "Q6_K":
        isub = np.einsum("rbjk,tbjk->trbj", q.reshape(n_rows, -1, 16, 16), qx.reshape(n_tokens, -1, 16, 16))
        isum = (isub * extra_w[None]).sum(-1)
        terms = f32(dx[:, None] * dw[None]) * isum
    else:
        isum = np.einsum("rbk,tbk->trb", q, qx)
        terms = f32(dw[None] * dx[:, None]) * isum
        if extra_w is not None:  # Q4_1 / Q5_1: + m * s per block
            terms = np.concatenate([terms, extra_w[None] * extra_x[:, None]], axis=-1)
    return terms.sum(-1), np.abs(terms).sum(-1)


def _dequant_act(name, xq, n_tokens, n_cols):
    qx, dx, _ = _decode_act(name, xq, n_tokens, n_cols)
    return (qx * dx[..., None]).reshape(n_tokens, n_cols)


def _run(name, w, n_rows, n_cols, x):
    out = np.full((x.shape[0], n_rows) if x.ndim == 2 else (n_rows,), np.nan, np.float32)
    mm.matmul(w, FAST.get(name, int(GGMLQuantizationType[name])), n_rows, n_cols, x, out)
    return out


# ---------------------------------------------------------------------------------------------
# Parity with llama.cpp (fixture)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(FAST) + list(EXACT_ONLY))
def test_matmul_is_bit_exact_with_llama_cpp_vec_dot(name, fixture):
    x = fixture["x"]
    ref = fixture[f"out_{name}"]
    n_tokens, n_cols = x.shape
    w = fixture[f"w_{name}"]
    got = _run(name, w, ref.shape[1], n_cols, x)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    got1 = _run(name, w, ref.shape[1], n_cols, np.ascontiguousarray(x[1]))
    assert np.array_equal(got1.view(np.uint32), ref[1].view(np.uint32))


def test_q4_k_with_rows_multiple_of_8_is_bit_exact_with_llama_cpp_repacked_kernels(fixture):
    # llama.cpp's x86 build repacks such Q4_K weights: 1..3 tokens go through
    # ggml_gemv_q4_K_8x8_q8_K, groups of 4 through ggml_gemm_q4_K_8x8_q8_K
    x, w = fixture["x"], fixture["w_Q4_K_r8"]
    gemv, gemm = fixture["out_Q4_K_r8_gemv"], fixture["out_Q4_K_r8_gemm"]
    n_rows, n_cols = gemv.shape[1], x.shape[1]
    for t in range(x.shape[0]):
        got = _run("Q4_K", w, n_rows, n_cols, np.ascontiguousarray(x[t]))
        assert np.array_equal(got.view(np.uint32), gemv[t].view(np.uint32))
    got = _run("Q4_K", w, n_rows, n_cols, np.ascontiguousarray(np.concatenate([x, x[2:3]])))
    assert np.array_equal(got[:4].view(np.uint32), gemm.view(np.uint32))
    assert np.array_equal(got[4].view(np.uint32), gemv[2].view(np.uint32))
    xq, nb = fixture["xq_q8_K"], n_cols // 256
    for fn, ref in ((vec_dot.vec_dot_q4_k_r8_gemv, gemv), (vec_dot.vec_dot_q4_k_r8_gemm, gemm)):
        p = np.array([[fn(w, r * nb * 144, xq, t * nb * 292, nb) for r in range(n_rows)]
                      for t in range(x.shape[0])], np.float32)
        assert np.array_equal(p.view(np.uint32), ref.view(np.uint32))


def test_f16_matches_llama_cpp_vec_dot_f16(fixture):
    # x converted to F16 (ggml_cpu_fp32_to_fp16), dot as ggml_vec_dot_f16 of the AVX-512 build;
    # 200 columns: three 64-value steps and a tail of 8
    x = np.ascontiguousarray(fixture["x"][:, :200])
    ref = fixture["out_F16_200"]
    got = _run("F16", fixture["w_F16_200"], ref.shape[1], 200, x)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_iq4_nl_with_odd_block_count_is_bit_exact(fixture):
    # the AVX2 loop takes blocks in pairs (two accumulators) and adds an odd last block apart
    x = np.ascontiguousarray(fixture["x"][:, :96])
    ref = fixture["out_IQ4_NL_96"]
    got = _run("IQ4_NL", fixture["w_IQ4_NL_96"], ref.shape[1], 96, x)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("name", list(PORTABLE))
def test_portable_vec_dot_is_bit_exact_with_llama_cpp(name, fixture):
    qk, bb, xb = EXACT_ONLY[name] if name in EXACT_ONLY else (LAYOUT[name][0], LAYOUT[name][1], LAYOUT[name][3])
    x_key = {34: "xq_q8_0", 36: "xq_q8_1", 292: "xq_q8_K"}[xb]
    xq, w, ref = fixture[x_key], fixture[f"w_{name}"], fixture[f"out_{name}"]
    nb = fixture["x"].shape[1] // qk
    got = np.array([[PORTABLE[name](w, r * nb * bb, xq, t * nb * xb, nb) for r in range(ref.shape[1])]
                    for t in range(ref.shape[0])], np.float32)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def _slow_act(name, x):
    """The activation as llama.cpp's integer dot sees it: x -> Q8_K / Q8_0 -> d * q (float32)."""
    q8k = GGMLQuantizationType[name].name not in ("MXFP4", "NVFP4")
    n_tokens, n_cols = x.shape
    xq = np.empty(n_tokens * (n_cols // 256 * 292 if q8k else n_cols // 32 * 34), np.uint8)
    xd = np.empty(n_tokens * n_cols, np.float32)
    mm.quantize_act_float(np.ascontiguousarray(x).reshape(-1), q8k, n_tokens, n_cols, xq, xd)
    return xd.reshape(n_tokens, n_cols).astype(np.float64)


@pytest.mark.parametrize("name", SLOW)
def test_slow_path_types_close_to_llama_cpp(name, fixture):
    x = fixture["x"]
    ref = fixture[f"out_{name}"]
    w = fixture[f"w_{name}"]
    got = _run(name, w, ref.shape[1], x.shape[1], x)
    wf = gguf_dequantize(w.reshape(ref.shape[1], -1), GGMLQuantizationType[name]).astype(np.float64)
    scale = np.abs(_slow_act(name, x)) @ np.abs(wf).T
    assert np.all(np.abs(got - ref) <= 1e-5 * scale + 1e-30)


# ---------------------------------------------------------------------------------------------
# NumPy references on other shapes
# ---------------------------------------------------------------------------------------------

def _shape(name):
    return (7, 512) if LAYOUT[name][0] == 256 else (7, 96)


@pytest.mark.parametrize("name", list(FAST))
@pytest.mark.parametrize("n_tokens", [1, 5])
def test_matmul_matches_integer_reference_and_dequantize(name, n_tokens):
    rng = np.random.default_rng(FAST[name] * 10 + n_tokens)
    n_rows, n_cols = _shape(name)
    w = random_weight(rng, name, n_rows, n_cols)
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    got = _run(name, w, n_rows, n_cols, x)
    xq = np.empty(mm.act_nbytes(FAST[name], n_tokens, n_cols), np.uint8)
    mm.quantize_act(x.reshape(-1), FAST[name], n_tokens, n_cols, xq)
    ref, scale = reference_int_dot(name, w, n_rows, n_cols, xq, n_tokens)
    assert np.all(np.abs(got - ref) <= 1e-5 * scale + 1e-30)
    wf = gguf_dequantize(w.reshape(n_rows, -1), GGMLQuantizationType[name]).astype(np.float64)
    xf = _dequant_act(name, xq, n_tokens, n_cols)
    tol = (2e-3 if name in ("Q4_1", "Q5_1") else 1e-5) * (np.abs(xf) @ np.abs(wf).T)
    assert np.all(np.abs(got - xf @ wf.T) <= tol)


@pytest.mark.parametrize("name", ["F32", "F16", "BF16"])
@pytest.mark.parametrize("n_tokens", [1, 3])
def test_float_weights_match_numpy(name, n_tokens):
    rng = np.random.default_rng(5 + n_tokens)
    n_rows, n_cols = 9, 136  # F32/BF16: four 32-value steps and a tail of 8; F16: 2 x 64 and 8
    wf = rng.standard_normal((n_rows, n_cols)).astype(np.float32)
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    if name == "F32":
        w, wr, xr = wf.view(np.uint8).reshape(-1), wf, x
    elif name == "F16":
        w, wr = wf.astype(np.float16).view(np.uint8).reshape(-1), wf.astype(np.float16).astype(np.float32)
        xr = x.astype(np.float16).astype(np.float32)  # llama.cpp converts x to F16 first
    else:
        to_bf16 = lambda a: ((a.view(np.uint32).astype(np.uint64) + 0x7FFF  # noqa: E731
                              + ((a.view(np.uint32) >> 16) & 1)) >> 16).astype(np.uint16)
        w = to_bf16(wf).view(np.uint8).reshape(-1)
        wr = (to_bf16(wf).astype(np.uint32) << 16).view(np.float32)
        xr = (to_bf16(x).astype(np.uint32) << 16).view(np.float32)
    got = _run(name, w, n_rows, n_cols, x)
    ref = xr.astype(np.float64) @ wr.astype(np.float64).T
    assert np.all(np.abs(got - ref) <= 1e-5 * (np.abs(xr) @ np.abs(wr).T))
    portable = {"F32": vec_dot.vec_dot_f32_f32, "F16": vec_dot.vec_dot_f16_f16, "BF16": vec_dot.vec_dot_bf16_bf16}
    xq = np.empty(mm.act_nbytes(int(GGMLQuantizationType[name]), n_tokens, n_cols), np.uint8)
    mm.quantize_act(x.reshape(-1), int(GGMLQuantizationType[name]), n_tokens, n_cols, xq)
    eb = 4 if name == "F32" else 2
    p = np.array([[portable[name](w, r * n_cols * eb, xq, t * n_cols * eb, n_cols) for r in range(n_rows)]
                  for t in range(n_tokens)], np.float32)
    assert np.array_equal(p.reshape(got.shape).view(np.uint32), got.view(np.uint32))


@pytest.mark.parametrize("n_tokens", [1, 2])
@pytest.mark.parametrize("name,qk,bb,scales", [("Q3_K", 256, 110, (108,)), ("IQ2_XS", 256, 74, (0,))])
def test_slow_path_matches_gguf_dequantize_on_odd_rows(name, qk, bb, scales, n_tokens):
    rng = np.random.default_rng(2)
    n_rows, n_cols = 3, 256
    w = rng.integers(0, 256, n_rows * n_cols // qk * bb, dtype=np.uint8).reshape(-1, bb)
    for off in scales:
        w[:, off:off + 2] = (rng.standard_normal(len(w)) * 0.02).astype(np.float16).view(np.uint8).reshape(-1, 2)
    w = w.reshape(-1)
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    got = _run(name, w, n_rows, n_cols, x if n_tokens > 1 else np.ascontiguousarray(x[0]))
    wf = gguf_dequantize(w.reshape(n_rows, -1), GGMLQuantizationType[name]).astype(np.float64)
    xd = _slow_act(name, x)
    ref, scale = xd @ wf.T, np.abs(xd) @ np.abs(wf).T
    assert np.all(np.abs(got - ref.reshape(got.shape)) <= 1e-5 * scale.reshape(got.shape) + 1e-30)


def test_one_and_two_threads_give_identical_results():
    rng = np.random.default_rng(11)
    n_cols = 512
    x = rng.standard_normal((38, n_cols)).astype(np.float32)  # more than one token tile
    before = numba.get_num_threads()
    try:
        # 37 rows: several row chunks and an odd count; Q4_K with 40 rows takes the repack numerics
        for name, n_rows in (("Q4_1", 37), ("Q4_K", 37), ("Q4_K", 40)):
            w = random_weight(rng, name, n_rows, n_cols)
            outs = []
            for t in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
                numba.set_num_threads(t)
                outs.append(_run(name, w, n_rows, n_cols, x))
            assert np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))
            single = _run(name, w, n_rows, n_cols, np.ascontiguousarray(x[37]))  # a gemv token
            assert np.array_equal(single.view(np.uint32), outs[0][37].view(np.uint32))
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("bad", [
    dict(w_size=10), dict(n_cols=100), dict(x_dtype=np.float64), dict(out_shape=(4,)),
    dict(ggml_type=15), dict(ggml_type=999), dict(x_shape=(2, 96)),
])
def test_bad_arguments_raise_value_error(bad):
    n_rows, n_cols = 3, bad.get("n_cols", 96)
    w = np.zeros(bad.get("w_size", n_rows * 3 * 20), np.uint8)
    x = np.zeros(bad.get("x_shape", (96,)), bad.get("x_dtype", np.float32))
    out = np.zeros(bad.get("out_shape", (n_rows,)), np.float32)
    with pytest.raises(ValueError):
        mm.matmul(w, bad.get("ggml_type", 3), n_rows, n_cols, x, out)


@pytest.mark.parametrize("n_tokens", [1, 6])
def test_matmul_q_rows_on_row_ranges_equals_matmul_q(n_tokens):
    rng = np.random.default_rng(8 + n_tokens)
    n_rows, n_cols, t = 40, 512, FAST["Q4_K"]  # 40 rows: the repacked-Q4_K numerics
    w = random_weight(rng, "Q4_K", n_rows, n_cols)
    x = rng.standard_normal(n_tokens * n_cols).astype(np.float32)
    xq = np.empty(mm.act_nbytes(t, n_tokens, n_cols), np.uint8)
    mm.quantize_act(x, t, n_tokens, n_cols, xq)
    full = np.empty(n_tokens * n_rows, np.float32)
    mm.matmul_q(w, t, n_rows, n_cols, xq, n_tokens, full)
    parts = np.full(n_tokens * n_rows, np.nan, np.float32)
    for r0, r1 in ((0, 7), (7, 30), (30, 40)):
        mm.matmul_q_rows(w, t, n_rows, n_cols, xq, n_tokens, parts, r0, r1)
    assert np.array_equal(full.view(np.uint32), parts.view(np.uint32))


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"])
def test_prefill_tiles_equal_single_token_dots(name):
    # prefill takes 2 rows x 8 or 4 tokens per step (odd last row, token tail of 1); each output must
    # equal the one-token dot (proved bit-exact with llama.cpp above)
    rng = np.random.default_rng(21)
    n_rows, n_cols, n_tokens = 7, 64, 13
    w = random_weight(rng, name, n_rows, n_cols)
    w.setflags(write=False)  # as the model's mmap views
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    got = _run(name, w, n_rows, n_cols, x)
    for t in range(n_tokens):
        one = _run(name, w, n_rows, n_cols, np.ascontiguousarray(x[t]))
        assert np.array_equal(got[t].view(np.uint32), one.view(np.uint32))


def test_decode_q8_0_row_groups_equal_portable_dot():
    # one token: Q8_0 rows go 8 at a time through the AVX-512 tile where the host has it, the
    # rest two at a time; each must equal the portable vec_dot (bit-exact with llama.cpp above)
    rng = np.random.default_rng(22)
    n_rows, n_cols = 19, 96
    w = random_weight(rng, "Q8_0", n_rows, n_cols)
    w.setflags(write=False)
    x = rng.standard_normal(n_cols).astype(np.float32)
    got = _run("Q8_0", w, n_rows, n_cols, x)
    xq = np.empty(mm.act_nbytes(FAST["Q8_0"], 1, n_cols), np.uint8)
    mm.quantize_act(x, FAST["Q8_0"], 1, n_cols, xq)
    want = np.array([vec_dot.vec_dot_q8_0_q8_0(w, r * 3 * 34, xq, 0, 3) for r in range(n_rows)], np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


# ---------------------------------------------------------------------------------------------
# K-quant prompt tiles (kernels.cpu.simd_kquant): weight rows as the lanes of one register; every
# output must equal the one-row dot with llama.cpp's float steps (vec_dot's portable twins,
# proved bit-exact with llama.cpp above and in tests/kernels/cpu/test_step.py)
# ---------------------------------------------------------------------------------------------

def _kquant_variants():
    from kernels.cpu import simd, simd_kquant

    if not simd_kquant.HAS_KQ:
        return []
    variants = [(8, False)]  # AVX2: vpmaddubsw + vpmaddwd
    if simd.HAS_VNNI:
        variants.append((8, True))
    if simd_kquant.HAS_KQ16:
        variants.append((16, True))
    return variants


def _q8_k_act(rng, n_tokens, n_cols):
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    x[0] = -3.0  # constant rows quantize to -128 everywhere (Q8_K's extreme value)
    if n_tokens > 1:
        x[1] = 2.0
    xq = np.empty(mm.act_nbytes(FAST["Q4_K"], n_tokens, n_cols), np.uint8)
    mm.quantize_act(x.reshape(-1), FAST["Q4_K"], n_tokens, n_cols, xq)
    return xq


@pytest.mark.parametrize("lanes,vnni", _kquant_variants())
def test_k_quant_prompt_tiles_equal_portable_dots(lanes, vnni):
    from kernels.cpu import simd_kquant

    tile_q4_k, tile_q6_k = simd_kquant.make_tiles(lanes, vnni)

    @numba.njit
    def run(q6, w, row_bytes, n_valid, xq, x_row_bytes, n_tok, nb, out, o_stride):
        if q6:
            tile_q6_k(w, 0, row_bytes, n_valid, xq, 0, x_row_bytes, n_tok, nb, out, 3, o_stride)
        else:
            tile_q4_k(w, 0, row_bytes, n_valid, xq, 0, x_row_bytes, n_tok, nb, out, 3, o_stride)

    rng = np.random.default_rng(lanes + vnni)
    # full and partial row groups; token counts off the 4-token group; the most tokens per call
    cases = [(lanes, 13, 512), (lanes - 3, 4, 256), (1, 1, 256), (lanes, simd_kquant.KQ_MAX_TOK, 256)]
    for name, ref in (("Q4_K", vec_dot.vec_dot_q4_k_r8_gemm), ("Q6_K", vec_dot.vec_dot_q6_k_tiled)):
        bb = LAYOUT[name][1]
        for n_valid, n_tok, n_cols in cases:
            nb = n_cols // 256
            w = random_weight(rng, name, n_valid, n_cols)
            w.setflags(write=False)
            xq = _q8_k_act(rng, n_tok, n_cols)
            o_stride = lanes + 5
            out = np.full(3 + n_tok * o_stride, np.nan, np.float32)
            run(name == "Q6_K", w, nb * bb, n_valid, xq, nb * 292, n_tok, nb, out, o_stride)
            got = out[3:].reshape(n_tok, o_stride)
            want = np.array([[ref(w, r * nb * bb, xq, t * nb * 292, nb) for r in range(n_valid)]
                             for t in range(n_tok)], np.float32)
            assert np.array_equal(got[:, :n_valid].view(np.uint32), want.view(np.uint32)), (name, n_valid, n_tok)
            assert np.isnan(got[:, n_valid:]).all() and np.isnan(out[:3]).all()  # nothing else written


@pytest.mark.parametrize("n_rows,n_tokens", [(24, 13), (8, 40)])
def test_q4_k_r8_prompt_equals_portable_repacked_dots(n_rows, n_tokens):
    # rows % 8 == 0 but not a multiple of 16; tokens past the last group of 4 take the gemv steps
    rng = np.random.default_rng(n_rows + n_tokens)
    n_cols = 512
    nb = n_cols // 256
    w = random_weight(rng, "Q4_K", n_rows, n_cols)
    xq = _q8_k_act(rng, n_tokens, n_cols)
    got = np.full(n_tokens * n_rows, np.nan, np.float32)
    mm.matmul_q(w, FAST["Q4_K"], n_rows, n_cols, xq, n_tokens, got)
    n_gemm = n_tokens - n_tokens % 4
    want = np.array([[(vec_dot.vec_dot_q4_k_r8_gemm if t < n_gemm else vec_dot.vec_dot_q4_k_r8_gemv)(
        w, r * nb * 144, xq, t * nb * 292, nb) for r in range(n_rows)] for t in range(n_tokens)], np.float32)
    assert np.array_equal(got.view(np.uint32), want.reshape(-1).view(np.uint32))


@pytest.mark.parametrize("n_rows,n_tokens", [(21, 11), (16, 36)])
def test_q6_k_tiled_prompt_rows_equal_portable_dots(n_rows, n_tokens):
    rng = np.random.default_rng(n_rows * n_tokens)
    n_cols = 512
    nb = n_cols // 256
    w = random_weight(rng, "Q6_K", n_rows, n_cols)
    xq = _q8_k_act(rng, n_tokens, n_cols)
    got = np.full(n_tokens * n_rows, np.nan, np.float32)
    mm.matmul_q6_k_tiled_rows(w, n_rows, n_cols, xq, n_tokens, got, 0, n_rows)
    want = np.array([[vec_dot.vec_dot_q6_k_tiled(w, r * nb * 210, xq, t * nb * 292, nb) for r in range(n_rows)]
                     for t in range(n_tokens)], np.float32)
    assert np.array_equal(got.view(np.uint32), want.reshape(-1).view(np.uint32))
