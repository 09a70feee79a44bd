"""A byte-string hash table that compiled tokenizer loops can query (text -> id).

llama.cpp looks token texts up in `std::unordered_map<std::string, llama_token>`; the njit
merge loops here need the same lookup on byte ranges of a buffer, so the strings are stored
concatenated (`data`, `offsets`) with an open-addressing table of indices, built vectorized.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from numba import njit

from ..gguf.strings import PackedBytes

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class StrTab:
    """Strings `data[offsets[i]:offsets[i+1]]` with ids `values[i]`, indexed by `slots`."""
    data: np.ndarray      # uint8[total]: all strings back to back
    offsets: np.ndarray   # int64[n + 1]: start of each string
    values: np.ndarray    # int32[n]: the id each string maps to
    slots: np.ndarray     # int32[capacity]: string index or -1; capacity is a power of two


def build(strings: Sequence[bytes], values: np.ndarray | None = None) -> StrTab:
    """Index `strings` (later duplicates are ignored, like std::unordered_map::emplace)."""
    n = len(strings)
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = np.frombuffer(b"".join(strings), dtype=np.uint8) if n else np.zeros(0, np.uint8)
    return build_packed(data, offsets, values)


def build_packed(data: np.ndarray, offsets: np.ndarray, values: np.ndarray | None = None) -> StrTab:
    """Index strings already packed as `data[offsets[i]:offsets[i + 1]]` (no bytes objects made)."""
    n = len(offsets) - 1
    if values is None:
        values = np.arange(n, dtype=np.int32)
    cap = 1
    while cap < 2 * n + 2:
        cap *= 2
    slots = np.full(cap, -1, dtype=np.int32)
    data = np.ascontiguousarray(data, dtype=np.uint8)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    _fill(data, offsets, slots)
    return StrTab(data, offsets, np.ascontiguousarray(values, dtype=np.int32), slots)


class Texts(PackedBytes):
    """The strings of a StrTab as `bytes`, made on access: a vocabulary's texts without one Python
    object per token (262k token texts as a list of bytes hold 13 MB; here they stay 3 MB)."""

    __slots__ = ()


class Index(Mapping):
    """text -> value over a StrTab, for Python callers (the compiled tokenizers use the same table):
    llama.cpp's token_to_id without a dict (a 262k-entry dict and its ints hold 18 MB)."""

    __slots__ = ("table", "_n")

    def __init__(self, table: StrTab) -> None:
        self.table = table
        self._n = int(np.count_nonzero(table.slots >= 0))  # distinct strings

    def get(self, key, default=None):
        if not isinstance(key, (bytes, bytearray)):
            return default
        t = self.table
        buf = np.frombuffer(key, dtype=np.uint8) if key else _EMPTY
        i = lookup(t.data, t.offsets, t.slots, buf, 0, buf.size)
        return default if i < 0 else int(t.values[i])

    def __getitem__(self, key) -> int:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[bytes]:
        t = self.table
        seen = set() if self._n != len(t.offsets) - 1 else None
        for s in Texts(t.data, t.offsets):
            if seen is not None:
                if s in seen:
                    continue
                seen.add(s)
            yield s


_EMPTY = np.zeros(0, dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def hash_bytes(buf, start, end):
    h = np.uint64(0xCBF29CE484222325)
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * np.uint64(0x100000001B3)
    return h


@njit(cache=True, nogil=True)
def _fill(data, offsets, slots):
    mask = slots.size - 1
    for i in range(offsets.size - 1):
        a = offsets[i]
        b = offsets[i + 1]
        j = np.int64(hash_bytes(data, a, b) & np.uint64(mask))
        while True:
            s = slots[j]
            if s < 0:
                slots[j] = i
                break
            sa = offsets[s]
            sb = offsets[s + 1]
            if sb - sa == b - a:
                same = True
                for k in range(b - a):
                    if data[sa + k] != data[a + k]:
                        same = False
                        break
                if same:
                    break
            j = (j + 1) & mask


@njit(cache=True, nogil=True)
def lookup(data, offsets, slots, buf, start, end):
    """Index of the string equal to buf[start:end], or -1."""
    mask = slots.size - 1
    j = np.int64(hash_bytes(buf, start, end) & np.uint64(mask))
    n = end - start
    while True:
        s = slots[j]
        if s < 0:
            return -1
        sa = offsets[s]
        if offsets[s + 1] - sa == n:
            same = True
            for k in range(n):
                if data[sa + k] != buf[start + k]:
                    same = False
                    break
            if same:
                return s
        j = (j + 1) & mask
