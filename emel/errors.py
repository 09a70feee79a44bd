"""The exception family: every error emel raises to users subclasses `EmelError`.

Each also subclasses the nearest builtin so callers can catch either.
"""


class EmelError(Exception):
    """Base class of every error emel raises."""


class GGUFError(EmelError, ValueError):
    """A GGUF file is malformed, truncated or inconsistent."""


class UnsupportedError(EmelError, NotImplementedError):
    """An architecture, tensor type, tokenizer or device emel does not support."""


class ModelError(EmelError, ValueError):
    """A model's tensors or hyper-parameters are missing or have the wrong shape."""


class TokenizerError(EmelError, ValueError):
    """Text or tokens that the tokenizer cannot handle."""


class AllocationError(EmelError, MemoryError):
    """The arena (or a maximum buffer size) is too small for a graph."""


class KVCacheFullError(EmelError, RuntimeError):
    """No slot in the KV cache for a ubatch."""


class BatchError(EmelError, ValueError):
    """Bad tokens, positions, sequence ids or output flags in a batch."""


class SamplerError(EmelError, ValueError):
    """Invalid sampler parameters or state."""


class GrammarError(EmelError, ValueError):
    """A malformed grammar (GBNF) or JSON schema."""


class TemplateError(EmelError, ValueError):
    """A chat template that fails to render or tries to escape the sandbox."""


class CatalogError(EmelError, RuntimeError):
    """A default model could not be fetched or failed verification."""
