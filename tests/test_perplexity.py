"""Perplexity over a ~1,900-token English text equals llama.cpp's (llama-perplexity procedure).

llama.cpp's figures come from parity_fixtures/perplexity/make_fixtures.py (llama-cpp-python
0.3.36); the procedure here is the same: chunks of n_ctx = 512 tokens, BOS first in each chunk when
the vocabulary adds it, each chunk in a fresh context, the second half of each chunk scored.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import emel


def _chunk_nll(logits: np.ndarray, tokens: list[int], first: int) -> tuple[float, int]:
    # llama-perplexity's log_softmax: max, sum of expf in double, then logit - max - log(sum)
    nll = 0.0
    for j in range(first, len(tokens) - 1):
        row = logits[j]
        mx = float(row.max())
        sum_exp = float(np.exp(row - np.float32(mx), dtype=np.float32).astype(np.float64).sum())
        nll -= float(row[tokens[j + 1]]) - mx - math.log(sum_exp)
    return nll, len(tokens) - 1 - first


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    data = json.loads((fixtures_dir / "perplexity" / "perplexity.json").read_text())
    data["text"] = (fixtures_dir / "perplexity" / "text.txt").read_text()
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_perplexity_within_half_a_percent_of_llama_cpp(name, reference):
    ref = reference["models"][name]
    n_ctx = reference["n_ctx"]
    model = emel.load(name, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx)
    tokens = model.tokenize(reference["text"], add_special=True)
    assert tokens == ref["tokens"]
    bos = model.vocab.bos
    total, count = 0.0, 0
    for i, ref_chunk in enumerate(ref["chunks"]):
        chunk = list(tokens[i * n_ctx:(i + 1) * n_ctx])
        if ref["add_bos"]:
            chunk[0] = bos
        nll, n = _chunk_nll(model.logits(chunk), chunk, n_ctx // 2)
        assert n == ref_chunk["n"]
        total += nll
        count += n
    ppl = math.exp(total / count)
    rel = abs(ppl / ref["ppl"] - 1.0)
    print(f"{name}: emel ppl {ppl:.6f}, llama.cpp {ref['ppl']:.6f}, rel diff {rel:.2e}")
    assert rel < 0.005
