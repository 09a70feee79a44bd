"""A byte-string hash table that compiled tokenizer loops can query (text -> id).

llama.cpp looks token texts up in `std::unordered_map<std::string, llama_token>`; the njit
merge loops here need the same lookup on byte ranges of a buffer, so the strings are stored
concatenated (`data`, `offsets`) with an open-addressing table of indices, built vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class StrTab:
    """Strings `data[offsets[i]:offsets[i+1]]` with ids `values[i]`, indexed by `slots`."""
    data: np.ndarray      # uint8[total]: all strings back to back
    offsets: np.ndarray   # int64[n + 1]: start of each string
    values: np.ndarray    # int32[n]: the id each string maps to
    slots: np.ndarray     # int32[capacity]: string index or -1; capacity is a power of two


def build(strings: list[bytes], values: np.ndarray | None = None) -> StrTab:
    """Index `strings` (later duplicates are ignored, like std::unordered_map::emplace)."""
    n = len(strings)
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = np.frombuffer(b"".join(strings), dtype=np.uint8) if n else np.zeros(0, np.uint8)
    if values is None:
        values = np.arange(n, dtype=np.int32)
    cap = 1
    while cap < 2 * n + 2:
        cap *= 2
    slots = np.full(cap, -1, dtype=np.int32)
    _fill(data, offsets, slots)
    return StrTab(data, offsets, np.ascontiguousarray(values, dtype=np.int32), slots)


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
