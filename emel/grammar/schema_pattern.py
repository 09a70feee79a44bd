"""Regex `pattern` of a JSON schema string -> GBNF, and GBNF repetitions.

Follows llama.cpp common/json-schema-to-grammar.cpp (`_pattern_to_rule`, `build_repetition`,
`gbnf_escape_length`): only patterns anchored with ^ and $; `(?:`, classes, `.`, `*+?{m,n}` and
escapes GBNF shares; other syntax raises `UnsupportedPattern` (the caller then accepts any string)
and malformed regexes raise `InvalidPattern`.
"""

from __future__ import annotations

import re

INT_MAX = 2**31 - 1
_MAX_PATTERN_DEPTH = 100
_NON_LITERAL_SET = set("|.()[]{}*+?^$")
_ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS = set("^$.[]()|{}*+?")


def build_repetition(item_rule: str, min_items: int, max_items: int, separator_rule: str = "") -> str:
    has_max = max_items != INT_MAX
    if max_items == 0:
        return ""
    if min_items == 0 and max_items == 1:
        return item_rule + "?"
    if not separator_rule:
        if min_items == 1 and not has_max:
            return item_rule + "+"
        if min_items == 0 and not has_max:
            return item_rule + "*"
        return item_rule + "{" + str(min_items) + "," + (str(max_items) if has_max else "") + "}"
    result = item_rule + " " + build_repetition(
        "(" + separator_rule + " " + item_rule + ")", 0 if min_items == 0 else min_items - 1,
        max_items - 1 if has_max else max_items)
    if min_items == 0:
        result = "(" + result + ")?"
    return result


def _gbnf_escape_length(pattern: str, pos: int) -> int:
    if pos + 1 >= len(pattern) or pattern[pos] != "\\":
        return 0
    e = pattern[pos + 1]
    if e in "trn\\\"[]-":
        return 2
    n_hex = {"x": 2, "u": 4, "U": 8}.get(e)
    if n_hex is None or pos + 2 + n_hex > len(pattern):
        return 0
    if not all(h in "0123456789abcdefABCDEF" for h in pattern[pos + 2:pos + 2 + n_hex]):
        return 0
    return 2 + n_hex


def _stoi(s: str) -> int:
    m = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", s)
    if not m:
        raise ValueError(s)
    v = int(m.group(1))
    if not -(2**31) <= v <= INT_MAX:
        raise ValueError(s)
    return v


class UnsupportedPattern(Exception):
    """A valid regex with no grammar equivalent (the converter falls back to any string)."""


class InvalidPattern(Exception):
    """Not a valid regex (the converter reports an error)."""


def pattern_to_rule(conv, pattern: str, name: str) -> str:
    """_pattern_to_rule: an anchored regex as a GBNF rule added to `conv` (a SchemaConverter)."""
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$":
        raise UnsupportedPattern("not anchored with '^' and '$'")
    sub = pattern[1:-1]
    length = len(sub)
    sub_rule_ids: dict[str, str] = {}
    st = {"i": 0, "depth": 0}

    def to_rule(item: tuple[str, bool]) -> str:
        return f'"{item[0]}"' if item[1] else item[0]

    def get_dot() -> str:
        rule = "[\\U00000000-\\U0010FFFF]" if conv.dotall else "[^\\x0A\\x0D]"
        return conv.add_rule("dot", rule)

    def transform() -> tuple[str, bool]:
        seq: list[tuple[str, bool]] = []

        def join_seq() -> tuple[str, bool]:
            ret: list[tuple[str, bool]] = []
            literal = ""
            for item in seq:
                if item[1]:
                    literal += item[0]
                else:
                    if literal:
                        ret.append((literal, True))
                        literal = ""
                    ret.append(item)
            if literal:
                ret.append((literal, True))
            return " ".join(to_rule(x) for x in ret), False

        while st["i"] < length:
            i = st["i"]
            c = sub[i]
            if c == ".":
                seq.append((get_dot(), False))
                st["i"] += 1
            elif c == "(":
                st["i"] += 1
                i = st["i"]
                if i < length and sub[i] == "?":
                    if i + 1 < length and sub[i + 1] == ":":
                        st["i"] += 2
                    else:
                        raise UnsupportedPattern("unsupported group syntax")
                st["depth"] += 1
                if st["depth"] > _MAX_PATTERN_DEPTH:
                    raise UnsupportedPattern("pattern nesting too deep")
                seq.append(("(" + to_rule(transform()) + ")", False))
            elif c == ")":
                st["i"] += 1
                if st["depth"] == 0:
                    raise InvalidPattern("unbalanced parentheses")
                st["depth"] -= 1
                return join_seq()
            elif c in "^$":
                raise UnsupportedPattern("anchor inside the pattern")
            elif c == "[":
                sq = c
                i += 1
                while i < length and sub[i] != "]":
                    if sub[i] == "\\":
                        n = _gbnf_escape_length(sub, i)
                        if n == 0:
                            raise UnsupportedPattern("unsupported escape in character class: "
                                                      + sub[i:i + 2])
                        sq += sub[i:i + n]
                        i += n
                    else:
                        sq += sub[i]
                        i += 1
                if i >= length:
                    raise InvalidPattern("unterminated character class")
                st["i"] = i + 1
                seq.append((sq + "]", False))
            elif c == "|":
                seq.append(("|", False))
                st["i"] += 1
            elif c in "*+?":
                if not seq:
                    raise InvalidPattern("nothing to repeat")
                seq[-1] = (to_rule(seq[-1]) + c, False)
                st["i"] += 1
            elif c == "{":
                cb = c
                i += 1
                while i < length and sub[i] != "}":
                    cb += sub[i]
                    i += 1
                if i >= length:
                    raise UnsupportedPattern("unterminated curly brackets")
                cb += "}"
                st["i"] = i + 1
                nums = cb[1:-1].split(",")
                min_times, max_times = 0, INT_MAX
                if len(nums) not in (1, 2):
                    raise UnsupportedPattern("wrong number of values in curly brackets")
                try:
                    if len(nums) == 1:
                        min_times = max_times = _stoi(nums[0])
                    else:
                        if nums[0]:
                            min_times = _stoi(nums[0])
                        if nums[1]:
                            max_times = _stoi(nums[1])
                except ValueError:
                    raise UnsupportedPattern("invalid number in curly brackets") from None
                if not seq:
                    raise InvalidPattern("nothing to repeat")
                sub_s, is_lit = seq[-1]
                if not is_lit:
                    if sub_s not in sub_rule_ids:
                        sub_rule_ids[sub_s] = ""
                    if not sub_rule_ids[sub_s]:
                        sub_rule_ids[sub_s] = conv.add_rule(f"{name}-{len(sub_rule_ids)}", sub_s)
                    sub_s = sub_rule_ids[sub_s]
                seq[-1] = (build_repetition(f'"{sub_s}"' if is_lit else sub_s,
                                            min_times, max_times, ""), False)
            else:
                literal = ""
                while i < length:
                    if sub[i] == "\\":
                        if i == length - 1:
                            raise InvalidPattern("trailing backslash")
                        nxt = sub[i + 1]
                        if nxt in _ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS:
                            literal += nxt
                            i += 2
                        else:
                            n = _gbnf_escape_length(sub, i)
                            if n == 0:
                                raise UnsupportedPattern("unsupported escape: " + sub[i:i + 2])
                            literal += sub[i:i + n]
                            i += n
                    elif sub[i] == '"':
                        literal += '\\"'
                        i += 1
                    elif sub[i] not in _NON_LITERAL_SET and (
                            i == length - 1 or not literal or sub[i + 1] == "."
                            or sub[i + 1] not in _NON_LITERAL_SET):
                        literal += sub[i]
                        i += 1
                    else:
                        break
                st["i"] = i
                if not literal:
                    raise UnsupportedPattern(f"unsupported character: {c}")
                seq.append((literal, True))
        return join_seq()

    rule = to_rule(transform())
    if st["depth"] != 0:
        raise InvalidPattern("unbalanced parentheses")
    return conv.add_rule(name, '"\\"" (' + rule + ') "\\""')
