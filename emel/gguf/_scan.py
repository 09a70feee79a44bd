"""The loops of the GGUF reader that cannot be vectorized: walking length-prefixed strings.

Numba does not bounds-check, so `scan_strings` checks every read against the buffer itself and
returns a status instead of raising; `join_strings` only reads what `scan_strings` validated.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_STRING_LENGTH = 1 << 30  # gguf.cpp GGUF_MAX_STRING_LENGTH


@njit(cache=True, nogil=True)
def scan_strings(buf, pos, n, starts, present):
    """Walk `n` strings (u64 little-endian length, then bytes) from byte `pos` of `buf`.

    buf: uint8[size]; starts: int64[n], filled with each string's length-prefix offset;
    present: bool[256], set for every byte value that occurs in the strings.
    Returns the offset just past the last string, or -(i + 1) when string i runs past the end
    of `buf` or is longer than MAX_STRING_LENGTH.
    """
    size = buf.shape[0]
    for i in range(n):
        if pos > size - 8:
            return -(i + 1)
        if buf[pos + 4] | buf[pos + 5] | buf[pos + 6] | buf[pos + 7]:
            return -(i + 1)
        length = (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
                  | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24))
        if length > MAX_STRING_LENGTH or length > size - pos - 8:
            return -(i + 1)
        starts[i] = pos
        for j in range(pos + 8, pos + 8 + length):
            present[buf[j]] = True
        pos += 8 + length
    return pos


@njit(cache=True, nogil=True)
def join_strings(buf, starts, n, end, sep, out):
    """Copy the `n` strings scanned by scan_strings into `out`, separated by the byte `sep`.

    buf: uint8[size]; starts: int64[n]; end: offset past the last string;
    out: uint8[end - starts[0] - 8 * n + n - 1].
    """
    k = 0
    for i in range(n):
        if i:
            out[k] = sep
            k += 1
        stop = starts[i + 1] if i + 1 < n else end
        for j in range(starts[i] + 8, stop):
            out[k] = buf[j]
            k += 1


@njit(cache=True, nogil=True)
def pack_strings(buf, starts, n, end, out, offsets):
    """Copy the `n` strings scanned by scan_strings into `out` back to back; offsets[i] is where
    string i starts in `out` and offsets[n] the total.

    buf: uint8[size]; starts: int64[n]; out: uint8[end - starts[0] - 8 * n]; offsets: int64[n + 1].
    """
    k = 0
    for i in range(n):
        offsets[i] = k
        stop = starts[i + 1] if i + 1 < n else end
        for j in range(starts[i] + 8, stop):
            out[k] = buf[j]
            k += 1
    offsets[n] = k
