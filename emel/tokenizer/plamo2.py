"""PLaMo-2 tokenization: an Aho-Corasick-style suffix table and a right-to-left Viterbi pass.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_plamo2` (`build` and `encode`): scores are
rounded to 1e-4 integers, pieces that are no token fall back to UTF-8 byte tokens `<0xXX>`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..errors import TokenizerError
from .unicode import cpts_from_bytes
from .vocab import TokenAttr

_INVALID_SCORE = -20000000
_UNKNOWN_SCORE = -10000000


def _chars(text: bytes) -> list[bytes]:
    """The UTF-8 of each codepoint of text as llama.cpp decodes it (bad bytes -> U+FFFD)."""
    out = []
    for c in cpts_from_bytes(text).tolist():
        if c > 0x10FFFF:
            raise TokenizerError(f"codepoint 0x{c:X} past U+10FFFF in a PLaMo-2 token")
        out.append(chr(c).encode("utf-8", "surrogatepass"))
    return out


class Plamo2Tokenizer:
    def __init__(self, vocab):
        self.vocab = vocab
        byte_ids = [0] * 256
        suffix_to_score: dict[bytes, float] = {}
        token_to_id: dict[bytes, int] = {}
        is_byte = (vocab.attrs & TokenAttr.BYTE) != 0
        for tid, text in enumerate(vocab.tokens):
            token_to_id[text] = tid
            if is_byte[tid]:
                if (len(text) == 6 and text.startswith(b"<0x") and text.endswith(b">")
                        and all(c in b"0123456789abcdefABCDEF" for c in text[3:5])):
                    byte_ids[int(text[3:5], 16)] = tid
                continue
            suffix_to_score[text] = float(vocab.scores[tid])
            chars = _chars(text)
            for i in range(1, len(chars)):
                suffix = b"".join(chars[i:])
                if suffix not in suffix_to_score:
                    suffix_to_score[suffix] = math.nan
        for b in range(256):
            if byte_ids[b] == 0:
                raise TokenizerError(f"Byte token for <0x{b}> is not set")
        suffixes = list(suffix_to_score) + [b""]
        suffixes.sort(key=lambda s: s[::-1])
        suffix_to_id: dict[bytes, int] = {}
        to_suffix_id: dict[int, int] = {}
        num_pieces = 0
        split = {}
        for suffix in suffixes:
            suffix_to_id[suffix] = num_pieces
            if suffix:
                chars = _chars(suffix)
                split[suffix] = chars
                remaining = b"".join(chars[1:])
                code = (_cpt(chars[0]) << 32) | suffix_to_id[remaining]
                to_suffix_id[code] = num_pieces
                count = 1
                for ln in range(len(chars), 0, -1):
                    if b"".join(chars[:ln]) in suffix_to_score:
                        count += 1
                num_pieces += count
            else:
                num_pieces += 1
        table = np.zeros((num_pieces, 4), dtype=np.int64)
        idx = 0
        for suffix in suffixes:
            chars = split.get(suffix, [])
            for ln in range(len(chars), 0, -1):
                piece = b"".join(chars[:ln])
                score = suffix_to_score.get(piece)
                if score is None:
                    continue
                table[idx, 0] = ln
                table[idx, 1] = token_to_id.get(piece, -1)
                scaled = score * 1e4
                table[idx, 2] = (int(math.copysign(math.floor(abs(scaled) + 0.5), scaled))
                                 if math.isfinite(score) else _INVALID_SCORE)
                table[idx, 3] = suffix_to_id[piece]
                idx += 1
            table[idx] = (1, -1, _UNKNOWN_SCORE, 0)
            idx += 1
        keys = np.array(sorted(to_suffix_id), dtype=np.int64)
        self.table = table
        self.codes = keys
        self.code_ids = np.array([to_suffix_id[k] for k in keys.tolist()], dtype=np.int64)
        self.byte_ids = np.array(byte_ids, dtype=np.int32)

    def tokenize(self, text: bytes, output: list[int]) -> None:
        cpts = cpts_from_bytes(text)
        if cpts.size and cpts[0] == 0xFEFF:
            cpts = cpts[1:]
        if cpts.size == 0:
            return
        toks = _encode(np.ascontiguousarray(cpts, dtype=np.int64), self.table, self.codes,
                       self.code_ids, self.byte_ids)
        output.extend(toks.tolist())


def _cpt(ch: bytes) -> int:
    return ord(ch.decode("utf-8", "surrogatepass"))


@njit(cache=True, nogil=True)
def _find_code(codes, code_ids, code):
    lo = 0
    hi = codes.size
    while lo < hi:
        mid = (lo + hi) // 2
        if codes[mid] < code:
            lo = mid + 1
        else:
            hi = mid
    if lo < codes.size and codes[lo] == code:
        return code_ids[lo]
    return 0


@njit(cache=True, nogil=True)
def _encode(data, table, codes, code_ids, byte_ids):
    n = data.size
    n_table = table.shape[0]
    scores = np.full(n + 1, np.int64(1) << 60, dtype=np.int64)
    scores[n] = 0
    path_len = np.zeros(n + 1, dtype=np.int64)
    path_tok = np.zeros(n + 1, dtype=np.int64)
    path_num = np.zeros(n + 1, dtype=np.int64)
    suffix_id = 0
    for i in range(n - 1, -1, -1):
        c = data[i]
        for p in range(suffix_id, n_table):
            suffix_id = _find_code(codes, code_ids, (c << 32) | table[p, 3])
            if suffix_id > 0 or table[p, 2] == _UNKNOWN_SCORE:
                break
        for p in range(suffix_id, n_table):
            score = table[p, 2]
            if score > _INVALID_SCORE:
                ln = table[p, 0]
                if i + ln <= n:
                    s = scores[i + ln] - score
                    if s < scores[i]:
                        scores[i] = s
                        path_len[i] = ln
                        path_tok[i] = table[p, 1]
                        path_num[i] = path_num[i + ln] + 1
                        if score == _UNKNOWN_SCORE:
                            path_num[i] += (c >= 0x80) + (c >= 0x800) + (c >= 0x10000)
            if score == _UNKNOWN_SCORE:
                break
    out = np.empty(4 * n + 1, dtype=np.int32)
    n_out = 0
    pos = 0
    while pos < n:
        if path_tok[pos] >= 0:
            out[n_out] = path_tok[pos]
            n_out += 1
        else:
            c = data[pos]
            s = 1 + (c >= 0x80) + (c >= 0x800) + (c >= 0x10000)
            for i in range(s):
                if s == 1:
                    b = c
                elif i == 0:
                    b = (0xF00 >> s) & 0xFF
                else:
                    b = 0x80
                out[n_out] = byte_ids[(b | ((c >> ((s - i - 1) * 6)) & 0x3F)) & 0xFF]
                n_out += 1
        if path_len[pos] <= 0:
            break
        pos += path_len[pos]
    return out[:n_out]
