"""Strings kept packed (bytes back to back plus offsets): what a 262k-token vocabulary costs.

A `list[str]` of Gemma-3's 262,144 token texts holds 22 MB of Python objects for 3 MB of text,
for as long as the metadata lives. `PackedBytes` keeps the bytes back to back with their
offsets and makes an item when it is read; `StringArray` (a GGUF array of strings as the model
loader reads it) decodes items as UTF-8 with 'surrogateescape', like emel.gguf.read's lists.
The tokenizer indexes the packed bytes directly, so no object per token is ever made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Iterator

import numpy as np


class PackedBytes(Sequence):
    """Items `data[offsets[i]:offsets[i + 1]]` as bytes; equal to a list of the same items."""

    __slots__ = ("data", "offsets")

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = data  # uint8[total]: the items' bytes back to back (owned, not a file map)
        self.offsets = offsets  # int64[n + 1]: start of each item, then the total

    def _item(self, b: bytes):
        return b

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
            raise IndexError(f"index {i} out of range for {n} strings")
        return self._item(self.data[self.offsets[i]:self.offsets[i + 1]].tobytes())

    def __iter__(self) -> Iterator:
        item = self._item
        for b in self.to_bytes():
            yield item(b)

    def __eq__(self, other) -> bool:
        if type(other) is type(self):
            return (np.array_equal(self.offsets, other.offsets)
                    and np.array_equal(self.data, other.data))
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # mutable-sequence semantics, like the list it stands for

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:3])
        return f"{type(self).__name__}([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def to_bytes(self) -> list[bytes]:
        """Every item as its stored bytes (a new list)."""
        raw = self.data.tobytes()
        o = self.offsets.tolist()
        return [raw[o[i]:o[i + 1]] for i in range(len(o) - 1)]

    def tolist(self) -> list:
        """Every item (a new list)."""
        return list(self)


class StringArray(PackedBytes):
    """A GGUF array of strings: items decode as UTF-8 ('surrogateescape' keeps any bytes)."""

    __slots__ = ()

    def _item(self, b: bytes) -> str:
        return b.decode("utf-8", "surrogateescape")
