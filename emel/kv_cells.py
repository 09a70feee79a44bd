"""KV cache cells: the position and sequence membership of every cache slot.

Follows llama.cpp src/llama-kv-cells.h (llama_kv_cells) in behaviour. K/V storage lives in
emel/kv_cache.py. Per cell:
- `pos`   int32, -1 when the cell is empty;
- `seq`   uint64 bitmask of the sequences that share the cell (bit s = sequence s);
- `shift` int32, the position delta accumulated since the last K-shift (RoPE re-rotation).

Differences on purpose: sequence sets are a uint64 bitmask, so at most `MAX_SEQ` = 64 sequences
(llama.cpp: LLAMA_MAX_SEQ = 256); the per-cell extension (M-RoPE 2-D position, token id for PLE)
is not kept; per-sequence position sets are replaced by min/max computed with numpy and cached
until the next change. Range operations (`seq_rm_range`, `seq_cp_range`, `seq_keep_range`, `pos_add_range`,
`pos_div_range`) are vectorized versions of the cell loops of llama_kv_cache::seq_rm, seq_cp,
seq_keep, seq_add and seq_div (llama-kv-cache.cpp); they return the first cell they emptied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SEQ = 64  # sequences per cache (bits of the uint64 sequence mask)
POS_MAX = 2**31 - 1  # std::numeric_limits<llama_pos>::max()


def seq_bit(seq_id: int) -> np.uint64:
    """The mask bit of sequence `seq_id`."""
    return np.uint64(1) << np.uint64(seq_id)


@dataclass
class CellsSnapshot:
    """Saved state of some cells (llama_kv_cells::cp), restored with `KVCells.set`."""

    idxs: np.ndarray  # int64[n]: cell indices
    pos: np.ndarray  # int32[n]
    seq: np.ndarray  # uint64[n]


class KVCells:
    """llama_kv_cells: metadata of `size` cells."""

    def __init__(self, size: int) -> None:
        self.pos = np.full(size, -1, dtype=np.int32)  # [size] position, -1 = empty
        self.seq = np.zeros(size, dtype=np.uint64)  # [size] sequence bitmask
        self.shift = np.zeros(size, dtype=np.int32)  # [size] pending RoPE shift
        self.has_shift = False  # any cell shifted since the last reset_shift()
        self._cache: dict = {}  # memoized seq min/max and used counts; cleared on change

    # -- whole-cache state ----------------------------------------------------------------

    @property
    def size(self) -> int:
        return int(self.pos.shape[0])

    def reset(self) -> None:
        self.pos[:] = -1
        self.seq[:] = 0
        self.shift[:] = 0
        self.has_shift = False
        self._changed()

    def reset_shift(self) -> None:
        self.has_shift = False
        self.shift[:] = 0

    def _changed(self) -> None:
        self._cache.clear()

    def get_used(self) -> int:
        """Number of non-empty cells."""
        v = self._cache.get("used")
        if v is None:
            v = self._cache["used"] = int(np.count_nonzero(self.pos >= 0))
        return v

    def used_min(self) -> int:
        nz = np.flatnonzero(self.pos >= 0)
        return int(nz[0]) if nz.size else 0

    def used_max_p1(self) -> int:
        """One past the last non-empty cell (0 when empty)."""
        v = self._cache.get("used_max_p1")
        if v is None:
            nz = np.flatnonzero(self.pos >= 0)
            v = self._cache["used_max_p1"] = int(nz[-1]) + 1 if nz.size else 0
        return v

    def seq_pos_min(self, seq_id: int) -> int:
        """Smallest position of `seq_id` in these cells, -1 if none."""
        return self._seq_minmax(seq_id)[0]

    def seq_pos_max(self, seq_id: int) -> int:
        """Largest position of `seq_id` in these cells, -1 if none."""
        return self._seq_minmax(seq_id)[1]

    def _seq_minmax(self, seq_id: int) -> tuple[int, int]:
        key = ("seq", seq_id)
        v = self._cache.get(key)
        if v is None:
            p = self.pos[(self.seq & seq_bit(seq_id)) != 0]
            v = self._cache[key] = (int(p.min()), int(p.max())) if p.size else (-1, -1)
        return v

    def seq_mask(self, seq_id: int) -> np.ndarray:
        """bool[size]: cells that belong to `seq_id`."""
        return (self.seq & seq_bit(seq_id)) != 0

    def seq_count(self) -> np.ndarray:
        """int[size]: number of sequences in each cell."""
        return np.bitwise_count(self.seq)

    # -- single-cell operations (preconditions as in llama_kv_cells) -----------------------

    def is_empty(self, i: int) -> bool:
        return bool(self.pos[i] == -1)

    def seq_has(self, i: int, seq_id: int) -> bool:
        return bool(self.seq[i] & seq_bit(seq_id))

    def seq_get(self, i: int) -> int:
        """The only sequence of cell i (precondition: exactly one)."""
        return int(self.seq[i]).bit_length() - 1

    def pos_get(self, i: int) -> int:
        return int(self.pos[i])

    def rm(self, i: int) -> None:
        """Empty cell i (precondition: not empty)."""
        self.pos[i] = -1
        self.seq[i] = 0
        self.shift[i] = 0
        self._changed()

    def pos_set(self, i: int, p: int) -> None:
        """Occupy cell i at position p (precondition: empty, no sequence)."""
        self.pos[i] = p
        self._changed()

    def seq_add(self, i: int, seq_id: int) -> None:
        """Add `seq_id` to cell i (precondition: not empty)."""
        self.seq[i] |= seq_bit(seq_id)
        self._changed()

    # -- snapshots (llama_kv_cells::cp / set) ----------------------------------------------

    def cp(self, idxs) -> CellsSnapshot:
        idxs = np.asarray(idxs, dtype=np.int64)
        return CellsSnapshot(idxs.copy(), self.pos[idxs].copy(), self.seq[idxs].copy())

    def set(self, snap: CellsSnapshot) -> None:
        self.pos[snap.idxs] = snap.pos
        self.seq[snap.idxs] = snap.seq
        self.shift[snap.idxs] = 0
        self._changed()

    # -- range operations (the loops of llama_kv_cache, vectorized) ------------------------

    def _in_range(self, p0: int, p1: int) -> np.ndarray:
        return (self.pos >= p0) & (self.pos < p1)

    def _free(self, sel: np.ndarray) -> int:
        """Empty the selected cells; return the first one, or -1."""
        self.pos[sel] = -1
        self.seq[sel] = 0
        self.shift[sel] = 0
        nz = np.flatnonzero(sel)
        return int(nz[0]) if nz.size else -1

    def seq_rm_range(self, seq_id: int, p0: int, p1: int) -> int:
        """Remove `seq_id` (-1: every sequence) from cells with p0 <= pos < p1.

        Cells left with no sequence become empty. Returns the first emptied cell or -1.
        """
        sel = self._in_range(p0, p1)
        if seq_id >= 0:
            bit = seq_bit(seq_id)
            sel &= (self.seq & bit) != 0
            self.seq[sel] &= ~bit
            freed = sel & (self.seq == 0)
        else:
            freed = sel
        first = self._free(freed)
        self._changed()
        return first

    def seq_cp_range(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Add `dst` to every cell of `src` with p0 <= pos < p1."""
        sel = self._in_range(p0, p1) & self.seq_mask(src)
        self.seq[sel] |= seq_bit(dst)
        self._changed()

    def seq_keep_range(self, seq_id: int) -> int:
        """Drop every other sequence; returns the first emptied cell or -1."""
        bit = seq_bit(seq_id)
        has = (self.seq & bit) != 0
        self.seq[has] = bit
        first = self._free(~has & (self.seq != 0))
        self._changed()
        return first

    def pos_add_range(self, seq_id: int, p0: int, p1: int, delta: int) -> int:
        """pos += delta for cells of `seq_id` in [p0, p1); cells moved below 0 are emptied.

        The shift is recorded per cell (for the K re-rotation); returns the first emptied cell or -1.
        """
        sel = self._in_range(p0, p1) & self.seq_mask(seq_id)
        if not sel.any():
            return -1
        self.pos[sel] += np.int32(delta)
        self.shift[sel] += np.int32(delta)
        self.has_shift = True
        first = self._free(sel & (self.pos < 0))
        self._changed()
        return first

    def pos_div_range(self, seq_id: int, p0: int, p1: int, d: int) -> None:
        """pos //= d for cells of `seq_id` in [p0, p1), recording the shift."""
        sel = self._in_range(p0, p1) & self.seq_mask(seq_id)
        if not sel.any():
            return
        old = self.pos[sel]
        new = (old // np.int32(d)).astype(np.int32)  # positions are >= 0: floor == C truncation
        self.pos[sel] = new
        self.shift[sel] += old - new
        self.has_shift = True
        self._changed()
