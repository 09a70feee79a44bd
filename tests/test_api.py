"""emel.load and Model: tokenizer delegation, vocab-only models, OpenAI-shaped completions that
equal llama-cpp-python's on SmolLM2, streaming, grammar, telemetry."""

from __future__ import annotations

import json

import numpy as np
import pytest

import emel.api
from emel import CatalogError, KVCacheFullError, ModelError, SamplerError, UnsupportedError


@pytest.fixture(scope="module")
def gen_fixture(fixtures_dir):
    return json.loads((fixtures_dir / "generate" / "generate.json").read_text())


@pytest.fixture(scope="module")
def vocab_model(smollm2_path):
    return emel.api.load(smollm2_path, vocab_only=True)


@pytest.fixture(scope="module")
def model(smollm2_path):
    return emel.api.load(smollm2_path, n_ctx=512, n_batch=512)


def test_vocab_only_model_tokenizes_and_renders_but_cannot_decode(vocab_model, gen_fixture):
    rec = gen_fixture["models"]["smollm2-135m"]["greedy"][0]
    assert vocab_model.tokenize(rec["prompt"], True, True) == rec["prompt_tokens"]
    assert vocab_model.detokenize(rec["tokens"]) == rec["text"]
    assert vocab_model.token_to_piece(rec["tokens"][0]) == b" Paris"
    assert vocab_model.apply_chat_template([{"role": "user", "content": "hi"}]).endswith(
        "<|im_start|>assistant\n")
    with pytest.raises(ModelError, match="vocab_only"):
        vocab_model.generate("x")


@pytest.mark.parametrize("kwargs,err", [
    (dict(device="cuda:7"), UnsupportedError),
    (dict(n_ctx=-1), Exception),
    (dict(n_batch=0), Exception),
])
def test_load_rejects_bad_arguments(smollm2_path, kwargs, err):
    with pytest.raises(err):
        emel.api.load(smollm2_path, vocab_only=True, **kwargs)


def test_load_unknown_name_raises_catalog_error():
    with pytest.raises(CatalogError):
        emel.api.load("no-such-model-anywhere")


def test_unknown_sampling_parameter_raises(vocab_model):
    with pytest.raises(SamplerError):
        vocab_model.sampler(top_q=3)


def test_sampler_maps_llama_cpp_python_names(vocab_model):
    chain = vocab_model.sampler(temperature=0.5, repeat_penalty=1.2, seed=4)
    names = [s.name for s in chain.samplers]
    assert names[0] == "penalties" and names[-2:] == ["temp-ext", "dist"]


@pytest.mark.slow
def test_create_completion_equals_llama_cpp_python(model, gen_fixture):
    rec = gen_fixture["models"]["smollm2-135m"]["greedy"][0]
    out = model.create_completion(rec["prompt"], max_tokens=rec["max_tokens"], temperature=0.0)
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    choice = out["choices"][0]
    assert choice["text"] == rec["text"]
    assert choice["finish_reason"] == rec["finish_reason"]
    assert out["usage"] == rec["usage"]
    chunks = list(model.create_completion(rec["prompt"], max_tokens=4, temperature=0.0,
                                          stream=True))
    assert "".join(c["choices"][0]["text"] for c in chunks) == model.generate(
        rec["prompt"], max_tokens=4, temperature=0.0)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    perf = model.perf()
    assert perf["n_prompt"] > 0 and perf["n_gen"] > 0 and perf["t_gen_ms"] > 0
    assert perf["kv_bytes"] > 0 and perf["arena_bytes"] > 0 and perf["n_sample"] > 0
    model.perf_reset()
    assert model.perf()["n_gen"] == 0 and model.perf()["t_load_ms"] > 0


@pytest.mark.slow
def test_create_chat_completion_equals_llama_cpp_python(model, gen_fixture):
    rec = gen_fixture["models"]["smollm2-135m"]["chat"]
    out = model.create_chat_completion(rec["messages"], max_tokens=rec["max_tokens"],
                                       temperature=rec["temperature"])
    assert out["object"] == "chat.completion"
    msg = out["choices"][0]["message"]
    assert msg == {"role": "assistant", "content": rec["content"]}
    assert out["usage"] == rec["usage"]
    assert out["choices"][0]["finish_reason"] == rec["finish_reason"]
    chunks = list(model.create_chat_completion(rec["messages"], max_tokens=2, temperature=0.0,
                                               stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert rec["content"].startswith(text)


@pytest.mark.slow
def test_stop_string_and_too_long_requests(model):
    text = model.generate("The capital of France is", max_tokens=32, temperature=0.0,
                          stop=["United"])
    assert text == " Paris.\n\nThe "
    with pytest.raises(KVCacheFullError):
        model.generate("The capital of France is", max_tokens=600)


@pytest.mark.slow
def test_grammar_constrains_the_output(model):
    text = model.generate("Is Paris in France? Answer:", max_tokens=6, temperature=0.0,
                          grammar='root ::= " yes" | " no"')
    assert text in (" yes", " no")


@pytest.mark.slow
def test_logits_are_the_context_logits(model):
    toks = model.tokenize("The capital of France is", True, True)
    all_logits = model.logits(toks)
    assert all_logits.shape == (len(toks), model.n_vocab)
    assert int(np.argmax(all_logits[-1])) == 7042  # " Paris", llama.cpp's greedy first token


@pytest.mark.slow
def test_embed_equals_llama_cpps_mean_pooled_embedding(model, gen_fixture):
    rec = gen_fixture["models"]["smollm2-135m"]["embed"]
    got = model.embed(rec["text"])
    want = np.array(rec["vector"], np.float32)
    assert got.shape == want.shape
    # bit-equal today; the tolerance only leaves room for decoder kernels that reorder sums
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max()))


def test_dry_breakers_are_processed_with_the_models_vocabulary(vocab_model):
    chain = vocab_model.sampler(dry_multiplier=0.8, seed=1)
    dry = next(s for s in chain.samplers if s.name == "dry")
    nl = vocab_model.tokenize("\n", add_special=False)
    assert len(nl) == 1 and () in dry.breakers[nl[0]]  # "\n" is a single-token breaker
