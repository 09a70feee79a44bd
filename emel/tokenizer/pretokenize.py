"""BPE pre-tokenization: split codepoints into words with each pre-tokenizer's regexes.

Follows llama.cpp src/unicode.cpp `unicode_regex_split`: the regexes llama.cpp has a hand-written
splitter for (gpt2, llama3, qwen2, qwen3.5, kimi-k2, afmoe, newlines) use a port of that splitter;
the others run through Python's `re` the way llama.cpp runs std::regex: a regex that uses Unicode
categories sees the "collapsed" text (each non-ASCII codepoint replaced by one byte naming its
category, non-ASCII whitespace by 0x0B) and has each \\p{..} rewritten to a character class; any
other regex sees the codepoints with non-ASCII whitespace replaced by 0x0B. `re.ASCII` gives the
C locale's \\s, \\d and \\w that std::regex uses.
"""

from __future__ import annotations

import functools
import re

import numpy as np
from numba import njit

from ..errors import TokenizerError
from .unicode import cpt_flags, table_size, tolower_table

_OUT = 0xFFFFFFFF
_WS = 0x0100
_L = 0x0004
_N = 0x0002
_M = 0x0010

GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
LLAMA3_A = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
            "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
LLAMA3 = ("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
          "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2 = ("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
         "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN35 = ("(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
          "[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
KIMI_K2 = "\\p{Han}+"
AFMOE_DIGITS = "\\p{AFMoE_digits}"
TINY_AYA_DIGITS = "\\d{1,3}(?=(?:\\d{3})*\\b)"
NEWLINES = "[^\\n]+|[\\n]+"

_CUSTOM = {GPT2: 0, LLAMA3_A: 1, LLAMA3: 1, QWEN2: 2, QWEN35: 3, KIMI_K2: 4, AFMOE_DIGITS: 5,
           TINY_AYA_DIGITS: 5, NEWLINES: 6}

# unicode categories llama.cpp rewrites (all \p{L*} collapse to LETTER)
_UCAT = {"\\p{N}": 0x02, "\\p{L}": 0x04, "\\p{P}": 0x20, "\\p{M}": 0x10, "\\p{S}": 0x40,
         "\\p{Lu}": 0x04, "\\p{Ll}": 0x04, "\\p{Lt}": 0x04, "\\p{Lm}": 0x04, "\\p{Lo}": 0x04}
_UCAT_CPT = {0x02: 0xD1, 0x04: 0xD2, 0x20: 0xD3, 0x10: 0xD4, 0x40: 0xD5}
_UCAT_MAP = {0x02: "\\x30-\\x39", 0x04: "\\x41-\\x5A\\x61-\\x7A",
             0x20: "\\x21-\\x23\\x25-\\x2A\\x2C-\\x2F\\x3A-\\x3B\\x3F-\\x40\\x5B-\\x5D\\x5F\\x7B\\x7D",
             0x10: "", 0x40: "\\x24\\x2B\\x3C-\\x3E\\x5E\\x60\\x7C\\x7E"}


def regex_split(cpts: np.ndarray, regex_exprs: list[str]) -> np.ndarray:
    """Word lengths (int64, in codepoints) after applying every regex in turn, as llama.cpp does."""
    n = table_size(cpts)  # every table lookup below is of a codepoint of cpts
    flags = cpt_flags(n)
    offsets = np.array([cpts.size], dtype=np.int64)
    collapsed = None
    for expr in regex_exprs:
        kind = _CUSTOM.get(expr, -1)
        if kind >= 0:
            if kind == 4:
                offsets = _split_kimi_k2(cpts, flags, tolower_table(n), offsets)
            else:
                offsets = _split_custom(cpts, flags, tolower_table(n), offsets, kind)
            continue
        uses_cat = any(cat in expr for cat in _UCAT)
        if uses_cat:
            if collapsed is None:
                collapsed = _collapse(cpts, flags)
            offsets = _split_re(collapsed, _compile_collapsed(expr), offsets)
        else:
            offsets = _split_re(_widen(cpts, flags), _compile_plain(expr), offsets)
    return offsets


def _collapse(cpts: np.ndarray, flags: np.ndarray) -> str:
    table = np.full(256, 0xD0, dtype=np.int64)
    for flag, c in _UCAT_CPT.items():
        table[flag] = c
    f = flags[np.minimum(cpts, flags.size - 1)]
    out = table[f & 0xFF]
    out = np.where(f & _WS, 0x0B, out)
    out = np.where(cpts >= flags.size, 0xD0, out)
    out = np.where(cpts < 128, cpts, out).astype(np.uint8)
    return out.tobytes().decode("latin-1")


def _widen(cpts: np.ndarray, flags: np.ndarray) -> str:
    f = flags[np.minimum(cpts, flags.size - 1)]
    w = np.where((cpts > 0x7F) & (cpts < flags.size) & ((f & _WS) != 0), 0x0B, cpts)
    # surrogates and codepoints past U+10FFFF cannot live in a str: map them to a private-use
    # codepoint that no llama.cpp regex names (both are non-whitespace, non-category there)
    w = np.where(((w >= 0xD800) & (w <= 0xDFFF)) | (w > 0x10FFFF), 0xF8FF, w)
    return w.astype(np.int32).tobytes().decode("utf-32-le")


def _ecma_to_python(expr: str) -> str:
    """Translate ECMAScript regex syntax to Python's where the two differ for these regexes."""
    out = []
    i = 0
    inside = False
    while i < len(expr):
        c = expr[i]
        if c == "\\" and i + 1 < len(expr):
            out.append(expr[i:i + 2])
            i += 2
            continue
        if c == "[" and not inside:
            inside = True
        elif c == "]" and inside:
            inside = False
        elif c == "$" and not inside:
            c = "\\Z"  # ECMAScript $ (no multiline) is end of input only
        out.append(c)
        i += 1
    return "".join(out)


@functools.cache
def _compile_collapsed(expr: str) -> re.Pattern:
    for c in expr:
        if ord(c) >= 128:
            raise TokenizerError(f"regex {expr!r} mixes unicode categories and non-ASCII characters")
    out = []
    inside = False
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "[" and (i == 0 or expr[i - 1] != "\\"):
            out.append("[")
            inside = True
            i += 1
            continue
        if inside and c == "]" and expr[i - 1] != "\\":
            out.append("]")
            inside = False
            i += 1
            continue
        if c == "\\" and i + 3 < len(expr) and expr[i + 1] == "p" and expr[i + 2] == "{":
            close = expr.find("}", i + 3)
            if close != -1 and close <= i + 10:
                pat = expr[i:close + 1]
                if pat in _UCAT:
                    flag = _UCAT[pat]
                    body = f"\\x{_UCAT_CPT[flag]:02X}" + _UCAT_MAP[flag]
                    out.append(body if inside else "[" + body + "]")
                    i = close + 1
                    continue
        out.append(c)
        i += 1
    return re.compile(_ecma_to_python("".join(out)), re.ASCII)


@functools.cache
def _compile_plain(expr: str) -> re.Pattern:
    return re.compile(_ecma_to_python(expr), re.ASCII)


def _split_re(text: str, pattern: re.Pattern, offsets: np.ndarray) -> np.ndarray:
    """unicode_regex_split_stl: matches and the gaps between them become words."""
    out = []
    start = 0
    for offset in offsets.tolist():
        chunk = text[start:start + offset]
        start_idx = 0
        for m in pattern.finditer(chunk):
            pos, end = m.span()
            if pos > start_idx:
                out.append(pos - start_idx)
            out.append(end - pos)
            start_idx = end
        if start_idx < offset:
            out.append(offset - start_idx)
        start += offset
    return np.asarray(out, dtype=np.int64)


@njit(cache=True, nogil=True)
def _split_custom(cpts, flags, lower, offsets, kind):
    """The hand-written splitters of unicode.cpp: 0 gpt2, 1 llama3, 2 qwen2, 3 qwen35,
    5 afmoe digits, 6 newlines. Returns word lengths."""
    out = np.empty(cpts.size + offsets.size + 1, dtype=np.int64)
    n_out = 0
    n_flags = flags.size
    start = 0
    for oi in range(offsets.size):
        ini = start
        end = start + offsets[oi]
        start = end
        prev = ini
        pos = ini
        if kind == 6:
            while pos < end:
                is_nl = cpts[pos] == 10
                run = pos
                while pos < end and (cpts[pos] == 10) == is_nl:
                    pos += 1
                out[n_out] = pos - run
                n_out += 1
            continue
        if kind == 5:
            while pos < end:
                c = cpts[pos]
                f = flags[c] if c < n_flags else 1
                if f & _N:
                    dstart = pos
                    count = 0
                    while pos < end:
                        c2 = cpts[pos]
                        f2 = flags[c2] if c2 < n_flags else 1
                        if not (f2 & _N):
                            break
                        count += 1
                        pos += 1
                    rem = count % 3
                    cur = dstart
                    if rem > 0:
                        e = cur + rem
                        if e > prev:
                            out[n_out] = e - prev
                            n_out += 1
                            prev = e
                        cur += rem
                    while cur < dstart + count:
                        e = cur + 3
                        if e > prev:
                            out[n_out] = e - prev
                            n_out += 1
                            prev = e
                        cur += 3
                    continue
                pos += 1
            if prev < end:
                out[n_out] = end - prev
                n_out += 1
            continue
        while pos < end:
            cpt = np.int64(cpts[pos])
            flg = np.int64(flags[cpt]) if cpt < n_flags else 1
            # contractions
            if cpt == 39 and pos + 1 < end:
                nx = np.int64(cpts[pos + 1])
                if kind != 0 and nx < n_flags:
                    nx = lower[nx]
                if nx == 115 or nx == 116 or nx == 109 or nx == 100:  # s t m d
                    out[n_out] = pos + 2 - prev
                    n_out += 1
                    pos += 2
                    prev = pos
                    continue
                if pos + 2 < end:
                    nn = np.int64(cpts[pos + 2])
                    if kind != 0 and nn < n_flags:
                        nn = lower[nn]
                    if (nx == 114 and nn == 101) or (nx == 118 and nn == 101) or (nx == 108 and nn == 108):
                        out[n_out] = pos + 3 - prev
                        n_out += 1
                        pos += 3
                        prev = pos
                        continue
            if kind == 0:
                f2 = flg
                if cpt == 32:
                    f2 = _flags_at(cpts, flags, pos + 1, ini, end)
                if f2 & _L:
                    if cpt == 32:
                        pos += 1
                    while f2 & _L:
                        pos += 1
                        f2 = _flags_at(cpts, flags, pos, ini, end)
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
                if f2 & _N:
                    if cpt == 32:
                        pos += 1
                    while f2 & _N:
                        pos += 1
                        f2 = _flags_at(cpts, flags, pos, ini, end)
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
                if (f2 & (_WS | _L | _N)) == 0 and f2 != 0:
                    if cpt == 32:
                        pos += 1
                    while (f2 & (_WS | _L | _N)) == 0 and f2 != 0:
                        pos += 1
                        f2 = _flags_at(cpts, flags, pos, ini, end)
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
                nws = 0
                while _flags_at(cpts, flags, pos + nws, ini, end) & _WS:
                    nws += 1
                if nws > 1 and pos + nws < end:
                    pos += nws - 1
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
                if nws > 0:
                    pos += nws
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
                pos += 1
                out[n_out] = pos - prev
                n_out += 1
                prev = pos
                continue
            # llama3 / qwen2 / qwen35
            letter_mask = _L | _M if kind == 3 else _L
            fn = _flags_at(cpts, flags, pos + 1, ini, end)
            if not (cpt == 13 or cpt == 10 or (flg & _N)):
                if (flg & letter_mask) or (fn & letter_mask):
                    pos += 1
                    while _flags_at(cpts, flags, pos, ini, end) & letter_mask:
                        pos += 1
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
            if flg & _N:
                if kind == 1:
                    i0 = pos
                    while _flags_at(cpts, flags, pos, ini, end) & _N:
                        pos += 1
                        if pos - i0 >= 3:
                            if pos > prev:
                                out[n_out] = pos - prev
                                n_out += 1
                            prev = pos
                            i0 = pos
                else:
                    pos += 1
                if pos > prev:
                    out[n_out] = pos - prev
                    n_out += 1
                prev = pos
                continue
            f2 = fn if cpt == 32 else flg
            stop = _WS | _L | _N | (_M if kind == 3 else 0)
            if (f2 & stop) == 0 and flg != 0:
                if cpt == 32:
                    pos += 1
                while (f2 & stop) == 0 and f2 != 0:
                    pos += 1
                    f2 = _flags_at(cpts, flags, pos, ini, end)
                while pos < end and (cpts[pos] == 13 or cpts[pos] == 10):
                    pos += 1
                if pos > prev:
                    out[n_out] = pos - prev
                    n_out += 1
                prev = pos
                continue
            pos = _whitespace_end(cpts, flags, pos, ini, end)
            if pos > prev:
                out[n_out] = pos - prev
                n_out += 1
            prev = pos
    return out[:n_out]


@njit(cache=True, nogil=True, inline="always")
def _whitespace_end(cpts, flags, pos, ini, end):
    """End of the whitespace alternatives `\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+` from pos (llama.cpp's
    unicode_regex_split_custom_llama3 / _kimi_k2 tails); one codepoint when none matches."""
    nws = 0
    last_rn = 0
    while _flags_at(cpts, flags, pos + nws, ini, end) & _WS:
        c2 = cpts[pos + nws]
        if c2 == 13 or c2 == 10:
            last_rn = pos + nws + 1
        nws += 1
    if last_rn > 0:
        return last_rn
    if nws > 1 and pos + nws < end:
        return pos + nws - 1
    if nws > 0:
        return pos + nws
    return pos + 1


@njit(cache=True, nogil=True, inline="always")
def _flags_at(cpts, flags, pos, ini, end):
    if pos < ini or pos >= end:
        return 0
    c = cpts[pos]
    if c < flags.size:
        return np.int64(flags[c])
    return 1


@njit(cache=True, nogil=True, inline="always")
def _is_han(c):
    return ((0x4E00 <= c <= 0x9FFF) or (0x3400 <= c <= 0x4DBF) or (0x20000 <= c <= 0x2A6DF)
            or (0x2A700 <= c <= 0x2B73F) or (0x2B740 <= c <= 0x2B81F) or (0x2B820 <= c <= 0x2CEAF)
            or (0x2CEB0 <= c <= 0x2EBEF) or (0xF900 <= c <= 0xFAFF) or (0x2F800 <= c <= 0x2FA1F))


@njit(cache=True, nogil=True, inline="always")
def _cpt_at(cpts, pos, ini, end):
    if pos < ini or pos >= end:
        return np.int64(_OUT)
    return np.int64(cpts[pos])


@njit(cache=True, nogil=True)
def _split_kimi_k2(cpts, flags, lower, offsets):
    """unicode_regex_split_custom_kimi_k2."""
    out = np.empty(cpts.size + offsets.size + 1, dtype=np.int64)
    n_out = 0
    start = 0
    for oi in range(offsets.size):
        ini = start
        end = start + offsets[oi]
        start = end
        prev = ini
        pos = ini
        while pos < end:
            cpt = _cpt_at(cpts, pos, ini, end)
            flg = _flags_at(cpts, flags, pos, ini, end)
            if _is_han(cpt):
                while _is_han(_cpt_at(cpts, pos, ini, end)):
                    pos += 1
                if pos > prev:
                    out[n_out] = pos - prev
                    n_out += 1
                prev = pos
                continue
            lead_ok = not (cpt == 13 or cpt == 10 or (flg & _L) or (flg & _N))
            is_letter_pattern = (((flg & _L) != 0 and not _is_han(cpt))
                                 or (lead_ok and (_flags_at(cpts, flags, pos + 1, ini, end) & _L) != 0
                                     and not _is_han(_cpt_at(cpts, pos + 1, ini, end))))
            if is_letter_pattern:
                has_lead = False
                if lead_ok:
                    has_lead = True
                    pos += 1
                has_letters = False
                while (_flags_at(cpts, flags, pos, ini, end) & _L) and not _is_han(_cpt_at(cpts, pos, ini, end)):
                    has_letters = True
                    pos += 1
                if has_letters or (not has_lead and (_flags_at(cpts, flags, pos, ini, end) & _L)
                                   and not _is_han(_cpt_at(cpts, pos, ini, end))):
                    if not has_letters:
                        pos += 1
                    while (_flags_at(cpts, flags, pos, ini, end) & _L) and not _is_han(_cpt_at(cpts, pos, ini, end)):
                        pos += 1
                    if _cpt_at(cpts, pos, ini, end) == 39 and pos + 1 < end:
                        nx = _cpt_at(cpts, pos + 1, ini, end)
                        if nx < lower.size:
                            nx = lower[nx]
                        if nx == 115 or nx == 116 or nx == 109 or nx == 100:
                            pos += 2
                        elif pos + 2 < end:
                            nn = _cpt_at(cpts, pos + 2, ini, end)
                            if nn < lower.size:
                                nn = lower[nn]
                            if (nx == 114 and nn == 101) or (nx == 118 and nn == 101) or (nx == 108 and nn == 108):
                                pos += 3
                    if pos > prev:
                        out[n_out] = pos - prev
                        n_out += 1
                    prev = pos
                    continue
                elif has_lead:
                    pos -= 1
            if flg & _N:
                i0 = pos
                while _flags_at(cpts, flags, pos, ini, end) & _N:
                    pos += 1
                    if pos - i0 >= 3:
                        if pos > prev:
                            out[n_out] = pos - prev
                            n_out += 1
                        prev = pos
                        i0 = pos
                if pos > prev:
                    out[n_out] = pos - prev
                    n_out += 1
                prev = pos
                continue
            f2 = _flags_at(cpts, flags, pos + 1, ini, end) if cpt == 32 else flg
            if (f2 & (_WS | _L | _N)) == 0 and f2 != 0:
                if cpt == 32:
                    pos += 1
                while (f2 & (_WS | _L | _N)) == 0 and f2 != 0:
                    pos += 1
                    f2 = _flags_at(cpts, flags, pos, ini, end)
                while pos < end and (cpts[pos] == 13 or cpts[pos] == 10):
                    pos += 1
                if pos > prev:
                    out[n_out] = pos - prev
                    n_out += 1
                prev = pos
                continue
            pos = _whitespace_end(cpts, flags, pos, ini, end)
            if pos > prev:
                out[n_out] = pos - prev
                n_out += 1
            prev = pos
    return out[:n_out]
