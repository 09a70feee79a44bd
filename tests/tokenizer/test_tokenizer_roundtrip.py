"""Properties: byte-level BPE and byte-fallback SPM give back the text they were given."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from emel.bench import tokenize as corpus
from tokparity import tokenizer

# characters of common scripts (an unassigned codepoint can lose bytes in llama.cpp too:
# "\U00040000" detokenizes to b"\x80\x80\x80" there, as it does here)
_POOL = sorted(set("".join(corpus._SCRIPTS) + "".join(corpus._EMOJI) + "".join(corpus._PUNCT)
                   + " \t\n\r0123456789ABCXYZ<|>_-'\u3000\u00a0"))
TEXT = st.text(alphabet=st.sampled_from(_POOL), max_size=80)


@settings(max_examples=60, deadline=None)
@given(TEXT)
def test_smollm2_round_trip_is_exact(text):
    tok = tokenizer("smollm2-135m")  # gpt2-style BPE, clean_spaces off, no space prefix
    ids = tok.tokenize(text, add_special=False)
    assert tok.detokenize(ids) == text


@settings(max_examples=60, deadline=None)
@given(TEXT)
def test_llama_spm_round_trip_drops_only_the_space_prefix(text):
    tok = tokenizer("ggml-vocab-llama-spm")  # SPM with byte fallback, space prefix added
    ids = tok.tokenize(text, add_special=False)
    # detokenize strips the one leading space tokenize added (it keeps it after a BOS)
    assert tok.detokenize(ids) == text


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_never_crash(data):
    for name in ("smollm2-135m", "ggml-vocab-llama-spm", "ggml-vocab-bert-bge"):
        tok = tokenizer(name)
        try:
            ids = tok.tokenize(data, parse_special=True)
        except Exception as e:  # only the documented error is allowed
            assert type(e).__name__ == "TokenizerError"
            continue
        assert all(0 <= t < tok.n_tokens for t in ids)
