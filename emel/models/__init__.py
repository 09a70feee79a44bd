"""Decoder architectures, one module per GGUF `general.architecture`, and their registry.

Every arch module offers `HParams`, `load_hparams(meta, vocab_only=False)`,
`check_tensors(gguf_file, hp)`, `load_weights(gguf_file, hp)` and
`build_graph(hp, weights, ubatch, kv, out_ids)` (CONVENTIONS.md section 8).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import UnsupportedError

ARCHITECTURES = {
    "llama": "llama",
    "gemma3": "gemma3",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "phi3": "phi3",
}


def get_arch(name: str) -> ModuleType:
    """The module of architecture `name` (GGUF general.architecture); UnsupportedError if unknown."""
    mod = ARCHITECTURES.get(name)
    if mod is None:
        raise UnsupportedError(f"model architecture {name!r} is not supported "
                               f"(supported: {', '.join(sorted(ARCHITECTURES))})")
    return importlib.import_module(f"{__name__}.{mod}")


__all__ = ["ARCHITECTURES", "get_arch"]
