"""A byte trie for compiled loops: llama.cpp's `naive_trie`, stored as flat arrays.

Edges live in one open-addressing table keyed by `node * 256 + byte`; `value[node]` is the id a
string ending at that node maps to (-1 for none). Like naive_trie, a later insert of the same
string overwrites the earlier value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class Trie:
    keys: np.ndarray    # int64[capacity]: node * 256 + byte, or -1
    child: np.ndarray   # int32[capacity]: the node that edge leads to
    value: np.ndarray   # int32[n_nodes]: id stored at each node, or -1


def build(strings: list[bytes], values: np.ndarray) -> Trie:
    n = len(strings)
    lens = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = np.frombuffer(b"".join(strings), dtype=np.uint8) if n else np.zeros(0, np.uint8)
    total = int(offsets[-1])
    cap = 1
    while cap < 2 * total + 2:
        cap *= 2
    keys = np.full(cap, -1, dtype=np.int64)
    child = np.zeros(cap, dtype=np.int32)
    value = np.full(total + 1, -1, dtype=np.int32)
    n_nodes = _fill(data, offsets, np.ascontiguousarray(values, dtype=np.int32), keys, child, value)
    return Trie(keys, child, value[:n_nodes].copy())


@njit(cache=True, nogil=True, inline="always")
def _slot(key, mask):
    return np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(24)) & mask


@njit(cache=True, nogil=True)
def _fill(data, offsets, values, keys, child, value):
    mask = keys.size - 1
    n_nodes = 1
    for i in range(offsets.size - 1):
        node = 0
        for p in range(offsets[i], offsets[i + 1]):
            key = np.int64(node) * 256 + data[p]
            j = _slot(key, mask)
            while keys[j] != -1 and keys[j] != key:
                j = (j + 1) & mask
            if keys[j] == -1:
                keys[j] = key
                child[j] = n_nodes
                n_nodes += 1
            node = child[j]
        value[node] = values[i]
    return n_nodes


@njit(cache=True, nogil=True)
def step(keys, child, node, byte):
    """The child of `node` along `byte`, or -1."""
    key = np.int64(node) * 256 + byte
    mask = keys.size - 1
    j = _slot(key, mask)
    while True:
        k = keys[j]
        if k == key:
            return np.int64(child[j])
        if k == -1:
            return np.int64(-1)
        j = (j + 1) & mask
