"""RWKV "world" tokenization: greedy longest match over unescaped token bytes.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_rwkv` (tokens are stored escaped as
Python-style `\\xNN`, `\\t`, `\\n`, `\\r`, `\\\\`; the trie walk keeps the last token seen).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import TokenizerError
from . import trie


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
        self.trie = trie.build(texts, np.arange(len(texts), dtype=np.int32))

    def tokenize(self, text: bytes, output: list[int]) -> None:
        if not text:
            return
        t = self.trie
        toks, ok = _rwkv(np.frombuffer(text, dtype=np.uint8), t.keys, t.child, t.value,
                         self.vocab.unk)
        if not ok:
            raise TokenizerError("RWKV vocabulary has a byte prefix with no token (llama.cpp loops)")
        output.extend(toks.tolist())


@njit(cache=True, nogil=True)
def _rwkv(buf, keys, child, value, unk):
    """llm_tokenizer_rwkv_session::tokenize: longest match, unknown for a byte with no edge."""
    n = buf.size
    out = np.empty(n, dtype=np.int32)
    n_out = 0
    pos = 0
    while pos < n:
        node = trie.step(keys, child, 0, buf[pos])
        if node < 0:
            out[n_out] = unk
            n_out += 1
            pos += 1
            continue
        tok = 0
        tok_end = 0
        p = pos
        while node >= 0:
            if value[node] >= 0:
                tok = value[node]
                tok_end = p + 1
            if p + 1 >= n:
                break
            p += 1
            node = trie.step(keys, child, node, buf[p])
        if tok_end <= pos:
            return out[:n_out], False
        out[n_out] = tok
        n_out += 1
        pos = tok_end
    return out[:n_out], True
