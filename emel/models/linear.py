"""A weight matrix of the graph and its matmul, with llama.cpp's numerics (ggml_mul_mat).

llama.cpp multiplies a quantized weight by an activation row after quantizing that row to the
weight type's vec_dot_type (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the
K-quants, F16 for F16), then sums integer block dot products scaled per block
(ggml/src/ggml-cpu/ggml-cpu.c ggml_compute_forward_mul_mat, arch/x86/quants.c).

`Linear` uses `kernels.cpu.matmul` (the exact kernels) when it is available for the type.
Until then `_StandinMatmul` (to be deleted once kernels.cpu.matmul lands for every type) emulates
the same arithmetic with NumPy: the activation is quantized exactly like quantize_row_q8_0/
q8_1/q8_K (x86), the weight is dequantized exactly (every weight value is representable in
float32) and the products are summed in float32 BLAS per block group. It differs from llama.cpp
only in float32 summation order (~1e-6 relative).
"""

from __future__ import annotations

import numpy as np
from gguf import quants as gq
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

from ..errors import UnsupportedError

_Q8_0_TYPES = {T.Q4_0, T.Q5_0, T.Q8_0, T.IQ4_NL}
_Q8_1_TYPES = {T.Q4_1, T.Q5_1}
_Q8_K_TYPES = {T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ2_XXS, T.IQ2_XS, T.IQ2_S,
               T.IQ3_XXS, T.IQ3_S, T.IQ1_S, T.IQ1_M, T.IQ4_XS}


def dequantize(data: np.ndarray, ggml_type, n_elements: int) -> np.ndarray:
    """float32[n_elements] from GGML blocks (gguf-py's reference dequantizers)."""
    t = T(int(ggml_type))
    if t == T.F32:
        return np.frombuffer(data, dtype=np.float32, count=n_elements).copy()
    if t == T.F16:
        return np.frombuffer(data, dtype=np.float16, count=n_elements).astype(np.float32)
    blck, size = GGML_QUANT_SIZES[t]
    nbytes = n_elements // blck * size
    return gq.dequantize(np.asarray(data[:nbytes]).reshape(-1, size), t).reshape(-1).astype(
        np.float32, copy=False)


def _kernel_matmul():
    """kernels.cpu.matmul.matmul if the matmul engineer's module is importable, else None."""
    try:
        from kernels.cpu import matmul as km  # noqa: PLC0415
    except ImportError:
        return None
    return getattr(km, "matmul", None)


class Linear:
    """A GGUF weight [n_rows (out), n_cols (in)] in its stored type."""

    def __init__(self, data: np.ndarray, ggml_type, n_rows: int, n_cols: int, name: str) -> None:
        self.data = data
        self.ggml_type = T(int(ggml_type))
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.name = name
        blck = GGML_QUANT_SIZES[self.ggml_type][0]
        if n_cols % blck:
            raise UnsupportedError(f"tensor {name}: row of {n_cols} values is not a multiple of "
                                   f"the {self.ggml_type.name} block size {blck}")
        self._impl = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: float32[n_tokens, n_cols] -> float32[n_tokens, n_rows]."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        km = _kernel_matmul()
        if km is not None:
            out = np.empty((x.shape[0], self.n_rows), dtype=np.float32)
            return km(self.data, int(self.ggml_type), self.n_rows, self.n_cols, x, out)
        if self._impl is None:
            self._impl = _StandinMatmul(self)
        return self._impl(x)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """ggml_get_rows: float32[len(ids), n_cols] (ids checked by the caller)."""
        blck, size = GGML_QUANT_SIZES[self.ggml_type]
        row_bytes = self.n_cols // blck * size
        mat = np.asarray(self.data).reshape(self.n_rows, row_bytes)
        sel = mat[np.asarray(ids, dtype=np.int64)]
        return dequantize(sel.reshape(-1), self.ggml_type, len(ids) * self.n_cols).reshape(
            len(ids), self.n_cols)


# ---------------------------------------------------------------------------------------------
# Stand-in (delete when kernels.cpu.matmul covers every type)


def _f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def _quantize_q8_0(x: np.ndarray, with_sum: bool):
    """quantize_row_q8_0 / q8_1 (x86): per 32 values d = amax/127 (F16), q = rint(x*127/amax)."""
    n, k = x.shape
    xb = x.reshape(n, k // 32, 32)
    amax = np.abs(xb).max(axis=2)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        iscale = np.where(amax != 0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    q = np.rint(xb * iscale[:, :, None]).astype(np.float32)
    dq = _f16(d)
    s = _f16(d * q.sum(axis=2)) if with_sum else None
    return q, dq, s


def _quantize_q8_k(x: np.ndarray):
    """quantize_row_q8_K_ref: per 256 values iscale = -127/max (signed max), d = 1/iscale (F32)."""
    n, k = x.shape
    xb = x.reshape(n, k // 256, 256)
    idx = np.abs(xb).argmax(axis=2)
    mx = np.take_along_axis(xb, idx[:, :, None], axis=2)[:, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(mx != 0, np.float32(-127.0) / mx, np.float32(0.0)).astype(np.float32)
        q = np.minimum(np.rint(xb * iscale[:, :, None]), 127).astype(np.float32)
        d = np.where(mx != 0, np.float32(1.0) / iscale, np.float32(0.0)).astype(np.float32)
    return q, d


class _StandinMatmul:
    """Emulates ggml_mul_mat for one weight with NumPy (see the module docstring)."""

    def __init__(self, lin: Linear) -> None:
        t = lin.ggml_type
        self.t = t
        n_el = lin.n_rows * lin.n_cols
        if t in _Q8_1_TYPES:
            # d*q part and the per-block min m, kept apart: llama.cpp adds m * s where s is the
            # activation block sum stored as F16 in block_q8_1.
            size = GGML_QUANT_SIZES[t][1]
            blocks = np.array(np.asarray(lin.data[: n_el // 32 * size]).reshape(-1, size))
            m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32).reshape(lin.n_rows, -1)
            blocks[:, 2:4] = 0
            self.w = gq.dequantize(blocks, t).astype(np.float32).reshape(lin.n_rows, lin.n_cols)
            self.m = m
        else:
            self.w = dequantize(lin.data, t, n_el).reshape(lin.n_rows, lin.n_cols)
        self.wT = np.ascontiguousarray(self.w.T)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t = self.t
        n = x.shape[0]
        if t == T.F32:
            return x @ self.wT
        if t in (T.F16, T.BF16):
            xr = _f16(x) if t == T.F16 else _bf16(x)
            return xr @ self.wT
        if t in _Q8_0_TYPES or t in _Q8_1_TYPES:
            q, d, s = _quantize_q8_0(x, t in _Q8_1_TYPES)
            xd = (q * d[:, :, None]).reshape(n, -1)
            out = xd @ self.wT
            if s is not None:
                out = out + s @ self.m.T
            return out.astype(np.float32)
        if t in _Q8_K_TYPES:
            q, d = _quantize_q8_k(x)
            nsb = q.shape[1]
            w3 = self.w.reshape(self.w.shape[0], nsb, 256).transpose(1, 2, 0)  # [nsb, 256, rows]
            part = np.matmul(q.transpose(1, 0, 2), w3)  # [nsb, n, rows]
            return np.einsum("sn,snr->nr", d.T.astype(np.float32), part).astype(np.float32)
        raise UnsupportedError(f"matmul for {t.name} weights is not supported")


def _bf16(x):
    b = np.asarray(x, dtype=np.float32).view(np.uint32)
    r = ((b + np.uint32(0x7FFF) + ((b >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)
