"""Grammar matching against llama.cpp tests/test-grammar-integration.cpp (accepted / rejected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emel.errors import GrammarError
from emel.grammar import Grammar, GrammarState, parse
from emel.grammar import json_schema_to_grammar

DATA = json.loads((Path(__file__).resolve().parents[2]
                   / "parity_fixtures/grammar/integration_cases.json").read_text())
CASES = DATA["cases"]


def _pieces(data: bytes):
    """parse_tokens() of the C++ test: 0xff + 4 bytes is a token, else one code point (id 0)."""
    out = []
    i = 0
    while i < len(data):
        if data[i] == 0xFF:
            tid = int.from_bytes(data[i + 1:i + 5], "big")
            out.append((tid, f"<[{tid}]>".encode()))
            i += 5
        else:
            n = 1
            while n <= 4 and i + n <= len(data):
                try:
                    ch = data[i:i + n].decode("utf-8")
                    break
                except UnicodeDecodeError:
                    n += 1
            else:
                ch, n = "\ufffd", 1
            out.append((0, ch.encode("utf-8")))
            i += n
    return out


def match_string(grammar: Grammar, data: bytes) -> bool:
    st = GrammarState(grammar)
    for tok, piece in _pieces(data):
        try:
            st.accept_token(tok, piece)
        except GrammarError:
            return False
    return st.can_end()


def _grammar(case) -> Grammar:
    text = case["text"].encode("latin-1")
    if case["kind"] == "schema":
        text = json_schema_to_grammar(json.loads(text)).encode("utf-8")
    return Grammar(parse(text))


@pytest.mark.parametrize("case", CASES, ids=[f"{c['kind']}-{c['desc'][:30]}" for c in CASES])
def test_strings_accepted_and_rejected_as_llama_cpp(case):
    g = _grammar(case)
    wrong = [s for s in case["passing"] if not match_string(g, s.encode("latin-1"))]
    wrong += [s for s in case["failing"] if match_string(g, s.encode("latin-1"))]
    assert not wrong


def test_failure_missing_root_parses_without_root():
    g = parse('\n        rot ::= expr\n        expr ::= term ("+" term)*\n'
              '        term ::= number\n        number ::= [0-9]+')
    assert g.rules and "root" not in g.symbol_ids
    with pytest.raises(GrammarError, match="root"):
        Grammar(g)


def test_failure_missing_reference():
    with pytest.raises(GrammarError, match="numero"):
        parse('root ::= expr\n        expr ::= term ("+" term)*\n        term ::= numero\n'
              '        number ::= [0-9]+')


LEFT_RECURSIVE = [
    'root ::= "a" | root "a"',
    '\n        root ::= asdf\n        asdf ::= "a" | asdf "a"\n        ',
    '\n        root ::= asdf\n        asdf ::= "a" | foo "b"\n        foo ::= "c" | asdf "d" | "e"',
    '\n        root ::= asdf\n        asdf ::= "a" | foo "b"\n        foo ::= "c" | empty asdf "d" | "e"\n'
    '        empty ::= "blah" | ',
]


@pytest.mark.parametrize("text", LEFT_RECURSIVE)
def test_failure_left_recursion(text):
    with pytest.raises(GrammarError, match="left recursion") as exc:
        Grammar.from_text(text)
    assert exc.value.line >= 1 and exc.value.column >= 1


def test_missing_and_custom_root_symbol():
    with pytest.raises(GrammarError):
        Grammar.from_text('\n        root ::= "foobar"\n    ', root="nonexistent")
    custom = '\n        foobar ::= "foobar"\n    '
    with pytest.raises(GrammarError):
        Grammar.from_text(custom, root="root")
    g = Grammar.from_text(custom, root="foobar")
    assert match_string(g, b"foobar") and not match_string(g, b"fooba")
