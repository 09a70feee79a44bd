"""RWKV "world" tokenization: greedy longest match over unescaped token bytes.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_rwkv` (tokens are stored escaped as
Python-style `\\xNN`, `\\t`, `\\n`, `\\r`, `\\\\`; the trie walk keeps the last token seen).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import TokenizerError
from . import strtab


def unescape_rwkv_token(escaped: bytes) -> bytes:
    """llama_unescape_rwkv_token."""
    out = bytearray()
    escaping = False
    hex_remaining = 0
    hex_acc = 0
    for c in escaped:
        if hex_remaining:
            value = c - 0x61 + 10 if c >= 0x61 else c - 0x30
            hex_acc = ((hex_acc << 4) + value) & 0xFF
            hex_remaining -= 1
            if hex_remaining == 0:
                out.append(hex_acc)
                hex_acc = 0
            continue
        if escaping:
            if c == 0x74:
                out.append(0x09)
            elif c == 0x6E:
                out.append(0x0A)
            elif c == 0x72:
                out.append(0x0D)
            elif c == 0x78:
                hex_remaining = 2
            else:
                out.append(c)
            escaping = False
            continue
        if c == 0x5C:
            escaping = True
            continue
        out.append(c)
    return bytes(out)


class RwkvTokenizer:
    def __init__(self, vocab):
        self.vocab = vocab
        texts = [unescape_rwkv_token(t) for t in vocab.tokens]
        # the trie keeps the last id inserted for a text; strtab keeps the first, so feed it
        # the ids in reverse
        order = np.arange(len(texts) - 1, -1, -1, dtype=np.int32)
        self.table = strtab.build([texts[i] for i in order], order)
        prefixes = set()
        for t in texts:
            for k in range(1, len(t) + 1):
                prefixes.add(t[:k])
        self.nodes = strtab.build(sorted(prefixes))
        self.max_len = max((len(t) for t in texts), default=0)

    def tokenize(self, text: bytes, output: list[int]) -> None:
        if not text:
            return
        t, p = self.table, self.nodes
        toks, ok = _rwkv(np.frombuffer(text, dtype=np.uint8), t.data, t.offsets, t.slots, t.values,
                         p.data, p.offsets, p.slots, self.vocab.unk)
        if not ok:
            raise TokenizerError("RWKV vocabulary has a byte prefix with no token (llama.cpp loops)")
        output.extend(toks.tolist())


@njit(cache=True, nogil=True)
def _rwkv(buf, data, offsets, slots, values, p_data, p_off, p_slots, unk):
    n = buf.size
    out = np.empty(n, dtype=np.int32)
    n_out = 0
    pos = 0
    while pos < n:
        if strtab.lookup(p_data, p_off, p_slots, buf, pos, pos + 1) < 0:
            out[n_out] = unk
            n_out += 1
            pos += 1
            continue
        tok = 0
        tok_end = 0
        ln = 1
        while True:
            s = strtab.lookup(data, offsets, slots, buf, pos, pos + ln)
            if s >= 0:
                tok = values[s]
                tok_end = pos + ln
            if pos + ln >= n:
                break
            if strtab.lookup(p_data, p_off, p_slots, buf, pos, pos + ln + 1) < 0:
                break
            ln += 1
        if tok_end <= pos:
            return out[:n_out], False
        out[n_out] = tok
        n_out += 1
        pos = tok_end
    return out[:n_out], True
