"""emel.tokenizer.unicode tables: the packed unicode_data strings hold llama.cpp's
src/unicode-data.cpp values, and the per-text table prefixes answer like the full tables.

The prefixes keep a process that tokenizes ASCII text from building the 2.2 MB flag and 4.4 MB
lowercase tables (issue #8, peak RSS); tokenizer results must not depend on the size built.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from emel.tokenizer import Tokenizer, unicode
from emel.tokenizer import pretokenize as pt

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    path = ROOT / "parity_fixtures" / "tokenizer" / "gen_unicode_data.py"
    spec = importlib.util.spec_from_file_location("gen_unicode_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, block", [
    ("RANGES_FLAGS", "unicode_ranges_flags = {"), ("WHITESPACE", "unicode_set_whitespace = {"),
    ("MAP_LOWERCASE", "unicode_map_lowercase = {"), ("MAP_UPPERCASE", "unicode_map_uppercase = {"),
    ("RANGES_NFD", "unicode_ranges_nfd = {"),
])
def test_packed_tables_hold_llama_cpp_unicode_data(llama_cpp_dir, name, block):
    gen = _generator()
    src = (llama_cpp_dir / "src" / "unicode-data.cpp").read_text()
    text = gen._block(src, block)
    if name != "WHITESPACE":
        text = text.split("\n", 1)[1]  # the declaration line holds a size, not a value
    assert unicode.table_values(name).tolist() == gen._ints(text)


@pytest.mark.parametrize("n", [0, 1, 0x41, 0x80, 0x81, 0x7FF, 0x800, 0x4E2D, 0xFFFF, 0x10000,
                               0x1F600, 0x10FFFF, 0x110000, 0x1FFFFF])
def test_table_prefixes_cover_n_and_equal_the_full_tables(n):
    full_flags, full_lower = unicode.cpt_flags(), unicode.tolower_table()
    assert full_flags.size == full_lower.size == unicode.MAX_CODEPOINTS
    flags, lower = unicode.cpt_flags(n), unicode.tolower_table(n)
    assert flags.size == lower.size >= min(n, unicode.MAX_CODEPOINTS)
    assert flags.dtype == full_flags.dtype and lower.dtype == full_lower.dtype
    assert np.array_equal(flags, full_flags[:flags.size])
    assert np.array_equal(lower, full_lower[:lower.size])


_TEXTS = [
    "Hello world, it's 12345 o'clock!",
    "I'M HERE, YOU'LL SEE, WE'VE 'S",
    "Grüße aus Köln – ça va? ΑΒΓ αβγ Ωmega",
    "日本語のテキスト、中文字符 and ASCII",
    "emoji 😀👍🏽 and \u10A0\u10A1 Georgian 'Ⴀ",
    "tabs\tand\nnewlines\r\n  spaces\u3000ideographic",
]


def _regex_sets():
    from emel.tokenizer.bpe import REGEXES
    sets = {tuple(exprs) for exprs in REGEXES.values() if exprs}
    return [list(exprs) for exprs in sorted(sets)]


@pytest.mark.parametrize("text", _TEXTS)
def test_regex_split_gives_the_same_words_with_full_tables(text, monkeypatch):
    cpts = unicode.cpts_from_bytes(text.encode("utf-8"))
    exprs_sets = _regex_sets()
    assert len(exprs_sets) > 10 and any(e in pt._CUSTOM for exprs in exprs_sets for e in exprs)
    got = [pt.regex_split(cpts, exprs).tolist() for exprs in exprs_sets]
    monkeypatch.setattr(pt, "cpt_flags", lambda n=0: unicode.cpt_flags())
    monkeypatch.setattr(pt, "tolower_table", lambda n=0: unicode.tolower_table())
    assert got == [pt.regex_split(cpts, exprs).tolist() for exprs in exprs_sets]


@pytest.mark.slow
@pytest.mark.parametrize("text", _TEXTS)
def test_smollm2_tokens_are_the_same_with_full_tables(smollm2_path, text, monkeypatch):
    tok = Tokenizer.from_gguf(smollm2_path)
    got = tok.tokenize(text)
    monkeypatch.setattr(pt, "cpt_flags", lambda n=0: unicode.cpt_flags())
    monkeypatch.setattr(pt, "tolower_table", lambda n=0: unicode.tolower_table())
    assert tok.tokenize(text) == got
