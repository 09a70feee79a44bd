"""Special-token partitioning: cut raw text into text fragments and special-token ids.

Follows llama.cpp src/llama-vocab.cpp `tokenizer_st_partition`: special tokens (control,
user-defined, unknown) are taken longest first; each splits every remaining text fragment at its
leftmost occurrences, honouring the LSTRIP / RSTRIP attributes. Control and unknown tokens are
only matched when `parse_special` is set; user-defined tokens always are.
"""

from __future__ import annotations

import numpy as np

from .vocab import TokenAttr

_C_SPACE = b" \t\n\v\f\r"  # isspace() in the C locale

Fragment = tuple[int, int, int]  # (token, offset, length): token >= 0 or a raw-text range


def partition(vocab, specials: list[int], raw: bytes, parse_special: bool) -> list[Fragment]:
    """Fragments of `raw` in order: (token, 0, 0) for a special token, (-1, offset, length) for text."""
    if not raw:
        return []
    frags: list[Fragment] = [(-1, 0, len(raw))]
    skip = TokenAttr.CONTROL | TokenAttr.UNKNOWN
    for tid in _present(vocab, specials, raw):
        attr = int(vocab.attrs[tid])
        if not parse_special and attr & skip:
            continue
        text = vocab.tokens[tid]
        out: list[Fragment] = []
        for frag in frags:
            if frag[0] >= 0:
                out.append(frag)
                continue
            base, length = frag[1], frag[2]
            while True:
                match = raw.find(text, base, base + length)
                if match < 0:
                    out.append((-1, base, length))
                    break
                if match > base:
                    left_len = match - base
                    if attr & TokenAttr.LSTRIP:
                        while left_len > 0 and raw[base + left_len - 1] in _C_SPACE:
                            left_len -= 1
                    if left_len > 0:
                        out.append((-1, base, left_len))
                out.append((tid, 0, 0))
                end = match + len(text)
                if end < base + length:
                    right_off = end
                    right_len = length - (match - base + len(text))
                    if attr & TokenAttr.RSTRIP:
                        while right_len > 0 and raw[right_off] in _C_SPACE:
                            right_off += 1
                            right_len -= 1
                    base, length = right_off, right_len
                    if length == 0:
                        break
                else:
                    break
        frags = out
    return frags


def _present(vocab, specials: list[int], raw: bytes) -> list[int]:
    """The special tokens (in partition order) that can occur in raw: a cheap exact filter."""
    if len(raw) < 4096 or len(specials) < 64:
        return [t for t in specials if vocab.tokens[t] in raw]
    buf = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    grams = set(np.unique((buf[:-1] << 8) | buf[1:]).tolist())
    singles = set(np.unique(buf).tolist())
    keep = []
    for t in specials:
        s = vocab.tokens[t]
        if len(s) == 1:
            if s[0] in singles:
                keep.append(t)
        elif ((s[0] << 8) | s[1]) in grams and s in raw:
            keep.append(t)
    return keep
