"""SentencePiece-style (SPM) tokenization: greedy highest-score bigram merges with byte fallback.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_spm_session`. Its `rev_merge` resegmenting
never fires (a merged symbol is always a token, and a single character is never the text of a
bigram), so a final symbol is its token or, failing that, its bytes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import TokenizerError
from . import strtab
from .unicode import utf8_len


class SpmTokenizer:
    """Tokenizes escaped fragments (spaces already replaced by U+2581) for an SPM vocabulary."""

    def __init__(self, vocab, table: strtab.StrTab):
        self.vocab = vocab
        self.table = table
        self.scores = np.ascontiguousarray(vocab.scores, dtype=np.float32)
        byte_tokens = np.full(256, -1, dtype=np.int32)
        for b in range(256):
            tok = vocab.token_to_id.get(b"<0x%02X>" % b)
            if tok is None:
                tok = vocab.token_to_id.get(bytes([b]))
            if tok is not None:
                byte_tokens[b] = tok
        self.byte_tokens = byte_tokens

    def tokenize(self, text: bytes, output: list[int]) -> None:
        if not text:
            return
        t = self.table
        buf = np.frombuffer(text, dtype=np.uint8)
        toks, bad = _spm(buf, t.data, t.offsets, t.slots, self.scores, self.byte_tokens)
        if bad >= 0:
            raise TokenizerError(f"vocabulary has no token for byte 0x{bad:02X} (byte fallback)")
        output.extend(toks.tolist())


@njit(cache=True, nogil=True)
def _heap_push(hp, hl, hr, hs, n, pri, left, right, size):
    i = n
    hp[i] = pri
    hl[i] = left
    hr[i] = right
    hs[i] = size
    while i > 0:
        p = (i - 1) >> 1
        if hp[i] < hp[p] or (hp[i] == hp[p] and hl[i] < hl[p]):
            hp[i], hp[p] = hp[p], hp[i]
            hl[i], hl[p] = hl[p], hl[i]
            hr[i], hr[p] = hr[p], hr[i]
            hs[i], hs[p] = hs[p], hs[i]
            i = p
        else:
            break
    return n + 1


@njit(cache=True, nogil=True)
def _heap_pop(hp, hl, hr, hs, n):
    """Remove the root (already read by the caller); returns the new size."""
    n -= 1
    hp[0] = hp[n]
    hl[0] = hl[n]
    hr[0] = hr[n]
    hs[0] = hs[n]
    i = 0
    while True:
        a = 2 * i + 1
        if a >= n:
            break
        b = a + 1
        c = a
        if b < n and (hp[b] < hp[a] or (hp[b] == hp[a] and hl[b] < hl[a])):
            c = b
        if hp[c] < hp[i] or (hp[c] == hp[i] and hl[c] < hl[i]):
            hp[i], hp[c] = hp[c], hp[i]
            hl[i], hl[c] = hl[c], hl[i]
            hr[i], hr[c] = hr[c], hr[i]
            hs[i], hs[c] = hs[c], hs[i]
            i = c
        else:
            break
    return n


@njit(cache=True, nogil=True)
def _spm(buf, data, offsets, slots, scores, byte_tokens):
    """buf: uint8[n] escaped text -> (int32 tokens, first byte lacking a token or -1)."""
    n = buf.size
    start = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    prev = np.empty(n, dtype=np.int64)
    nxt = np.empty(n, dtype=np.int64)
    n_sym = 0
    off = 0
    while off < n:
        ln = min(utf8_len(buf[off]), n - off)
        start[n_sym] = off
        size[n_sym] = ln
        prev[n_sym] = n_sym - 1
        off += ln
        nxt[n_sym] = -1 if off == n else n_sym + 1
        n_sym += 1
    cap = 3 * n_sym + 4
    hp = np.empty(cap, dtype=np.float64)
    hl = np.empty(cap, dtype=np.int64)
    hr = np.empty(cap, dtype=np.int64)
    hs = np.empty(cap, dtype=np.int64)
    nh = 0
    for i in range(1, n_sym):
        a = start[i - 1]
        b = a + size[i - 1] + size[i]
        tok = strtab.lookup(data, offsets, slots, buf, a, b)
        if tok >= 0:
            nh = _heap_push(hp, hl, hr, hs, nh, -np.float64(scores[tok]), i - 1, i, b - a)
    while nh > 0:
        left = hl[0]
        right = hr[0]
        bsize = hs[0]
        nh = _heap_pop(hp, hl, hr, hs, nh)
        if size[left] == 0 or size[right] == 0 or size[left] + size[right] != bsize:
            continue
        size[left] += size[right]
        size[right] = 0
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prev[nxt[right]] = left
        for k in range(2):
            lft = prev[left] if k == 0 else left
            rgt = left if k == 0 else nxt[left]
            if lft == -1 or rgt == -1:
                continue
            a = start[lft]
            b = a + size[lft] + size[rgt]
            tok = strtab.lookup(data, offsets, slots, buf, a, b)
            if tok >= 0:
                nh = _heap_push(hp, hl, hr, hs, nh, -np.float64(scores[tok]), lft, rgt, b - a)
    out = np.empty(n, dtype=np.int32)
    n_out = 0
    i = 0
    while i != -1 and n_sym > 0:
        a = start[i]
        b = a + size[i]
        tok = strtab.lookup(data, offsets, slots, buf, a, b)
        if tok >= 0:
            out[n_out] = tok
            n_out += 1
        else:
            for j in range(a, b):
                bt = byte_tokens[buf[j]]
                if bt < 0:
                    return out[:n_out], np.int64(buf[j])
                out[n_out] = bt
                n_out += 1
        i = nxt[i]
    return out[:n_out], np.int64(-1)
