"""Dequantize and quantize GGUF tensor data on the CPU: the checked entry points of the quant kernels.

Follows llama.cpp ggml/src/ggml-quants.c (dequantize_row_*, quantize_row_*_ref) with the block
layouts of ggml/src/ggml-common.h; results are bit-exact with gguf-py's `gguf.quants` (which
implements the same reference functions) for every type both have. `ggml_type` is gguf's
`GGMLQuantizationType` value (constants GGML_TYPE_* in kernels.cpu.quants_base).

Python entry points (checked; raise ValueError / TypeError / NotImplementedError, which the emel
layer maps to its EmelError subclasses, since `kernels` never imports `emel`):
    dequantize(data, ggml_type, n_elements, out=None) -> float32[n_elements]
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ2_XXS,
        IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4, NVFP4.
    get_rows(data, ggml_type, n_cols, rows, out=None) -> float32[len(rows) * n_cols]
        rows `rows` (int32/int64 ids) of a 2-D tensor with rows of n_cols values (token_embd)
    quantize(x, ggml_type, out=None) -> uint8[nbytes]
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (the *_ref functions, bit-exact with gguf-py)
        and Q8_K (quantize_row_q8K_ref; gguf-py has no Q8_K).

njit-callable entry points (no checks: the caller guarantees n is a whole number of blocks and
that data[byte_offset:byte_offset + nbytes] and out[out_offset:out_offset + n] are in bounds):
    dequantize_row(data, byte_offset, n, out, out_offset, ggml_type)   any type above, e.g. the
        token_embd row of a get_rows: byte_offset = row * row_nbytes, n = n_embd. Callable from
        Python too (it runs the type's kernel only). In compiled code a constant ggml_type
        compiles to that type's kernel alone, a run-time one to a branch over every type.
    dequantize_rows(data, row_nbytes, n_cols, rows, out, ggml_type)    ggml get_rows: row rows[r] into
        out[r * n_cols:]; returns 0, -1 for an unknown type, -2 if a row is past the end of data
    dequantize_row_<type>(data, byte_offset, n, out, out_offset)       one type, smaller to compile:
        dequantize_row_{f32,f16,bf16,q4_0,q4_1,q5_0,q5_1,q8_0,q2_k,q3_k,q4_k,q5_k,q6_k,q8_k,
        iq2_xxs,iq2_xs,iq2_s,iq3_xxs,iq3_s,iq1_s,iq1_m,iq4_nl,iq4_xs,tq1_0,tq2_0,mxfp4,nvfp4}
    quantize_row(x, x_offset, n, out, byte_offset, ggml_type) (constant ggml_type: as above) and
    quantize_row_{f32,f16,bf16,q4_0,q4_1,q5_0,q5_1,q8_0,q8_k}(x, x_offset, n, out, byte_offset)
    (these are the *_ref functions; the matmul's activation quantization follows ggml-cpu's x86
    from_float instead, which rounds differently: kernels/cpu/q8.py)
    data / out bytes: uint8[] C-contiguous; x / out values: float32[] C-contiguous; sizes int64.
    Helpers: f16_to_f32(bits), f32_to_f16(value) -> bits, read_f16(data, byte_offset).
Deviation: NaN inputs to quantize give unspecified (but in-range) codes, and f32_to_f16 maps NaN to
0x7e00 instead of keeping its payload.
"""

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, types
from numba.extending import overload

from kernels.cpu.quants_base import (
    GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_F32, GGML_TYPE_IQ1_M, GGML_TYPE_IQ1_S,
    GGML_TYPE_IQ2_S, GGML_TYPE_IQ2_XS, GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ3_S, GGML_TYPE_IQ3_XXS,
    GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS, GGML_TYPE_MXFP4, GGML_TYPE_NVFP4, GGML_TYPE_Q2_K,
    GGML_TYPE_Q3_K, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
    GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q8_0, GGML_TYPE_Q8_K, GGML_TYPE_TQ1_0,
    GGML_TYPE_TQ2_0, TYPE_TRAITS, f16_to_f32, f32_to_f16, read_f16, row_nbytes, type_name,
)
from kernels.cpu.quants_iq import (
    dequantize_row_iq1_m, dequantize_row_iq1_s, dequantize_row_iq2_s, dequantize_row_iq2_xs,
    dequantize_row_iq2_xxs, dequantize_row_iq3_s, dequantize_row_iq3_xxs, dequantize_row_iq4_nl,
    dequantize_row_iq4_xs, dequantize_row_mxfp4, dequantize_row_nvfp4,
)
from kernels.cpu.quants_k import (
    dequantize_row_q2_k, dequantize_row_q3_k, dequantize_row_q4_k, dequantize_row_q5_k,
    dequantize_row_q6_k, dequantize_row_q8_k, dequantize_row_tq1_0, dequantize_row_tq2_0,
    quantize_row_q8_k,
)
from kernels.cpu.quants_legacy import (
    dequantize_row_bf16, dequantize_row_f16, dequantize_row_f32, dequantize_row_q4_0,
    dequantize_row_q4_1, dequantize_row_q5_0, dequantize_row_q5_1, dequantize_row_q8_0,
    quantize_row_bf16, quantize_row_f16, quantize_row_f32, quantize_row_q4_0, quantize_row_q4_1,
    quantize_row_q5_0, quantize_row_q5_1, quantize_row_q8_0,
)

DEQUANTIZE_TYPES = frozenset((
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
    GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
    GGML_TYPE_Q6_K, GGML_TYPE_Q8_K, GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ2_XS, GGML_TYPE_IQ2_S,
    GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S, GGML_TYPE_IQ1_S, GGML_TYPE_IQ1_M, GGML_TYPE_IQ4_NL,
    GGML_TYPE_IQ4_XS, GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0, GGML_TYPE_MXFP4, GGML_TYPE_NVFP4,
))
QUANTIZE_TYPES = frozenset((
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
    GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q8_K,
))

# elements per parallel work item: large enough to amortize scheduling, a multiple of all blocks
_CHUNK = 16384

__all__ = [
    "dequantize", "quantize", "get_rows", "dequantize_row", "dequantize_rows", "quantize_row", "DEQUANTIZE_TYPES",
    "QUANTIZE_TYPES", "row_nbytes", "type_name", "f16_to_f32", "f32_to_f16", "read_f16",
]


def dequantize(data: np.ndarray, ggml_type: int, n_elements: int, out: np.ndarray | None = None) -> np.ndarray:
    """Dequantize n_elements values of ggml_type from data (uint8, exactly their bytes).

    Returns float32[n_elements] (`out` when given: a C-contiguous float32 array of n_elements).
    Raises TypeError for a wrong dtype or layout, ValueError for sizes that do not match, and
    NotImplementedError for a type without a dequantize kernel.
    """
    ggml_type = _check_type(ggml_type, DEQUANTIZE_TYPES, "dequantize")
    n_elements = _check_count(n_elements)
    _check_array(data, np.uint8, "data")
    nbytes = row_nbytes(ggml_type, n_elements)
    if data.size != nbytes:
        raise ValueError(
            f"dequantize {type_name(ggml_type)}: data holds {data.size} bytes, expected {nbytes} "
            f"for {n_elements} elements")
    if out is None:
        out = np.empty(n_elements, dtype=np.float32)
    else:
        _check_array(out, np.float32, "out")
        if out.size != n_elements:
            raise ValueError(f"dequantize: out holds {out.size} values, expected {n_elements}")
    if n_elements:
        _run_chunks(_DEQUANTIZE_ROW[ggml_type], ggml_type, _readonly_1d(data), out.reshape(-1),
                    n_elements, quantize=False)
    return out


def get_rows(data: np.ndarray, ggml_type: int, n_cols: int, rows: np.ndarray,
             out: np.ndarray | None = None) -> np.ndarray:
    """Dequantize rows `rows` of a 2-D ggml_type tensor (data: all its bytes, rows of n_cols values).

    ggml's get_rows (the token embedding lookup). Returns float32[len(rows) * n_cols], row r of
    the result being tensor row rows[r]. Raises ValueError for a row id outside the tensor, and
    TypeError / ValueError / NotImplementedError as `dequantize` does.
    """
    ggml_type = _check_type(ggml_type, DEQUANTIZE_TYPES, "get_rows")
    n_cols = _check_count(n_cols)
    _check_array(data, np.uint8, "data")
    row_bytes = row_nbytes(ggml_type, n_cols)
    if not isinstance(rows, np.ndarray) or rows.dtype not in (np.int32, np.int64) or rows.ndim != 1:
        raise TypeError("rows must be a 1-D int32 or int64 numpy array")
    n_rows = data.size // row_bytes if row_bytes else 0
    if row_bytes and data.size % row_bytes:
        raise ValueError(f"get_rows {type_name(ggml_type)}: data holds {data.size} bytes, not a whole "
                         f"number of {row_bytes}-byte rows")
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        bad = int(rows[(rows < 0) | (rows >= n_rows)][0])
        raise ValueError(f"get_rows: row {bad} is outside the tensor's {n_rows} rows")
    n_out = rows.size * n_cols
    if out is None:
        out = np.empty(n_out, dtype=np.float32)
    else:
        _check_array(out, np.float32, "out")
        if out.size != n_out:
            raise ValueError(f"get_rows: out holds {out.size} values, expected {n_out}")
    if n_out:
        # the rows' blocks gathered in order are the blocks of the output: one run of the type's kernel
        sel = data.reshape(-1)[:n_rows * row_bytes].reshape(n_rows, row_bytes)[rows.astype(np.int64)]
        _DEQUANTIZE_ROW[ggml_type](_readonly_1d(sel), 0, n_out, out.reshape(-1), 0)
    return out


def quantize(x: np.ndarray, ggml_type: int, out: np.ndarray | None = None) -> np.ndarray:
    """Quantize float32 x (its size a multiple of the block size) to ggml_type blocks.

    Returns uint8[nbytes] (`out` when given: a C-contiguous uint8 array of exactly nbytes).
    Raises TypeError, ValueError or NotImplementedError as `dequantize` does.
    """
    ggml_type = _check_type(ggml_type, QUANTIZE_TYPES, "quantize")
    _check_array(x, np.float32, "x")
    n_elements = x.size
    nbytes = row_nbytes(ggml_type, n_elements)
    if out is None:
        out = np.empty(nbytes, dtype=np.uint8)
    else:
        _check_array(out, np.uint8, "out")
        if out.size != nbytes:
            raise ValueError(f"quantize {type_name(ggml_type)}: out holds {out.size} bytes, expected {nbytes}")
    if n_elements:
        _run_chunks(_QUANTIZE_ROW[ggml_type], ggml_type, _readonly_1d(x), out.reshape(-1), n_elements,
                    quantize=True)
    return out


_DEQUANTIZE_ROW = {
    GGML_TYPE_F32: dequantize_row_f32, GGML_TYPE_F16: dequantize_row_f16,
    GGML_TYPE_BF16: dequantize_row_bf16, GGML_TYPE_Q4_0: dequantize_row_q4_0,
    GGML_TYPE_Q4_1: dequantize_row_q4_1, GGML_TYPE_Q5_0: dequantize_row_q5_0,
    GGML_TYPE_Q5_1: dequantize_row_q5_1, GGML_TYPE_Q8_0: dequantize_row_q8_0,
    GGML_TYPE_Q2_K: dequantize_row_q2_k, GGML_TYPE_Q3_K: dequantize_row_q3_k,
    GGML_TYPE_Q4_K: dequantize_row_q4_k, GGML_TYPE_Q5_K: dequantize_row_q5_k,
    GGML_TYPE_Q6_K: dequantize_row_q6_k, GGML_TYPE_Q8_K: dequantize_row_q8_k,
    GGML_TYPE_IQ2_XXS: dequantize_row_iq2_xxs, GGML_TYPE_IQ2_XS: dequantize_row_iq2_xs,
    GGML_TYPE_IQ2_S: dequantize_row_iq2_s, GGML_TYPE_IQ3_XXS: dequantize_row_iq3_xxs,
    GGML_TYPE_IQ3_S: dequantize_row_iq3_s, GGML_TYPE_IQ1_S: dequantize_row_iq1_s,
    GGML_TYPE_IQ1_M: dequantize_row_iq1_m, GGML_TYPE_IQ4_NL: dequantize_row_iq4_nl,
    GGML_TYPE_IQ4_XS: dequantize_row_iq4_xs, GGML_TYPE_TQ1_0: dequantize_row_tq1_0,
    GGML_TYPE_TQ2_0: dequantize_row_tq2_0, GGML_TYPE_MXFP4: dequantize_row_mxfp4,
    GGML_TYPE_NVFP4: dequantize_row_nvfp4,
}
_QUANTIZE_ROW = {
    GGML_TYPE_F32: quantize_row_f32, GGML_TYPE_F16: quantize_row_f16,
    GGML_TYPE_BF16: quantize_row_bf16, GGML_TYPE_Q4_0: quantize_row_q4_0,
    GGML_TYPE_Q4_1: quantize_row_q4_1, GGML_TYPE_Q5_0: quantize_row_q5_0,
    GGML_TYPE_Q5_1: quantize_row_q5_1, GGML_TYPE_Q8_0: quantize_row_q8_0,
    GGML_TYPE_Q8_K: quantize_row_q8_k,
}
assert set(_DEQUANTIZE_ROW) == DEQUANTIZE_TYPES and set(_QUANTIZE_ROW) == QUANTIZE_TYPES


# dequantize_row / quantize_row are Python functions with a Numba overload rather than one @njit
# function branching on ggml_type: a compiled function holding every type's kernel costs ~5 MiB
# of resident code when it loads, one type's kernel ~0.4 MiB. From Python they call the type's
# kernel; in compiled code a constant ggml_type (a literal or a closure constant) compiles to the
# type's kernel alone and a run-time one to the branch over all types.
def dequantize_row(data, byte_offset, n, out, out_offset, ggml_type):
    """Dequantize n values of ggml_type at data[byte_offset:] into out[out_offset:]; returns 0, or
    -1 for a type without a kernel (nothing written). data: uint8[], out: float32[]."""
    kernel = _DEQUANTIZE_ROW.get(int(ggml_type))
    if kernel is None:
        return -1
    kernel(data, byte_offset, n, out, out_offset)
    return 0


def quantize_row(x, x_offset, n, out, byte_offset, ggml_type):
    """Quantize n float32 values x[x_offset:] to ggml_type blocks at out[byte_offset:]; returns 0,
    or -1 for a type without a kernel (nothing written). x: float32[], out: uint8[]."""
    kernel = _QUANTIZE_ROW.get(int(ggml_type))
    if kernel is None:
        return -1
    kernel(x, x_offset, n, out, byte_offset)
    return 0


@overload(dequantize_row, prefer_literal=True)
def _dequantize_row_overload(data, byte_offset, n, out, out_offset, ggml_type):
    if not isinstance(ggml_type, types.IntegerLiteral):
        def run_any(data, byte_offset, n, out, out_offset, ggml_type):
            return _dequantize_row_any(data, byte_offset, n, out, out_offset, ggml_type)
        return run_any
    kernel = _DEQUANTIZE_ROW.get(ggml_type.literal_value)
    if kernel is None:
        return lambda data, byte_offset, n, out, out_offset, ggml_type: -1

    def run_one(data, byte_offset, n, out, out_offset, ggml_type):
        kernel(data, byte_offset, n, out, out_offset)
        return 0
    return run_one


@overload(quantize_row, prefer_literal=True)
def _quantize_row_overload(x, x_offset, n, out, byte_offset, ggml_type):
    if not isinstance(ggml_type, types.IntegerLiteral):
        def run_any(x, x_offset, n, out, byte_offset, ggml_type):
            return _quantize_row_any(x, x_offset, n, out, byte_offset, ggml_type)
        return run_any
    kernel = _QUANTIZE_ROW.get(ggml_type.literal_value)
    if kernel is None:
        return lambda x, x_offset, n, out, byte_offset, ggml_type: -1

    def run_one(x, x_offset, n, out, byte_offset, ggml_type):
        kernel(x, x_offset, n, out, byte_offset)
        return 0
    return run_one


@njit(cache=True, nogil=True)
def dequantize_rows(data, row_nbytes, n_cols, rows, out, ggml_type):
    """ggml get_rows: dequantize row rows[r] (n_cols values, row_nbytes bytes each) of the tensor
    in data into out[r * n_cols:(r + 1) * n_cols]. data: uint8[], rows: int64[], out: float32[].
    Returns 0; -1 for a type without a kernel, -2 for a row past the end of data (nothing
    written in either case)."""
    n_rows = data.size // row_nbytes
    for r in range(rows.size):
        if rows[r] < 0 or rows[r] >= n_rows:
            return -2
    for r in range(rows.size):
        if dequantize_row(data, rows[r] * row_nbytes, n_cols, out, r * n_cols, ggml_type) != 0:
            return -1
    return 0


@njit(cache=True, nogil=True)
def _dequantize_row_any(data, byte_offset, n, out, out_offset, ggml_type):
    """dequantize_row for a ggml_type known only at run time."""
    if ggml_type == GGML_TYPE_Q4_0:
        dequantize_row_q4_0(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q4_1:
        dequantize_row_q4_1(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q5_0:
        dequantize_row_q5_0(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q5_1:
        dequantize_row_q5_1(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q8_0:
        dequantize_row_q8_0(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q4_K:
        dequantize_row_q4_k(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q6_K:
        dequantize_row_q6_k(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_F32:
        dequantize_row_f32(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_F16:
        dequantize_row_f16(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_BF16:
        dequantize_row_bf16(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q2_K:
        dequantize_row_q2_k(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q3_K:
        dequantize_row_q3_k(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q5_K:
        dequantize_row_q5_k(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_Q8_K:
        dequantize_row_q8_k(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ2_XXS:
        dequantize_row_iq2_xxs(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ2_XS:
        dequantize_row_iq2_xs(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ2_S:
        dequantize_row_iq2_s(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ3_XXS:
        dequantize_row_iq3_xxs(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ3_S:
        dequantize_row_iq3_s(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ1_S:
        dequantize_row_iq1_s(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ1_M:
        dequantize_row_iq1_m(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ4_NL:
        dequantize_row_iq4_nl(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_IQ4_XS:
        dequantize_row_iq4_xs(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_TQ1_0:
        dequantize_row_tq1_0(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_TQ2_0:
        dequantize_row_tq2_0(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_MXFP4:
        dequantize_row_mxfp4(data, byte_offset, n, out, out_offset)
    elif ggml_type == GGML_TYPE_NVFP4:
        dequantize_row_nvfp4(data, byte_offset, n, out, out_offset)
    else:
        return -1
    return 0


@njit(cache=True, nogil=True)
def _quantize_row_any(x, x_offset, n, out, byte_offset, ggml_type):
    """quantize_row for a ggml_type known only at run time."""
    if ggml_type == GGML_TYPE_Q8_0:
        quantize_row_q8_0(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_Q8_K:
        quantize_row_q8_k(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_Q4_0:
        quantize_row_q4_0(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_Q4_1:
        quantize_row_q4_1(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_Q5_0:
        quantize_row_q5_0(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_Q5_1:
        quantize_row_q5_1(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_F32:
        quantize_row_f32(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_F16:
        quantize_row_f16(x, x_offset, n, out, byte_offset)
    elif ggml_type == GGML_TYPE_BF16:
        quantize_row_bf16(x, x_offset, n, out, byte_offset)
    else:
        return -1
    return 0


def _run_chunks(kernel, ggml_type: int, src: np.ndarray, dst: np.ndarray, n: int,
                quantize: bool) -> None:
    """Run a row kernel over n values (src, dst checked), split over numba.get_num_threads()
    Python threads for large tensors (the kernels release the GIL). Blocks are independent, so
    the split does not change a bit."""
    _, block_size, type_size = TYPE_TRAITS[ggml_type]

    def run(start: int, count: int) -> None:
        if quantize:
            kernel(src, start, count, dst, start // block_size * type_size)
        else:
            kernel(src, start // block_size * type_size, count, dst, start)

    n_chunks = -(-n // _CHUNK)
    n_threads = min(n_chunks, numba.get_num_threads()) if n_chunks > 1 else 1
    if n_threads == 1:
        run(0, n)
        return
    per = -(-n_chunks // n_threads) * _CHUNK  # whole chunks, hence whole blocks, per thread
    with ThreadPoolExecutor(n_threads) as pool:
        for f in [pool.submit(run, a, min(per, n - a)) for a in range(0, n, per)]:
            f.result()


def _readonly_1d(a: np.ndarray) -> np.ndarray:
    # Numba compiles a separate specialization for read-only arrays (GGUF memory maps are
    # read-only); passing inputs always read-only keeps one compiled version per kernel.
    view = a.reshape(-1).view(np.ndarray)  # also drops subclasses such as np.memmap
    view.flags.writeable = False
    return view


def _check_type(ggml_type, supported, what: str) -> int:
    if isinstance(ggml_type, (bool, np.bool_)) or not isinstance(ggml_type, (int, np.integer)):
        raise TypeError(f"{what}: ggml_type must be an int (GGMLQuantizationType), got {type(ggml_type).__name__}")
    ggml_type = int(ggml_type)
    if ggml_type not in supported:
        raise NotImplementedError(f"{what}: no kernel for GGML {type_name(ggml_type)}")
    return ggml_type


def _check_count(n_elements) -> int:
    if isinstance(n_elements, (bool, np.bool_)) or not isinstance(n_elements, (int, np.integer)):
        raise TypeError(f"n_elements must be an int, got {type(n_elements).__name__}")
    if n_elements < 0:
        raise ValueError(f"n_elements must be >= 0, got {n_elements}")
    return int(n_elements)


def _check_array(a, dtype, name: str) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if not a.flags.c_contiguous:
        raise TypeError(f"{name} must be C-contiguous")
    if name == "out" and not a.flags.writeable:
        raise ValueError("out must be writeable")
