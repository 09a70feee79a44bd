"""JSON schema -> GBNF, and the built-in JSON grammar.

Follows llama.cpp common/json-schema.cpp (`common_chat_schema_from_json`: the schema subset and
its typed tree) and common/json-schema-to-grammar.cpp (`common_chat_schema_converter`): the same
rule names, the same rule bodies and the same sorted output, so llama.cpp's
tests/test-json-schema-to-grammar.cpp expectations compare exactly. Where llama.cpp throws
(std::runtime_error / std::invalid_argument), emel raises `GrammarError`. Conversion warnings
(unsupported regex patterns degrade to any string) are kept in `SchemaConverter.warnings`.

`JSON_GRAMMAR` is llama.cpp grammars/json.gbnf, used for `{"type": "json_object"}`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from emel.errors import GrammarError

INT_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

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
_MAX_PATTERN_DEPTH = 100
_NON_LITERAL_SET = set("|.()[]{}*+?^$")
_ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS = set("^$.[]()|{}*+?")


def json_schema_to_grammar(schema: Any) -> str:
    """GBNF text for a JSON schema (a dict, or JSON text), as llama.cpp's json_schema_to_grammar."""
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise GrammarError(f"JSON schema is not valid JSON: {e}") from None
    doc = schema_from_json(schema)
    conv = SchemaConverter(dotall=False, refs=doc.refs)
    conv.visit(doc.root, "")
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


# --- the schema tree (common/json-schema.h) -------------------------------------------------------

class Node:
    """One common_chat_schema node; `kind` is the llama.cpp kind name."""

    def __init__(self, kind: str, **fields):
        self.kind = kind
        self.__dict__.update(fields)


class SchemaDocument:
    def __init__(self, root: Node, refs: dict[str, Node]):
        self.root = root
        self.refs = refs


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def schema_from_json(schema: Any) -> SchemaDocument:
    """common_chat_schema_from_json: raises GrammarError outside the supported subset."""
    b = _Builder(schema)
    root = b.build_node(schema, "#")
    return SchemaDocument(root, b.refs)


class _Builder:
    def __init__(self, root):
        self.root = root
        self.refs: dict[str, Node | None] = {}

    @staticmethod
    def fail(path: str, msg: str):
        raise GrammarError(f"JSON schema conversion failed:\nJSON schema error at {path}: {msg}")

    def get_count(self, schema, key, path, default):
        if key not in schema:
            return default
        v = schema[key]
        if not _is_int(v) or v < 0:
            self.fail(path, f"{key} must be a non-negative integer")
        return v

    def get_bound(self, schema, key, path, round_up):
        v = schema[key]
        if _is_int(v):
            return v
        if not _is_num(v):
            self.fail(path, f"{key} must be a number")
        return int(math.ceil(v) if round_up else math.floor(v))

    def get_format(self, schema, path):
        if "format" not in schema:
            return "none"
        f = schema["format"]
        if not isinstance(f, str):
            self.fail(path, "format must be a string")
        if f in ("date", "time", "date-time"):
            return f
        if f == "uuid" or (len(f) == 5 and f.startswith("uuid") and "1" <= f[4] <= "5"):
            return "uuid"
        return "none"

    def resolve_ref(self, ref, path):
        target = self.root
        for sel in ref[1:].split("/")[1:]:
            if isinstance(target, dict) and sel in target:
                target = target[sel]
            elif isinstance(target, list):
                idx = int(sel) if sel.isdigit() else len(target)
                if idx >= len(target):
                    self.fail(path, f"cannot resolve $ref {ref}, {sel} is out of range")
                target = target[idx]
            else:
                self.fail(path, f"cannot resolve $ref {ref}, {sel} not found")
        return target

    def build_ref(self, value, path):
        if not isinstance(value, str):
            self.fail(path, "$ref must be a string")
        if not value.startswith("#/"):
            self.fail(path, f"unsupported $ref {value}, only references into the same document "
                            "are supported")
        if value not in self.refs:
            self.refs[value] = None
            self.refs[value] = self.build_node(self.resolve_ref(value, path), value)
        return Node("ref", ref=value)

    def build_alternatives(self, kind, alts, path):
        if not isinstance(alts, list):
            self.fail(path, "must be an array of schemas")
        if not alts:
            self.fail(path, "must not be empty")
        return Node(kind, children=[self.build_node(a, f"{path}/{i}") for i, a in enumerate(alts)])

    def build_object(self, schema, path):
        required = set()
        if isinstance(schema.get("required"), list):
            required = {n for n in schema["required"] if isinstance(n, str)}
        props = []
        if "properties" in schema:
            p = schema["properties"]
            if not isinstance(p, dict):
                self.fail(path, "properties must be an object")
            for name, prop in p.items():
                props.append((name, self.build_node(prop, f"{path}/properties/{name}"), name in required))
        additional = None
        if "additionalProperties" in schema:
            a = schema["additionalProperties"]
            if isinstance(a, bool):
                if a:
                    additional = Node("any")
            elif isinstance(a, dict):
                additional = self.build_node(a, path + "/additionalProperties")
            else:
                self.fail(path, "additionalProperties must be a boolean or a schema")
        elif "properties" not in schema:
            additional = Node("any")
        return Node("object", properties=props, additional=additional)

    def build_array(self, schema, path):
        if "items" in schema or "prefixItems" in schema:
            key = "items" if "items" in schema else "prefixItems"
            items = schema[key]
            if isinstance(items, list):
                return Node("tuple", items=[self.build_node(it, f"{path}/{key}/{i}")
                                            for i, it in enumerate(items)])
            item = self.build_node(items, f"{path}/{key}")
        else:
            item = Node("any")
        return Node("array", items=item, min_items=self.get_count(schema, "minItems", path, 0),
                    max_items=self.get_count(schema, "maxItems", path, -1))

    def build_string(self, schema, path):
        pattern = ""
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                self.fail(path, "pattern must be a string")
            pattern = schema["pattern"]
        return Node("string", pattern=pattern, format=self.get_format(schema, path),
                    min_length=self.get_count(schema, "minLength", path, 0),
                    max_length=self.get_count(schema, "maxLength", path, -1))

    def build_integer(self, schema, path):
        lo, hi = INT64_MIN, INT64_MAX
        if "minimum" in schema:
            lo = self.get_bound(schema, "minimum", path, True)
        elif "exclusiveMinimum" in schema:
            lo = self.get_bound(schema, "exclusiveMinimum", path, False) + 1
        if "maximum" in schema:
            hi = self.get_bound(schema, "maximum", path, False)
        elif "exclusiveMaximum" in schema:
            hi = self.get_bound(schema, "exclusiveMaximum", path, True) - 1
        return Node("integer", minimum=lo, maximum=hi)

    def build_node(self, schema, path) -> Node:
        if not isinstance(schema, dict):
            self.fail(path, "schema must be an object")
        if "$ref" in schema:
            return self.build_ref(schema["$ref"], path)
        if "oneOf" in schema or "anyOf" in schema:
            key = "oneOf" if "oneOf" in schema else "anyOf"
            return self.build_alternatives("anyOf", schema[key], f"{path}/{key}")
        t = schema.get("type")
        if isinstance(t, list):
            if not t:
                self.fail(path, "type must not be empty")
            children = []
            for i, ti in enumerate(t):
                alt = dict(schema)
                alt["type"] = ti
                children.append(self.build_node(alt, f"{path}/type/{i}"))
            return Node("anyOf", children=children)
        if "const" in schema:
            return Node("const", value=schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                self.fail(path, "enum must be a non-empty array")
            return Node("enum", values=list(values))
        if t is not None and not isinstance(t, str):
            self.fail(path, "type must be a string or an array of strings")
        type_name = t or ""
        ap = schema.get("additionalProperties", True)
        has_properties = "properties" in schema or ("additionalProperties" in schema and ap is not True)
        if not type_name:
            if has_properties:
                return self.build_object(schema, path)
            if "allOf" in schema:
                return self.build_alternatives("allOf", schema["allOf"], path + "/allOf")
            if "items" in schema or "prefixItems" in schema:
                return self.build_array(schema, path)
            if ("pattern" in schema or "minLength" in schema or "maxLength" in schema
                    or self.get_format(schema, path) != "none"):
                return self.build_string(schema, path)
            return Node("any")
        if type_name == "object":
            if not has_properties and "allOf" in schema:
                return self.build_alternatives("allOf", schema["allOf"], path + "/allOf")
            return self.build_object(schema, path)
        if type_name == "string":
            if "allOf" in schema:
                return self.build_alternatives("allOf", schema["allOf"], path + "/allOf")
            return self.build_string(schema, path)
        if type_name == "array":
            return self.build_array(schema, path)
        if type_name == "integer":
            return self.build_integer(schema, path)
        if type_name in ("number", "boolean", "null"):
            return Node(type_name)
        self.fail(path, f"unrecognized type {type_name}")


# --- the converter (common/json-schema-to-grammar.cpp) --------------------------------------------

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


class _UnsupportedPattern(Exception):
    pass


class _InvalidPattern(Exception):
    pass


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
            return self._pattern_to_rule(pattern, name)
        except _UnsupportedPattern as e:
            self.rules = snapshot
            self.warnings.append(f"pattern {pattern} is not supported ({e}), accepting any string")
            return self.add_rule(name, self.add_primitive("string", PRIMITIVE_RULES["string"]))
        except _InvalidPattern as e:
            self.rules = snapshot
            self.errors.append(f"Invalid pattern {pattern}: {e}")
            return ""

    def _pattern_to_rule(self, pattern: str, name: str) -> str:
        if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$":
            raise _UnsupportedPattern("not anchored with '^' and '$'")
        sub = pattern[1:-1]
        length = len(sub)
        sub_rule_ids: dict[str, str] = {}
        st = {"i": 0, "depth": 0}

        def to_rule(item: tuple[str, bool]) -> str:
            return f'"{item[0]}"' if item[1] else item[0]

        def get_dot() -> str:
            rule = "[\\U00000000-\\U0010FFFF]" if self.dotall else "[^\\x0A\\x0D]"
            return self.add_rule("dot", rule)

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
                            raise _UnsupportedPattern("unsupported group syntax")
                    st["depth"] += 1
                    if st["depth"] > _MAX_PATTERN_DEPTH:
                        raise _UnsupportedPattern("pattern nesting too deep")
                    seq.append(("(" + to_rule(transform()) + ")", False))
                elif c == ")":
                    st["i"] += 1
                    if st["depth"] == 0:
                        raise _InvalidPattern("unbalanced parentheses")
                    st["depth"] -= 1
                    return join_seq()
                elif c in "^$":
                    raise _UnsupportedPattern("anchor inside the pattern")
                elif c == "[":
                    sq = c
                    i += 1
                    while i < length and sub[i] != "]":
                        if sub[i] == "\\":
                            n = _gbnf_escape_length(sub, i)
                            if n == 0:
                                raise _UnsupportedPattern("unsupported escape in character class: "
                                                          + sub[i:i + 2])
                            sq += sub[i:i + n]
                            i += n
                        else:
                            sq += sub[i]
                            i += 1
                    if i >= length:
                        raise _InvalidPattern("unterminated character class")
                    st["i"] = i + 1
                    seq.append((sq + "]", False))
                elif c == "|":
                    seq.append(("|", False))
                    st["i"] += 1
                elif c in "*+?":
                    if not seq:
                        raise _InvalidPattern("nothing to repeat")
                    seq[-1] = (to_rule(seq[-1]) + c, False)
                    st["i"] += 1
                elif c == "{":
                    cb = c
                    i += 1
                    while i < length and sub[i] != "}":
                        cb += sub[i]
                        i += 1
                    if i >= length:
                        raise _UnsupportedPattern("unterminated curly brackets")
                    cb += "}"
                    st["i"] = i + 1
                    nums = cb[1:-1].split(",")
                    min_times, max_times = 0, INT_MAX
                    if len(nums) not in (1, 2):
                        raise _UnsupportedPattern("wrong number of values in curly brackets")
                    try:
                        if len(nums) == 1:
                            min_times = max_times = _stoi(nums[0])
                        else:
                            if nums[0]:
                                min_times = _stoi(nums[0])
                            if nums[1]:
                                max_times = _stoi(nums[1])
                    except ValueError:
                        raise _UnsupportedPattern("invalid number in curly brackets") from None
                    if not seq:
                        raise _InvalidPattern("nothing to repeat")
                    sub_s, is_lit = seq[-1]
                    if not is_lit:
                        if sub_s not in sub_rule_ids:
                            sub_rule_ids[sub_s] = ""
                        if not sub_rule_ids[sub_s]:
                            sub_rule_ids[sub_s] = self.add_rule(f"{name}-{len(sub_rule_ids)}", sub_s)
                        sub_s = sub_rule_ids[sub_s]
                    seq[-1] = (build_repetition(f'"{sub_s}"' if is_lit else sub_s,
                                                min_times, max_times, ""), False)
                else:
                    literal = ""
                    while i < length:
                        if sub[i] == "\\":
                            if i == length - 1:
                                raise _InvalidPattern("trailing backslash")
                            nxt = sub[i + 1]
                            if nxt in _ESCAPED_IN_REGEXPS_BUT_NOT_IN_LITERALS:
                                literal += nxt
                                i += 2
                            else:
                                n = _gbnf_escape_length(sub, i)
                                if n == 0:
                                    raise _UnsupportedPattern("unsupported escape: " + sub[i:i + 2])
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
                        raise _UnsupportedPattern(f"unsupported character: {c}")
                    seq.append((literal, True))
            return join_seq()

        rule = to_rule(transform())
        if st["depth"] != 0:
            raise _InvalidPattern("unbalanced parentheses")
        return self.add_rule(name, '"\\"" (' + rule + ') "\\""')
