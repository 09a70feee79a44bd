"""JSON schema -> GBNF against llama.cpp tests/test-json-schema-to-grammar.cpp (exact text)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from emel.errors import GrammarError
from emel.grammar import parse
from emel.grammar.json_schema import JSON_GRAMMAR, json_schema_to_grammar, response_format_grammar

CASES = json.loads((Path(__file__).resolve().parents[2] / "parity_fixtures/grammar/schema_cases.json")
                   .read_text())["cases"]


def _trim(s: str) -> str:
    # the test's trim(): strip the text, then leading blanks of every line
    s = s.strip(" \n\r\t")
    return re.sub(r"(^|\n)[ \t]+", r"\1", s)


def _ids(cases):
    return [f"{i}-{c['name']}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_schema_converts_to_llama_cpp_grammar_text(case):
    if case["status"] == "SUCCESS":
        assert _trim(json_schema_to_grammar(json.loads(case["schema"]))) == _trim(case["grammar"])
    else:
        with pytest.raises(GrammarError):
            json_schema_to_grammar(json.loads(case["schema"]))


@pytest.mark.parametrize("case", [c for c in CASES if c["status"] == "SUCCESS"],
                         ids=_ids([c for c in CASES if c["status"] == "SUCCESS"]))
def test_expected_grammars_parse_and_have_root(case):
    assert "root" in parse(case["grammar"]).symbol_ids


def test_response_format_json_object_is_the_builtin_json_grammar(llama_cpp_dir):
    assert JSON_GRAMMAR == (llama_cpp_dir / "grammars/json.gbnf").read_text()
    assert response_format_grammar({"type": "json_object"}) == JSON_GRAMMAR
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert response_format_grammar({"type": "json_schema", "json_schema": {"schema": schema}}) == \
        json_schema_to_grammar(schema)
    with pytest.raises(GrammarError):
        response_format_grammar({"type": "text/plain"})


def test_schema_text_that_is_not_json_raises():
    with pytest.raises(GrammarError):
        json_schema_to_grammar("{not json")
