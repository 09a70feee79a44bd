"""A weight matrix of the graph: its matmul and row lookup, with llama.cpp's numerics.

llama.cpp multiplies a quantized weight by an activation row after quantizing that row to the
weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16...), then sums integer block dot products
scaled per block (ggml_compute_forward_mul_mat). `kernels.cpu.matmul` implements exactly that;
`kernels.cpu.quants.dequantize` gives ggml_get_rows of quantized tables (dequantize_row_*).
Q6_K weights with batches of >= 8 rows follow llama.cpp's tiled kernel (GGML_CPU_TILED_MM, on
by default) through kernels.cpu.ops.matmul_q6_k_tiled: same integers, another float order.
(Other non-repacked K-quants take that path in llama.cpp too; not reproduced yet.)
"""

from __future__ import annotations

import numpy as np

from kernels.cpu import matmul as _km
from kernels.cpu import ops as _ops
from kernels.cpu import quants as _kq
from kernels.cpu import rows as _rows
from kernels.cpu import step as _step

from ..errors import ModelError, UnsupportedError
from ..gguf import GGMLType, block_size, row_nbytes


# ggml_tiled_min_batch: the tiled path serves src1 with >= 8 rows (ggml-cpu/tiled/tiled.cpp)
_TILED_MIN_ROWS = 8
_F16 = _ops.f16_table()


def dequantize(data: np.ndarray, ggml_type, n_elements: int) -> np.ndarray:
    """float32[n_elements] from the bytes of n_elements values of ggml_type."""
    t = int(ggml_type)
    try:
        nbytes = row_nbytes(GGMLType(t), n_elements)
    except ValueError as e:
        raise ModelError(str(e)) from e
    try:
        return _kq.dequantize(np.ascontiguousarray(data[:nbytes]), t, n_elements)
    except NotImplementedError as e:
        raise UnsupportedError(f"{GGMLType(t).name} tensors are not supported: {e}") from e


class Linear:
    """A GGUF weight [n_rows (out), n_cols (in)] kept in its stored type (a view of the file)."""

    def __init__(self, data: np.ndarray, ggml_type, n_rows: int, n_cols: int, name: str) -> None:
        self.ggml_type = GGMLType(int(ggml_type))
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.name = name
        blck = block_size(self.ggml_type)
        if n_cols % blck:
            raise UnsupportedError(f"tensor {name}: row of {n_cols} values is not a multiple of "
                                   f"the {self.ggml_type.name} block size {blck}")
        self.row_nbytes = row_nbytes(self.ggml_type, n_cols)
        self.data = np.ascontiguousarray(data[: n_rows * self.row_nbytes])
        self._w32: np.ndarray | None = None  # F32/F16 weights as float32, made on first use
        # integer-dot types of kernels.cpu.matmul.matmul_q (F32/F16 take _float)
        t = int(self.ggml_type)
        self._fast = (t in _km.FAST_TYPES and self.ggml_type not in (GGMLType.F32, GGMLType.F16)
                      and self.data.size == n_rows * self.row_nbytes)
        self._vec_dot_type = _km.VEC_DOT_TYPE.get(t, -1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """ggml_mul_mat: x float32[n_tokens, n_cols] -> float32[n_tokens, n_rows]."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((x.shape[0], self.n_rows), dtype=np.float32)
        if self.ggml_type == GGMLType.Q6_K and x.shape[0] >= _TILED_MIN_ROWS:
            return self._q6_k_tiled(x, out)
        if self.ggml_type in (GGMLType.F32, GGMLType.F16):
            return self._float(x, out)
        if self._fast and x.ndim == 2 and x.shape[1] == self.n_cols:
            # checked here once: skip kernels.cpu.matmul.matmul's per-call argument checks
            t = int(self.ggml_type)
            n = x.shape[0]
            xq = np.empty(_km.act_nbytes(t, n, self.n_cols), dtype=np.uint8)
            _quantize_act(x, t, n, self.n_cols, xq)
            o = out.reshape(-1)  # matmul_q3 with one weight: matmul_q's numbers, and one kernel
            _step.matmul_q3(self.data, t, self.n_rows, o, self.data, t, 0, o, self.data, t, 0, o,
                            self.n_cols, xq, n)  # (not two: each loaded kernel costs ~6 MiB)
            return out
        try:
            return _km.matmul(self.data, int(self.ggml_type), self.n_rows, self.n_cols, x, out)
        except ValueError as e:
            raise UnsupportedError(f"tensor {self.name}: {e}") from e

    def _q6_k_tiled(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """llama.cpp's tiled K-quant matmul numerics (batches >= 8 rows, weights not repacked)."""
        n = x.shape[0]
        if x.shape[1] != self.n_cols:
            raise UnsupportedError(f"tensor {self.name}: x has {x.shape[1]} columns, expected {self.n_cols}")
        xq = np.empty(_km.act_nbytes(int(self.ggml_type), n, self.n_cols), dtype=np.uint8)
        _quantize_act(x, int(self.ggml_type), n, self.n_cols, xq)
        _step.matmul_q6_k_tiled(self.data, self.n_rows, self.n_cols, xq, n, out.reshape(-1), _F16)
        return out

    def _float(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """F32/F16 weights: llamafile's sgemm for batches (ne11 >= 2, m % 4, k % 16), else
        ggml_vec_dot_f32/f16 (ggml_compute_forward_mul_mat)."""
        if self._w32 is None:
            n = self.n_rows * self.n_cols
            self._w32 = dequantize(self.data, self.ggml_type, n)
        n = x.shape[0]
        if x.shape[1] != self.n_cols:
            raise UnsupportedError(f"tensor {self.name}: x has {x.shape[1]} columns, expected {self.n_cols}")
        sgemm = n >= 2 and self.n_rows % 4 == 0 and self.n_cols % 16 == 0
        _ops.matmul_float_ggml(self._w32, self.n_rows, self.n_cols, x.reshape(-1), n,
                               out.reshape(-1), sgemm, self.ggml_type == GGMLType.F16,
                               np.empty(self.n_cols, np.float32), np.empty(64, np.float32))
        return out

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """ggml_get_rows: float32[len(ids), n_cols] (ids checked by the caller)."""
        mat = self.data.reshape(self.n_rows, self.row_nbytes)
        sel = np.ascontiguousarray(mat[np.asarray(ids, dtype=np.int64)]).reshape(-1)
        return dequantize(sel, self.ggml_type, len(ids) * self.n_cols).reshape(len(ids), self.n_cols)


def _quantize_act(x: np.ndarray, t: int, n: int, n_cols: int, xq: np.ndarray) -> None:
    """matmul.quantize_act with the tokens over all threads (same bits); also for one token, so
    that only one quantizer kernel is loaded (see emel.models.common.rms_norm)."""
    _rows.quantize_act_rows(x.reshape(-1), t, n, n_cols, xq, _km.act_nbytes(t, 1, n_cols))


def _groupable(ws, n_tokens: int) -> bool:
    w0 = ws[0]
    for w in ws:
        if not w._fast or w.n_cols != w0.n_cols or w._vec_dot_type != w0._vec_dot_type:
            return False
        if w.ggml_type == GGMLType.Q6_K and n_tokens >= _TILED_MIN_ROWS:
            return False
    return True


def matmul_group(ws: list[Linear], x: np.ndarray) -> list[np.ndarray]:
    """[w(x) for w in ws] for 2 or 3 weights sharing x (q/k/v, gate/up), with the same numbers.

    When the weights share a vec_dot_type, x is quantized once and all their rows run in one
    parallel region (kernels.cpu.step.matmul_q3); otherwise each weight runs on its own.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if not (2 <= len(ws) <= 3) or x.ndim != 2 or not _groupable(ws, n) or x.shape[1] != ws[0].n_cols:
        return [w(x) for w in ws]
    w0 = ws[0]
    t0 = int(w0.ggml_type)
    xq = np.empty(_km.act_nbytes(t0, n, w0.n_cols), dtype=np.uint8)
    _quantize_act(x, t0, n, w0.n_cols, xq)
    outs = [np.empty((n, w.n_rows), dtype=np.float32) for w in ws]
    a = [(w.data, int(w.ggml_type), w.n_rows, o.reshape(-1)) for w, o in zip(ws, outs)]
    if len(a) == 2:
        a.append((w0.data, t0, 0, outs[0].reshape(-1)))
    _step.matmul_q3(*a[0], *a[1], *a[2], w0.n_cols, xq, n)
    return outs
