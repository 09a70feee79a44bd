"""emel: an LLM inference engine in Python on Numba, with llama.cpp's behaviour."""

from .errors import (
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

from . import gguf  # noqa: E402
from .loader import ModelFile, load_model_file  # noqa: E402
