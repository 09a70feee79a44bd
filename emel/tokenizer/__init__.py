"""Tokenizers with llama.cpp's behaviour: SPM, BPE (every pre-tokenizer), WPM, UGM, RWKV, PLaMo-2.

`Tokenizer.from_metadata(gguf_metadata)` or `Tokenizer.from_gguf(path)`; see tokenizer.py.
"""

from .tokenizer import Tokenizer, read_metadata
from .vocab import TOKEN_NULL, TokenAttr, Vocab, VocabType

__all__ = ["Tokenizer", "Vocab", "VocabType", "TokenAttr", "TOKEN_NULL", "read_metadata"]
