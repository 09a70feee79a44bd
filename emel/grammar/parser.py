"""GBNF parser: grammar text -> rules of (type, value) elements and symbol ids.

Follows llama.cpp src/llama-grammar.cpp (`llama_grammar_parser`) in behaviour: the same element
encoding (`GreType`), the same symbol ids (generated rules are named `<rule>_<id>`), the same
rewrite of `*`, `+`, `?` and `{m,n}` into helper rules, the same limits on repetitions.

Differences on purpose: where llama.cpp logs an error and returns empty rules, `parse` raises
`GrammarError` with the line and column of the problem; a repetition `{m,n}` with `n < m` (which
makes llama.cpp loop) is an error; `<token>` references need a `tokenize` callback.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

from emel.errors import GrammarError

MAX_REPETITION_THRESHOLD = 2000
_UINT64_MAX = (1 << 64) - 1


class GreType(enum.IntEnum):
    """llama_gretype: the kind of one grammar element."""

    END = 0             # end of rule definition
    ALT = 1             # start of alternate definition for rule
    RULE_REF = 2        # non-terminal: value is a rule id
    CHAR = 3            # terminal: value is a code point
    CHAR_NOT = 4        # inverse char(s) ([^a], [^a-b], [^abc])
    CHAR_RNG_UPPER = 5  # makes the preceding CHAR / CHAR_ALT an inclusive range ([a-z])
    CHAR_ALT = 6        # adds an alternate char to the preceding char element ([ab], [a-zA])
    CHAR_ANY = 7        # any character (.)
    TOKEN = 8           # terminal: value is a token id (<[id]>)
    TOKEN_NOT = 9       # inverse token (!<[id]>)


Element = tuple[int, int]  # (GreType, value): code point, rule id or token id


@dataclass
class ParsedGrammar:
    """What `parse` returns: `rules[id]` is a list of elements ending with END."""

    rules: list[list[Element]]          # [n_rules] elements of each rule, END-terminated
    symbol_ids: dict[str, int]          # rule name -> rule id (generated names included)
    source: str = field(repr=False, default="")
    positions: dict[int, tuple[int, int]] = field(repr=False, default_factory=dict)  # rule id ->
    # (line, column) of the definition it comes from (a generated rule: its parent's)

    def rule_names(self) -> dict[int, str]:
        return {v: k for k, v in self.symbol_ids.items()}


def parse(src: str | bytes, tokenize: Callable[[bytes], list[int]] | None = None) -> ParsedGrammar:
    """Parse GBNF text into rules; raises GrammarError (with .line, .column) when malformed.

    tokenize: for `<token>` references, maps the bytes `<token>` to token ids (parse_special).
    """
    if isinstance(src, str):
        data = src.encode("utf-8")
    elif isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    else:
        raise GrammarError(f"grammar must be str or bytes, got {type(src).__name__}")
    nul = data.find(b"\0")
    if nul >= 0:  # llama.cpp reads a C string
        data = data[:nul]
    p = _Parser(data, tokenize)
    p.parse()
    positions = {rid: p.line_col(off) for rid, off in p.def_pos.items()}
    return ParsedGrammar(p.rules, p.symbol_ids, data.decode("utf-8", errors="replace"), positions)


def format_rules(g: ParsedGrammar) -> str:
    """Print rules as llama_grammar_parser::print does (`name ::= [a] rule-ref ...`)."""
    names = g.rule_names()
    out = []
    for rid, rule in enumerate(g.rules):
        parts = [f"{names[rid]} ::= "]
        for i, (t, v) in enumerate(rule[:-1]):
            if t == GreType.ALT:
                parts.append("| ")
            elif t == GreType.RULE_REF:
                parts.append(f"{names[v]} ")
            elif t == GreType.CHAR:
                parts.append("[" + _print_char(v))
            elif t == GreType.CHAR_NOT:
                parts.append("[^" + _print_char(v))
            elif t == GreType.CHAR_RNG_UPPER:
                parts.append("-" + _print_char(v))
            elif t == GreType.CHAR_ALT:
                parts.append(_print_char(v))
            elif t == GreType.CHAR_ANY:
                parts.append(".")
            elif t == GreType.TOKEN:
                parts.append(f"<[{v}]> ")
            elif t == GreType.TOKEN_NOT:
                parts.append(f"!<[{v}]> ")
            if _is_char(t) and rule[i + 1][0] not in (GreType.CHAR_ALT, GreType.CHAR_RNG_UPPER,
                                                      GreType.CHAR_ANY):
                parts.append("] ")
        out.append("".join(parts))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------

def _print_char(c: int) -> str:
    return chr(c) if 0x20 <= c <= 0x7F else f"<U+{c:04X}>"


def _is_char(t: int) -> bool:
    return t in (GreType.CHAR, GreType.CHAR_NOT, GreType.CHAR_ALT, GreType.CHAR_RNG_UPPER,
                 GreType.CHAR_ANY)


def _is_digit(b: int) -> bool:
    return 0x30 <= b <= 0x39


def _is_word(b: int) -> bool:
    return (0x61 <= b <= 0x7A) or (0x41 <= b <= 0x5A) or b == 0x2D or _is_digit(b)


_UTF8_LEN = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4)
_ESCAPES = {ord("t"): 9, ord("r"): 13, ord("n"): 10, ord("\\"): 0x5C, ord('"'): 0x22,
            ord("["): 0x5B, ord("]"): 0x5D, ord("-"): 0x2D}


class _Parser:
    def __init__(self, data: bytes, tokenize):
        self.s = data + b"\0"  # sentinel: s[n] == 0 as in the C string
        self.n = len(data)
        self.tokenize = tokenize
        self.symbol_ids: dict[str, int] = {}
        self.rules: list[list[Element]] = []
        self.first_ref: dict[int, int] = {}  # rule id -> byte offset of its first reference
        self.def_pos: dict[int, int] = {}  # rule id -> byte offset of the definition it is from
        self.cur_def = 0

    # --- errors -------------------------------------------------------------------------------
    def line_col(self, pos: int) -> tuple[int, int]:
        pos = min(pos, self.n)
        line = self.s.count(b"\n", 0, pos) + 1
        line_start = self.s.rfind(b"\n", 0, pos) + 1
        return line, len(self.s[line_start:pos].decode("utf-8", errors="replace")) + 1

    def fail(self, msg: str, pos: int) -> None:
        pos = min(pos, self.n)
        line, col = self.line_col(pos)
        line_start = self.s.rfind(b"\n", 0, pos) + 1
        end = self.s.find(b"\n", pos)
        text = self.s[line_start:end if end >= 0 else self.n].decode("utf-8", errors="replace")
        err = GrammarError(f"{msg} at line {line}, column {col}: {text.strip()!r}")
        err.line, err.column = line, col
        raise err

    # --- symbols --------------------------------------------------------------------------------
    def get_symbol_id(self, name: str) -> int:
        return self.symbol_ids.setdefault(name, len(self.symbol_ids))

    def generate_symbol_id(self, base: str) -> int:
        next_id = len(self.symbol_ids)
        self.symbol_ids[f"{base}_{next_id}"] = next_id
        self.def_pos[next_id] = self.cur_def
        return next_id

    def add_rule(self, rule_id: int, rule: list[Element]) -> None:
        if len(self.rules) <= rule_id:
            self.rules.extend([] for _ in range(rule_id + 1 - len(self.rules)))
        self.rules[rule_id] = rule

    # --- lexing -----------------------------------------------------------------------------------
    def parse_space(self, pos: int, newline_ok: bool) -> int:
        s = self.s
        while True:
            c = s[pos]
            if c == 0x23:  # '#'
                while s[pos] not in (0, 0x0D, 0x0A):
                    pos += 1
            elif c in (0x20, 0x09) or (newline_ok and c in (0x0D, 0x0A)):
                pos += 1
            else:
                return pos

    def parse_name(self, pos: int) -> int:
        end = pos
        while _is_word(self.s[end]):
            end += 1
        if end == pos:
            self.fail("expecting name", pos)
        return end

    def parse_int(self, pos: int) -> tuple[int, int]:
        end = pos
        while _is_digit(self.s[end]):
            end += 1
        if end == pos:
            self.fail("expecting integer", pos)
        value = int(self.s[pos:end])
        if value > _UINT64_MAX:
            self.fail("integer out of range", pos)
        return value, end

    def parse_hex(self, pos: int, size: int) -> tuple[int, int]:
        value = 0
        end = pos
        while end < pos + size and self.s[end]:
            c = self.s[end]
            if 0x61 <= c <= 0x66:
                d = c - 0x61 + 10
            elif 0x41 <= c <= 0x46:
                d = c - 0x41 + 10
            elif _is_digit(c):
                d = c - 0x30
            else:
                break
            value = (value << 4) + d
            end += 1
        if end != pos + size:
            self.fail(f"expecting {size} hex chars", pos)
        return value, end

    def decode_utf8(self, pos: int) -> tuple[int, int]:
        s = self.s
        first = s[pos]
        n = _UTF8_LEN[first >> 4]
        value = first & ((1 << (8 - n)) - 1)
        end = pos + n
        p = pos + 1
        while p < end and s[p]:
            value = (value << 6) + (s[p] & 0x3F)
            p += 1
        return value, p

    def parse_char(self, pos: int) -> tuple[int, int]:
        s = self.s
        if s[pos] == 0x5C:  # backslash
            e = s[pos + 1]
            if e == 0x78:
                return self.parse_hex(pos + 2, 2)
            if e == 0x75:
                return self.parse_hex(pos + 2, 4)
            if e == 0x55:
                return self.parse_hex(pos + 2, 8)
            if e in _ESCAPES:
                return _ESCAPES[e], pos + 2
            self.fail("unknown escape", pos)
        if s[pos]:
            return self.decode_utf8(pos)
        self.fail("unexpected end of input", pos)

    def parse_token(self, pos: int) -> tuple[int, int]:
        s = self.s
        start = pos
        if s[pos] != 0x3C:
            self.fail("expecting '<'", pos)
        pos += 1
        if s[pos] == 0x5B:  # <[id]>
            pos += 1
            tid, pos = self.parse_int(pos)
            if tid > 0xFFFFFFFF:
                self.fail("parsed token id is too big", pos)
            if s[pos] != 0x5D:
                self.fail("expecting ']'", pos)
            pos += 1
            if s[pos] != 0x3E:
                self.fail("expecting '>'", pos)
            return tid, pos + 1
        if self.tokenize is None:
            self.fail("no vocab to parse token", start)
        while s[pos] and s[pos] != 0x3E:
            pos += 1
        if s[pos] != 0x3E:
            self.fail("expecting '>'", pos)
        pos += 1
        ids = list(self.tokenize(bytes(s[start:pos])))
        if len(ids) != 1:
            self.fail(f"invalid token {s[start:pos].decode('utf-8', 'replace')!r}", start)
        return int(ids[0]), pos

    # --- grammar ----------------------------------------------------------------------------------
    def parse(self) -> None:
        pos = self.parse_space(0, True)
        while self.s[pos]:
            pos = self.parse_rule(pos)
        names = {v: k for k, v in self.symbol_ids.items()}
        for rid, rule in enumerate(self.rules):
            if not rule:
                self.fail(f"undefined rule identifier '{names[rid]}'", self.first_ref.get(rid, 0))
        for rule in self.rules:
            for t, v in rule:
                if t == GreType.RULE_REF and (v >= len(self.rules) or not self.rules[v]):
                    self.fail(f"undefined rule identifier '{names[v]}'", self.first_ref.get(v, 0))

    def parse_rule(self, pos: int) -> int:
        s = self.s
        name_end = self.parse_name(pos)
        name = s[pos:name_end].decode("ascii")
        after = self.parse_space(name_end, False)
        rule_id = self.get_symbol_id(name)
        self.def_pos[rule_id] = self.cur_def = pos
        if s[after:after + 3] != b"::=":
            self.fail("expecting ::=", after)
        pos = self.parse_space(after + 3, True)
        pos = self.parse_alternates(pos, name, rule_id, False)
        if s[pos] == 0x0D:
            pos += 2 if s[pos + 1] == 0x0A else 1
        elif s[pos] == 0x0A:
            pos += 1
        elif s[pos]:
            self.fail("expecting newline or end", pos)
        return self.parse_space(pos, True)

    def parse_alternates(self, pos: int, rule_name: str, rule_id: int, nested: bool) -> int:
        rule: list[Element] = []
        pos = self.parse_sequence(pos, rule_name, rule, nested)
        while self.s[pos] == 0x7C:  # '|'
            rule.append((GreType.ALT, 0))
            pos = self.parse_space(pos + 1, True)
            pos = self.parse_sequence(pos, rule_name, rule, nested)
        rule.append((GreType.END, 0))
        self.add_rule(rule_id, rule)
        return pos

    def parse_sequence(self, pos: int, rule_name: str, rule: list[Element], nested: bool) -> int:
        s = self.s
        last_sym_start = len(rule)
        n_prev_rules = 1

        def repeat(at: int, min_times: int, max_times: int) -> None:
            nonlocal n_prev_rules
            no_max = max_times == _UINT64_MAX
            if last_sym_start == len(rule):
                self.fail("expecting preceding item to */+/?/{", at)
            if not no_max and max_times < min_times:
                self.fail(f"repetition maximum {max_times} is below its minimum {min_times}", at)
            prev = rule[last_sym_start:]
            total = max_times if (not no_max and max_times > 0) else (min_times if min_times > 0 else 1)
            if n_prev_rules * total > MAX_REPETITION_THRESHOLD:
                self.fail("number of rules that are going to be repeated multiplied by the new "
                          "repetition exceeds sane defaults", at)
            if min_times == 0:
                del rule[last_sym_start:]
            else:
                for _ in range(1, min_times):
                    rule.extend(prev)
            last_rec_rule_id = 0
            n_opt = 1 if no_max else max_times - min_times
            for i in range(n_opt):
                rec_rule = list(prev)
                rec_rule_id = self.generate_symbol_id(rule_name)
                if i > 0 or no_max:
                    rec_rule.append((GreType.RULE_REF, rec_rule_id if no_max else last_rec_rule_id))
                rec_rule.append((GreType.ALT, 0))
                rec_rule.append((GreType.END, 0))
                self.add_rule(rec_rule_id, rec_rule)
                last_rec_rule_id = rec_rule_id
            if n_opt > 0:
                rule.append((GreType.RULE_REF, last_rec_rule_id))
            n_prev_rules *= total

        while s[pos]:
            c = s[pos]
            if c == 0x22:  # '"' literal string
                open_pos = pos
                pos += 1
                last_sym_start = len(rule)
                n_prev_rules = 1
                while s[pos] != 0x22:
                    if not s[pos]:
                        self.fail("unexpected end of input (unterminated string)", open_pos)
                    ch, pos = self.parse_char(pos)
                    rule.append((GreType.CHAR, ch))
                pos = self.parse_space(pos + 1, nested)
            elif c == 0x5B:  # '[' char range(s)
                open_pos = pos
                pos += 1
                start_type = GreType.CHAR
                if s[pos] == 0x5E:
                    pos += 1
                    start_type = GreType.CHAR_NOT
                last_sym_start = len(rule)
                n_prev_rules = 1
                while s[pos] != 0x5D:
                    if not s[pos]:
                        self.fail("unexpected end of input (unterminated '[')", open_pos)
                    ch, pos = self.parse_char(pos)
                    t = GreType.CHAR_ALT if last_sym_start < len(rule) else start_type
                    rule.append((t, ch))
                    if s[pos] == 0x2D and s[pos + 1] != 0x5D:
                        if not s[pos + 1]:
                            self.fail("unexpected end of input (unterminated '[')", open_pos)
                        ch, pos = self.parse_char(pos + 1)
                        rule.append((GreType.CHAR_RNG_UPPER, ch))
                pos = self.parse_space(pos + 1, nested)
            elif c == 0x3C or c == 0x21:  # '<' or '!' token
                t = GreType.TOKEN
                if c == 0x21:
                    t = GreType.TOKEN_NOT
                    pos += 1
                tid, end = self.parse_token(pos)
                last_sym_start = len(rule)
                n_prev_rules = 1
                rule.append((t, tid))
                pos = self.parse_space(end, nested)
            elif _is_word(c):  # rule reference
                name_end = self.parse_name(pos)
                ref_id = self.get_symbol_id(s[pos:name_end].decode("ascii"))
                self.first_ref.setdefault(ref_id, pos)
                pos = self.parse_space(name_end, nested)
                last_sym_start = len(rule)
                n_prev_rules = 1
                rule.append((GreType.RULE_REF, ref_id))
            elif c == 0x28:  # '(' grouping
                open_pos = pos
                pos = self.parse_space(pos + 1, True)
                n_rules_before = len(self.symbol_ids)
                sub_id = self.generate_symbol_id(rule_name)
                pos = self.parse_alternates(pos, rule_name, sub_id, True)
                n_prev_rules = max(1, len(self.symbol_ids) - n_rules_before)
                last_sym_start = len(rule)
                rule.append((GreType.RULE_REF, sub_id))
                if s[pos] != 0x29:
                    if not s[pos]:
                        self.fail("unbalanced '(': expecting ')' before end of input", open_pos)
                    self.fail("expecting ')'", pos)
                pos = self.parse_space(pos + 1, nested)
            elif c == 0x2E:  # '.' any char
                last_sym_start = len(rule)
                n_prev_rules = 1
                rule.append((GreType.CHAR_ANY, 0))
                pos = self.parse_space(pos + 1, nested)
            elif c in (0x2A, 0x2B, 0x3F):  # '*', '+', '?'
                at = pos
                pos = self.parse_space(pos + 1, nested)
                if c == 0x2A:
                    repeat(at, 0, _UINT64_MAX)
                elif c == 0x2B:
                    repeat(at, 1, _UINT64_MAX)
                else:
                    repeat(at, 0, 1)
            elif c == 0x7B:  # '{'
                at = pos
                pos = self.parse_space(pos + 1, nested)
                if not _is_digit(s[pos]):
                    self.fail("expecting an int", pos)
                min_times, end = self.parse_int(pos)
                pos = self.parse_space(end, nested)
                max_times = _UINT64_MAX
                if s[pos] == 0x7D:
                    max_times = min_times
                    pos = self.parse_space(pos + 1, nested)
                elif s[pos] == 0x2C:
                    pos = self.parse_space(pos + 1, nested)
                    if _is_digit(s[pos]):
                        max_times, end = self.parse_int(pos)
                        pos = self.parse_space(end, nested)
                    if s[pos] != 0x7D:
                        self.fail("expecting '}'", pos)
                    pos = self.parse_space(pos + 1, nested)
                else:
                    self.fail("expecting ','", pos)
                if min_times > MAX_REPETITION_THRESHOLD:
                    self.fail("number of repetitions exceeds sane defaults", at)
                if max_times != _UINT64_MAX and max_times > MAX_REPETITION_THRESHOLD:
                    max_times = _UINT64_MAX
                repeat(at, min_times, max_times)
            else:
                break
        return pos
