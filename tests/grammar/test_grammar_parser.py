"""GBNF parser against the cases of llama.cpp tests/test-grammar-parser.cpp (exact rules, ids)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emel.errors import GrammarError
from emel.grammar import GreType, parse

CASES = json.loads((Path(__file__).resolve().parents[2] / "parity_fixtures/grammar/parser_cases.json")
                   .read_text())


@pytest.mark.parametrize("case", CASES["parsing"], ids=lambda c: c["grammar"].strip()[:40])
def test_parsed_rules_and_symbol_ids_match_llama_cpp(case):
    g = parse(case["grammar"].encode("latin-1"))
    assert sorted(g.symbol_ids.items()) == [tuple(s) for s in case["symbols"]]
    flat = [[int(t), v] for rule in g.rules for t, v in rule]
    assert flat == case["rules"]


@pytest.mark.parametrize("grammar", CASES["failures"], ids=lambda g: g.strip()[:40])
def test_grammars_llama_cpp_rejects_raise_grammar_error(grammar):
    with pytest.raises(GrammarError) as exc:
        parse(grammar.encode("latin-1"))
    assert exc.value.line >= 1 and exc.value.column >= 1


# (grammar, line, column, words in the message)
BAD = [
    ('root ::= "a" b\n', 1, 14, "undefined rule identifier 'b'"),
    ('root ::= "a"\nx ::= ( "b" | "c"\n', 2, 7, "unbalanced '('"),
    ('root ::= "a" )\n', 1, 14, "expecting newline or end"),
    ('root ::= [a-z\n', 1, 10, "unterminated '['"),
    ('root ::= "abc\n', 1, 10, "unterminated string"),
    ('root ::= "a"\n  foo "b"\n', 2, 7, "expecting ::="),
    ('root ::= "\\q"\n', 1, 11, "unknown escape"),
    ('root ::= "\\x4"\n', 1, 13, "expecting 2 hex chars"),
    ('root ::= * "a"\n', 1, 10, "expecting preceding item"),
    ('root ::= "a"{3,1}\n', 1, 13, "below its minimum"),
    ('root ::= "a"{x}\n', 1, 14, "expecting an int"),
    ('root ::= "a"{2,3\n', 1, 17, "expecting '}'"),
    ('root ::= <foo>\n', 1, 10, "no vocab"),
    ('# comment\n::= "a"\n', 2, 1, "expecting name"),
]


@pytest.mark.parametrize("text,line,column,words", BAD, ids=[b[3] for b in BAD])
def test_malformed_grammar_error_has_line_and_column(text, line, column, words):
    with pytest.raises(GrammarError) as exc:
        parse(text)
    assert (exc.value.line, exc.value.column) == (line, column), str(exc.value)
    assert words in str(exc.value)
    assert f"line {line}, column {column}" in str(exc.value)


def test_comments_escapes_and_any_char_encode_like_llama_cpp():
    g = parse('root ::= "\\x41\\u00e9\\U0001F600\\n\\t\\\\" . [^\\]\\-] # c\n  # only comment\n')
    assert g.rules[0] == [(GreType.CHAR, 0x41), (GreType.CHAR, 0xE9), (GreType.CHAR, 0x1F600),
                          (GreType.CHAR, 10), (GreType.CHAR, 9), (GreType.CHAR, 0x5C),
                          (GreType.CHAR_ANY, 0), (GreType.CHAR_NOT, 0x5D),
                          (GreType.CHAR_ALT, 0x2D), (GreType.END, 0)]


def test_token_reference_by_text_uses_tokenize_callback():
    g = parse("root ::= <think> !<[7]>", tokenize=lambda b: [42] if b == b"<think>" else [1, 2])
    assert g.rules[0] == [(GreType.TOKEN, 42), (GreType.TOKEN_NOT, 7), (GreType.END, 0)]
    with pytest.raises(GrammarError, match="invalid token"):
        parse("root ::= <nope>", tokenize=lambda b: [1, 2])


def test_builtin_grammar_files_parse(llama_cpp_dir):
    for path in sorted((llama_cpp_dir / "grammars").glob("*.gbnf")):
        g = parse(path.read_bytes())
        assert "root" in g.symbol_ids, path.name


# --- any input either parses or raises GrammarError (never another exception) ----------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from emel.grammar import Grammar  # noqa: E402

_PIECES = ["root", " ::= ", "a", "b", "x-y", " ", "\n", "|", "(", ")", "[", "]", "^", "-", "*",
           "+", "?", "{", "}", ",", "2", "0", "9999", '"', "\\", "\\x4", "\\u00e9", "\\n", ".",
           "<[12]>", "!", "#c\n", "é", "\r", "<", ">", ":", "=", "\0"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24))
def test_fuzzed_grammars_parse_or_raise_grammar_error(parts):
    for text in ("".join(parts), "root ::= " + "".join(parts)):
        try:
            g = parse(text)
        except GrammarError as e:
            assert e.line >= 1 and e.column >= 1
            continue
        try:
            Grammar(g, "root")
        except GrammarError:
            pass
