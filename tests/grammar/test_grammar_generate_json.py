"""End to end: seeded generations on SmolLM2 constrained by a JSON schema grammar all parse."""

from __future__ import annotations

import json

import pytest

N_GEN = 20
SCHEMA = {"type": "object",
          "properties": {"name": {"type": "string", "maxLength": 12},
                         "age": {"type": "integer", "minimum": 0, "maximum": 30}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.mark.slow
def test_twenty_seeded_json_generations_parse_and_follow_the_schema(smollm2_path):
    from emel.api import load
    from emel.generator import GenerationParams, Generator
    from emel.grammar import json_schema_to_grammar
    from emel.grammar.sampler import GrammarSampler, GrammarVocab

    m = load(smollm2_path, n_ctx=2048, n_parallel=N_GEN)
    tok = m.tokenizer
    gv = GrammarVocab([tok.token_to_piece(t, special=True) for t in range(tok.n_tokens)],
                      sorted(tok.vocab.eog_ids))
    grammar = json_schema_to_grammar(SCHEMA)
    prompt = tok.tokenize("A JSON object describing a cat:", add_special=True, parse_special=False)
    # the schema bounds the output length, so 96 tokens always reach the end of the object
    chains = [m.sampler(seed=seed, temperature=0.8) for seed in range(N_GEN)]
    grammars = [GrammarSampler(grammar, "root", gv) for _ in range(N_GEN)]
    out = [""] * N_GEN
    gen = Generator(m.ctx, tok, m.telemetry)
    for e in gen.generate_many([prompt] * N_GEN, chains, GenerationParams(max_tokens=96), grammars):
        out[e.index] += e.text
    values = [json.loads(text) for text in out]
    for v in values:
        assert set(v) == {"name", "age"}
        assert isinstance(v["name"], str) and len(v["name"]) <= 12
        assert isinstance(v["age"], int) and 0 <= v["age"] <= 30
    assert len(set(out)) > 1  # different seeds, different samples
