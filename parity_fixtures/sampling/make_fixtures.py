"""Record llama.cpp's sampler outputs for every row of cases.py into samplers.json.

Run with llama-cpp-python 0.3.36 (built from source):
    ~/.cache/emel-ref/venv/bin/python parity_fixtures/sampling/make_fixtures.py
Uses only the low-level API (llama_sampler_init_*, llama_sampler_apply, llama_sampler_accept) on
a llama_token_data_array built from the case's logits. Also records std::mt19937 outputs through
llama.cpp's own dist sampler (seeded draws) and, for DRY with text sequence breakers, the
SmolLM2 vocabulary (vocab_only).
"""

from __future__ import annotations

import base64
import ctypes
import json
import sys
from pathlib import Path

import numpy as np

import llama_cpp as L

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import CASES, make_inputs  # noqa: E402

_QUIET = L.llama_log_callback(lambda *a: None)  # kept alive: llama.cpp holds the pointer
SMOLLM2 = Path.home() / ".cache/emel/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def _b64(values) -> str:
    """float32 values as base64 of their little-endian bytes (exact and compact)."""
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def init(name, args, vocab):
    if name == "greedy":
        return L.llama_sampler_init_greedy()
    if name == "dist":
        return L.llama_sampler_init_dist(*args)
    if name == "top_k":
        return L.llama_sampler_init_top_k(*args)
    if name == "top_p":
        return L.llama_sampler_init_top_p(*args)
    if name == "min_p":
        return L.llama_sampler_init_min_p(*args)
    if name == "typical":
        return L.llama_sampler_init_typical(*args)
    if name == "temp":
        return L.llama_sampler_init_temp(*args)
    if name == "temp_ext":
        return L.llama_sampler_init_temp_ext(*args)
    if name == "xtc":
        return L.llama_sampler_init_xtc(*args)
    if name == "top_n_sigma":
        return L.llama_sampler_init_top_n_sigma(*args)
    if name == "mirostat":
        return L.llama_sampler_init_mirostat(*args)
    if name == "mirostat_v2":
        return L.llama_sampler_init_mirostat_v2(*args)
    if name == "penalties":
        return L.llama_sampler_init_penalties(*args)
    if name == "dry":
        mult, base, allowed, last_n, *breakers = args
        breakers = breakers[0] if breakers else []
        arr = (ctypes.c_char_p * max(len(breakers), 1))(*[b.encode() for b in breakers])
        return L.llama_sampler_init_dry(vocab if breakers else None, mult, base, allowed, last_n,
                                        arr if breakers else None, len(breakers))
    if name == "logit_bias":
        n_vocab, biases = args
        arr = (L.llama_logit_bias * len(biases))(*[L.llama_logit_bias(t, b) for t, b in biases])
        return L.llama_sampler_init_logit_bias(n_vocab, len(biases), arr)
    raise ValueError(name)


def run_case(case, logits, vocab):
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    for name, args in case["chain"]:
        L.llama_sampler_chain_add(chain, init(name, args, vocab))
    for t in case["accept"]:
        L.llama_sampler_accept(chain, t)
    n = len(logits)
    out = []
    for _ in range(case["steps"]):
        data = (L.llama_token_data * n)(*[L.llama_token_data(i, float(logits[i]), 0.0)
                                          for i in range(n)])
        arr = L.llama_token_data_array(data=data, size=n, selected=-1, sorted=False)
        L.llama_sampler_apply(chain, ctypes.byref(arr))
        # XTC moves the data pointer: read through the array's own pointer
        size, sel = arr.size, arr.selected
        token = arr.data[sel].id if 0 <= sel < size else -1
        if case["record"] == "full":
            out.append(dict(ids=[arr.data[i].id for i in range(size)],
                            logits=_b64([arr.data[i].logit for i in range(size)]),
                            p=_b64([arr.data[i].p for i in range(size)]),
                            selected=sel, sorted=bool(arr.sorted), token=token))
        elif case["record"] == "size":
            out.append([size, arr.data[0].id if size else -1])
        else:
            out.append(token)
        if case["accept_selected"]:
            L.llama_sampler_accept(chain, token)
    L.llama_sampler_free(chain)
    return out


def dry_vocab_cases(vocab):
    """DRY with text sequence breakers, processed against SmolLM2's vocabulary."""
    rs = np.random.RandomState(5)
    logits = (rs.randn(49152) * 2).astype(np.float32)
    # token ids of a repeated phrase with breakers in it (SmolLM2 vocabulary)
    text = "a: b c d\n a: b c d\n a: b c"
    toks = (ctypes.c_int32 * 64)()
    n = L.llama_tokenize(vocab, text.encode(), len(text.encode()), toks, 64, False, False)
    hist = [toks[i] for i in range(n)]
    # lift the history's tokens into the top-k so that DRY's penalties show in the output
    logits[sorted(set(hist))] += np.float32(10.0)
    rows = []
    for breakers in (["\n", ":", "\"", "*"], ["c d"], []):
        case = dict(name=f"dry_vocab/{breakers}", input="vocab", accept=hist, steps=1,
                    accept_selected=False, record="full",
                    chain=[["dry", [1.0, 1.75, 1, 64, breakers]], ["top_k", [30]]])
        rows.append((case, run_case(case, logits, vocab)))
    return logits, hist, rows


def main():
    L.llama_log_set(_QUIET, ctypes.c_void_p(0))
    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    mparams.vocab_only = True
    model = L.llama_model_load_from_file(str(SMOLLM2).encode(), mparams)
    vocab = L.llama_model_get_vocab(model)

    inputs = make_inputs()
    results = {}
    for case in CASES:
        results[case["name"]] = run_case(case, inputs[case["input"]], vocab)

    vlogits, vhist, vrows = dry_vocab_cases(vocab)
    doc = dict(
        source="llama.cpp via llama-cpp-python 0.3.36 (built from source), low-level sampler API",
        script="parity_fixtures/sampling/make_fixtures.py",
        inputs_seed=20261130,
        inputs={k: _b64(v) for k, v in inputs.items()},
        results=results,
        dry_vocab=dict(model="smollm2-135m (SmolLM2-135M-Instruct.Q4_1.gguf, vocab_only)",
                       logits_seed=5, history_boost=10.0, history=vhist,
                       cases=[dict(case=c, result=r) for c, r in vrows]),
    )
    (HERE / "samplers.json").write_text(json.dumps(doc, separators=(",", ":")))
    L.llama_model_free(model)
    print(f"{len(results)} cases written")


if __name__ == "__main__":
    main()
