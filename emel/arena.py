"""Arena: one contiguous numpy uint8 buffer holding every intermediate tensor of a graph.

A tensor in the arena is a `TensorRef` (dtype, shape, byte offset, nbytes); `Arena.view(ref)`
returns a typed numpy view into the buffer, so kernels write straight into the arena. The offsets
come from the graph allocator (emel/alloc.py, ggml-alloc.c's ggml_gallocr); the arena itself is
ggml's backend buffer (ggml_backend_buffer) reduced to a numpy array. After reservation the
decode loop only takes views: it allocates nothing.

The buffer's base address is aligned to `alignment` bytes (llama.cpp's CPU buffer type aligns to
TENSOR_ALIGNMENT = 32; we default to 64, a cache line, which is also a multiple of 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AllocationError

DEFAULT_ALIGNMENT = 64


@dataclass(frozen=True)
class TensorRef:
    """Where a tensor lives in an arena."""

    dtype: np.dtype  # element type of the view (np.float32, np.float16, np.int32, np.uint8 ...)
    shape: tuple[int, ...]  # numpy (C) order: slowest dimension first, i.e. ggml's ne reversed
    offset: int  # byte offset of element 0 from the start of the arena
    nbytes: int  # bytes the tensor spans in the arena
    strides: tuple[int, ...] | None = None  # byte strides in numpy order; None = C-contiguous


class Arena:
    """A single aligned uint8 buffer; tensors are typed views at byte offsets."""

    def __init__(self, nbytes: int, alignment: int = DEFAULT_ALIGNMENT) -> None:
        if nbytes < 0:
            raise AllocationError(f"arena size must be >= 0 bytes, got {nbytes}")
        if alignment <= 0 or alignment & (alignment - 1):
            raise AllocationError(f"arena alignment must be a power of two, got {alignment}")
        raw = np.zeros(nbytes + alignment, dtype=np.uint8)
        shift = (-raw.ctypes.data) % alignment
        self._raw = raw  # keeps the allocation alive; `buffer` is its aligned window
        self.buffer = raw[shift : shift + nbytes]
        self.alignment = alignment

    @property
    def nbytes(self) -> int:
        """Size of the arena in bytes."""
        return int(self.buffer.shape[0])

    def view(self, ref: TensorRef) -> np.ndarray:
        """Typed numpy view of `ref`; raises AllocationError if it does not fit in the arena."""
        dtype = np.dtype(ref.dtype)
        if ref.offset < 0 or ref.nbytes < 0 or ref.offset + ref.nbytes > self.nbytes:
            raise AllocationError(
                f"tensor at byte {ref.offset} with {ref.nbytes} bytes ends past the end of the "
                f"arena ({self.nbytes} bytes)"
            )
        if ref.offset % dtype.itemsize:
            raise AllocationError(
                f"tensor offset {ref.offset} is not a multiple of its element size {dtype.itemsize}"
            )
        shape = tuple(int(d) for d in ref.shape)
        if ref.strides is None:
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        else:
            need = dtype.itemsize + sum((d - 1) * s for d, s in zip(shape, ref.strides) if d > 0)
        if need > ref.nbytes:
            raise AllocationError(
                f"tensor view of shape {shape} {dtype} needs {need} bytes but its ref has {ref.nbytes}"
            )
        return np.ndarray(shape, dtype=dtype, buffer=self.buffer, offset=ref.offset, strides=ref.strides)

    def clear(self) -> None:
        """Set every byte to zero (ggml_backend_buffer_clear)."""
        self.buffer[:] = 0
