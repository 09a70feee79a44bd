"""How kernels.cpu.quants picks a type's kernel: per type from Python and for constant types in
compiled code, the branch over all types only for a type known at run time.

Loading the all-types branch costs ~5 MiB of resident code (issue #8, peak RSS), so the
entry points a model load and a decode step use must not load it; every path must give the same
bits as the type's own kernel.
"""

import json
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit

from kernels.cpu import quants
from kernels.cpu.quants import dequantize, dequantize_row, get_rows, quantize, quantize_row
from kernels.cpu.quants_base import GGML_TYPE_Q4_1, GGML_TYPE_Q6_K, GGML_TYPE_Q8_0, TYPE_TRAITS

ROOT = Path(__file__).resolve().parents[3]


@njit(cache=True, nogil=True)
def _dequantize_q6_k_const(data, n, out):
    return dequantize_row(data, 0, n, out, 0, 14)  # GGML_TYPE_Q6_K as a literal


@njit(cache=True, nogil=True)
def _dequantize_unknown_const(data, n, out):
    return dequantize_row(data, 0, n, out, 0, 4)  # type 4 (Q4_2) has no kernel


@njit(cache=True, nogil=True)
def _dequantize_runtime(data, n, out, ggml_type):
    return dequantize_row(data, 0, n, out, 0, ggml_type)


@njit(cache=True, nogil=True)
def _quantize_q8_0_const(x, n, out):
    return quantize_row(x, 0, n, out, 0, 8)  # GGML_TYPE_Q8_0 as a literal


def _blocks(ggml_type: int, n_blocks: int, seed: int = 0) -> tuple[np.ndarray, int]:
    _, block_size, type_size = TYPE_TRAITS[ggml_type]
    raw = np.random.default_rng(seed).integers(0, 256, n_blocks * type_size, dtype=np.uint8)
    return raw, n_blocks * block_size


def test_constant_type_in_compiled_code_gives_the_type_kernels_bits():
    raw, n = _blocks(GGML_TYPE_Q6_K, 5)
    ref = np.empty(n, np.float32)
    quants.dequantize_row_q6_k(raw, 0, n, ref, 0)
    for run in (lambda o: _dequantize_q6_k_const(raw, n, o),
                lambda o: _dequantize_runtime(raw, n, o, GGML_TYPE_Q6_K),
                lambda o: dequantize_row(raw, 0, n, o, 0, GGML_TYPE_Q6_K)):
        out = np.full(n, np.nan, np.float32)
        assert run(out) == 0
        assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))
    assert _dequantize_q6_k_const.nopython_signatures  # compiled, not object mode


def test_unknown_type_returns_minus_one_and_writes_nothing():
    raw, n = _blocks(GGML_TYPE_Q8_0, 1)
    for run in (lambda o: _dequantize_unknown_const(raw, n, o),
                lambda o: _dequantize_runtime(raw, n, o, 4),
                lambda o: dequantize_row(raw, 0, n, o, 0, 4)):
        out = np.full(n, 7.0, np.float32)
        assert run(out) == -1
        assert np.all(out == 7.0)
    assert quantize_row(np.zeros(32, np.float32), 0, 32, np.zeros(34, np.uint8), 0, 4) == -1


def test_constant_type_quantize_row_gives_quantize_bits():
    x = np.random.default_rng(1).standard_normal(3 * 32).astype(np.float32)
    out = np.zeros(3 * 34, np.uint8)
    assert _quantize_q8_0_const(x, x.size, out) == 0
    assert np.array_equal(out, quantize(x, GGML_TYPE_Q8_0))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_threaded_dequantize_and_quantize_give_one_call_bits(n_threads):
    raw, n = _blocks(GGML_TYPE_Q4_1, 3 * 16384 // 32 + 5)  # three whole chunks and a part
    ref = np.empty(n, np.float32)
    quants.dequantize_row_q4_1(raw, 0, n, ref, 0)
    x = ref.copy()
    qref = np.empty(raw.size, np.uint8)
    quants.quantize_row_q4_1(x, 0, n, qref, 0)
    old = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        assert np.array_equal(dequantize(raw, GGML_TYPE_Q4_1, n).view(np.uint32), ref.view(np.uint32))
        assert np.array_equal(quantize(x, GGML_TYPE_Q4_1), qref)
    finally:
        numba.set_num_threads(old)


def test_get_rows_gives_each_rows_bits_in_order():
    _, block_size, type_size = TYPE_TRAITS[GGML_TYPE_Q6_K]
    n_cols = 2 * block_size
    raw, _ = _blocks(GGML_TYPE_Q6_K, 2 * 9)
    row_bytes = 2 * type_size
    rows = np.array([8, 0, 3, 3, 5], dtype=np.int32)
    out = get_rows(raw, GGML_TYPE_Q6_K, n_cols, rows)
    for i, r in enumerate(rows):
        ref = np.empty(n_cols, np.float32)
        quants.dequantize_row_q6_k(raw, int(r) * row_bytes, n_cols, ref, 0)
        assert np.array_equal(out[i * n_cols:(i + 1) * n_cols].view(np.uint32), ref.view(np.uint32))
    with pytest.raises(ValueError, match="outside"):
        get_rows(raw, GGML_TYPE_Q6_K, n_cols, np.array([9], dtype=np.int64))


_PROBE = r"""
import json, numpy as np
from kernels.cpu import quants as q
raw = np.zeros(3 * 210, np.uint8)
raw.flags.writeable = False  # as a GGUF memory map: one compiled version per kernel
out = np.empty(3 * 256, np.float32)
q.dequantize(raw, 14, out.size, out=out)
q.get_rows(raw, 14, 256, np.array([2, 0], dtype=np.int64))
q.dequantize_row(raw, 210, 256, out, 0, 14)
q.quantize(out, 8)
from numba import njit
def specialised(t):  # a kernel made for one type: t is a compile-time constant inside
    @njit
    def run(data, n, dst):
        return q.dequantize_row(data, 0, n, dst, 0, t)
    return run
assert specialised(14)(raw, 256, out) == 0
def for_type_set(types):  # a kernel made for a model's set of types: the rest is never typed
    has_q6_k, has_q4_1 = 14 in types, 3 in types
    @njit
    def run(data, n, dst, t):
        if has_q6_k:
            if t == 14:
                return q.dequantize_row(data, 0, n, dst, 0, 14)
        if has_q4_1:
            if t == 3:
                return q.dequantize_row(data, 0, n, dst, 0, 3)
        return -1
    return run
assert for_type_set((14,))(raw, 256, out, 14) == 0
print(json.dumps({"any_dequantize": len(q._dequantize_row_any.overloads),
                  "any_quantize": len(q._quantize_row_any.overloads),
                  "q6_k": len(q.dequantize_row_q6_k.overloads),
                  "q4_1": len(q.dequantize_row_q4_1.overloads)}))
"""


def test_python_entry_points_and_constant_types_load_only_the_types_kernel():
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["any_dequantize"] == 0 and loaded["any_quantize"] == 0
    assert loaded["q6_k"] >= 1  # one per signature (the closure's constant offsets add one)
    assert loaded["q4_1"] == 0  # its branch was switched off by a closure constant
