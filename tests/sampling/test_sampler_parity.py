"""Every sampler against llama.cpp on the same logits (parity_fixtures/sampling/samplers.json).

Each row of parity_fixtures/sampling/cases.py is run through emel's samplers; surviving candidates
(ids in order), their logits and probabilities, the selected index and the sorted flag must equal
what llama.cpp's llama_sampler_apply produced. Seeded samplers must pick the same tokens.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from functools import lru_cache

import numpy as np
import pytest

from emel import sampling as S
from emel.sampling.token_data import TokenDataArray


@lru_cache(maxsize=1)
def _load(fixtures_dir):
    doc = json.loads((fixtures_dir / "sampling" / "samplers.json").read_text())
    spec = importlib.util.spec_from_file_location("sampling_cases",
                                                  fixtures_dir / "sampling" / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return doc, mod.CASES


def _f32(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4").astype(np.float32)


FACTORIES = {
    "greedy": S.greedy, "dist": S.dist, "top_k": S.top_k, "top_p": S.top_p, "min_p": S.min_p,
    "typical": S.typical, "temp": S.temp, "temp_ext": S.temp_ext, "xtc": S.xtc,
    "top_n_sigma": S.top_n_sigma, "mirostat": S.mirostat, "mirostat_v2": S.mirostat_v2,
    "penalties": S.penalties, "logit_bias": S.logit_bias,
}


def build(chain_spec, **dry_vocab) -> S.SamplerChain:
    chain = S.SamplerChain()
    for name, args in chain_spec:
        if name == "dry":
            mult, base, allowed, last_n, *breakers = args
            chain.add(S.dry(mult, base, allowed, last_n, breakers[0] if breakers else (),
                            **dry_vocab))
        elif name == "logit_bias":
            chain.add(S.logit_bias(args[0], [(t, b) for t, b in args[1]]))
        else:
            chain.add(FACTORIES[name](*args))
    return chain


def run(case, logits, chain):
    for t in case["accept"]:
        chain.accept(t)
    out = []
    for _ in range(case["steps"]):
        cur = TokenDataArray.from_logits(logits)
        chain.apply(cur)
        token = int(cur.ids[cur.selected]) if 0 <= cur.selected < cur.size else -1
        if case["record"] == "full":
            out.append((cur.ids[:cur.size].copy(), cur.logits[:cur.size].copy(),
                        cur.p[:cur.size].copy(), cur.selected, cur.sorted, token))
        elif case["record"] == "size":
            out.append([cur.size, int(cur.ids[0]) if cur.size else -1])
        else:
            out.append(token)
        if case["accept_selected"]:
            chain.accept(token)
    return out


def check(case, got, want):
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want)):
        where = f"{case['name']} step {step}"
        if case["record"] != "full":
            assert g == w, where
            continue
        ids, logits, p, selected, sorted_, token = g
        w_logits, w_p = _f32(w["logits"]), _f32(w["p"])
        assert list(ids) == w["ids"], f"{where}: surviving candidates differ"
        assert np.array_equal(logits, w_logits), f"{where}: logits differ"
        # probabilities are bit-equal: same float/double sums in the same order, libm exp/log
        np.testing.assert_array_equal(p, w_p)
        assert selected == w["selected"] and token == w["token"], where
        assert sorted_ == w["sorted"], f"{where}: sorted flag"


@pytest.fixture(scope="module")
def fixture_doc(fixtures_dir):
    return _load(fixtures_dir)


def _families():
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "parity_fixtures" / "sampling"
    sys.path.insert(0, str(root))
    try:
        from cases import CASES
    finally:
        sys.path.pop(0)
    fams = []
    for c in CASES:
        f = c["name"].split("/")[0]
        if f not in fams:
            fams.append(f)
    return fams


@pytest.mark.parametrize("family", _families())
def test_sampler_family_matches_llama_cpp(family, fixture_doc):
    doc, cases = fixture_doc
    inputs = {k: _f32(v) for k, v in doc["inputs"].items()}
    n = 0
    for case in cases:
        if case["name"].split("/")[0] != family:
            continue
        got = run(case, inputs[case["input"]], build(case["chain"]))
        check(case, got, doc["results"][case["name"]])
        n += 1
    assert n > 0


def test_dry_text_sequence_breakers_match_llama_cpp(fixture_doc, smollm2_path):
    """DRY breakers given as text, processed against SmolLM2's vocabulary as llama.cpp does."""
    from emel.tokenizer import Tokenizer

    doc, _ = fixture_doc
    rec = doc["dry_vocab"]
    tok = Tokenizer.from_gguf(smollm2_path)
    pieces = [tok.detokenize_bytes([t], False, True) for t in range(tok.n_tokens)]
    vocab = dict(n_vocab=tok.n_tokens, detokenize=pieces.__getitem__,
                 tokenize=lambda b: tok.tokenize(b, add_special=False, parse_special=False))
    logits = (np.random.RandomState(rec["logits_seed"]).randn(tok.n_tokens) * 2).astype(np.float32)
    assert tok.tokenize("a: b c d\n a: b c d\n a: b c", add_special=False) == rec["history"]
    logits[sorted(set(rec["history"]))] += np.float32(rec["history_boost"])
    for entry in rec["cases"]:
        case = entry["case"]
        got = run(case, logits, build(case["chain"], **vocab))
        check(case, got, entry["result"])
