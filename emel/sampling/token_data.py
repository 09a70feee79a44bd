"""The candidate array samplers work on: llama.cpp's llama_token_data_array as flat numpy arrays.

Follows include/llama.h (llama_token_data, llama_token_data_array). The arrays keep their full
capacity; `size` says how many leading entries are live. Where llama.cpp moves the data pointer
(XTC), entries are moved to the front instead.
"""

from __future__ import annotations

import numpy as np

from ..errors import SamplerError


class TokenDataArray:
    """Candidates for one sampling step."""

    __slots__ = ("ids", "logits", "p", "size", "selected", "sorted")

    def __init__(self, ids: np.ndarray, logits: np.ndarray, p: np.ndarray | None = None,
                 sorted: bool = False):
        n = len(ids)
        if len(logits) != n or (p is not None and len(p) != n):
            raise SamplerError(f"token data: ids, logits and p must have one length, got "
                               f"{n}, {len(logits)}, {len(p) if p is not None else n}")
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)  # int32[capacity]: token ids
        self.logits = np.ascontiguousarray(logits, dtype=np.float32).copy()  # float32[capacity]
        self.p = (np.zeros(n, np.float32) if p is None
                  else np.ascontiguousarray(p, dtype=np.float32).copy())  # float32[capacity]
        self.size = n  # live entries at the front
        self.selected = -1  # index (not token id) chosen by a selecting sampler, -1 for none
        self.sorted = sorted  # live entries are in descending logit order

    @classmethod
    def from_logits(cls, logits: np.ndarray) -> "TokenDataArray":
        """Every token of the vocabulary, ids 0..n-1, as common_sampler's set_logits builds it."""
        logits = np.asarray(logits)
        if logits.ndim != 1 or logits.size == 0:
            raise SamplerError(f"logits must be a non-empty 1-D array, got shape {logits.shape}")
        return cls(np.arange(logits.size, dtype=np.int32), logits)

    def copy(self) -> "TokenDataArray":
        out = TokenDataArray(self.ids.copy(), self.logits, self.p, self.sorted)
        out.size, out.selected = self.size, self.selected
        return out

    def live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of the live ids, logits and probabilities."""
        n = self.size
        return self.ids[:n], self.logits[:n], self.p[:n]

    def keep(self, order: np.ndarray) -> None:
        """Reorder/shrink the live entries to `order` (indices into the live entries)."""
        k = len(order)
        self.ids[:k] = self.ids[order]
        self.logits[:k] = self.logits[order]
        self.p[:k] = self.p[order]
        self.size = k

    def selected_token(self) -> int:
        if not 0 <= self.selected < self.size:
            raise SamplerError(f"no token selected (selected index {self.selected}, size {self.size});"
                               " a chain must end with a selecting sampler such as greedy or dist")
        return int(self.ids[self.selected])
