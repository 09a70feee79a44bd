"""Unigram (UGM, T5-style): precompiled-charsmap normalization, then Viterbi over token scores.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_ugm` and its session: the normalizer walks
the XOR-compressed double array (XCDA) of SentencePiece's precompiled charsmap, user-defined
tokens pass through untouched (matched as llama.cpp's naive trie matches them: the longest
common prefix with any of them), spaces are escaped, prepended or merged as configured; the
Viterbi pass keeps the first best path and merges runs of unknown tokens.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import TokenizerError
from . import trie
from .vocab import TokenAttr


class UgmTokenizer:
    def __init__(self, vocab):
        self.vocab = vocab
        attrs = vocab.attrs
        normal = (attrs & TokenAttr.NORMAL) != 0
        user = (attrs & TokenAttr.USER_DEFINED) != 0
        unused = (attrs & TokenAttr.UNUSED) != 0
        scores = vocab.scores.astype(np.float32)
        if normal.any():
            min_score = float(scores[normal].min())
        else:
            min_score = float(np.finfo(np.float32).max)
        # unknown_token_score = min_score - 10 in float
        self.unknown_score = float(np.float32(min_score) - np.float32(10.0))
        # token_matcher: normal, user-defined and unused tokens
        matchable = normal | user | unused
        ids = np.nonzero(matchable)[0]
        self.matcher = trie.build([vocab.tokens[i] for i in ids], ids.astype(np.int32))
        self.token_score = np.where(user, 0.0, scores.astype(np.float64))
        user_ids = np.nonzero(user)[0]
        self.user_trie = trie.build([vocab.tokens[i] for i in user_ids], user_ids.astype(np.int32))
        cm = vocab.precompiled_charsmap
        if cm:
            blob = int.from_bytes(cm[:4], "little")
            self.xcda = np.frombuffer(cm[4:4 + blob], dtype="<u4").astype(np.uint32)
            self.replacements = np.frombuffer(cm[4 + blob:], dtype=np.uint8)
        else:
            self.xcda = np.zeros(0, dtype=np.uint32)
            self.replacements = np.zeros(0, dtype=np.uint8)

    def tokenize(self, text: bytes, output: list[int]) -> None:
        v = self.vocab
        buf = np.frombuffer(text, dtype=np.uint8)
        ut = self.user_trie
        norm, status = _normalize(buf, ut.keys, ut.child, self.xcda, self.replacements,
                                  v.escape_whitespaces, v.treat_whitespace_as_suffix,
                                  v.add_space_prefix, v.remove_extra_whitespaces)
        if status != 0:
            raise TokenizerError("precompiled charsmap is corrupt (index out of bounds)")
        if norm.size == 0:
            return
        m = self.matcher
        toks = _viterbi(norm, m.keys, m.child, m.value, self.token_score, self.unknown_score, v.unk)
        output.extend(toks.tolist())


@njit(cache=True, nogil=True)
def _valid_utf8_len(buf, i):
    """Length of the codepoint at i as unicode_cpt_from_utf8 reads it, or 0 if it throws."""
    n = buf.size
    c0 = buf[i]
    if c0 & 0x80 == 0:
        return 1
    if c0 & 0x40 == 0:
        return 0
    if c0 & 0x20 == 0:
        if i + 1 >= n or (buf[i + 1] & 0xC0) != 0x80:
            return 0
        return 2
    if c0 & 0x10 == 0:
        if i + 2 >= n or (buf[i + 1] & 0xC0) != 0x80 or (buf[i + 2] & 0xC0) != 0x80:
            return 0
        return 3
    if c0 & 0x08 == 0:
        if (i + 3 >= n or (buf[i + 1] & 0xC0) != 0x80 or (buf[i + 2] & 0xC0) != 0x80
                or (buf[i + 3] & 0xC0) != 0x80):
            return 0
        return 4
    return 0


@njit(cache=True, nogil=True)
def _normalize(buf, u_keys, u_child, xcda, repl, escape, as_suffix, add_prefix, merge):
    """llm_tokenizer_ugm_session::normalize -> (bytes, status); status 1: bad charsmap."""
    n = buf.size
    out = np.empty(n * 4 + 16, dtype=np.uint8)
    k = 0
    prepend = (not as_suffix) and add_prefix
    append = as_suffix and add_prefix
    space_prepended = False
    non_ws = False
    ffd = np.array([0xEF, 0xBF, 0xBD], dtype=np.uint8)
    off = 0
    while off < n:
        # -- normalize_prefix
        src = 0  # 0: input bytes, 1: replacement table, 2: U+FFFD
        r_start = off
        r_len = 0
        consumed = 0
        # user-defined tokens: longest walk along the naive trie
        ul = 0
        node = np.int64(0)
        while off + ul < n:
            node = trie.step(u_keys, u_child, node, buf[off + ul])
            if node < 0:
                break
            ul += 1
        if ul > 0:
            r_len = ul
            consumed = ul
        else:
            best_len = 0
            best_off = 0
            if xcda.size > 0:
                node = np.int64(_xcda_base(xcda, 0))
                if node < 0:
                    return out[:0], 1
                p = off
                while p < n:
                    c = np.int64(buf[p])
                    if c == 0:
                        break
                    node ^= c
                    if node >= xcda.size:
                        return out[:0], 1
                    packed = np.int64(xcda[node])
                    if (packed & ((1 << 31) | 0xFF)) != c:
                        break
                    is_leaf = (packed >> 8) & 1
                    base = _xcda_base(xcda, node)
                    node ^= base
                    if is_leaf:
                        if node >= xcda.size:
                            return out[:0], 1
                        best_len = p - off + 1
                        best_off = np.int64(xcda[node]) & ((1 << 31) - 1)
                    p += 1
            if best_len > 0:
                if best_off >= repl.size:
                    return out[:0], 1
                ln = 0
                while best_off + ln < repl.size and repl[best_off + ln] != 0:
                    ln += 1
                if best_off + ln == repl.size:
                    return out[:0], 1
                src = 1
                r_start = best_off
                r_len = ln
                consumed = best_len
            else:
                vl = _valid_utf8_len(buf, off)
                if vl > 0:
                    r_len = vl
                    consumed = vl
                else:
                    src = 2
                    r_start = 0
                    r_len = 3
                    consumed = 1
        # -- append with whitespace handling
        for i in range(r_len):
            if k + 8 >= out.size:
                out = _grow(out)
            if src == 0:
                c = buf[r_start + i]
            elif src == 1:
                c = repl[r_start + i]
            else:
                c = ffd[i]
            if c != 0x20:
                if not non_ws:
                    non_ws = True
                    if (prepend and not space_prepended) or merge:
                        k = _space(out, k, escape)
                        space_prepended = True
                out[k] = c
                k += 1
            else:
                if non_ws:
                    non_ws = False
                if not merge:
                    k = _space(out, k, escape)
        off += consumed
        if k + 8 >= out.size:
            out = _grow(out)
    if append:
        k = _space(out, k, escape)
    return out[:k].copy(), 0


@njit(cache=True, nogil=True)
def _grow(out):
    bigger = np.empty(out.size * 2 + 16, dtype=np.uint8)
    bigger[:out.size] = out
    return bigger


@njit(cache=True, nogil=True, inline="always")
def _space(out, k, escape):
    if escape:
        out[k] = 0xE2
        out[k + 1] = 0x96
        out[k + 2] = 0x81
        return k + 3
    out[k] = 0x20
    return k + 1


@njit(cache=True, nogil=True, inline="always")
def _xcda_base(xcda, index):
    if index >= xcda.size:
        return -1
    packed = np.int64(xcda[index])
    return (packed >> 10) << ((packed & (1 << 9)) >> 6)


@njit(cache=True, nogil=True)
def _viterbi(norm, keys, child, value, token_score, unknown_score, unk):
    n = norm.size
    best_tok = np.full(n + 1, unk, dtype=np.int64)
    best_off = np.zeros(n + 1, dtype=np.int64)
    best_score = np.full(n + 1, -1.7976931348623157e308, dtype=np.float64)
    best_score[0] = 0.0
    i = 0
    while i < n:
        hb = norm[i] >> 4
        n_units = 1 if hb < 12 else (2 if hb < 14 else (3 if hb == 14 else 4))
        n_units = min(n_units, n - i)
        single_found = False
        cur = best_score[i]
        node = trie.step(keys, child, 0, norm[i])
        p = i + 1
        while p <= n and node >= 0:
            tok = value[node]
            if tok >= 0:
                if p - i == n_units:
                    single_found = True
                challenger = cur + token_score[tok]
                if challenger > best_score[p]:
                    best_score[p] = challenger
                    best_tok[p] = tok
                    best_off[p] = i
            if p == n:
                break
            node = trie.step(keys, child, node, norm[p])
            p += 1
        if not single_found:
            challenger = cur + unknown_score
            j = i + n_units
            if challenger > best_score[j]:
                best_score[j] = challenger
                best_tok[j] = unk
                best_off[j] = i
        i += n_units
    out = np.empty(n + 1, dtype=np.int32)
    n_out = 0
    prev_unknown = False
    pos = n
    while True:
        tok = best_tok[pos]
        is_unknown = tok == unk
        if not (prev_unknown and is_unknown):
            out[n_out] = tok
            n_out += 1
        if best_off[pos] == 0:
            break
        prev_unknown = is_unknown
        pos = best_off[pos]
    return out[:n_out][::-1].copy()
