"""Grammar-constrained sampling: GBNF parser, grammar stacks, grammar sampler, JSON schema to GBNF.

Follows llama.cpp src/llama-grammar.cpp and common/json-schema-to-grammar.cpp.
"""

from emel.grammar.parser import GreType, ParsedGrammar, parse, format_rules
from emel.grammar.matcher import Grammar, GrammarState, decode_utf8

__all__ = ["GreType", "ParsedGrammar", "parse", "format_rules", "Grammar", "GrammarState",
           "decode_utf8"]
