"""Bad input never crashes: llama.cpp's result where it has one, else a clear TokenizerError."""

from __future__ import annotations

import numpy as np
import pytest

from emel.errors import TokenizerError, UnsupportedError
from emel.tokenizer import Tokenizer, Vocab
from tokparity import tokenizer


@pytest.mark.parametrize("name", ["smollm2-135m", "ggml-vocab-llama-spm", "ggml-vocab-bert-bge",
                                  "ggml-vocab-qwen2"])
def test_invalid_utf8_nul_and_surrogates_tokenize(name):
    tok = tokenizer(name)
    for text in (b"\xff\xfe", b"a\x00b", b"\xed\xa0\x80", b"\xc3", "lone \ud800 surrogate", "\x00"):
        ids = tok.tokenize(text)
        assert all(0 <= t < tok.n_tokens for t in ids)
        tok.detokenize(ids)


def test_lone_surrogate_str_tokenizes_as_its_cesu_bytes():
    tok = tokenizer("smollm2-135m")
    assert tok.tokenize("x\ud800y") == tok.tokenize(b"x\xed\xa0\x80y")


@pytest.mark.parametrize("name", ["smollm2-135m", "ggml-vocab-llama-spm"])
def test_one_megabyte_string(name):
    tok = tokenizer(name)
    text = ("The quick brown fox jumps over the lazy dog. 1234567 " * 20000)[:1 << 20]
    ids = tok.tokenize(text)
    assert len(ids) > 100_000
    assert tok.detokenize(ids, remove_special=True).endswith(text[-20:])


def test_codepoint_past_unicode_range_raises_for_bpe():
    # F4 90 80 80 decodes (as llama.cpp decodes it) to U+110000, which llama.cpp cannot re-encode
    with pytest.raises(TokenizerError):
        tokenizer("smollm2-135m").tokenize(b"a\xf4\x90\x80\x80")


def test_token_out_of_range_raises():
    tok = tokenizer("smollm2-135m")
    with pytest.raises(TokenizerError):
        tok.token_to_piece(tok.n_tokens)
    with pytest.raises(TokenizerError):
        tok.detokenize([1, -5])


def test_wrong_argument_types_raise_tokenizer_error():
    tok = tokenizer("smollm2-135m")
    with pytest.raises(TokenizerError):
        tok.tokenize(None)
    with pytest.raises(TokenizerError):
        tok.detokenize(["a"])


def test_unknown_tokenizer_model_is_unsupported():
    meta = {"tokenizer.ggml.model": "nonesuch", "tokenizer.ggml.tokens": ["a", "b"]}
    with pytest.raises(UnsupportedError):
        Vocab.from_metadata(meta)


def test_unknown_pre_tokenizer_is_unsupported():
    meta = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "nonesuch",
            "tokenizer.ggml.tokens": ["a", "b"], "tokenizer.ggml.merges": ["a b"]}
    with pytest.raises(UnsupportedError):
        Vocab.from_metadata(meta)


@pytest.mark.parametrize("meta", [
    {},
    {"tokenizer.ggml.model": "llama"},
    {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"]},
    {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", "a"]},
    {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["a", "b"],
     "tokenizer.ggml.scores": np.zeros(1, np.float32)},
    {"tokenizer.ggml.model": "t5", "tokenizer.ggml.tokens": ["a", "b"],
     "tokenizer.ggml.precompiled_charsmap": np.zeros(2, np.uint8)},
])
def test_malformed_metadata_raises_tokenizer_error(meta):
    with pytest.raises(TokenizerError):
        Vocab.from_metadata(meta)


def test_spm_without_byte_tokens_raises_instead_of_aborting():
    meta = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "a"],
            "tokenizer.ggml.scores": np.zeros(4, np.float32),
            "tokenizer.ggml.token_type": np.array([2, 3, 3, 1], np.int32),
            "tokenizer.ggml.add_space_prefix": False}
    tok = Tokenizer.from_metadata(meta)
    assert tok.tokenize("a", add_special=False) == [3]
    with pytest.raises(TokenizerError):
        tok.tokenize("b", add_special=False)
