"""llama.cpp's own tokenizer tests: every ggml-vocab-*.gguf with its .inp/.out expectations.

Reads the files as tests/test-tokenizer-0.cpp does (inputs separated by
"\\n__ggml_vocab_test__\\n", one line of ids per input) and tokenizes with add_special=False,
parse_special=False, as that test does.
"""

from __future__ import annotations

from pathlib import Path

import assets
import pytest

from tokparity import tokenizer

SEP = b"\n__ggml_vocab_test__\n"


def _vocabs_with_tests() -> list[str]:
    return sorted(p.name.removesuffix(".inp") for p in assets.vocab_dir().glob("ggml-vocab-*.gguf.inp"))


def read_tests(path: Path) -> list[tuple[bytes, list[int]]]:
    raw = path.with_name(path.name + ".inp").read_bytes()
    inputs = []
    pos = 0
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt < 0:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    outputs = path.with_name(path.name + ".out").read_bytes().split(b"\n")
    if outputs and outputs[-1] == b"":
        outputs.pop()
    assert len(inputs) == len(outputs), f"{path.name}: {len(inputs)} inputs, {len(outputs)} outputs"
    return [(s, [int(t) for t in o.split()]) for s, o in zip(inputs, outputs)]


def test_every_vocab_with_tests_is_covered(vocab_dir):
    names = set(_vocabs_with_tests())
    for needed in ("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-bert-bge.gguf",
                   "ggml-vocab-llama-bpe.gguf", "ggml-vocab-gemma-4.gguf", "ggml-vocab-qwen35.gguf"):
        assert needed in names, sorted(names)


@pytest.mark.parametrize("name", _vocabs_with_tests())
def test_matches_llama_cpp_expectations(name, vocab_dir):
    cases = read_tests(vocab_dir / name)
    tok = tokenizer(name.removesuffix(".gguf"))
    bad = []
    for text, want in cases:
        got = tok.tokenize(text, add_special=False, parse_special=False)
        if got != want:
            bad.append((text[:60], want[:16], got[:16]))
    assert not bad, f"{name}: {len(cases) - len(bad)}/{len(cases)} match; first: {bad[:3]}"
