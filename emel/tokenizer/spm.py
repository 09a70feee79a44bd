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
        # merge priority: higher score first; equal scores share a rank (0 = highest score)
        uniq, inverse = np.unique(np.asarray(vocab.scores, dtype=np.float32), return_inverse=True)
        self.score_rank = (uniq.size - 1 - inverse).astype(np.int64)
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
        toks, bad = _spm(buf, t.data, t.offsets, t.slots, self.score_rank, self.byte_tokens)
        if bad >= 0:
            raise TokenizerError(f"vocabulary has no token for byte 0x{bad:02X} (byte fallback)")
        output.extend(toks.tolist())


@njit(cache=True, nogil=True)
def _heap_push(hk, hs, n, key, size):
    """Min-heap on key = score_rank << 40 | left (llm_bigram_spm's order), payload size."""
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if key < hk[p]:
            hk[i] = hk[p]
            hs[i] = hs[p]
            i = p
        else:
            break
    hk[i] = key
    hs[i] = size
    return n + 1


@njit(cache=True, nogil=True)
def _heap_pop(hk, hs, n):
    """Remove the root (already read by the caller); returns the new size."""
    n -= 1
    key = hk[n]
    size = hs[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and hk[c + 1] < hk[c]:
            c += 1
        if hk[c] < key:
            hk[i] = hk[c]
            hs[i] = hs[c]
            i = c
        else:
            break
    hk[i] = key
    hs[i] = size
    return n


@njit(cache=True, nogil=True)
def _spm(buf, data, offsets, slots, score_rank, byte_tokens):
    """buf: uint8[n] escaped text -> (int32 tokens, first byte lacking a token or -1).

    A heap entry is (score_rank << 40 | left, size); its right symbol is left's next one, and
    the entry is stale when the two sizes no longer add up to `size` (see llm_tokenizer_spm).
    """
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
    hk = np.empty(cap, dtype=np.int64)
    hs = np.empty(cap, dtype=np.int64)
    nh = 0
    for i in range(1, n_sym):
        a = start[i - 1]
        b = a + size[i - 1] + size[i]
        tok = strtab.lookup(data, offsets, slots, buf, a, b)
        if tok >= 0:
            nh = _heap_push(hk, hs, nh, (score_rank[tok] << 40) | (i - 1), b - a)
    mask = (np.int64(1) << 40) - 1
    while nh > 0:
        left = hk[0] & mask
        bsize = hs[0]
        nh = _heap_pop(hk, hs, nh)
        right = nxt[left]
        if size[left] == 0 or right < 0 or size[right] == 0 or size[left] + size[right] != bsize:
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
                nh = _heap_push(hk, hs, nh, (score_rank[tok] << 40) | lft, b - a)
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
