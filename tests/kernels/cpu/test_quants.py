"""kernels.cpu.quants against gguf-py's gguf.quants (llama.cpp's reference quant functions).

Dequantize must be bit-exact with gguf.quants.dequantize: random bytes for every type (f16 scales
included, so some blocks have inf/NaN scales: those positions must be NaN on both sides, NaN
payloads are not compared) and real tensors of both default models. Quantize must be bit-exact
with gguf.quants.quantize for every type gguf-py implements; Q8_K (absent from gguf-py) is
checked against a NumPy transcription of ggml's quantize_row_q8_K_ref.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gq
from numba import njit

from kernels.cpu import quants
from kernels.cpu.quants import dequantize, dequantize_row, get_rows, quantize

DEQUANTIZE_TYPES = sorted(quants.DEQUANTIZE_TYPES)
QUANTIZE_TYPES = sorted(quants.QUANTIZE_TYPES)


def _name(t: int) -> str:
    return GGMLQuantizationType(t).name


def _n_blocks(block_size: int) -> int:
    # just over one parallel chunk (16384 values), so the chunked driver splits the work
    return 16384 // block_size + 7


def assert_same_floats(mine: np.ndarray, ref: np.ndarray) -> None:
    """Equal bit patterns everywhere the reference is not NaN, and NaN exactly where it is."""
    ref = np.ascontiguousarray(ref, dtype=np.float32).reshape(-1)
    assert mine.dtype == np.float32 and mine.shape == ref.shape
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(mine), nan)
    bad = np.flatnonzero(mine[~nan].view(np.uint32) != ref[~nan].view(np.uint32))
    assert bad.size == 0, f"{bad.size} values differ, first at {bad[0]}: {mine[~nan][bad[0]]} != {ref[~nan][bad[0]]}"


def _ref_dequantize(raw: np.ndarray, t: int, row_bytes: int) -> np.ndarray:
    return gq.dequantize(raw.reshape(-1, row_bytes), GGMLQuantizationType(t)).reshape(-1)


@pytest.mark.parametrize("ggml_type", [t for t in DEQUANTIZE_TYPES if t != quants.GGML_TYPE_Q8_K], ids=_name)
def test_dequantize_random_blocks_match_gguf_py(ggml_type):
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    n_blocks = _n_blocks(block_size)
    raw = np.random.default_rng(ggml_type).integers(0, 256, n_blocks * type_size, dtype=np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = _ref_dequantize(raw, ggml_type, type_size)
    assert_same_floats(dequantize(raw, ggml_type, n_blocks * block_size), ref)


def test_every_type_gguf_py_dequantizes_has_a_kernel():
    for qtype in GGMLQuantizationType:
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        try:
            gq.dequantize(np.zeros((1, 256 // block_size * type_size if block_size < 256 else type_size), np.uint8), qtype)
        except NotImplementedError:
            continue
        if qtype.name.startswith(("I8", "I16", "I32", "I64", "F64")):
            continue  # plain integer / f64 tensors: views, not quant formats
        assert int(qtype) in quants.DEQUANTIZE_TYPES, qtype.name


@pytest.mark.parametrize("ggml_type", [1, 30], ids=_name)
def test_float_formats_keep_every_bit_pattern(ggml_type):
    # all 65536 F16 / BF16 patterns, NaN payloads included, as numpy widens them
    raw = np.arange(65536, dtype=np.uint16).view(np.uint8)
    ref = (raw.view(np.float16).astype(np.float32) if ggml_type == 1
           else (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32))
    np.testing.assert_array_equal(dequantize(raw, ggml_type, 65536).view(np.uint32), ref.view(np.uint32))


def test_dequantize_q8_k_is_d_times_q():
    rng = np.random.default_rng(15)
    n_blocks = 5
    blocks = rng.integers(0, 256, (n_blocks, 292), dtype=np.uint8)
    blocks[:, :4] = rng.standard_normal((n_blocks, 1)).astype(np.float32).view(np.uint8)
    d = blocks[:, :4].copy().view(np.float32)
    ref = d * blocks[:, 4:260].view(np.int8).astype(np.float32)
    assert_same_floats(dequantize(blocks.reshape(-1), quants.GGML_TYPE_Q8_K, n_blocks * 256), ref)


def _quantize_inputs(block_size: int) -> list[np.ndarray]:
    """Blocks that exercise scales, signs and rounding: random at several magnitudes, exact
    halves (ties), zeros, constants, subnormal and overflowing fp16 scales."""
    rng = np.random.default_rng(block_size)
    n = 64 * block_size
    cases = [
        rng.standard_normal(n),
        rng.standard_normal(n) * rng.choice([1e-6, 1e-3, 1.0, 1e3], n),
        rng.uniform(-1, 1, n) * 1e-7,
        rng.standard_normal(n) * 1e5,
        np.zeros(n),
        np.full(n, 0.75),
        np.full(n, -3.0),
    ]
    ties = rng.integers(-254, 255, n) / 2.0
    ties[::block_size] = 127.0  # amax 127 -> d = 1: q = x exactly, so the .5 ties are real ties
    cases.append(ties)
    halves = rng.integers(-16, 17, n) / 2.0
    halves[::block_size] = -8.0
    cases.append(halves)
    # +0.0 fill: gguf-py takes the sign of a zero max from the data, ggml never does (see below)
    cases.append(np.where(rng.random(n) < 0.05, rng.standard_normal(n), 0.0))
    return [c.astype(np.float32) for c in cases]


@pytest.mark.parametrize("ggml_type", [t for t in QUANTIZE_TYPES if t != quants.GGML_TYPE_Q8_K], ids=_name)
def test_quantize_matches_gguf_py(ggml_type):
    qtype = GGMLQuantizationType(ggml_type)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    for i, x in enumerate(_quantize_inputs(max(block_size, 32))):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            ref = gq.quantize(x.reshape(-1, 32 * max(block_size, 32)), qtype)
        mine = quantize(x, ggml_type)
        ref = np.ascontiguousarray(ref).reshape(-1).view(np.uint8)
        diff = np.flatnonzero(mine != ref)
        assert diff.size == 0, f"case {i}: {diff.size} bytes differ, first at byte {diff[0]}"


_F32_1E30 = 1.0000000150474662e30  # 1e30 rounded to float32


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float32, 64, elements=st.floats(-_F32_1E30, _F32_1E30, allow_nan=False, width=32)),
       st.sampled_from([2, 3, 6, 7, 8]))
def test_quantize_matches_gguf_py_on_any_finite_blocks(x, ggml_type):
    x = x + np.float32(0.0)  # -0.0 -> +0.0: see test_quantize_all_zero_block_takes_ggml_sign_not_gguf_py
    with np.errstate(all="ignore"):
        ref = gq.quantize(x.reshape(1, -1), GGMLQuantizationType(ggml_type)).reshape(-1)
    np.testing.assert_array_equal(quantize(x, ggml_type), ref)


@pytest.mark.parametrize("ggml_type", [2, 3, 6, 7], ids=_name)
def test_quantize_subnormal_scale_whose_inverse_overflows_matches_gguf_py(ggml_type):
    # d = 1.85e-41 / 15 is subnormal, 1 / d overflows to inf: (x - min) * inf gives inf or NaN,
    # which the float -> int conversion turns into 0 (hypothesis found this block)
    x = np.zeros(32, np.float32)
    x[[3, 17]] = np.float32(1.85e-41)
    x[9] = np.float32(-4e-42)
    with np.errstate(all="ignore"):
        ref = gq.quantize(x.reshape(1, -1), GGMLQuantizationType(ggml_type)).reshape(-1)
    np.testing.assert_array_equal(quantize(x, ggml_type), ref)


@pytest.mark.parametrize("ggml_type", [2, 6], ids=_name)
def test_quantize_all_zero_block_takes_ggml_sign_not_gguf_py(ggml_type):
    # quantize_row_q4_0_ref / q5_0_ref start from max = 0.0f and replace it only on a strictly
    # larger |v|, so a block of -0.0 still gets d = 0.0f / -8 = -0.0 (fp16 0x8000); gguf-py's
    # argmax picks x[0] = -0.0 and stores +0.0. We follow ggml.
    q = quantize(np.full(32, -0.0, np.float32), ggml_type)
    assert q[:2].view(np.uint16)[0] == 0x8000
    assert np.all(dequantize(q, ggml_type, 32) == 0.0)


def test_quantize_f16_rounds_like_numpy_on_many_bit_patterns():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32)
    # every float32 within a few ulps of every half value and of every rounding midpoint
    h32 = np.arange(0, 0x7C01, dtype=np.uint16).view(np.float16).astype(np.float32).view(np.uint32)
    near = (h32[:, None] + np.arange(-2, 3, dtype=np.int64)[None, :]).astype(np.uint32).reshape(-1)
    mid = (h32.astype(np.int64) + (1 << 12)).astype(np.uint32)  # halfway to the next half (normals)
    x = np.concatenate([bits, near, mid, near | 0x80000000]).view(np.float32)
    x = x[~np.isnan(x)]
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(quantize(x, quants.GGML_TYPE_F16).view(np.uint16), ref)


def _ref_quantize_q8_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_K_ref in NumPy (float32 math, nearest_int = round half to even)."""
    out = np.zeros((x.size // 256, 292), dtype=np.uint8)
    for i, b in enumerate(x.reshape(-1, 256)):
        j = int(np.argmax(np.abs(b)))
        if np.abs(b[j]) == 0:
            continue
        iscale = np.float32(-127.0) / b[j]
        q = np.minimum(127, np.rint((iscale * b).astype(np.float32))).astype(np.int64)
        out[i, :4] = np.array([np.float32(1.0) / iscale], np.float32).view(np.uint8)
        out[i, 4:260] = q.astype(np.int8).view(np.uint8)
        out[i, 260:] = q.reshape(16, 16).sum(axis=1).astype(np.int16).view(np.uint8)
    return out.reshape(-1)


def test_quantize_q8_k_matches_ggml_reference():
    for i, x in enumerate(_quantize_inputs(256)):
        mine = quantize(x, quants.GGML_TYPE_Q8_K)
        diff = np.flatnonzero(mine != _ref_quantize_q8_k(x))
        assert diff.size == 0, f"case {i}: {diff.size} bytes differ, first at byte {diff[0]}"


# largest |dequantize(quantize(x)) - x| allowed per block: one quantization step (the fp16 rounding
# of the scale and min adds well under a step), from the block's absmax, min and max
_ERROR_BOUND = {
    0: lambda amax, lo, hi: 0.0 * amax,
    1: lambda amax, lo, hi: amax * 2.0 ** -11 + 2.0 ** -25,  # + half the smallest subnormal
    30: lambda amax, lo, hi: amax * 2.0 ** -8,
    2: lambda amax, lo, hi: amax / 8 * 1.01,
    3: lambda amax, lo, hi: (hi - lo) / 15 * 1.01 + np.abs(lo) * 2.0 ** -10,
    6: lambda amax, lo, hi: amax / 16 * 1.01,
    7: lambda amax, lo, hi: (hi - lo) / 31 * 1.01 + np.abs(lo) * 2.0 ** -10,
    8: lambda amax, lo, hi: amax / 127 * 0.6,
    15: lambda amax, lo, hi: amax / 127 * 0.51,
}


@pytest.mark.parametrize("ggml_type", QUANTIZE_TYPES, ids=_name)
def test_quantize_then_dequantize_error_is_bounded(ggml_type):
    x = np.random.default_rng(3).standard_normal(4096).astype(np.float32)
    y = dequantize(quantize(x, ggml_type), ggml_type, x.size)
    block_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)][0]
    xb = x.reshape(-1, block_size)
    amax, lo, hi = (np.abs(xb).max(axis=1, keepdims=True), xb.min(axis=1, keepdims=True),
                    xb.max(axis=1, keepdims=True))
    assert np.all(np.abs(y.reshape(xb.shape) - xb) <= _ERROR_BOUND[ggml_type](amax, lo, hi))


@njit(cache=True)
def _get_rows(data, row_nbytes, n_cols, rows, out, ggml_type):
    for r in range(rows.size):
        dequantize_row(data, rows[r] * row_nbytes, n_cols, out, r * n_cols, ggml_type)


def _model_tensors(path, max_elements=1 << 21):
    """(name, type, raw bytes, row bytes) for the smallest tensor of each type of a model, plus
    the first and last 64 rows of token_embd."""
    import emel.gguf

    f = emel.gguf.read(path)
    smallest = {}
    for info in f.tensors.values():
        if info.n_elements <= max_elements and (info.ggml_type not in smallest or info.nbytes < smallest[info.ggml_type].nbytes):
            smallest[info.ggml_type] = info
    out = []
    for info in smallest.values():
        out.append((info.name, int(info.ggml_type), f.tensor_data(info.name), info.nbytes // (info.n_elements // info.shape[0])))
    emb = f.tensors["token_embd.weight"]
    row = emb.nbytes // emb.shape[1]
    data = f.tensor_data(emb.name)
    out.append(("token_embd[:64]", int(emb.ggml_type), data[:64 * row], row))
    out.append(("token_embd[-64:]", int(emb.ggml_type), data[-64 * row:], row))
    return out, f, emb


@pytest.mark.parametrize("model", ["smollm2_path", "gemma3_path"])
def test_dequantize_real_tensors_match_gguf_py(model, request):
    tensors, f, emb = _model_tensors(request.getfixturevalue(model))
    types = {t for _, t, _, _ in tensors}
    assert types <= quants.DEQUANTIZE_TYPES
    for name, t, raw, row in tensors:
        n = raw.size // GGML_QUANT_SIZES[GGMLQuantizationType(t)][1] * GGML_QUANT_SIZES[GGMLQuantizationType(t)][0]
        ref = _ref_dequantize(np.asarray(raw), t, row)
        mine = dequantize(raw, t, n)
        assert np.array_equal(mine.view(np.uint32), ref.astype(np.float32).view(np.uint32)), name

    # get_rows, checked and from njit code: rows of token_embd dequantized in place
    n_cols, n_rows = emb.shape
    row = emb.nbytes // n_rows
    rows = np.array([0, 1, 17, n_rows - 1, 17], dtype=np.int64)
    data = f.tensor_data(emb.name)
    ref = np.concatenate([_ref_dequantize(np.asarray(data[r * row:(r + 1) * row]), int(emb.ggml_type), row) for r in rows])
    np.testing.assert_array_equal(get_rows(data, int(emb.ggml_type), n_cols, rows.astype(np.int32)), ref)
    out = np.empty(rows.size * n_cols, np.float32)
    _get_rows(data, row, n_cols, rows, out, int(emb.ggml_type))
    np.testing.assert_array_equal(out, ref)


def test_dequantize_writes_into_out():
    raw = np.random.default_rng(0).integers(0, 256, 2 * 210, dtype=np.uint8)
    out = np.full(512, np.nan, np.float32)
    assert dequantize(raw, quants.GGML_TYPE_Q6_K, 512, out=out) is out
    np.testing.assert_array_equal(out, _ref_dequantize(raw, quants.GGML_TYPE_Q6_K, 210))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: dequantize(np.zeros(18, np.int8), 2, 32), TypeError, "dtype uint8"),
    (lambda: dequantize(np.zeros(36, np.uint8)[::2], 2, 32), TypeError, "C-contiguous"),
    (lambda: dequantize(np.zeros(18, np.uint8), 2, 31), ValueError, "multiple of the block size 32"),
    (lambda: dequantize(np.zeros(17, np.uint8), 2, 32), ValueError, "17 bytes, expected 18"),
    (lambda: dequantize(np.zeros(18, np.uint8), 2, -32), ValueError, ">= 0"),
    (lambda: dequantize(np.zeros(18, np.uint8), 2.0, 32), TypeError, "ggml_type must be an int"),
    (lambda: dequantize(np.zeros(36, np.uint8), 9, 32), NotImplementedError, "Q8_1"),
    (lambda: dequantize(np.zeros(36, np.uint8), 99, 32), NotImplementedError, "type 99"),
    (lambda: dequantize(np.zeros(18, np.uint8), 2, 32, out=np.zeros(31, np.float32)), ValueError, "out holds 31"),
    (lambda: dequantize(np.zeros(18, np.uint8), 2, 32, out=np.zeros(32, np.float64)), TypeError, "float32"),
    (lambda: get_rows(np.zeros(68, np.uint8), 8, 32, np.array([2])), ValueError, "row 2 is outside the tensor's 2 rows"),
    (lambda: get_rows(np.zeros(68, np.uint8), 8, 32, np.array([-1])), ValueError, "row -1"),
    (lambda: get_rows(np.zeros(67, np.uint8), 8, 32, np.array([0])), ValueError, "whole number of 34-byte rows"),
    (lambda: get_rows(np.zeros(68, np.uint8), 8, 32, np.array([0.0])), TypeError, "int32 or int64"),
    (lambda: quantize(np.zeros(33, np.float32), 8), ValueError, "multiple of the block size 32"),
    (lambda: quantize(np.zeros(32, np.float64), 8), TypeError, "dtype float32"),
    (lambda: quantize(np.zeros(256, np.float32), 12), NotImplementedError, "Q4_K"),
    (lambda: quantize(np.zeros(32, np.float32), 8, out=np.zeros(33, np.uint8)), ValueError, "expected 34"),
])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_empty_input_gives_empty_output():
    assert dequantize(np.zeros(0, np.uint8), quants.GGML_TYPE_Q4_K, 0).shape == (0,)
    assert quantize(np.zeros(0, np.float32), quants.GGML_TYPE_Q8_0).shape == (0,)
