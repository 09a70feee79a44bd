"""Extract the case tables of llama.cpp's grammar tests into JSON fixtures.

Reads tests/test-grammar-parser.cpp, tests/test-grammar-integration.cpp and
tests/test-json-schema-to-grammar.cpp of llama.cpp (llama-cpp-python 0.3.36's vendor tree) and
writes, next to this script:
  parser_cases.json       verify_parsing (grammar, symbol ids, flattened rules) / verify_failure
  integration_cases.json  test_grammar / test_schema (grammar or schema, passing, failing strings)
  schema_cases.json       json-schema-to-grammar test({status, name, schema, expected grammar})

The C++ literals are decoded by a small C++ tokenizer (raw strings, escapes, adjacent literal
concatenation, `token(id)` which the integration test encodes as 0xff + 4 big-endian bytes).
Byte strings are stored as latin-1 text ("bytes" fields) so non-UTF-8 bytes survive JSON.

Usage: python parity_fixtures/grammar/extract_llama_tests.py [LLAMA_CPP_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = Path.home() / ".cache/emel-ref/llama_cpp_python-0.3.36/vendor/llama.cpp"
VERSION = "llama-cpp-python 0.3.36 (vendor/llama.cpp)"

GRETYPES = {
    "LLAMA_GRETYPE_END": 0, "LLAMA_GRETYPE_ALT": 1, "LLAMA_GRETYPE_RULE_REF": 2,
    "LLAMA_GRETYPE_CHAR": 3, "LLAMA_GRETYPE_CHAR_NOT": 4, "LLAMA_GRETYPE_CHAR_RNG_UPPER": 5,
    "LLAMA_GRETYPE_CHAR_ALT": 6, "LLAMA_GRETYPE_CHAR_ANY": 7, "LLAMA_GRETYPE_TOKEN": 8,
    "LLAMA_GRETYPE_TOKEN_NOT": 9,
}
_SIMPLE_ESC = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39, "?": 63, "a": 7,
               "b": 8, "f": 12, "v": 11}


def tokenize(src: str) -> list[tuple[str, object]]:
    """C++ tokens: ('str', bytes), ('chr', int), ('num', int), ('id', str), ('op', str)."""
    out = []
    i, n = 0, len(src)
    at_line_start = True
    while i < n:
        c = src[i]
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#" and at_line_start:
            while i < n and src[i] != "\n":
                i += 1
            continue
        at_line_start = False
        if src.startswith("//", i):
            while i < n and src[i] != "\n":
                i += 1
        elif src.startswith("/*", i):
            i = src.index("*/", i) + 2
        elif c == "R" and i + 1 < n and src[i + 1] == '"':
            j = src.index("(", i)
            delim = src[i + 2:j]
            end = src.index(")" + delim + '"', j)
            out.append(("str", src[j + 1:end].encode("utf-8")))
            i = end + len(delim) + 2
        elif c == '"':
            buf = bytearray()
            i += 1
            while src[i] != '"':
                if src[i] == "\\":
                    e = src[i + 1]
                    if e == "x":
                        j = i + 2
                        while j < n and src[j] in "0123456789abcdefABCDEF":
                            j += 1
                        buf.append(int(src[i + 2:j], 16) & 0xFF)
                        i = j
                    elif e in "uU":
                        k = 4 if e == "u" else 8
                        buf += chr(int(src[i + 2:i + 2 + k], 16)).encode("utf-8")
                        i += 2 + k
                    else:
                        buf.append(_SIMPLE_ESC[e])
                        i += 2
                else:
                    buf += src[i].encode("utf-8")
                    i += 1
            out.append(("str", bytes(buf)))
            i += 1
        elif c == "'":
            if src[i + 1] == "\\":
                val = _SIMPLE_ESC[src[i + 2]]
                i += 4
            else:
                val = ord(src[i + 1])
                i += 3
            out.append(("chr", val))
        elif c.isdigit():
            j = i
            while j < n and (src[j].isalnum()):
                j += 1
            out.append(("num", int(src[i:j].rstrip("uUlL"), 0)))
            i = j
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            word = src[i:j]
            while j < n and src[j] == ":" and src.startswith("::", j):
                k = j + 2
                while k < n and (src[k].isalnum() or src[k] == "_"):
                    k += 1
                word = src[i:k]
                j = k
            out.append(("id", word))
            i = j
        else:
            out.append(("op", c))
            i += 1
    return out


class _Bad(Exception):
    pass


class _Expr:
    def __init__(self, toks, i):
        self.t = toks
        self.i = i

    def peek(self):
        return self.t[self.i]

    def take(self, kind=None, val=None):
        tok = self.t[self.i]
        if (kind and tok[0] != kind) or (val is not None and tok[1] != val):
            raise _Bad(tok)
        self.i += 1
        return tok

    def value(self):
        tok = self.peek()
        if tok == ("op", "{"):
            self.take()
            items = []
            while self.peek() != ("op", "}"):
                items.append(self.value())
                if self.peek() == ("op", ","):
                    self.take()
            self.take("op", "}")
            return items
        parts = [self.term()]
        while self.peek() == ("op", "+"):
            self.take()
            parts.append(self.term())
        if len(parts) == 1:
            return parts[0]
        if not all(isinstance(p, bytes) for p in parts):
            raise _Bad(parts)
        return b"".join(parts)

    def term(self):
        tok = self.take()
        if tok[0] == "str":
            s = tok[1]
            while self.peek()[0] == "str":
                s += self.take()[1]
            return s
        if tok[0] in ("chr", "num"):
            return tok[1]
        if tok == ("op", "-"):
            return -self.take("num")[1]
        if tok[0] == "id":
            if tok[1] == "token" and self.peek() == ("op", "("):
                self.take()
                tid = self.take("num")[1]
                self.take("op", ")")
                return b"\xff" + tid.to_bytes(4, "big")
            if tok[1] in GRETYPES:
                return GRETYPES[tok[1]]
            if tok[1] in ("SUCCESS", "FAILURE"):
                return tok[1]
        raise _Bad(tok)


def calls(toks, name):
    """Argument lists of every call `name(...)` whose arguments are all literal values."""
    res = []
    for i, tok in enumerate(toks):
        if tok == ("id", name) and toks[i + 1] == ("op", "("):
            p = _Expr(toks, i + 2)
            try:
                args = []
                while p.peek() != ("op", ")"):
                    args.append(p.value())
                    if p.peek() == ("op", ","):
                        p.take()
                res.append(args)
            except (_Bad, IndexError):
                continue
    return res


def _b(s: bytes) -> str:
    return s.decode("latin-1")


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else DEFAULT_DIR
    tests = root / "tests"

    toks = tokenize((tests / "test-grammar-parser.cpp").read_text(encoding="utf-8"))
    parsing = [{"grammar": _b(a[0]), "symbols": [[_b(k), v] for k, v in a[1]],
                "rules": [[t, v] for t, v in a[2]]} for a in calls(toks, "verify_parsing")]
    failing = [_b(a[0]) for a in calls(toks, "verify_failure")]
    (HERE / "parser_cases.json").write_text(json.dumps(
        {"source": VERSION + " tests/test-grammar-parser.cpp", "parsing": parsing,
         "failures": failing}, indent=1, ensure_ascii=True) + "\n")

    toks = tokenize((tests / "test-grammar-integration.cpp").read_text(encoding="utf-8"))
    cases = []
    for kind in ("test_grammar", "test_schema"):
        for a in calls(toks, kind):
            cases.append({"kind": kind[5:], "desc": _b(a[0]), "text": _b(a[1]),
                          "passing": [_b(s) for s in (a[2] if len(a) > 2 else [])],
                          "failing": [_b(s) for s in (a[3] if len(a) > 3 else [])]})
    (HERE / "integration_cases.json").write_text(json.dumps(
        {"source": VERSION + " tests/test-grammar-integration.cpp",
         "encoding": "strings are latin-1 views of bytes; 0xff + 4 big-endian bytes = token id",
         "cases": cases}, indent=1, ensure_ascii=True) + "\n")

    toks = tokenize((tests / "test-json-schema-to-grammar.cpp").read_text(encoding="utf-8"))
    schema_cases = []
    for a in calls(toks, "test"):
        if len(a) == 1 and isinstance(a[0], list) and len(a[0]) == 4 and a[0][0] in ("SUCCESS", "FAILURE"):
            st, name, schema, grammar = a[0]
            schema_cases.append({"status": st, "name": name.decode("utf-8"),
                                 "schema": schema.decode("utf-8"),
                                 "grammar": grammar.decode("utf-8")})
    (HERE / "schema_cases.json").write_text(json.dumps(
        {"source": VERSION + " tests/test-json-schema-to-grammar.cpp", "cases": schema_cases},
        indent=1, ensure_ascii=False) + "\n")
    print(f"parser: {len(parsing)} parsing + {len(failing)} failures; integration: {len(cases)}; "
          f"schema: {len(schema_cases)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
