"""Interleaved sliding-window KV cache: a full-attention cache and a small SWA cache side by side.

Follows llama.cpp src/llama-kv-cache-iswa.cpp (llama_kv_cache_iswa), as gemma2/gemma3 use it:
non-SWA layers live in `kv_base` (kv_size cells, no window), SWA layers in `kv_swa`
(pad(min(kv_size, n_swa * (n_seq_max if unified else 1) + n_ubatch), 256) cells, or kv_size
with `swa_full`), each with its own cells and slots. Sequence operations go to both caches;
seq_pos_min/max come from the SWA cache, as llama.cpp does. `init_batch` first tries a simple
split (unified cache only), then an equal split, and needs both caches to place every ubatch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .batch import BatchAllocator, UBatch
from .errors import BatchError, KVCacheFullError
from .kv_cache import GGMLType, KShiftFn, KVCache, SlotInfo, SwaType


class KVCacheISWA:
    """llama_kv_cache_iswa: `kv_base` for full-attention layers, `kv_swa` for SWA layers."""

    def __init__(self, layers: Sequence[int], is_swa: Callable[[int], bool],
                 n_embd_k_gqa: int | Sequence[int], n_embd_v_gqa: int | Sequence[int], kv_size: int, *,
                 n_swa: int, swa_type: SwaType = SwaType.STANDARD, swa_full: bool = False,
                 n_ubatch: int = 512, n_seq_max: int = 1, unified: bool = True,
                 type_k: GGMLType = GGMLType.F16, type_v: GGMLType = GGMLType.F16,
                 v_trans: bool = False, n_pad: int = 1) -> None:
        layers = list(layers)
        ek = [n_embd_k_gqa] * len(layers) if isinstance(n_embd_k_gqa, int) else list(n_embd_k_gqa)
        ev = [n_embd_v_gqa] * len(layers) if isinstance(n_embd_v_gqa, int) else list(n_embd_v_gqa)
        if n_swa <= 0:
            raise BatchError(f"n_swa = {n_swa}: an SWA cache needs a positive window")
        base = [i for i, il in enumerate(layers) if not is_swa(il)]
        swa = [i for i, il in enumerate(layers) if is_swa(il)]
        size_swa = min(kv_size, n_swa * (n_seq_max if unified else 1) + n_ubatch)
        size_swa = (size_swa + 255) // 256 * 256  # always padded to 256 (llama.cpp issue 17037)
        if swa_full:
            size_swa = kv_size
        common = dict(type_k=type_k, type_v=type_v, v_trans=v_trans, n_seq_max=n_seq_max,
                      unified=unified, n_pad=n_pad)
        self.unified = unified
        self.kv_base = KVCache([layers[i] for i in base], [ek[i] for i in base], [ev[i] for i in base],
                               kv_size, **common)
        self.kv_swa = KVCache([layers[i] for i in swa], [ek[i] for i in swa], [ev[i] for i in swa],
                              size_swa, n_swa=n_swa, swa_type=swa_type, **common)

    def cache_of(self, il: int) -> KVCache:
        """The cache that holds layer il."""
        if il in self.kv_swa._k_refs:
            return self.kv_swa
        if il in self.kv_base._k_refs:
            return self.kv_base
        raise BatchError(f"layer {il} has no KV cache")

    def k_view(self, il: int) -> np.ndarray:
        return self.cache_of(il).k_view(il)

    def v_view(self, il: int) -> np.ndarray:
        return self.cache_of(il).v_view(il)

    # -- sequences ------------------------------------------------------------------------------

    def clear(self, data: bool = True) -> None:
        self.kv_base.clear(data)
        self.kv_swa.clear(data)

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        a = self.kv_base.seq_rm(seq_id, p0, p1)
        return self.kv_swa.seq_rm(seq_id, p0, p1) and a

    def seq_cp(self, seq_id_src: int, seq_id_dst: int, p0: int = -1, p1: int = -1) -> None:
        self.kv_base.seq_cp(seq_id_src, seq_id_dst, p0, p1)
        self.kv_swa.seq_cp(seq_id_src, seq_id_dst, p0, p1)

    def seq_keep(self, seq_id: int) -> None:
        self.kv_base.seq_keep(seq_id)
        self.kv_swa.seq_keep(seq_id)

    def seq_add(self, seq_id: int, p0: int, p1: int, shift: int) -> None:
        self.kv_base.seq_add(seq_id, p0, p1, shift)
        self.kv_swa.seq_add(seq_id, p0, p1, shift)

    def seq_div(self, seq_id: int, p0: int, p1: int, d: int) -> None:
        self.kv_base.seq_div(seq_id, p0, p1, d)
        self.kv_swa.seq_div(seq_id, p0, p1, d)

    def seq_pos_min(self, seq_id: int) -> int:
        return self.kv_swa.seq_pos_min(seq_id)

    def seq_pos_max(self, seq_id: int) -> int:
        return self.kv_swa.seq_pos_max(seq_id)

    def get_can_shift(self) -> bool:
        """K-shift needs both caches of the same size (llama.cpp: swa_full)."""
        return self.kv_base.size == self.kv_swa.size

    def update(self, k_shift: KShiftFn | None = None) -> bool:
        if (self.kv_base.get_has_shift() or self.kv_swa.get_has_shift()) and not self.get_can_shift():
            raise BatchError("K-shift with an SWA cache needs swa_full=True")
        a = self.kv_base.update(k_shift)
        return self.kv_swa.update(k_shift) or a

    # -- placing ubatches -----------------------------------------------------------------------

    def init_batch(self, balloc: BatchAllocator, n_ubatch: int) -> list[tuple[UBatch, SlotInfo, SlotInfo]]:
        """Split and place the batch in both caches: (ubatch, base slot, SWA slot) per ubatch."""
        splits = []
        if self.unified:
            splits.append(lambda: balloc.split_simple(n_ubatch))
        splits.append(lambda: balloc.split_equal(n_ubatch, not self.unified))
        last = None
        for split in splits:
            balloc.split_reset()
            ubatches = []
            while (ub := split()) is not None:
                ubatches.append(ub)
            if balloc.n_used < balloc.n_tokens:
                last = KVCacheFullError("failed to find a suitable split of the batch")
                continue
            try:
                base = self.kv_base.prepare(ubatches)
                swa = self.kv_swa.prepare(ubatches)
            except KVCacheFullError as e:
                last = e
                continue
            return list(zip(ubatches, base, swa))
        raise last

    def apply_ubatch(self, sinfo_base: SlotInfo, sinfo_swa: SlotInfo, ubatch: UBatch) -> None:
        self.kv_base.apply_ubatch(sinfo_base, ubatch)
        self.kv_swa.apply_ubatch(sinfo_swa, ubatch)

    # -- state ------------------------------------------------------------------------------------

    def state_write(self, seq_id: int) -> bytes:
        a, b = self.kv_base.state_write(seq_id), self.kv_swa.state_write(seq_id)
        return len(a).to_bytes(8, "little") + a + b

    def state_read(self, data: bytes, seq_id: int) -> None:
        if len(data) < 8:
            raise BatchError("saved state truncated")
        n = int.from_bytes(data[:8], "little")
        # all or nothing: if the SWA part fails, the base cells go back to how they were (the
        # K/V rows written meanwhile sit in cells that are empty again)
        base = self.kv_base
        saved = base._snapshot_all(), list(base.v_heads)
        base.state_read(data[8 : 8 + n], seq_id)
        try:
            self.kv_swa.state_read(data[8 + n :], seq_id)
        except (BatchError, KVCacheFullError):
            base._restore_all(saved[0])
            base.v_heads = saved[1]
            raise
