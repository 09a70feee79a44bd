"""WordPiece (WPM, BERT): normalize and split into words, then greedy longest-match per word.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_wpm_session`: words get a U+2581 prefix,
matching is longest-first over byte lengths up to the longest token, and a word with any
unmatched position becomes one unknown token.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import TokenizerError
from . import strtab
from .unicode import cpt_flags, cpts_from_bytes, nfd_table, tolower_table

_WS = 0x0100
_CONTROL = 0x0080
_ACCENT = 0x0010
_PUNCT = 0x0020
_SYMBOL = 0x0040


class WpmTokenizer:
    def __init__(self, vocab):
        self.vocab = vocab
        self.table = strtab.build(vocab.tokens)

    def tokenize(self, text: bytes, output: list[int]) -> None:
        v = self.vocab
        cpts = cpts_from_bytes(text)
        nfd = nfd_table() if v.strip_accents else np.zeros(1, dtype=np.int32)
        t = self.table
        toks, ok = _wpm(cpts, cpt_flags(), tolower_table(), nfd, v.lowercase, v.strip_accents,
                        t.data, t.offsets, t.slots, v.max_token_len, v.unk)
        if not ok:
            raise TokenizerError("text decodes to a codepoint past U+10FFFF, which llama.cpp "
                                 "cannot re-encode (it aborts)")
        output.extend(toks.tolist())


@njit(cache=True, nogil=True, inline="always")
def _is_chinese(c):
    return ((0x4E00 <= c <= 0x9FFF) or (0x3400 <= c <= 0x4DBF) or (0x20000 <= c <= 0x2A6DF)
            or (0x2A700 <= c <= 0x2B73F) or (0x2B740 <= c <= 0x2B81F) or (0x2B920 <= c <= 0x2CEAF)
            or (0xF900 <= c <= 0xFAFF) or (0x2F800 <= c <= 0x2FA1F))


@njit(cache=True, nogil=True)
def _put_utf8(buf, k, c):
    if c < 0x80:
        buf[k] = c
        return k + 1
    if c < 0x800:
        buf[k] = 0xC0 | ((c >> 6) & 0x1F)
        buf[k + 1] = 0x80 | (c & 0x3F)
        return k + 2
    if c < 0x10000:
        buf[k] = 0xE0 | ((c >> 12) & 0x0F)
        buf[k + 1] = 0x80 | ((c >> 6) & 0x3F)
        buf[k + 2] = 0x80 | (c & 0x3F)
        return k + 3
    if c <= 0x10FFFF:
        buf[k] = 0xF0 | ((c >> 18) & 0x07)
        buf[k + 1] = 0x80 | ((c >> 12) & 0x3F)
        buf[k + 2] = 0x80 | ((c >> 6) & 0x3F)
        buf[k + 3] = 0x80 | (c & 0x3F)
        return k + 4
    return -1


@njit(cache=True, nogil=True)
def _wpm(cpts, flags, lower, nfd, lowercase, strip_accents, data, offsets, slots, max_len, unk):
    n = cpts.size
    # words as "\u2581" + UTF-8, back to back
    buf = np.empty(n * 4 + (n + 1) * 3 + 3, dtype=np.uint8)
    starts = np.empty(2 * n + 2, dtype=np.int64)
    ends = np.empty(2 * n + 2, dtype=np.int64)
    n_words = 0
    k = 0
    cur = -1  # start of the current word's text (after its prefix), -1 when none open
    for i in range(n):
        c = np.int64(cpts[i])
        if strip_accents and c < nfd.size:
            c = np.int64(nfd[c])
        f = np.int64(flags[c]) if c < flags.size else 1
        if f & _WS:
            if cur >= 0 and k > cur:
                starts[n_words] = cur - 3
                ends[n_words] = k
                n_words += 1
                cur = -1
            continue
        if c == 0 or c == 0xFFFD or (f & _CONTROL):
            continue
        if strip_accents and (f & _ACCENT):
            continue
        single = (f & _PUNCT) != 0 or (c < 0x7F and (f & _SYMBOL) != 0) or _is_chinese(c)
        if lowercase and c < lower.size:
            c = np.int64(lower[c])
        if single and cur >= 0 and k > cur:
            starts[n_words] = cur - 3
            ends[n_words] = k
            n_words += 1
            cur = -1
        if cur < 0:
            buf[k] = 0xE2
            buf[k + 1] = 0x96
            buf[k + 2] = 0x81
            k += 3
            cur = k
        k = _put_utf8(buf, k, c)
        if k < 0:
            return np.zeros(0, dtype=np.int32), False
        if single:
            starts[n_words] = cur - 3
            ends[n_words] = k
            n_words += 1
            cur = -1
    if cur >= 0 and k > cur:
        starts[n_words] = cur - 3
        ends[n_words] = k
        n_words += 1
    out = np.empty(k + n_words + 1, dtype=np.int32)
    n_out = 0
    for w in range(n_words):
        a = starts[w]
        b = ends[w]
        first = n_out
        i = a
        while i < b:
            match = False
            j = min(b, i + max_len + 1)
            while j > i:
                tok = strtab.lookup(data, offsets, slots, buf, i, j)
                if tok >= 0:
                    out[n_out] = tok
                    n_out += 1
                    match = True
                    i = j
                    break
                j -= 1
            if not match:
                n_out = first
                break
        if n_out == first:
            out[n_out] = unk
            n_out += 1
    return out[:n_out], True
