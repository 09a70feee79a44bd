"""Every architecture on a tiny random-weight GGUF against llama.cpp's recorded logits.

The GGUFs are regenerated here with the writer and seeds of parity_fixtures/logits/tiny_models.py;
parity_fixtures/logits/tiny.npz holds llama.cpp's logits (every position) and greedy tokens.
"""

import numpy as np
import pytest

from emel.context import Batch, Context, ContextParams, compute_logits
from emel.loader import load_model_file

from .tiny import tiny_models



@pytest.fixture(scope="module")
def fixture(fixtures_dir):
    return np.load(fixtures_dir / "logits" / "tiny.npz")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    for arch in tiny_models.MODELS:
        tiny_models.write(arch, d / f"tiny-{arch}.gguf")
    return d


@pytest.mark.parametrize("arch", list(tiny_models.MODELS))
def test_tiny_model_logits_match_llama_cpp(arch, fixture, tiny_dir):
    toks = tiny_models.tokens(arch)
    assert fixture[f"{arch}_tokens"].tolist() == toks
    ref = fixture[f"{arch}_logits"]
    mf = load_model_file(tiny_dir / f"tiny-{arch}.gguf")
    got = compute_logits(mf, toks, n_ctx=512)
    diff = float(np.abs(got - ref).max())
    print(f"{arch}: max |diff| {diff:.3g}")
    assert diff == 0.0  # every op follows llama.cpp's arithmetic: bit-identical logits


@pytest.mark.parametrize("arch", list(tiny_models.MODELS))
def test_tiny_model_greedy_matches_llama_cpp(arch, fixture, tiny_dir):
    toks = tiny_models.tokens(arch)
    want = fixture[f"{arch}_greedy"].tolist()
    ctx = Context(load_model_file(tiny_dir / f"tiny-{arch}.gguf"), ContextParams(n_ctx=512))
    ctx.decode(Batch(toks))
    got = []
    for _ in range(len(want)):
        t = int(np.argmax(ctx.get_logits_ith(-1)))
        got.append(t)
        ctx.decode(Batch([t]))
    assert got == want
