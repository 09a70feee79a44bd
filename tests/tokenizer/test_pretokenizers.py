"""Every BPE pre-tokenizer llama.cpp knows, against llama.cpp itself.

parity_fixtures/tokenizer/make_fixtures.py rewrote tokenizer.ggml.pre of ggml-vocab-gpt-2.gguf to
each `tokenizer_pre` value of llama-vocab.cpp (of ggml-vocab-gemma-4.gguf, made a `gpt2` model,
for the three SPM-style ones; all but `whitespace`, on which llama.cpp asserts) and recorded
llama.cpp's ids and detokenization for ~50 strings each.
"""

from __future__ import annotations

import functools
import gzip
import json

import pytest

from emel.errors import TokenizerError
from emel.tokenizer import Tokenizer
from tokparity import FIXTURE_DIR, as_bytes, vocab_path
from emel.tokenizer.tokenizer import read_metadata


@functools.cache
def _fixture() -> dict:
    with gzip.open(FIXTURE_DIR / "fuzz_pre.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


@functools.cache
def _base_meta(base: str = "ggml-vocab-gpt-2.gguf") -> dict:
    return read_metadata(vocab_path(base.removesuffix(".gguf")))


def _names() -> list[str]:
    return sorted(_fixture()["pre"])


def test_fixture_covers_the_pre_tokenizers():
    assert len(_names()) >= 80


@pytest.mark.slow
@pytest.mark.parametrize("name", _names())
def test_pre_tokenizer_matches_llama_cpp(name):
    want = _fixture()["pre"][name]
    meta = {**_base_meta(want["base"]), "tokenizer.ggml.model": want["model"],
            "tokenizer.ggml.pre": name}
    tok = Tokenizer.from_metadata(meta)
    assert tok.vocab.bos == want["bos"]
    for flag, value in want["add"].items():
        assert getattr(tok.vocab, f"add_{flag}") == value, flag
    bad = []
    for case in want["cases"]:
        text = as_bytes(case["text"])
        got = (tok.tokenize(text, add_special=False), tok.tokenize(text, add_special=True,
                                                                   parse_special=True))
        detok = tok.detokenize_bytes(case["ids"])
        if got != (case["ids"], case["ids_sp"]) or detok != as_bytes(case["detok"]):
            bad.append((text[:50], case["ids"][:10], got[0][:10]))
    assert not bad, f"{name}: {len(want['cases']) - len(bad)}/{len(want['cases'])}; {bad[:2]}"


def test_raw_utf8_pre_tokenizer_on_a_gpt2_model_raises_where_llama_cpp_asserts():
    tok = Tokenizer.from_metadata({**_base_meta(), "tokenizer.ggml.pre": "whitespace"})
    tok.tokenize("a b", add_special=False)  # a lone space is one symbol: no merge lookup
    with pytest.raises(TokenizerError):
        tok.tokenize("a  b", add_special=False)
