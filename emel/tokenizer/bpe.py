"""Byte-pair encoding (BPE): pre-tokenize into words, then merge pairs by rank inside each word.

Follows llama.cpp src/llama-vocab.cpp `llm_tokenizer_bpe` (the regexes of every pre-tokenizer)
and `llm_tokenizer_bpe_session::tokenize` (merges, `ignore_merges`, the Gemma-4 newline rule,
byte fallback), plus the `whitespace` session. Merge strings and token texts are interned into
one id space so the compiled merge loop compares integers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import TokenizerError, UnsupportedError
from . import pretokenize as pt
from . import strtab
from .unicode import byte_encode_tables, cpt_flags, cpts_from_bytes, encode_utf8, table_size, tolower_table
from .unicode import utf8_len
from .vocab import DNA_KMER_MARKER

_DEFAULT = ["[\\p{P}\\$\\+<=>\\^~\\|]+", pt.GPT2, "\\p{N}+", "[0-9][0-9][0-9]"]
_SAME_AS_LLAMA3 = [pt.LLAMA3]

REGEXES: dict[str, list[str]] = {
    "llama3": [pt.LLAMA3],
    "jais2": ["(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
              "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|"
              "\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|"
              "\\s{1,2}(?!\\S)|\\s{1}"],
    "dbrx": _SAME_AS_LLAMA3,
    "smaug": _SAME_AS_LLAMA3,
    "deepseek_llm": [
        "[\r\n]",
        ("\\s?[A-Za-z\xb5\xc0-\xd6\xd8-\xf6\xf8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
         "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
         "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf"
         "\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d"
         "\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4"
         "\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107"
         "\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f"
         "\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
         "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17"
         "\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb"
         "\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+"),
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
        "\\s+$",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}+",
    ],
    "deepseek3_llm": ["\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
                      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"],
    "spark2_5": ["\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
                 "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                 "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+", "\\p{N}"],
    "youtu": ["[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
              "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
              "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?"
              "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|"
              "'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|"
              "\\s+(?!\\S)|\\s+"],
    "deepseek_coder": ["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"],
    "falcon": ["[\\p{P}\\$\\+<=>\\^~\\|`]+", pt.GPT2, "[0-9][0-9][0-9]"],
    "gpt2": [pt.GPT2],
    "qwen2": [pt.QWEN2],
    "qwen35": [pt.QWEN35],
    "poro": [" ?[^(\\s|.,!?…。，、।۔،)]+"],
    "chatglm4": [pt.LLAMA3],
    "viking": [" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"],
    "tekken": ["[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?"
               "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "chameleon": ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
                  "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", pt.GPT2],
    "gpt4o": ["[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|"
              "'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+"
              "((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"
              "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "granite_emb_multi": [
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|"
        "'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+"
        "((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"
        "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "tiny_aya": [pt.TINY_AYA_DIGITS,
                 "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
                 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?"
                 "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|"
                 "'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
                 "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "kimi_k2": [pt.KIMI_K2],
    "superbpe": ["\\p{N}+", "(?=(\\d{3})+(?!\\d))"],
    "bailingmoe": ["'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?"
                   "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"],
    "seed_coder": ["(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
                   "\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "ufakzeka": ["[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                 "\\s+(?!\\S)|\\s+"],
    "grok_2": [pt.QWEN2],
    "afmoe": [pt.AFMOE_DIGITS,
              "[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+",
              "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
              "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "laguna": [pt.NEWLINES, pt.QWEN2],
    "exaone_moe": ["(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?"
                   "(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|"
                   "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"],
    "gemma4": [pt.NEWLINES],
    "sarvam_moe": [pt.NEWLINES],
    "minicpm5": ["\\p{N}{1,3}",
                 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                 "\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
    "whitespace": ["\\S+"],
}
for _name in ("starcoder", "refact", "command_r", "smollm", "codeshell", "exaone", "minerva",
              "mellum2"):
    REGEXES[_name] = ["\\p{N}", pt.GPT2]
for _name in ("mpt", "olmo", "jais", "trillion", "granite_docling"):
    REGEXES[_name] = [pt.GPT2]
for _name in ("stablelm2", "hunyuan", "solar_open"):
    REGEXES[_name] = [pt.QWEN2]
for _name in ("bloom", "gpt3_finnish"):
    REGEXES[_name] = REGEXES["poro"]
for _name in ("hunyuan_dense", "joyai_llm", "hy_v4"):
    REGEXES[_name] = REGEXES["deepseek3_llm"]
REGEXES["minimax_m2"] = REGEXES["gpt4o"]
REGEXES["default"] = _DEFAULT

_RAW_UTF8 = ("gemma4", "sarvam_moe", "whitespace")  # byte_encode = false


class BpeTokenizer:
    """Tokenizes raw fragments for a BPE vocabulary (llm_tokenizer_bpe + its session)."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.regex_exprs = REGEXES.get(vocab.pre_type)
        if self.regex_exprs is None:
            raise UnsupportedError(f"no pre-tokenizer regexes for {vocab.pre_type!r}")
        self.byte_encode = vocab.pre_type not in _RAW_UTF8
        self.n_tokens = vocab.n_tokens
        self._merges = None
        single = np.full(256, -1, dtype=np.int32)
        hexed = np.full(256, -1, dtype=np.int32)
        for b in range(256):
            single[b] = vocab.token_to_id.get(bytes([b]), -1)
            hexed[b] = vocab.token_to_id.get(b"<0x%02X>" % b, -1)
        self.byte_tokens = single if self.byte_encode else hexed

    def _merge_tables(self):
        """Intern merge strings after the tokens; pair (left id, right id) -> rank, merged id."""
        if self._merges is not None:
            return self._merges
        vocab = self.vocab
        merges = vocab.merges
        if isinstance(merges, strtab.Texts):
            mdata, moffs = merges.data, merges.offsets
        else:
            packed = strtab.build(merges)
            mdata, moffs = packed.data, packed.offsets
        words = vocab.lookup_tokens or vocab.tokens
        if isinstance(words, strtab.Texts) and isinstance(vocab.token_to_id, strtab.Index):
            tok = vocab.token_to_id.table
        else:
            tok = strtab.build(words)
        n = len(moffs) - 1
        n_tok = len(tok.offsets) - 1
        # the first and second half of each rule (split at its first space after byte 0)
        bounds = np.empty((4, n), dtype=np.int64)
        _split_rules(mdata, moffs, bounds)
        # ids of both halves and of their concatenation: token ids, then new ids for the strings
        # that are not tokens, in order of first appearance over all firsts, then all seconds
        cap = 1
        while cap < 4 * n + 2:
            cap *= 2
        ids = np.empty(2 * n, dtype=np.int64)
        merged = np.empty(n, dtype=np.int64)
        extra = np.empty((2, 2 * n), dtype=np.int64)
        n_extra = _intern_halves(mdata, bounds, tok.data, tok.offsets, tok.slots, np.int64(n_tok),
                                 np.full(cap, -1, dtype=np.int64), extra, ids, merged)
        lefts, rights = ids[:n], ids[n:]
        n_ids = n_tok + n_extra
        table = tok if n_extra == 0 else _with_extra(tok, mdata, extra[:, :n_extra])
        keys = lefts * n_ids + rights
        cap = 1
        while cap < 2 * keys.size + 2:
            cap *= 2
        slot_keys = np.full(cap, -1, dtype=np.int64)
        slot_rank = np.full(cap, -1, dtype=np.int64)
        _fill_pairs(keys, slot_keys, slot_rank)
        self._merges = (table, np.int64(n_ids), slot_keys, slot_rank, merged)
        return self._merges

    def tokenize(self, text: bytes, output: list[int]) -> None:
        model = self.vocab.tokenizer_model
        if model == "whitespace":
            self._tokenize_whitespace(text, output)
        elif model == "hybriddna":
            self._tokenize_dna(text, output)
        else:
            self._tokenize_words(text, output)

    def _tokenize_dna(self, text: bytes, output: list[int]) -> None:
        """llm_tokenizer_hybriddna_session: <dna>...</dna> spans become 6-mer tokens."""
        t2i = self.vocab.token_to_id
        begin, end_id, oov = t2i.get(b"<dna>"), t2i.get(b"</dna>"), t2i.get(b"<oov>")
        if begin is None or end_id is None or oov is None:
            self._tokenize_words(text, output)
            return
        pos = 0
        while pos < len(text):
            start = text.find(b"<dna>", pos)
            if start < 0:
                self._tokenize_words(text[pos:], output)
                break
            if start > pos:
                self._tokenize_words(text[pos:start], output)
            output.append(begin)
            content = start + len(b"<dna>")
            end = text.find(b"</dna>", content)
            seq = text[content:len(text) if end < 0 else end]
            seq = bytes(c - 32 if 0x61 <= c <= 0x7A else c for c in seq)
            k = 6
            i = 0
            while i + k <= len(seq):
                output.append(t2i.get(seq[i:i + k] + DNA_KMER_MARKER, oov))
                i += k
            if i < len(seq):
                kmer = seq[i:] + b"A" * (k - (len(seq) - i))
                output.append(t2i.get(kmer + DNA_KMER_MARKER, oov))
            if end < 0:
                break
            output.append(end_id)
            pos = end + len(b"</dna>")

    def _tokenize_words(self, text: bytes, output: list[int]) -> None:
        if not text:
            return
        cpts = cpts_from_bytes(text)
        offsets = pt.regex_split(cpts, self.regex_exprs)
        enc, enc_len = byte_encode_tables()
        words, word_off, ok = _encode_words(cpts, offsets, self.byte_encode, enc, enc_len)
        if not ok:
            raise TokenizerError("text decodes to a codepoint past U+10FFFF, which llama.cpp "
                                 "cannot re-encode (it aborts)")
        if not self.byte_encode:
            self._check_no_space_pairs(words, word_off)
        table, n_ids, slot_keys, slot_rank, merged = self._merge_tables()
        toks = _bpe(words, word_off, table.data, table.offsets, table.slots, n_ids, slot_keys,
                    slot_rank, merged, np.int64(self.n_tokens), self.byte_tokens,
                    self.vocab.ignore_merges, self.vocab.pre_type == "gemma4")
        output.extend(toks.tolist())

    def _check_no_space_pairs(self, words: np.ndarray, word_off: np.ndarray) -> None:
        """llama.cpp's find_bpe_rank asserts that neither side of a pair holds a space."""
        spaces = np.nonzero(words == 0x20)[0]
        if spaces.size == 0:
            return
        w = np.searchsorted(word_off, spaces, side="right") - 1
        for i in np.unique(w[(word_off[w + 1] - word_off[w]) > 1]).tolist():
            word = words[word_off[i]:word_off[i + 1]].tobytes()
            if self.vocab.ignore_merges and word in self.vocab.token_to_id:
                continue
            raise TokenizerError(f"BPE word {word[:40]!r} holds a space; llama.cpp asserts "
                                 "(find_bpe_rank) on such a merge lookup")

    def _tokenize_whitespace(self, text: bytes, output: list[int]) -> None:
        """llm_tokenizer_whitespace_session: drop whitespace, tokenize each run by itself."""
        cpts = cpts_from_bytes(text)
        if self.vocab.lowercase:
            lower = tolower_table(table_size(cpts))
            cpts = np.where(cpts < lower.size, lower[np.minimum(cpts, lower.size - 1)], cpts)
        flags = cpt_flags(table_size(cpts))  # after lowering: a lowercase codepoint can be larger
        is_ws = (cpts < flags.size) & ((flags[np.minimum(cpts, flags.size - 1)] & 0x100) != 0)
        seg_start = None
        for i in range(cpts.size + 1):
            if i == cpts.size or is_ws[i]:
                if seg_start is not None:
                    seg, ok = encode_utf8(np.ascontiguousarray(cpts[seg_start:i], dtype=np.int32))
                    if not ok:
                        raise TokenizerError("codepoint past U+10FFFF")
                    self._tokenize_words(seg.tobytes(), output)
                    seg_start = None
            elif seg_start is None:
                seg_start = i


@njit(cache=True, nogil=True)
def _split_rules(mdata, moffs, bounds):
    """bounds[:, i] = (first start, first end, second start, second end) of rule i in mdata:
    `rule.find(b" ", 1)` splits it; a rule without that space gives two empty halves."""
    for i in range(moffs.size - 1):
        a = moffs[i]
        b = moffs[i + 1]
        p = -1
        for j in range(a + 1, b):
            if mdata[j] == 0x20:
                p = j
                break
        if p < 0:
            bounds[0, i] = a
            bounds[1, i] = a
            bounds[2, i] = a
            bounds[3, i] = a
        else:
            bounds[0, i] = a
            bounds[1, i] = p
            bounds[2, i] = p + 1
            bounds[3, i] = b


@njit(cache=True, nogil=True)
def _hash2(buf, a1, b1, a2, b2):
    """strtab.hash_bytes of buf[a1:b1] + buf[a2:b2] (FNV-1a streams over the two ranges)."""
    h = np.uint64(0xCBF29CE484222325)
    for i in range(a1, b1):
        h = (h ^ np.uint64(buf[i])) * np.uint64(0x100000001B3)
    for i in range(a2, b2):
        h = (h ^ np.uint64(buf[i])) * np.uint64(0x100000001B3)
    return h


@njit(cache=True, nogil=True)
def _same2(data, sa, sb, buf, a1, b1, a2, b2):
    """data[sa:sb] == buf[a1:b1] + buf[a2:b2]."""
    n1 = b1 - a1
    if sb - sa != n1 + (b2 - a2):
        return False
    for k in range(n1):
        if data[sa + k] != buf[a1 + k]:
            return False
    for k in range(b2 - a2):
        if data[sa + n1 + k] != buf[a2 + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _find2(data, offsets, slots, buf, a1, b1, a2, b2):
    """Index in the StrTab (data, offsets, slots) of buf[a1:b1] + buf[a2:b2], or -1."""
    mask = slots.size - 1
    j = np.int64(_hash2(buf, a1, b1, a2, b2) & np.uint64(mask))
    while True:
        s = slots[j]
        if s < 0:
            return -1
        if _same2(data, offsets[s], offsets[s + 1], buf, a1, b1, a2, b2):
            return s
        j = (j + 1) & mask


@njit(cache=True, nogil=True)
def _find_extra(mdata, extra, eslots, a1, b1, a2, b2):
    """Slot of buf[a1:b1] + buf[a2:b2] among the interned extra strings (ranges of mdata): its
    extra index (>= 0), or -(slot + 1) for the empty slot where it would go."""
    mask = eslots.size - 1
    j = np.int64(_hash2(mdata, a1, b1, a2, b2) & np.uint64(mask))
    while True:
        e = eslots[j]
        if e < 0:
            return -(j + 1)
        if _same2(mdata, extra[0, e], extra[1, e], mdata, a1, b1, a2, b2):
            return e
        j = (j + 1) & mask


@njit(cache=True, nogil=True)
def _intern_halves(mdata, bounds, tdata, toffs, tslots, n_tok, eslots, extra, ids, merged):
    """ids[:n] / ids[n:]: ids of the rules' first / second halves, merged[i]: id of their
    concatenation or -1. Token texts keep their ids; other strings get n_tok, n_tok + 1, ... in
    order of first appearance (firsts, then seconds), their ranges stored in extra[:, k].
    Returns the number of extra strings."""
    n = bounds.shape[1]
    n_extra = 0
    for half in range(2):
        for i in range(n):
            a = bounds[2 * half, i]
            b = bounds[2 * half + 1, i]
            t = _find2(tdata, toffs, tslots, mdata, a, b, b, b)
            if t < 0:
                e = _find_extra(mdata, extra, eslots, a, b, b, b)
                if e < 0:
                    eslots[-e - 1] = n_extra
                    e = n_extra
                    extra[0, e] = a
                    extra[1, e] = b
                    n_extra += 1
                t = n_tok + e
            ids[half * n + i] = t
    for i in range(n):
        a1 = bounds[0, i]
        b1 = bounds[1, i]
        a2 = bounds[2, i]
        b2 = bounds[3, i]
        t = _find2(tdata, toffs, tslots, mdata, a1, b1, a2, b2)
        if t < 0:
            e = _find_extra(mdata, extra, eslots, a1, b1, a2, b2)
            t = n_tok + e if e >= 0 else -1
        merged[i] = t
    return n_extra


def _with_extra(tok: strtab.StrTab, mdata: np.ndarray, extra: np.ndarray) -> strtab.StrTab:
    """The token table plus the extra strings (ranges of mdata) with ids after the tokens."""
    lens = extra[1] - extra[0]
    n_tok = len(tok.offsets) - 1
    offsets = np.empty(n_tok + lens.size + 1, dtype=np.int64)
    offsets[:n_tok + 1] = tok.offsets
    np.cumsum(lens, out=offsets[n_tok + 1:])
    offsets[n_tok + 1:] += tok.offsets[-1]
    idx = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in extra.T.tolist()]) \
        if lens.sum() else np.zeros(0, dtype=np.int64)
    data = np.concatenate([tok.data, mdata[idx]])
    return strtab.build_packed(data, offsets)


@njit(cache=True, nogil=True)
def _fill_pairs(keys, slot_keys, slot_rank):
    mask = slot_keys.size - 1
    for rank in range(keys.size):
        k = keys[rank]
        j = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)) & mask
        while True:
            if slot_keys[j] == -1:
                slot_keys[j] = k
                slot_rank[j] = rank
                break
            if slot_keys[j] == k:
                break  # first rule wins (std::unordered_map::emplace)
            j = (j + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def _find_rank(slot_keys, slot_rank, k):
    mask = slot_keys.size - 1
    j = np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)) & mask
    while True:
        s = slot_keys[j]
        if s == -1:
            return -1
        if s == k:
            return slot_rank[j]
        j = (j + 1) & mask


@njit(cache=True, nogil=True)
def _encode_words(cpts, offsets, byte_encode, enc, enc_len):
    """UTF-8 of each word (GPT-2 byte-encoded when asked) -> (bytes, word offsets, ok)."""
    out = np.empty(cpts.size * 8 + 1, dtype=np.uint8)
    word_off = np.empty(offsets.size + 1, dtype=np.int64)
    k = 0
    c_i = 0
    word_off[0] = 0
    tmp = np.empty(4, dtype=np.uint8)
    for w in range(offsets.size):
        for c_j in range(c_i, c_i + offsets[w]):
            c = np.int64(cpts[c_j])
            if c < 0x80:
                tmp[0] = c
                nb = 1
            elif c < 0x800:
                tmp[0] = 0xC0 | ((c >> 6) & 0x1F)
                tmp[1] = 0x80 | (c & 0x3F)
                nb = 2
            elif c < 0x10000:
                tmp[0] = 0xE0 | ((c >> 12) & 0x0F)
                tmp[1] = 0x80 | ((c >> 6) & 0x3F)
                tmp[2] = 0x80 | (c & 0x3F)
                nb = 3
            elif c <= 0x10FFFF:
                tmp[0] = 0xF0 | ((c >> 18) & 0x07)
                tmp[1] = 0x80 | ((c >> 12) & 0x3F)
                tmp[2] = 0x80 | ((c >> 6) & 0x3F)
                tmp[3] = 0x80 | (c & 0x3F)
                nb = 4
            else:
                return out[:0], word_off[:1], False
            for t in range(nb):
                if byte_encode:
                    b = tmp[t]
                    for e in range(enc_len[b]):
                        out[k] = enc[b, e]
                        k += 1
                else:
                    out[k] = tmp[t]
                    k += 1
        c_i += offsets[w]
        word_off[w + 1] = k
    return out[:k], word_off, True


@njit(cache=True, nogil=True)
def _bpe(words, word_off, data, offsets, slots, n_ids, slot_keys, slot_rank, merged, n_tokens,
         byte_tokens, ignore_merges, gemma4):
    """Merge every word by rank; ids < n_tokens are tokens. Returns int32 token ids."""
    out = np.empty(words.size + 1, dtype=np.int32)
    n_out = 0
    n_max = 0
    for w in range(word_off.size - 1):
        n_max = max(n_max, word_off[w + 1] - word_off[w])
    start = np.empty(n_max + 1, dtype=np.int64)
    size = np.empty(n_max + 1, dtype=np.int64)
    sid = np.empty(n_max + 1, dtype=np.int64)
    prev = np.empty(n_max + 1, dtype=np.int64)
    nxt = np.empty(n_max + 1, dtype=np.int64)
    cap = 3 * n_max + 4
    hp = np.empty(cap, dtype=np.float64)
    hl = np.empty(cap, dtype=np.int64)
    hr = np.empty(cap, dtype=np.int64)
    hs = np.empty(cap, dtype=np.int64)
    # words repeat: remember where each distinct word's tokens were written
    n_words = word_off.size - 1
    c_cap = 1
    while c_cap < 2 * n_words + 2:
        c_cap *= 2
    c_mask = c_cap - 1
    c_word = np.full(c_cap, -1, dtype=np.int64)
    c_start = np.empty(c_cap, dtype=np.int64)
    c_len = np.empty(c_cap, dtype=np.int64)
    for w in range(n_words):
        a = word_off[w]
        b = word_off[w + 1]
        if a == b:
            continue
        cs = np.int64(strtab.hash_bytes(words, a, b) & np.uint64(c_mask))
        hit = False
        while c_word[cs] >= 0:
            wa = word_off[c_word[cs]]
            if word_off[c_word[cs] + 1] - wa == b - a:
                same = True
                for k in range(b - a):
                    if words[wa + k] != words[a + k]:
                        same = False
                        break
                if same:
                    hit = True
                    break
            cs = (cs + 1) & c_mask
        if hit:
            s0 = c_start[cs]
            for k in range(c_len[cs]):
                out[n_out + k] = out[s0 + k]
            n_out += c_len[cs]
            continue
        c_word[cs] = w
        c_start[cs] = n_out
        out_before = n_out
        n_sym = 0
        whole = -1
        if ignore_merges:
            whole = strtab.lookup(data, offsets, slots, words, a, b)
            if whole >= n_tokens:
                whole = -1
        elif gemma4:
            all_nl = True
            for j in range(a, b):
                if words[j] != 10:
                    all_nl = False
                    break
            if all_nl:
                whole = strtab.lookup(data, offsets, slots, words, a, b)
                if whole >= n_tokens:
                    whole = -1
        if whole >= 0:
            out[n_out] = whole
            n_out += 1
            c_len[cs] = 1
            continue
        off = a
        while off < b:
            ln = min(utf8_len(words[off]), b - off)
            start[n_sym] = off
            size[n_sym] = ln
            sid[n_sym] = strtab.lookup(data, offsets, slots, words, off, off + ln)
            prev[n_sym] = n_sym - 1
            off += ln
            nxt[n_sym] = -1 if off == b else n_sym + 1
            n_sym += 1
        nh = 0
        for i in range(1, n_sym):
            if sid[i - 1] >= 0 and sid[i] >= 0:
                r = _find_rank(slot_keys, slot_rank, sid[i - 1] * n_ids + sid[i])
                if r >= 0:
                    nh = _push(hp, hl, hr, hs, nh, np.float64(r), i - 1, i, size[i - 1] + size[i])
        while nh > 0:
            left = hl[0]
            right = hr[0]
            bsize = hs[0]
            rank = np.int64(hp[0])
            nh = _pop(hp, hl, hr, hs, nh)
            if size[left] == 0 or size[right] == 0 or size[left] + size[right] != bsize:
                continue
            size[left] += size[right]
            size[right] = 0
            sid[left] = merged[rank]
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            for k in range(2):
                lft = prev[left] if k == 0 else left
                rgt = left if k == 0 else nxt[left]
                if lft == -1 or rgt == -1 or sid[lft] < 0 or sid[rgt] < 0:
                    continue
                r = _find_rank(slot_keys, slot_rank, sid[lft] * n_ids + sid[rgt])
                if r >= 0:
                    nh = _push(hp, hl, hr, hs, nh, np.float64(r), lft, rgt, size[lft] + size[rgt])
        i = 0
        while i != -1:
            if size[i] > 0:
                t = sid[i]
                if 0 <= t < n_tokens:
                    out[n_out] = t
                    n_out += 1
                else:
                    for j in range(start[i], start[i] + size[i]):
                        bt = byte_tokens[words[j]]
                        if bt >= 0:
                            out[n_out] = bt
                            n_out += 1
            i = nxt[i]
        c_len[cs] = n_out - out_before
    return out[:n_out]


@njit(cache=True, nogil=True)
def _push(hp, hl, hr, hs, n, pri, left, right, size):
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
def _pop(hp, hl, hr, hs, n):
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
