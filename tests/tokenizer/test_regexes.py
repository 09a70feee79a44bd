"""emel's pre-tokenizer regexes and Unicode tables are llama.cpp's, read from its source."""

from __future__ import annotations

import re

import numpy as np
import pytest

from emel.tokenizer import bpe, pretokenize, unicode
from emel.tokenizer.bpe import REGEXES
from emel.tokenizer.vocab import _PRE


def _unescape_cpp(lit: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1))
                  if m.group(1) in 'nrt"\\' else "\\" + m.group(1), lit)


def _cpp_regexes(src: str) -> dict[str, tuple[list[str], bool]]:
    body = src[src.index("struct llm_tokenizer_bpe : llm_tokenizer {"):]
    body = body[:body.index("std::vector<std::string> regex_exprs;")]
    out = {}
    pending: list[str] = []
    for block in re.split(r"(?=case LLAMA_VOCAB_PRE_TYPE_|default:)", body)[1:]:
        m = re.match(r"case LLAMA_VOCAB_PRE_TYPE_(\w+):", block)
        name = m.group(1).lower() if m else "default"
        pending.append(name)
        if "regex_exprs" not in block:
            continue
        exprs = block[block.index("regex_exprs"):block.index("};")]
        lits = [_unescape_cpp(x) for x in re.findall(r'^\s*"((?:[^"\\]|\\.)*)",', exprs, re.M)]
        raw = "byte_encode = false" not in block
        for n in pending:
            out[n] = (lits, raw)
        pending = []
    return out


def test_bpe_regexes_equal_llama_cpp_source(llama_cpp_dir):
    src = (llama_cpp_dir / "src" / "llama-vocab.cpp").read_text(encoding="utf-8")
    cpp = _cpp_regexes(src)
    assert len(cpp) >= 50
    for name, (lits, byte_encode) in cpp.items():
        assert REGEXES[name] == lits, name
        assert (name not in bpe._RAW_UTF8) == byte_encode, name
    assert set(REGEXES) == set(cpp)


def test_every_pre_tokenizer_name_is_known(llama_cpp_dir):
    src = (llama_cpp_dir / "src" / "llama-vocab.cpp").read_text(encoding="utf-8")
    load = src[src.index("void llama_vocab::impl::load("):]
    load = load[:load.index("unknown pre-tokenizer type")]
    names = set(re.findall(r'tokenizer_pre == "([^"]+)"', load))
    assert names and names <= set(_PRE), sorted(names - set(_PRE))


def test_custom_splitters_cover_llama_cpp_fast_paths(llama_cpp_dir):
    src = (llama_cpp_dir / "src" / "unicode.cpp").read_text(encoding="utf-8")
    fast = src[src.index("static std::vector<size_t> unicode_regex_split_custom("):]
    fast = fast[:fast.index("return bpe_offsets;")]
    lits = {_unescape_cpp(x) for x in re.findall(r'regex_expr == "((?:[^"\\]|\\.)*)"', fast)}
    assert lits == set(pretokenize._CUSTOM)


def test_unicode_tables_equal_llama_cpp_source(llama_cpp_dir):
    src = (llama_cpp_dir / "src" / "unicode-data.cpp").read_text(encoding="utf-8")
    blk = src[src.index("unicode_ranges_flags = {"):src.index("unicode_set_whitespace")]
    pairs = [(int(a, 16), int(b, 16)) for a, b in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)\}", blk)]
    flags = unicode.cpt_flags() & 0xFF
    for (start, f), (end, _) in zip(pairs, pairs[1:]):
        assert np.all(flags[start:end] == f), hex(start)
    ws = src[src.index("unicode_set_whitespace = {"):src.index("unicode_map_lowercase")]
    ws_set = {int(x, 16) for x in re.findall(r"0x([0-9A-F]+)", ws)}
    assert set(np.nonzero(unicode.cpt_flags() & 0x100)[0].tolist()) == ws_set


@pytest.mark.parametrize("text,words", [
    ("Hello world", ["Hello", " world"]),
    ("I've  got 123 apples!!", ["I", "'ve", " ", " got", " ", "123", " apples", "!!"]),
    ("a\n\n b", ["a", "\n\n", " b"]),
])
def test_llama3_split_examples(text, words):
    cpts = np.frombuffer(text.encode("utf-32-le"), dtype=np.int32)
    lens = pretokenize.regex_split(cpts, REGEXES["llama3"])
    pos = np.concatenate([[0], np.cumsum(lens)])
    assert [text[a:b] for a, b in zip(pos[:-1], pos[1:])] == words
