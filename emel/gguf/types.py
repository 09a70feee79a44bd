"""GGUF enums and ggml block sizes, taken from gguf-py's constants (gguf.constants).

`GGMLType` and `GGUFValueType` are gguf-py's own enums, so every tensor type gguf-py knows is
known here too, with the same names and values as ggml.h (`GGML_TYPE_*`) and gguf.h
(`GGUF_TYPE_*`). Block sizes come from `GGML_QUANT_SIZES` (ggml's `blck_size` / `type_size`).
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION
from gguf.constants import GGMLQuantizationType as GGMLType
from gguf.constants import GGUFValueType

__all__ = [
    "GGMLType", "GGUFValueType", "GGUF_MAGIC", "GGUF_VERSION", "GGUF_DEFAULT_ALIGNMENT",
    "SUPPORTED_VERSIONS", "BLOCK_SIZES", "SCALAR_DTYPES", "block_size", "type_size",
    "row_nbytes", "tensor_nbytes",
]

# GGUFv1 is rejected by llama.cpp (gguf.cpp: "GGUFv1 is no longer supported").
SUPPORTED_VERSIONS = (2, 3)

# ggml type -> (elements per block, bytes per block)
BLOCK_SIZES: dict[GGMLType, tuple[int, int]] = dict(GGML_QUANT_SIZES)

# Fixed-size GGUF value types -> little-endian numpy dtype (BOOL is one byte, nonzero = true).
SCALAR_DTYPES: dict[GGUFValueType, np.dtype] = {
    GGUFValueType.UINT8: np.dtype("<u1"),
    GGUFValueType.INT8: np.dtype("<i1"),
    GGUFValueType.UINT16: np.dtype("<u2"),
    GGUFValueType.INT16: np.dtype("<i2"),
    GGUFValueType.UINT32: np.dtype("<u4"),
    GGUFValueType.INT32: np.dtype("<i4"),
    GGUFValueType.FLOAT32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype("<u1"),
    GGUFValueType.UINT64: np.dtype("<u8"),
    GGUFValueType.INT64: np.dtype("<i8"),
    GGUFValueType.FLOAT64: np.dtype("<f8"),
}


def block_size(ggml_type: GGMLType) -> int:
    """Elements per block of `ggml_type` (1 for plain types, 32 for Q4_0, 256 for K-quants)."""
    return BLOCK_SIZES[ggml_type][0]


def type_size(ggml_type: GGMLType) -> int:
    """Bytes per block of `ggml_type`."""
    return BLOCK_SIZES[ggml_type][1]


def row_nbytes(ggml_type: GGMLType, ne0: int) -> int:
    """Bytes of one row of `ne0` elements; `ne0` must be a multiple of the block size."""
    blck, size = BLOCK_SIZES[ggml_type]
    if ne0 % blck:
        raise ValueError(f"{ggml_type.name}: row of {ne0} elements is not a multiple of {blck}")
    return ne0 // blck * size


def tensor_nbytes(ggml_type: GGMLType, shape: tuple[int, ...]) -> int:
    """Bytes of a whole tensor of `shape` (ggml order ne0, ne1, ...), as ggml_nbytes."""
    n_rows = 1
    for ne in shape[1:]:
        n_rows *= ne
    return row_nbytes(ggml_type, shape[0] if shape else 1) * n_rows
