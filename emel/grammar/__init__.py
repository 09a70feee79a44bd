"""Grammar-constrained sampling: GBNF parser, grammar stacks, grammar sampler, JSON schema to GBNF.

Follows llama.cpp src/llama-grammar.cpp, src/llama-sampler.cpp (grammar sampler) and
common/json-schema-to-grammar.cpp. The sampler names load lazily (they pull in Numba).
"""

from emel.grammar.json_schema_to_grammar import (JSON_GRAMMAR, json_schema_to_grammar,
                                                response_format_grammar)
from emel.grammar.matcher import Grammar, GrammarState, decode_utf8
from emel.grammar.parser import GreType, ParsedGrammar, format_rules, parse

__all__ = ["GreType", "ParsedGrammar", "parse", "format_rules", "Grammar", "GrammarState",
           "decode_utf8", "JSON_GRAMMAR", "json_schema_to_grammar", "response_format_grammar",
           "GrammarSampler", "GrammarVocab", "grammar_sampler"]


def __getattr__(name: str):
    if name in ("GrammarSampler", "GrammarVocab", "grammar_sampler"):
        from emel.grammar import sampler

        return getattr(sampler, name)
    raise AttributeError(f"module 'emel.grammar' has no attribute {name!r}")
