"""JSON schema -> a typed tree of the subset llama.cpp converts to grammars.

Follows llama.cpp common/json-schema.cpp (`common_chat_schema_from_json`) and json-schema.h: node
kinds `any`, `ref`, `anyOf`, `allOf`, `const`, `enum`, `null`, `boolean`, `number`, `integer`,
`string`, `array`, `tuple`, `object`; `$ref` only into the same document. Where llama.cpp throws,
emel raises `GrammarError`. The converter to GBNF is emel/grammar/json_schema_to_grammar.py.
"""

from __future__ import annotations

import math
from typing import Any

from emel.errors import GrammarError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


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
