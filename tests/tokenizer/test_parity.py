"""Differential fuzz against llama.cpp: seeded random strings for every vocabulary.

parity_fixtures/tokenizer/make_fixtures.py recorded, with llama.cpp 0.3.36 (llama-cpp-python),
for each vocabulary: ids of 288 strings (24 of them random bytes), plain and with add_special +
parse_special; their detokenization (plain; remove_special + unparse_special; unparse kept);
token pieces; special ids, add_bos/eos/sep, the EOG set and every non-normal token attribute.
emel must match all of it.
"""

from __future__ import annotations

import pytest

from tokparity import compare, fixture_names, load_fixture, tokenizer

BIG = {"gemma3-270m", "ggml-vocab-gemma-4", "ggml-vocab-command-r", "ggml-vocab-nomic-bert-moe",
       "ggml-vocab-llama-bpe"}


def _params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in BIG else n for n in fixture_names()]


def test_fixtures_cover_every_family():
    names = set(fixture_names())
    for needed in ("smollm2-135m", "gemma3-270m", "ggml-vocab-bert-bge", "ggml-vocab-nomic-bert-moe",
                   "ggml-vocab-rwkv-world", "ggml-vocab-plamo2-mini", "ggml-vocab-gemma-4"):
        assert needed in names


@pytest.mark.parametrize("name", _params())
def test_matches_llama_cpp_on_fuzz_strings(name):
    data = load_fixture(name)
    bad = compare(tokenizer(name), data)
    n = len(data["cases"])
    counts = {k: len(v) for k, v in bad.items()}
    assert not any(counts.values()), (
        f"{name}: mismatches {counts} over {n} strings; first: "
        + "; ".join(f"{k}: {v[0]}" for k, v in bad.items() if v))
