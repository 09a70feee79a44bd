"""JSON schema -> GBNF against llama.cpp tests/test-json-schema-to-grammar.cpp (exact text)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from emel.errors import GrammarError
from emel.grammar import parse
from emel.grammar import JSON_GRAMMAR, json_schema_to_grammar, response_format_grammar

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


# the two hand-written checks at the end of test-json-schema-to-grammar.cpp

def test_parsed_document_gives_the_same_grammar_recursion_included():
    from emel.grammar.json_schema import schema_from_json

    schema = {"$ref": "#/$defs/node",
              "$defs": {"node": {"type": "object",
                                 "properties": {"next": {"$ref": "#/$defs/node"}, "leaf": {}},
                                 "additionalProperties": False}}}
    assert json_schema_to_grammar(schema_from_json(schema)) == json_schema_to_grammar(schema)


def test_sub_schema_ref_names_the_ref_rule():
    from emel.grammar.json_schema import schema_from_json
    from emel.grammar.json_schema_to_grammar import build_grammar

    doc = schema_from_json({
        "type": "object", "properties": {"item": {"$ref": "#/$defs/item"}},
        "$defs": {"item": {"type": "object", "properties": {"a": {"type": "string"}},
                           "required": ["a"], "additionalProperties": False}}})
    item = doc.root.properties[0][1]
    expected = r'''
        char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
        ref-defs-item ::= "{" space ref-defs-item-a-kv space "}"
        ref-defs-item-a-kv ::= "\"a\"" space ":" space string
        root ::= ref-defs-item
        space ::= | " " | "\n"{1,2} [ \t]{0,20}
        string ::= "\"" char* "\""
    '''
    got = build_grammar(lambda b: b.add_schema("root", item, doc))
    assert _trim(got) == _trim(expected)
