"""GGUF files: `read(path) -> GGUFFile` with metadata, tensor table and zero-copy tensor data."""

from .reader import GGUFFile, GGUFSplit, TensorInfo, read, read_buffer
from .types import BLOCK_SIZES, GGMLType, GGUFValueType, block_size, row_nbytes, type_size

__all__ = [
    "read", "read_buffer", "GGUFFile", "GGUFSplit", "TensorInfo", "GGMLType", "GGUFValueType",
    "BLOCK_SIZES", "block_size", "type_size", "row_nbytes",
]
