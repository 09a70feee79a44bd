"""JSON schema -> GBNF, and the built-in JSON grammar.

Follows llama.cpp common/json-schema-to-grammar.cpp (`common_chat_schema_converter`) over the
schema tree of emel/grammar/json_schema.py (common/json-schema.cpp): the same
rule names, the same rule bodies and the same sorted output, so llama.cpp's
tests/test-json-schema-to-grammar.cpp expectations compare exactly. Where llama.cpp throws
(std::runtime_error / std::invalid_argument), emel raises `GrammarError`. Conversion warnings
(unsupported regex patterns degrade to any string) are kept in `SchemaConverter.warnings`.

`JSON_GRAMMAR` is llama.cpp grammars/json.gbnf, used for `{"type": "json_object"}`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from emel.errors import GrammarError
from emel.grammar.json_schema import INT64_MAX, INT64_MIN, Node, SchemaDocument, schema_from_json
from emel.grammar.schema_pattern import (INT_MAX, InvalidPattern, UnsupportedPattern,
                                         build_repetition, pattern_to_rule)


JSON_GRAMMAR = r'''root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
'''

SPACE_RULE = r'| " " | "\n"{1,2} [ \t]{0,20}'

# name -> (content, deps)
PRIMITIVE_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "boolean": (r'("true" | "false")', ()),
    "decimal-part": (r"[0-9]{1,16}", ()),
    "integral-part": (r"[0] | [1-9] [0-9]{0,15}", ()),
    "number": (r'("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)?',
               ("integral-part", "decimal-part")),
    "integer": (r'("-"? integral-part)', ("integral-part",)),
    "value": (r"object | array | string | number | boolean | null",
              ("object", "array", "string", "number", "boolean", "null")),
    "object": (r'"{" space ( string ":" space value ("," space string ":" space value)* )? space "}"',
               ("string", "value")),
    "array": (r'"[" space ( value ("," space value)* )? space "]"', ("value",)),
    "uuid": (r'"\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" '
             r'[0-9a-fA-F]{12} "\""', ()),
    "char": (r'[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})', ()),
    "string": (r'"\"" char* "\""', ("char",)),
    "null": (r'"null"', ()),
}

STRING_FORMAT_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "date": (r'[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )', ()),
    "time": (r'([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? '
             r'( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )', ()),
    "date-time": (r'date "T" time', ("date", "time")),
    "date-string": (r'"\"" date "\""', ("date",)),
    "time-string": (r'"\"" time "\""', ("time",)),
    "date-time-string": (r'"\"" date-time "\""', ("date-time",)),
}

RESERVED_NAMES = {"root", *PRIMITIVE_RULES, *STRING_FORMAT_RULES}

_INVALID_RULE_CHARS_RE = re.compile(r"[^a-zA-Z0-9-]+")
_LITERAL_ESCAPES = {"\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}
_LITERAL_ESCAPE_RE = re.compile(r'[\r\n"\\]')


def json_schema_to_grammar(schema: Any) -> str:
    """GBNF text for a JSON schema (a dict, or JSON text), as llama.cpp's json_schema_to_grammar."""
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise GrammarError(f"JSON schema is not valid JSON: {e}") from None
    doc = schema if isinstance(schema, SchemaDocument) else schema_from_json(schema)
    conv = SchemaConverter(dotall=False, refs=doc.refs)
    conv.visit(doc.root, "")
    conv.check_errors()
    return conv.format_grammar()


class GrammarBuilder:
    """common_grammar_builder: what a `build_grammar` callback gets."""

    def __init__(self, conv: "SchemaConverter"):
        self._conv = conv

    def add_rule(self, name: str, rule: str) -> str:
        return self._conv.add_rule(name, rule)

    def add_schema(self, name: str, schema: "Node | dict", doc: "SchemaDocument | None" = None) -> str:
        """Add a schema (a JSON schema dict, or a node of `doc`) under `name`; returns its rule."""
        if isinstance(schema, dict):
            doc = schema_from_json(schema)
            schema = doc.root
        if doc is not None:
            self._conv.refs.update(doc.refs)
        return self._conv.visit(schema, "" if name == "root" else name)


def build_grammar(callback, dotall: bool = False) -> str:
    """build_grammar: a grammar from rules and schemas added by `callback(builder)`."""
    conv = SchemaConverter(dotall=dotall)
    callback(GrammarBuilder(conv))
    conv.check_errors()
    return conv.format_grammar()


def response_format_grammar(response_format: dict) -> str:
    """GBNF for an OpenAI-style response_format, as llama-server does.

    {"type": "json_object"} -> the built-in JSON grammar (grammars/json.gbnf);
    {"type": "json_object", "schema": S} and {"type": "json_schema", "json_schema": {"schema": S}}
    -> json_schema_to_grammar(S).
    """
    if not isinstance(response_format, dict):
        raise GrammarError("response_format must be an object")
    kind = response_format.get("type")
    if kind == "json_object":
        schema = response_format.get("schema")
        return JSON_GRAMMAR if schema is None else json_schema_to_grammar(schema)
    if kind == "json_schema":
        js = response_format.get("json_schema")
        if not isinstance(js, dict) or "schema" not in js:
            raise GrammarError('response_format "json_schema" needs {"json_schema": {"schema": ...}}')
        return json_schema_to_grammar(js["schema"])
    raise GrammarError(f"unsupported response_format type {kind!r} (expected json_object or json_schema)")


def format_literal(literal: str) -> str:
    """gbnf_format_literal: a GBNF string literal."""
    return '"' + _LITERAL_ESCAPE_RE.sub(lambda m: _LITERAL_ESCAPES[m.group(0)], literal) + '"'


def _dump(value: Any) -> str:
    """nlohmann::ordered_json::dump(): compact, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=True)


def build_min_max_int(min_value: int, max_value: int, out: list[str], decimals_left: int = 16,
                      top_level: bool = True) -> None:
    has_min = min_value != INT64_MIN
    has_max = max_value != INT64_MAX

    def digit_range(frm: str, to: str) -> None:
        out.append("[")
        out.append(frm if frm == to else frm + "-" + to)
        out.append("]")

    def more_digits(min_digits: int, max_digits: int) -> None:
        out.append("[0-9]")
        if min_digits == max_digits == 1:
            return
        out.append("{")
        out.append(str(min_digits))
        if max_digits != min_digits:
            out.append(",")
            if max_digits != INT_MAX:
                out.append(str(max_digits))
        out.append("}")

    def uniform_range(frm: str, to: str) -> None:
        i = 0
        while i < len(frm) and i < len(to) and frm[i] == to[i]:
            i += 1
        if i > 0:
            out.append('"' + frm[:i] + '"')
        if i < len(frm) and i < len(to):
            if i > 0:
                out.append(" ")
            sub_len = len(frm) - i - 1
            if sub_len > 0:
                from_sub, to_sub = frm[i + 1:], to[i + 1:]
                sub_zeros, sub_nines = "0" * sub_len, "9" * sub_len
                to_reached = False
                out.append("(")
                if from_sub == sub_zeros:
                    digit_range(frm[i], chr(ord(to[i]) - 1))
                    out.append(" ")
                    more_digits(sub_len, sub_len)
                else:
                    out.append("[" + frm[i] + "] ")
                    out.append("(")
                    uniform_range(from_sub, sub_nines)
                    out.append(")")
                    if ord(frm[i]) < ord(to[i]) - 1:
                        out.append(" | ")
                        if to_sub == sub_nines:
                            digit_range(chr(ord(frm[i]) + 1), to[i])
                            to_reached = True
                        else:
                            digit_range(chr(ord(frm[i]) + 1), chr(ord(to[i]) - 1))
                        out.append(" ")
                        more_digits(sub_len, sub_len)
                if not to_reached:
                    out.append(" | ")
                    digit_range(to[i], to[i])
                    out.append(" ")
                    uniform_range(sub_zeros, to_sub)
                out.append(")")
            else:
                out.append("[" + frm[i] + "-" + to[i] + "]")

    if has_min and has_max:
        if min_value < 0 and max_value < 0:
            out.append('"-" (')
            build_min_max_int(-max_value, -min_value, out, decimals_left, True)
            out.append(")")
            return
        if min_value < 0:
            out.append('"-" (')
            build_min_max_int(0, -min_value, out, decimals_left, True)
            out.append(") | ")
            min_value = 0
        min_s, max_s = str(min_value), str(max_value)
        for digits in range(len(min_s), len(max_s)):
            uniform_range(min_s, "9" * digits)
            min_s = "1" + "0" * digits
            out.append(" | ")
        uniform_range(min_s, max_s)
        return

    less_decimals = max(decimals_left - 1, 1)

    if has_min:
        if min_value < 0:
            out.append('"-" (')
            build_min_max_int(INT64_MIN, -min_value, out, decimals_left, False)
            out.append(") | [0] | [1-9] ")
            more_digits(0, decimals_left - 1)
        elif min_value == 0:
            if top_level:
                out.append("[0] | [1-9] ")
                more_digits(0, less_decimals)
            else:
                more_digits(1, decimals_left)
        elif min_value <= 9:
            c = chr(ord("0") + min_value)
            range_start = "1" if top_level else "0"
            if c > range_start:
                digit_range(range_start, chr(ord(c) - 1))
                out.append(" ")
                more_digits(1, less_decimals)
                out.append(" | ")
            digit_range(c, "9")
            out.append(" ")
            more_digits(0, less_decimals)
        else:
            min_s = str(min_value)
            n = len(min_s)
            c = min_s[0]
            if c > "1":
                digit_range("1" if top_level else "0", chr(ord(c) - 1))
                out.append(" ")
                more_digits(n, less_decimals)
                out.append(" | ")
            digit_range(c, c)
            out.append(" (")
            build_min_max_int(int(min_s[1:]), INT64_MAX, out, less_decimals, False)
            out.append(")")
            if c < "9":
                out.append(" | ")
                digit_range(chr(ord(c) + 1), "9")
                out.append(" ")
                more_digits(n - 1, less_decimals)
        return

    if has_max:
        if max_value >= 0:
            if top_level:
                out.append('"-" [1-9] ')
                more_digits(0, less_decimals)
                out.append(" | ")
            build_min_max_int(0, max_value, out, decimals_left, True)
        else:
            out.append('"-" (')
            build_min_max_int(-max_value, INT64_MAX, out, decimals_left, False)
            out.append(")")
        return

    raise GrammarError("At least one of min_value or max_value must be set")


class SchemaConverter:
    """common_chat_schema_converter: visits a schema tree and collects named GBNF rules."""

    def __init__(self, dotall: bool = False, refs: dict[str, Node] | None = None):
        self.dotall = dotall
        self.refs = refs or {}
        self.rules: dict[str, str] = {"space": SPACE_RULE}
        self.refs_being_resolved: set[str] = set()
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def add_rule(self, name: str, rule: str) -> str:
        esc = _INVALID_RULE_CHARS_RE.sub("-", name)
        if esc not in self.rules or self.rules[esc] == rule:
            self.rules[esc] = rule
            return esc
        i = 0
        while f"{esc}{i}" in self.rules and self.rules[f"{esc}{i}"] != rule:
            i += 1
        key = f"{esc}{i}"
        self.rules[key] = rule
        return key

    def add_primitive(self, name: str, rule: tuple[str, tuple[str, ...]]) -> str:
        n = self.add_rule(name, rule[0])
        for dep in rule[1]:
            dep_rule = PRIMITIVE_RULES.get(dep) or STRING_FORMAT_RULES.get(dep)
            if dep_rule is None:
                self.errors.append(f"Rule {dep} not known")
                continue
            if dep not in self.rules:
                self.add_primitive(dep, dep_rule)
        return n

    def check_errors(self) -> None:
        if self.errors:
            raise GrammarError("JSON schema conversion failed:\n" + "\n".join(self.errors))

    def format_grammar(self) -> str:
        return "".join(f"{k} ::= {v}\n" for k, v in sorted(self.rules.items()))

    # --- visiting ---------------------------------------------------------------------------------
    def visit(self, node: Node, name: str) -> str:
        rule_name = name + "-" if name in RESERVED_NAMES else (name or "root")
        sub_name = name + ("-" if name else "")
        k = node.kind
        if k == "ref":
            return self.add_rule(rule_name, self._resolve_ref(node))
        if k == "anyOf":
            alts = [self.visit(c, name + ("-" if name else "alternative-") + str(i))
                    for i, c in enumerate(node.children)]
            return self.add_rule(rule_name, " | ".join(alts))
        if k == "allOf":
            return self._visit_all_of(node, name, rule_name)
        if k == "const":
            return self.add_rule(rule_name, format_literal(_dump(node.value)))
        if k == "enum":
            return self.add_rule(rule_name, "(" + " | ".join(format_literal(_dump(v))
                                                             for v in node.values) + ")")
        if k == "object":
            if not node.properties and node.additional is not None and node.additional.kind == "any":
                return self.add_rule(rule_name, self.add_primitive("object", PRIMITIVE_RULES["object"]))
            required = {p[0] for p in node.properties if p[2]}
            props = [(p[0], p[1]) for p in node.properties]
            return self.add_rule(rule_name, self._build_object_rule(props, required, name, node.additional))
        if k == "tuple":
            rule = '"[" space '
            for i, item in enumerate(node.items):
                if i > 0:
                    rule += ' "," space '
                rule += self.visit(item, f"{sub_name}tuple-{i}")
            return self.add_rule(rule_name, rule + ' space "]"')
        if k == "array":
            if node.items.kind == "any" and node.min_items == 0 and node.max_items < 0:
                return self._visit_primitive(rule_name, "array")
            item_rule = self.visit(node.items, sub_name + "item")
            max_items = INT_MAX if node.max_items < 0 else node.max_items
            return self.add_rule(rule_name, '"[" space ' + build_repetition(
                item_rule, node.min_items, max_items, '"," space') + ' space "]"')
        if k == "string":
            if node.pattern:
                return self._visit_pattern(node.pattern, rule_name)
            if node.format == "uuid":
                return self._visit_primitive(rule_name, "uuid")
            if node.format != "none":
                prim = node.format + "-string"
                return self.add_rule(rule_name, self.add_primitive(prim, STRING_FORMAT_RULES[prim]))
            if node.min_length > 0 or node.max_length >= 0:
                char_rule = self.add_primitive("char", PRIMITIVE_RULES["char"])
                max_len = INT_MAX if node.max_length < 0 else node.max_length
                return self.add_rule(rule_name, '"\\"" ' + build_repetition(
                    char_rule, node.min_length, max_len) + ' "\\""')
            return self._visit_primitive(rule_name, "string")
        if k == "integer":
            if node.minimum == INT64_MIN and node.maximum == INT64_MAX:
                return self._visit_primitive(rule_name, "integer")
            out = ["("]
            build_min_max_int(node.minimum, node.maximum, out)
            out.append(")")
            return self.add_rule(rule_name, "".join(out))
        if k in ("number", "boolean", "null"):
            return self._visit_primitive(rule_name, k)
        if k == "any":
            return self.add_rule(rule_name, self.add_primitive("value", PRIMITIVE_RULES["value"]))
        raise GrammarError(f"unknown schema node kind {k}")

    def _visit_primitive(self, rule_name: str, type_: str) -> str:
        return self.add_primitive("root" if rule_name == "root" else type_, PRIMITIVE_RULES[type_])

    def _resolve_ref(self, node: Node) -> str:
        ref = node.ref
        h = ref.find("#")
        fragment = ref[h + 1:] if h >= 0 else ref
        ref_name = "ref" + _INVALID_RULE_CHARS_RE.sub("-", fragment)
        if ref_name not in self.rules and ref not in self.refs_being_resolved:
            target = self.refs.get(ref)
            if target is None:
                self.errors.append(f"Unresolved $ref {ref}")
                return ""
            self.refs_being_resolved.add(ref)
            ref_name = self.visit(target, ref_name)
            self.refs_being_resolved.discard(ref)
        return ref_name

    def _visit_all_of(self, node: Node, name: str, rule_name: str) -> str:
        required: set[str] = set()
        properties: list[tuple[str, Node]] = []
        enum_values: dict[str, int] = {}

        def add_component(comp: Node, is_required: bool) -> None:
            if comp.kind == "ref":
                target = self.refs.get(comp.ref)
                if target is not None:
                    add_component(target, is_required)
            elif comp.kind == "object":
                for pname, pschema, _ in comp.properties:
                    properties.append((pname, pschema))
                    if is_required:
                        required.add(pname)
            elif comp.kind == "enum":
                for v in comp.values:
                    lit = format_literal(_dump(v))
                    enum_values[lit] = enum_values.get(lit, 0) + 1

        for child in node.children:
            if child.kind == "anyOf":
                for alt in child.children:
                    add_component(alt, False)
            else:
                add_component(child, True)
        if enum_values:
            inter = [lit for lit, n in sorted(enum_values.items()) if n == len(node.children)]
            if inter:
                return self.add_rule(rule_name, "(" + " | ".join(inter) + ")")
        return self.add_rule(rule_name, self._build_object_rule(properties, required, name, None))

    def _build_object_rule(self, properties, required, name, additional) -> str:
        required_props: list[str] = []
        optional_props: list[str] = []
        kv_names: dict[str, str] = {}
        prop_names: list[str] = []
        pre = name + ("-" if name else "")
        for pname, pschema in properties:
            prop_rule = self.visit(pschema, pre + pname)
            kv_names[pname] = self.add_rule(pre + pname + "-kv",
                                            format_literal(_dump(pname)) + ' space ":" space ' + prop_rule)
            (required_props if pname in required else optional_props).append(pname)
            prop_names.append(pname)
        if additional is not None:
            sub = pre + "additional"
            value_rule = (self.visit(additional, sub + "-value") if additional.kind != "any"
                          else self.add_primitive("value", PRIMITIVE_RULES["value"]))
            key_rule = (self.add_primitive("string", PRIMITIVE_RULES["string"]) if not prop_names
                        else self.add_rule(sub + "-k", self._not_strings(prop_names)))
            kv_names["*"] = self.add_rule(sub + "-kv", key_rule + ' ":" space ' + value_rule)
            optional_props.append("*")
        if not required_props and not optional_props:
            return '"{" space "}"'
        rule = '"{" space ' + ' "," space '.join(kv_names[p] for p in required_props)
        if optional_props:
            rule += " ("
            if required_props:
                rule += ' "," space ( '

            def recursive_refs(ks: list[str], first_is_optional: bool) -> str:
                if not ks:
                    return ""
                k = ks[0]
                kv = kv_names[k]
                comma_ref = f'( "," space {kv} )'
                if first_is_optional:
                    res = comma_ref + ("*" if k == "*" else "?")
                else:
                    res = kv + (" " + comma_ref + "*" if k == "*" else "")
                if len(ks) > 1:
                    res += " " + self.add_rule(pre + k + "-rest", recursive_refs(ks[1:], True))
                return res

            rule += " | ".join(recursive_refs(optional_props[i:], False)
                               for i in range(len(optional_props)))
            if required_props:
                rule += " )"
            rule += " )?"
        return rule + ' space "}"'

    def _not_strings(self, strings: list[str]) -> str:
        # trie of code points; children visited in code point order (std::map)
        trie: list[dict] = [{"children": {}, "end": False}]
        for w in strings:
            cur = 0
            for ch in w:
                nxt = trie[cur]["children"].get(ch)
                if nxt is None:
                    trie.append({"children": {}, "end": False})
                    nxt = len(trie) - 1
                    trie[cur]["children"][ch] = nxt
                cur = nxt
            trie[cur]["end"] = True
        char_rule = self.add_primitive("char", PRIMITIVE_RULES["char"])
        out = ['["] ( ']

        def visit(idx: int) -> None:
            node = trie[idx]
            rejects = ""
            first = True
            for ch in sorted(node["children"]):
                child = node["children"][ch]
                rejects += ch
                if not first:
                    out.append(" | ")
                first = False
                out.append(f"[{ch}]")
                if trie[child]["children"]:
                    out.append(" (")
                    visit(child)
                    out.append(")")
                else:
                    out.append(f" {char_rule}+")
            if node["children"]:
                out.append(f' | [^"{rejects}] {char_rule}*')

        visit(0)
        out.append(" )")
        if not trie[0]["end"]:
            out.append("?")
        out.append(' ["]')
        return "".join(out)

    # --- regex patterns -----------------------------------------------------------------------------
    def _visit_pattern(self, pattern: str, name: str) -> str:
        snapshot = dict(self.rules)
        try:
            return pattern_to_rule(self, pattern, name)
        except UnsupportedPattern as e:
            self.rules = snapshot
            self.warnings.append(f"pattern {pattern} is not supported ({e}), accepting any string")
            return self.add_rule(name, self.add_primitive("string", PRIMITIVE_RULES["string"]))
        except InvalidPattern as e:
            self.rules = snapshot
            self.errors.append(f"Invalid pattern {pattern}: {e}")
            return ""
