"""Unicode support for the tokenizers: codepoint flags, UTF-8 coding, case and NFD maps.

Follows llama.cpp src/unicode.cpp and its tables (src/unicode-data.cpp, ported to
`unicode_data.py`). UTF-8 decoding copies llama.cpp exactly, including what it accepts that
strict UTF-8 does not (overlong forms, encoded surrogates, 0xF4-0xF7 leads up to 0x1FFFFF) and
its recovery from bad bytes (consume one byte, emit U+FFFD).
"""

from __future__ import annotations

import base64
import functools
import zlib

import numpy as np
from numba import njit

from . import unicode_data as _ud

MAX_CODEPOINTS = 0x110000

FLAG_UNDEFINED = 0x0001
FLAG_NUMBER = 0x0002
FLAG_LETTER = 0x0004
FLAG_SEPARATOR = 0x0008
FLAG_ACCENT_MARK = 0x0010
FLAG_PUNCTUATION = 0x0020
FLAG_SYMBOL = 0x0040
FLAG_CONTROL = 0x0080
FLAG_MASK_CATEGORIES = 0x00FF
FLAG_WHITESPACE = 0x0100
FLAG_LOWERCASE = 0x0200
FLAG_UPPERCASE = 0x0400
FLAG_NFD = 0x0800


def table_values(name: str) -> np.ndarray:
    """int64 values of the unicode_data table `name` (stored packed: see unicode_data.py)."""
    packed = zlib.decompress(base64.b64decode(getattr(_ud, name)))
    return np.frombuffer(packed, dtype="<u4").astype(np.int64)


def cpt_flags(n: int = MAX_CODEPOINTS) -> np.ndarray:
    """uint16[size]: llama.cpp's unicode_cpt_flags_array() for codepoints below size, where size
    >= min(n, MAX_CODEPOINTS). Kernels treat codepoints >= size as having no flags (llama.cpp's
    answer past U+10FFFF), so pass n > every codepoint looked up (`table_size(cpts)`): for text
    below U+0800 the table is 4 KB, where all codepoints take 2.2 MB."""
    return _cpt_flags(_prefix_size(n))


def tolower_table(n: int = MAX_CODEPOINTS) -> np.ndarray:
    """int32[size]: unicode_tolower for codepoints below size (size as in cpt_flags: the same
    for the same n, 4.4 MB for all codepoints)."""
    return _tolower_table(_prefix_size(n))


def table_size(cpts: np.ndarray) -> int:
    """The n for cpt_flags / tolower_table covering every codepoint of cpts."""
    return int(cpts.max()) + 1 if cpts.size else 0


# prefix sizes the tables are built for: ASCII, two-byte UTF-8, the BMP, everything
_PREFIX_SIZES = (0x80, 0x800, 0x10000, MAX_CODEPOINTS)


def _prefix_size(n: int) -> int:
    for size in _PREFIX_SIZES:
        if n <= size:
            return size
    return MAX_CODEPOINTS


@functools.cache
def _cpt_flags(size: int) -> np.ndarray:
    rf = table_values("RANGES_FLAGS").reshape(-1, 2)
    starts, values = np.minimum(rf[:, 0], size), rf[:, 1]
    flags = np.repeat(values[:-1].astype(np.uint16), np.diff(starts))
    assert flags.size == size
    ws = table_values("WHITESPACE")
    flags[ws[ws < size]] |= FLAG_WHITESPACE
    for name, flag in (("MAP_LOWERCASE", FLAG_LOWERCASE), ("MAP_UPPERCASE", FLAG_UPPERCASE)):
        cased = table_values(name).reshape(-1, 2)[:, 1]
        flags[cased[cased < size]] |= flag
    nfd = table_values("RANGES_NFD").reshape(-1, 3)[:, 2]
    flags[nfd[nfd < size]] |= FLAG_NFD
    return flags


@functools.cache
def _tolower_table(size: int) -> np.ndarray:
    table = np.arange(size, dtype=np.int32)
    lower = table_values("MAP_LOWERCASE").reshape(-1, 2)
    lower = lower[lower[:, 0] < size]
    table[lower[:, 0]] = lower[:, 1]
    return table


@functools.cache
def nfd_table() -> np.ndarray:
    """int32[MAX_CODEPOINTS]: unicode_cpts_normalize_nfd for every codepoint."""
    table = np.arange(MAX_CODEPOINTS, dtype=np.int32)
    nfd = table_values("RANGES_NFD").reshape(-1, 3)
    for first, last, target in nfd:
        table[first:last + 1] = target
    return table


def _byte_to_unicode() -> list[int]:
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {b: b for b in keep}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = 256 + n
            n += 1
    return [mapping[b] for b in range(256)]


# GPT-2 byte-level encoding: byte -> codepoint (unicode_byte_to_utf8_map)
BYTE_TO_CPT = tuple(_byte_to_unicode())
CPT_TO_BYTE = {c: b for b, c in enumerate(BYTE_TO_CPT)}


@functools.cache
def byte_encode_tables() -> tuple[np.ndarray, np.ndarray]:
    """(uint8[256, 2] UTF-8 bytes, int64[256] lengths) of each byte's GPT-2 codepoint."""
    enc = np.zeros((256, 2), dtype=np.uint8)
    lens = np.zeros(256, dtype=np.int64)
    for b, c in enumerate(BYTE_TO_CPT):
        u = chr(c).encode("utf-8")
        enc[b, :len(u)] = np.frombuffer(u, dtype=np.uint8)
        lens[b] = len(u)
    return enc, lens


@njit(cache=True, nogil=True)
def utf8_len(byte):
    """unicode_len_utf8: sequence length from the lead byte's high nibble."""
    hb = byte >> 4
    if hb < 12:
        return 1
    if hb < 14:
        return 2
    if hb == 14:
        return 3
    return 4


@njit(cache=True, nogil=True)
def decode_utf8(buf):
    """unicode_cpts_from_utf8: buf uint8[n] -> int32 codepoints; a bad byte becomes U+FFFD."""
    n = buf.size
    out = np.empty(n, dtype=np.int32)
    k = 0
    i = 0
    while i < n:
        c0 = np.int64(buf[i])
        if c0 & 0x80 == 0:
            out[k] = c0
            k += 1
            i += 1
            continue
        if c0 & 0x40 == 0:
            out[k] = 0xFFFD
            k += 1
            i += 1
            continue
        if c0 & 0x20 == 0:
            if i + 1 >= n or (buf[i + 1] & 0xC0) != 0x80:
                out[k] = 0xFFFD
                k += 1
                i += 1
                continue
            out[k] = ((c0 & 0x1F) << 6) | (buf[i + 1] & 0x3F)
            k += 1
            i += 2
            continue
        if c0 & 0x10 == 0:
            if i + 2 >= n or (buf[i + 1] & 0xC0) != 0x80 or (buf[i + 2] & 0xC0) != 0x80:
                out[k] = 0xFFFD
                k += 1
                i += 1
                continue
            out[k] = ((c0 & 0x0F) << 12) | ((np.int64(buf[i + 1]) & 0x3F) << 6) | (buf[i + 2] & 0x3F)
            k += 1
            i += 3
            continue
        if c0 & 0x08 == 0:
            if (i + 3 >= n or (buf[i + 1] & 0xC0) != 0x80 or (buf[i + 2] & 0xC0) != 0x80
                    or (buf[i + 3] & 0xC0) != 0x80):
                out[k] = 0xFFFD
                k += 1
                i += 1
                continue
            out[k] = (((c0 & 0x07) << 18) | ((np.int64(buf[i + 1]) & 0x3F) << 12)
                      | ((np.int64(buf[i + 2]) & 0x3F) << 6) | (buf[i + 3] & 0x3F))
            k += 1
            i += 4
            continue
        out[k] = 0xFFFD
        k += 1
        i += 1
    return out[:k]


@njit(cache=True, nogil=True)
def encode_utf8(cpts):
    """unicode_cpt_to_utf8 over an array: (uint8 bytes, ok); ok is False past U+10FFFF."""
    out = np.empty(cpts.size * 4, dtype=np.uint8)
    k = 0
    for i in range(cpts.size):
        c = np.int64(cpts[i])
        if c < 0x80:
            out[k] = c
            k += 1
        elif c < 0x800:
            out[k] = 0xC0 | ((c >> 6) & 0x1F)
            out[k + 1] = 0x80 | (c & 0x3F)
            k += 2
        elif c < 0x10000:
            out[k] = 0xE0 | ((c >> 12) & 0x0F)
            out[k + 1] = 0x80 | ((c >> 6) & 0x3F)
            out[k + 2] = 0x80 | (c & 0x3F)
            k += 3
        elif c <= 0x10FFFF:
            out[k] = 0xF0 | ((c >> 18) & 0x07)
            out[k + 1] = 0x80 | ((c >> 12) & 0x3F)
            out[k + 2] = 0x80 | ((c >> 6) & 0x3F)
            out[k + 3] = 0x80 | (c & 0x3F)
            k += 4
        else:
            return out[:k], False
    return out[:k], True


def to_bytes(text: str | bytes) -> bytes:
    """Text as the byte string a C caller would pass (lone surrogates kept as CESU bytes)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    if not isinstance(text, str):
        from ..errors import TokenizerError
        raise TokenizerError(f"text must be str or bytes, not {type(text).__name__}")
    return text.encode("utf-8", "surrogatepass")


def cpts_from_bytes(raw: bytes) -> np.ndarray:
    """int32 codepoints of raw bytes, decoded the way llama.cpp decodes them."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return decode_utf8(np.frombuffer(raw, dtype=np.uint8))
    return np.frombuffer(s.encode("utf-32-le"), dtype=np.int32)


def cpts_to_bytes(cpts: np.ndarray) -> bytes | None:
    """UTF-8 of codepoints (surrogates included); None when one is past U+10FFFF."""
    out, ok = encode_utf8(np.ascontiguousarray(cpts, dtype=np.int32))
    return out.tobytes() if ok else None
