"""1 MB of English and 1 MB of mixed-script text: emel's ids equal llama.cpp's, per family.

parity_fixtures/tokenizer/bench.json holds, for each family of emel/bench/tokenize.py, the
number of tokens and the SHA-1 of llama.cpp's id sequence on the same two texts.
"""

from __future__ import annotations

import hashlib

import pytest

from emel.bench import tokenize as bench
from tokparity import tokenizer

REF = bench.load_reference()
# family -> fixture / vocabulary name used by parity.tokenizer
NAMES = {f: spec.split(":", 1)[1].removesuffix(".gguf") for f, spec in bench.FAMILIES.items()}


@pytest.fixture(scope="module")
def texts():
    out = {"english": bench.english_text(), "mixed": bench.mixed_text()}
    for name, text in out.items():
        assert hashlib.sha1(text.encode()).hexdigest() == REF["_meta"]["text_sha1"][name], (
            f"the {name} benchmark text differs from the one llama.cpp tokenized")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", list(bench.FAMILIES))
def test_megabyte_ids_equal_llama_cpp(family, texts):
    tok = tokenizer(NAMES[family])
    for name, text in texts.items():
        ids = tok.tokenize(text, add_special=False, parse_special=False)
        want = REF[family][name]
        assert len(ids) == want["n_tokens"], (family, name)
        assert bench.sha1_ids(ids) == want["sha1"], (family, name)
