"""A GGUF array of strings kept as its bytes: what a 262k-token vocabulary costs in memory.

A `list[str]` of Gemma-3's 262,144 token texts holds 22 MB of Python objects for 3 MB of text,
for as long as the metadata lives. `StringArray` keeps the bytes back to back with their offsets
and decodes an item when it is read (UTF-8 with 'surrogateescape', like emel.gguf.read's lists).
The tokenizer takes the bytes directly (`to_bytes`), so no `str` of the vocabulary is ever made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Iterator

import numpy as np


class StringArray(Sequence):
    """Strings `data[offsets[i]:offsets[i + 1]]`, read as `str`; equal to a list of the same strs."""

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = data  # uint8[total]: the strings' bytes back to back (owned, not a file map)
        self.offsets = offsets  # int64[n + 1]: start of each string, then the total

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"string index {i} out of range for {n} strings")
        return self.data[self.offsets[i]:self.offsets[i + 1]].tobytes().decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def __eq__(self, other) -> bool:
        if isinstance(other, StringArray):
            return (np.array_equal(self.offsets, other.offsets)
                    and np.array_equal(self.data, other.data))
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # mutable-sequence semantics, like the list it stands for

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:3])
        return f"StringArray([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def to_bytes(self) -> list[bytes]:
        """Every string as the bytes stored in the file."""
        raw = self.data.tobytes()
        o = self.offsets.tolist()
        return [raw[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def tolist(self) -> list[str]:
        """Every string decoded (a new list)."""
        return [b.decode("utf-8", "surrogateescape") for b in self.to_bytes()]
