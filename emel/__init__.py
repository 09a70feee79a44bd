"""emel: an LLM inference engine in Python on Numba, with llama.cpp's behaviour.

`emel.load(name_or_path)` returns a `Model` (tokenize, logits, generate, chat, OpenAI-shaped
completions). Heavy modules are imported on first use, so `import emel` compiles nothing.
"""

import importlib

from kernels.cpu.threads import apply_defaults as _apply_thread_defaults

# Before any parallel kernel loads libgomp: a bounded spin keeps 2-thread decode fast on a quiet
# machine and gives the core back under load (plans/perf.md, section 3). User settings win.
_apply_thread_defaults()

from .errors import (  # noqa: E402
    AllocationError,
    BatchError,
    CatalogError,
    EmelError,
    GGUFError,
    GrammarError,
    KVCacheFullError,
    ModelError,
    SamplerError,
    TemplateError,
    TokenizerError,
    UnsupportedError,
)

__version__ = "0.1.0"

_EXPORTS = {
    "load": "emel.api",
    "Model": "emel.api",
    "load_model_file": "emel.loader",
    "ModelFile": "emel.loader",
    "Batch": "emel.batch",
    "Tokenizer": "emel.tokenizer",
    "Vocab": "emel.tokenizer",
    "SamplerChain": "emel.sampling",
    "SamplerParams": "emel.sampling",
    "build_chain": "emel.sampling",
    "ChatTemplate": "emel.chat",
    "GenerationParams": "emel.generator",
    "Telemetry": "emel.telemetry",
    "GrammarSampler": "emel.grammar",
    "json_schema_to_grammar": "emel.grammar",
    "response_format_grammar": "emel.grammar",
    "JSON_GRAMMAR": "emel.grammar",
}
_SUBMODULES = {"gguf", "catalog", "tokenizer", "sampling", "grammar", "models", "kv_cache", "batch"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"emel.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'emel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
