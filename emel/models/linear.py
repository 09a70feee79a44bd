"""A weight matrix of the graph: its matmul and row lookup, with llama.cpp's numerics.

llama.cpp multiplies a quantized weight by an activation row after quantizing that row to the
weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16...), then sums integer block dot products
scaled per block (ggml_compute_forward_mul_mat). `kernels.cpu.matmul` implements exactly that;
`kernels.cpu.quants.dequantize` gives ggml_get_rows of quantized tables (dequantize_row_*).
"""

from __future__ import annotations

import numpy as np

from kernels.cpu import matmul as _km
from kernels.cpu import quants as _kq

from ..errors import ModelError, UnsupportedError
from ..gguf import GGMLType, block_size, row_nbytes


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

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """ggml_mul_mat: x float32[n_tokens, n_cols] -> float32[n_tokens, n_rows]."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((x.shape[0], self.n_rows), dtype=np.float32)
        try:
            return _km.matmul(self.data, int(self.ggml_type), self.n_rows, self.n_cols, x, out)
        except ValueError as e:
            raise UnsupportedError(f"tensor {self.name}: {e}") from e

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """ggml_get_rows: float32[len(ids), n_cols] (ids checked by the caller)."""
        mat = self.data.reshape(self.n_rows, self.row_nbytes)
        sel = np.ascontiguousarray(mat[np.asarray(ids, dtype=np.int64)]).reshape(-1)
        return dequantize(sel, self.ggml_type, len(ids) * self.n_cols).reshape(len(ids), self.n_cols)
