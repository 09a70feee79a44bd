"""KV cache: cells (emel/kv_cells.py) plus K/V storage, slot search, masks and sequence state.

Follows llama.cpp src/llama-kv-cache.cpp (llama_kv_cache) and src/llama-kv-cache-iswa.cpp
(llama_kv_cache_iswa) in behaviour:
- `find_slot` / `apply_ubatch` / `prepare` (all ubatches placed, then rolled back) with the head,
  its reset when many cells are free before it, wrap-around, and reuse of cells that SWA masks;
- `seq_rm`, `seq_cp` (cross-stream copies queued until `update`), `seq_keep`, `seq_add`,
  `seq_div`, `seq_pos_min`, `seq_pos_max`;
- `get_n_kv`: the number of cells attention reads, padded to max(n_pad, 256) and capped at the
  cache size, as llama.cpp pads it so the graph stays the same across ubatches;
- `get_mask`: the float32 KQ mask (0 keep, -inf drop) of set_input_kq_mask, shape
  [n_tokens, n_kv] (kernels.cpu.kv.kq_mask_rows_f32, one call per stream); there are no padded mask rows in this llama.cpp version (GGML_KQ_MASK_PAD
  is gone); with several streams, rows s*n_tps .. (s+1)*n_tps-1 belong to stream sinfo.strm[s];
- `state_write` / `state_read` of one sequence (emel/kv_state.py, llama.cpp's field order).

Storage: one `Arena` (emel/arena.py) holds every layer's K and V. Per layer:
- K: [n_stream][kv_size][n_embd_k_gqa] in the cache type (row = one cell, heads contiguous);
- V: [n_stream][kv_size][n_embd_v_gqa] by default (`v_trans=False`: what llama.cpp uses with
  flash attention, its CPU default, and what a row-wise attention kernel wants: out += p_j * V[j]);
  with `v_trans=True` V is [n_stream][n_embd_v_gqa][kv_size] as llama.cpp without flash attention.
Types: F16 (default, as llama.cpp), F32, Q8_0 (rows of 34-byte blocks, views are uint8).

K re-rotation: `seq_add` / `seq_div` only record per-cell shifts. `update(k_shift)` then calls the
decoder's `k_shift(il, k, shift)` for every layer: `k` is the layer's K storage for all streams
(`k_view(il)`), `shift` int32[n_stream * kv_size] the position delta of each cell (0 for empty
cells); the function must rotate K in place with RoPE at those deltas (llama.cpp's
build_graph_shift: ggml_rope_ext with the layer's freq base/scale), then the shifts are cleared.

Decoder usage, per llama_decode call (names as in llama_context::decode):
    balloc.init(batch, memory=cache, n_batch=n_batch)        # BatchError on bad input
    cache.update(k_shift)                                      # pending K-shifts (seq_add/seq_div)
    for ub, sinfo in cache.init_batch(balloc, n_ubatch):       # KVCacheFullError, cache unchanged
        cache.apply_ubatch(sinfo, ub)
        n_kv = cache.get_n_kv(sinfo)
        mask = cache.get_mask(ub, n_kv)                          # float32[n_tokens, n_kv]
        for il in layers:
            cache.store_k(il, sinfo, k_cur); cache.store_v(il, sinfo, v_cur)   # or write rows
            k = cache.get_k(il, n_kv, sinfo); v = cache.get_v(il, n_kv, sinfo) # at k_idxs(sinfo)
    outputs come in ubatch order: emel.batch.output_order(balloc.out_ids, n_tokens)
An iSWA model uses KVCacheISWA: init_batch yields (ub, sinfo_base, sinfo_swa) and each layer
uses cache.cache_of(il) with its own slot info and mask.

Differences on purpose: bad arguments raise (BatchError, KVCacheFullError) instead of
asserting; at most 64 sequences; `defrag()` compacts the cache (llama.cpp 0.3.36 no longer
defragments); no M-RoPE cell extension; no Hadamard rotation of quantized K.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from gguf import GGMLQuantizationType
from gguf import quants as gguf_quants
from gguf.constants import GGML_QUANT_SIZES

from kernels.cpu import kv as _kv

from .arena import Arena, TensorRef
from .batch import BatchAllocator, UBatch
from .errors import BatchError, KVCacheFullError, UnsupportedError
from .kv_cells import MAX_SEQ, POS_MAX, KVCells

GGMLType = GGMLQuantizationType
CACHE_TYPES = (GGMLType.F16, GGMLType.F32, GGMLType.Q8_0)
_NP_TYPES = {GGMLType.F16: np.float16, GGMLType.F32: np.float32, GGMLType.Q8_0: np.uint8}


class SwaType(enum.IntEnum):
    """llama_swa_type."""

    NONE = 0
    STANDARD = 1  # mask when p1 - p0 >= n_swa (gemma2/3)
    CHUNKED = 2  # mask when p0 is before the chunk of p1 (llama4)
    SYMMETRIC = 3  # mask when |p1 - p0| > n_swa / 2


def is_masked_swa(n_swa: int, swa_type: SwaType, p0, p1):
    """llama_hparams::is_masked_swa; works elementwise on numpy arrays too."""
    if swa_type == SwaType.STANDARD:
        return (np.asarray(p1) - np.asarray(p0)) >= n_swa
    if swa_type == SwaType.CHUNKED:
        return np.asarray(p0) < (np.asarray(p1) // n_swa) * n_swa
    if swa_type == SwaType.SYMMETRIC:
        d = np.asarray(p1) - np.asarray(p0)
        h = n_swa // 2
        return (d < -h) | (d > h)
    return np.zeros(np.broadcast(np.asarray(p0), np.asarray(p1)).shape, dtype=bool)


KShiftFn = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass
class SlotInfo:
    """llama_kv_cache::slot_info: the cells of a ubatch, per stream."""

    s0: int  # first stream touched
    s1: int  # last stream touched
    strm: list[int]  # [n_seqs] stream of each sequence block of the ubatch
    idxs: list[np.ndarray]  # [n_seqs] int32[n_tokens / n_seqs] cell of each token

    def n_stream(self) -> int:
        return len(self.strm)

    def size(self) -> int:
        return int(self.idxs[0].shape[0])


def _row_bytes(t: GGMLType, n: int) -> int:
    blck, size = GGML_QUANT_SIZES[t]
    return n // blck * size


class KVCache:
    """llama_kv_cache: cells of n_stream streams of kv_size cells, and K/V per layer."""

    def __init__(self, layers: Sequence[int], n_embd_k_gqa: int | Sequence[int],
                 n_embd_v_gqa: int | Sequence[int], kv_size: int, *,
                 type_k: GGMLType = GGMLType.F16, type_v: GGMLType = GGMLType.F16,
                 v_trans: bool = False, n_seq_max: int = 1, unified: bool = True, n_pad: int = 1,
                 n_swa: int = 0, swa_type: SwaType = SwaType.NONE) -> None:
        layers = list(layers)
        ek = [n_embd_k_gqa] * len(layers) if isinstance(n_embd_k_gqa, int) else list(n_embd_k_gqa)
        ev = [n_embd_v_gqa] * len(layers) if isinstance(n_embd_v_gqa, int) else list(n_embd_v_gqa)
        if len(ek) != len(layers) or len(ev) != len(layers):
            raise BatchError("n_embd_k_gqa / n_embd_v_gqa need one value per layer")
        if not 1 <= n_seq_max <= MAX_SEQ:
            raise BatchError(f"n_seq_max = {n_seq_max} must be in [1, {MAX_SEQ}]")
        if kv_size <= 0 or n_pad <= 0 or kv_size % n_pad:
            raise BatchError(f"kv_size = {kv_size} must be a positive multiple of n_pad = {n_pad}")
        for t in (type_k, type_v):
            if t not in CACHE_TYPES:
                raise UnsupportedError(f"KV cache type {t!r} (supported: F16, F32, Q8_0)")
        for n in ek + ev:
            if n % GGML_QUANT_SIZES[type_k][0] or n % GGML_QUANT_SIZES[type_v][0]:
                raise UnsupportedError(f"row of {n} elements is not a whole number of blocks")
        if v_trans and type_v == GGMLType.Q8_0:
            raise UnsupportedError("a transposed V cache cannot be quantized")
        self.layers = layers
        self.n_embd_k_gqa = dict(zip(layers, ek))
        self.n_embd_v_gqa = dict(zip(layers, ev))
        self.type_k, self.type_v, self.v_trans = GGMLType(type_k), GGMLType(type_v), v_trans
        self.n_seq_max = n_seq_max
        self.n_stream = 1 if unified else n_seq_max
        self.n_pad = n_pad
        self.n_swa = n_swa
        self.swa_type = SwaType(swa_type)
        self.size = kv_size
        self.v_cells = [KVCells(kv_size) for _ in range(self.n_stream)]
        self.v_heads = [0] * self.n_stream
        self.seq_to_stream = list(range(n_seq_max)) if self.n_stream > 1 else [0] * n_seq_max
        self._pending_copies: list[tuple[int, int]] = []  # (src stream, dst stream) for update()
        # storage
        self._k_refs: dict[int, TensorRef] = {}
        self._v_refs: dict[int, TensorRef] = {}
        off = 0
        for il in layers:
            rk = _row_bytes(self.type_k, self.n_embd_k_gqa[il])
            rv = _row_bytes(self.type_v, self.n_embd_v_gqa[il])
            self._k_refs[il] = self._ref(self.type_k, (self.n_stream, kv_size, self.n_embd_k_gqa[il]), rk, off)
            off = _align(off + self._k_refs[il].nbytes)
            vshape = ((self.n_stream, self.n_embd_v_gqa[il], kv_size) if v_trans
                      else (self.n_stream, kv_size, self.n_embd_v_gqa[il]))
            self._v_refs[il] = self._ref(self.type_v, vshape, rv, off)
            off = _align(off + self._v_refs[il].nbytes)
        self.arena = Arena(off)

    @staticmethod
    def _ref(t: GGMLType, shape: tuple[int, int, int], row_bytes: int, off: int) -> TensorRef:
        if t == GGMLType.Q8_0:
            shape = (shape[0], shape[1], row_bytes)
        nbytes = int(np.prod(shape)) * np.dtype(_NP_TYPES[t]).itemsize
        return TensorRef(np.dtype(_NP_TYPES[t]), shape, off, nbytes)

    # -- storage views ----------------------------------------------------------------------

    def k_view(self, il: int) -> np.ndarray:
        """K of layer il: [n_stream, kv_size, n_embd_k_gqa] (Q8_0: [.., .., row bytes] uint8)."""
        return self.arena.view(self._k_refs[self._layer(il)])

    def v_view(self, il: int) -> np.ndarray:
        """V of layer il: [n_stream, kv_size, n_embd_v_gqa], or [n_stream, n_embd_v_gqa, kv_size]
        when v_trans (Q8_0: last axis is row bytes, uint8)."""
        return self.arena.view(self._v_refs[self._layer(il)])

    def k_ref(self, il: int) -> TensorRef:
        """Where K of layer il lives in `self.arena` (for kernels taking arena + offset)."""
        return self._k_refs[self._layer(il)]

    def v_ref(self, il: int) -> TensorRef:
        return self._v_refs[self._layer(il)]

    def get_k(self, il: int, n_kv: int, sinfo: SlotInfo) -> np.ndarray:
        """K cells attention reads (llama_kv_cache::get_k): [s1-s0+1, n_kv, n_embd_k_gqa]."""
        return self.k_view(il)[sinfo.s0 : sinfo.s1 + 1, :n_kv]

    def get_v(self, il: int, n_kv: int, sinfo: SlotInfo) -> np.ndarray:
        """V cells attention reads: [ns, n_kv, n_embd_v_gqa] or [ns, n_embd_v_gqa, n_kv] (v_trans)."""
        v = self.v_view(il)[sinfo.s0 : sinfo.s1 + 1]
        return v[:, :, :n_kv] if self.v_trans else v[:, :n_kv]

    def k_idxs(self, sinfo: SlotInfo) -> np.ndarray:
        """int64[n_tokens]: row of each ubatch token in K viewed as [n_stream*kv_size] rows."""
        return np.concatenate([np.asarray(ix, np.int64) + s * self.size for s, ix in zip(sinfo.strm, sinfo.idxs)])

    def store_k(self, il: int, sinfo: SlotInfo, k_cur: np.ndarray) -> None:
        """Write float32 k_cur[n_tokens, n_embd_k_gqa] into the cells of sinfo (ggml_set_rows)."""
        k = self.k_view(il).reshape(self.n_stream * self.size, -1)
        k[self.k_idxs(sinfo)] = self._to_cache(self.type_k, k_cur, self.n_embd_k_gqa[self._layer(il)])

    def store_v(self, il: int, sinfo: SlotInfo, v_cur: np.ndarray) -> None:
        """Write float32 v_cur[n_tokens, n_embd_v_gqa] into the cells of sinfo."""
        il = self._layer(il)
        rows = self._to_cache(self.type_v, v_cur, self.n_embd_v_gqa[il])
        v = self.v_view(il)
        idx = self.k_idxs(sinfo)
        if self.v_trans:
            v[idx // self.size, :, idx % self.size] = rows
        else:
            v.reshape(self.n_stream * self.size, -1)[idx] = rows

    @staticmethod
    def _to_cache(t: GGMLType, x: np.ndarray, n: int) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != n:
            raise BatchError(f"K/V rows have shape {x.shape}, expected (n_tokens, {n})")
        if t == GGMLType.Q8_0:
            return gguf_quants.quantize(x, GGMLType.Q8_0)
        if t == GGMLType.F16:  # round to nearest even, as ggml's fp32 -> fp16
            x = np.ascontiguousarray(x)
            out = np.empty(x.shape, dtype=np.float16)
            _kv.f32_to_f16_rows(x.reshape(-1), out.reshape(-1).view(np.uint16), x.size)
            return out
        return x.astype(_NP_TYPES[t])

    def _layer(self, il: int) -> int:
        if il not in self._k_refs:
            raise BatchError(f"layer {il} has no KV cache here (layers: {self.layers})")
        return il

    # -- sequences (llama_memory_i) -----------------------------------------------------------

    def _check_seq(self, seq_id: int, allow_all: bool = False) -> None:
        if allow_all and seq_id == -1:
            return
        if not 0 <= seq_id < self.n_seq_max:
            raise BatchError(f"seq_id = {seq_id} out of range [0, {self.n_seq_max})")

    @staticmethod
    def _range(p0: int, p1: int) -> tuple[int, int]:
        return (0 if p0 < 0 else p0), (POS_MAX if p1 < 0 else p1)

    def clear(self, data: bool = True) -> None:
        for c in self.v_cells:
            c.reset()
        self.v_heads = [0] * self.n_stream
        if data:
            self.arena.clear()

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove cells of seq_id (-1: any) with p0 <= pos < p1 (negative = unbounded)."""
        self._check_seq(seq_id, allow_all=True)
        p0, p1 = self._range(p0, p1)
        streams = [self.seq_to_stream[seq_id]] if seq_id >= 0 else range(self.n_stream)
        for s in streams:
            first = self.v_cells[s].seq_rm_range(seq_id, p0, p1)
            if first != -1 and first < self.v_heads[s]:
                self.v_heads[s] = first  # start the next search at the freed slot
        return True

    def seq_cp(self, seq_id_src: int, seq_id_dst: int, p0: int = -1, p1: int = -1) -> None:
        """Make seq_id_dst share the cells of seq_id_src in [p0, p1)."""
        self._check_seq(seq_id_src)
        self._check_seq(seq_id_dst)
        s0, s1 = self.seq_to_stream[seq_id_src], self.seq_to_stream[seq_id_dst]
        if s0 == s1:
            if seq_id_src == seq_id_dst:
                return
            self.v_cells[s0].seq_cp_range(seq_id_src, seq_id_dst, *self._range(p0, p1))
            return
        # across streams: only whole sequences; the K/V data is copied in update()
        if (0 < p0 and p0 + 1 < self.size) or (0 < p1 and p1 + 1 < self.size):
            raise BatchError("seq_cp() across streams is only supported for the whole sequence")
        self._pending_copies.append((s0, s1))
        src, dst = self.v_cells[s0], self.v_cells[s1]
        dst.reset()
        sel = src.seq_mask(seq_id_src)
        dst.pos[sel] = src.pos[sel]
        dst.seq[sel] = np.uint64(1) << np.uint64(seq_id_dst)
        dst.shift[sel] = src.shift[sel]
        dst.has_shift = bool(np.any(src.shift[sel] != 0))
        dst._changed()
        self.v_heads[s1] = self.v_heads[s0]

    def seq_keep(self, seq_id: int) -> None:
        """Remove every sequence but seq_id from its stream."""
        self._check_seq(seq_id)
        s = self.seq_to_stream[seq_id]
        first = self.v_cells[s].seq_keep_range(seq_id)
        if first != -1 and first < self.v_heads[s]:
            self.v_heads[s] = first

    def seq_add(self, seq_id: int, p0: int, p1: int, shift: int) -> None:
        """Shift positions of seq_id in [p0, p1) by `shift`; cells pushed below 0 are removed."""
        self._check_seq(seq_id)
        if shift == 0:
            return
        p0, p1 = self._range(p0, p1)
        if p0 == p1:
            return
        s = self.seq_to_stream[seq_id]
        first = self.v_cells[s].pos_add_range(seq_id, p0, p1, shift)
        self.v_heads[s] = first if first != -1 else 0

    def seq_div(self, seq_id: int, p0: int, p1: int, d: int) -> None:
        """Integer-divide positions of seq_id in [p0, p1) by d (d >= 1)."""
        self._check_seq(seq_id)
        if d <= 0:
            raise BatchError(f"seq_div: divisor must be >= 1, got {d}")
        if d == 1:
            return
        p0, p1 = self._range(p0, p1)
        if p0 == p1:
            return
        self.v_cells[self.seq_to_stream[seq_id]].pos_div_range(seq_id, p0, p1, d)

    def seq_pos_min(self, seq_id: int) -> int:
        self._check_seq(seq_id)
        return self.v_cells[self.seq_to_stream[seq_id]].seq_pos_min(seq_id)

    def seq_pos_max(self, seq_id: int) -> int:
        self._check_seq(seq_id)
        return self.v_cells[self.seq_to_stream[seq_id]].seq_pos_max(seq_id)

    def get_has_shift(self) -> bool:
        return any(c.has_shift for c in self.v_cells)

    def get_k_shift(self) -> np.ndarray:
        """int32[n_stream * kv_size]: pending shift per cell, 0 for empty (set_input_k_shift)."""
        return np.concatenate([np.where(c.pos >= 0, c.shift, 0).astype(np.int32) for c in self.v_cells])

    def update(self, k_shift: KShiftFn | None = None) -> bool:
        """Apply queued cross-stream copies and pending K shifts (llama_kv_cache::update)."""
        updated = False
        for ssrc, sdst in self._pending_copies:
            for il in self.layers:
                for view in (self.k_view(il), self.v_view(il)):
                    view[sdst] = view[ssrc]
        self._pending_copies = []
        if self.get_has_shift():
            if k_shift is None:
                raise UnsupportedError("positions were shifted but no k_shift function was given")
            shift = self.get_k_shift()
            for il in self.layers:
                k_shift(il, self.k_view(il), shift)
            for c in self.v_cells:
                c.reset_shift()
            updated = True
        return updated

    # -- placing ubatches ----------------------------------------------------------------------

    def find_slot(self, ubatch: UBatch, cont: bool = False) -> SlotInfo | None:
        """Cells for every token of ubatch, without changing anything; None if it cannot fit."""
        n_tokens, n_seqs = ubatch.n_tokens, 1
        if self.n_stream > 1:
            n_seqs = ubatch.n_seqs_unq
            if n_tokens % n_seqs:
                raise BatchError("with one stream per sequence a ubatch needs equal sequence blocks")
            n_tokens //= n_seqs
        strm, idxs = [], []
        for s in range(n_seqs):
            seq_id = int(ubatch.seq_id_unq[s])
            if self.n_stream > 1 and (ubatch.n_seq_id[s * n_tokens] != 1 or ubatch.seq_id[s * n_tokens] != seq_id):
                raise BatchError("with one stream per sequence each token must belong to exactly one sequence")
            st = self.seq_to_stream[seq_id]
            cells = self.v_cells[st]
            head = self.v_heads[st]
            if head > cells.get_used() + 2 * n_tokens:
                head = 0  # plenty of free cells before the head: search from the start
            if n_tokens > cells.size:
                return None
            usable = self._usable(cells)
            found = self._search(usable, head, n_tokens, cont)
            if found is None:
                return None
            strm.append(st)
            idxs.append(found)
        return SlotInfo(min(strm), max(strm), strm, idxs)

    def _usable(self, cells: KVCells) -> np.ndarray:
        """Empty cells, and cells of one sequence that SWA masks for that sequence's next token."""
        ok = cells.pos < 0
        if self.swa_type != SwaType.NONE:
            single = (~ok) & (cells.seq_count() == 1)
            for s in np.unique(cells.seq[single]):
                seq_id = int(s).bit_length() - 1
                sel = single & (cells.seq == s)
                ok |= sel & is_masked_swa(self.n_swa, self.swa_type, cells.pos, cells.seq_pos_max(seq_id) + 1)
        return ok

    @staticmethod
    def _search(usable: np.ndarray, head: int, n_tokens: int, cont: bool) -> np.ndarray | None:
        size = usable.shape[0]
        if not cont:
            # cells in search order: [head, size) then [0, head); the first n_tokens usable ones
            if n_tokens == 1:  # decode: no index arrays
                tail = usable[head:]
                j = int(tail.argmax()) if tail.shape[0] else 0
                if tail.shape[0] and tail[j]:
                    return np.array([head + j], dtype=np.int32)
                j = int(usable[:head].argmax()) if head else 0
                return np.array([j], dtype=np.int32) if head and usable[j] else None
            hit = np.concatenate([np.flatnonzero(usable[head:]) + head, np.flatnonzero(usable[:head])])
            return hit[:n_tokens].astype(np.int32) if hit.shape[0] >= n_tokens else None
        n_tested = 0
        while True:
            if head + n_tokens > size:
                n_tested += size - head
                head = 0
                continue
            run = usable[head : head + n_tokens]
            if run.all():
                return np.arange(head, head + n_tokens, dtype=np.int32)
            bad = int(np.argmin(run))  # llama.cpp restarts right after the first unusable cell
            head += bad + 1
            n_tested += bad + 1
            if n_tested >= size:
                return None

    def apply_ubatch(self, sinfo: SlotInfo, ubatch: UBatch) -> None:
        """Write the ubatch's positions and sequences into the cells of sinfo."""
        n_per = sinfo.size()
        if ubatch.n_tokens != sinfo.n_stream() * n_per:
            raise BatchError(f"slot info holds {sinfo.n_stream() * n_per} cells for {ubatch.n_tokens} tokens")
        seq_pos_max_rm: dict[int, int] = {}
        for s in range(sinfo.n_stream()):
            cells = self.v_cells[sinfo.strm[s]]
            ix = sinfo.idxs[s]
            tok = slice(s * n_per, (s + 1) * n_per)
            occ = ix[cells.pos[ix] >= 0]
            for i in occ:  # SWA-masked cells being overwritten
                sid = cells.seq_get(int(i))
                seq_pos_max_rm[sid] = max(seq_pos_max_rm.get(sid, -1), int(cells.pos[i]))
            cells.pos[ix] = ubatch.pos[tok]
            cells.seq[ix] = ubatch.seq_mask[tok]
            cells.shift[ix] = 0
            cells._changed()
        # keep every position in [pos_min, pos_max] of a sequence present: purge what lies below
        # the positions just overwritten (llama.cpp PR 13746)
        for sid in sorted(seq_pos_max_rm):
            cells = self.v_cells[self.seq_to_stream[sid]]
            if cells.seq_pos_min(sid) <= seq_pos_max_rm[sid]:
                self.seq_rm(sid, cells.seq_pos_min(sid), seq_pos_max_rm[sid] + 1)
        for s in range(sinfo.n_stream()):
            self.v_heads[sinfo.strm[s]] = int(sinfo.idxs[s][-1]) + 1

    def prepare(self, ubatches: Sequence[UBatch]) -> list[SlotInfo]:
        """Slots for all ubatches in order, as if each were applied; the cache is left unchanged.

        Raises KVCacheFullError when one does not fit.
        """
        if len(ubatches) == 1:  # nothing to place before it: no apply / roll back needed
            sinfo = self.find_slot(ubatches[0], False)
            if sinfo is None:
                self._raise_full(0, ubatches[0])
            return [sinfo]
        res: list[SlotInfo] = []
        # apply_ubatch may purge cells outside the slot (SWA), so roll back whole streams;
        # llama.cpp restores only the slot cells, keeping such purges (a quirk we do not copy)
        saved = self._snapshot_all(), list(self.v_heads)
        failed = None
        try:
            for k, ub in enumerate(ubatches):
                sinfo = self.find_slot(ub, False)
                if sinfo is None:
                    failed = k
                    break
                res.append(sinfo)
                self.apply_ubatch(sinfo, ub)
        finally:
            self._restore_all(saved[0])
            self.v_heads = saved[1]
        if failed is not None:
            self._raise_full(failed, ubatches[failed])
        return res

    def _raise_full(self, k: int, ub: UBatch) -> None:
        raise KVCacheFullError(
            f"no KV cache slot for ubatch {k} ({ub.n_tokens} tokens): "
            f"{self.size} cells per stream, {[c.get_used() for c in self.v_cells]} used"
        )

    def _snapshot_all(self):
        return [(c.pos.copy(), c.seq.copy(), c.shift.copy(), c.has_shift) for c in self.v_cells]

    def _restore_all(self, full) -> None:
        for c, (p, q, sh, hs) in zip(self.v_cells, full):
            c.pos[:] = p
            c.seq[:] = q
            c.shift[:] = sh
            c.has_shift = hs
            c._changed()

    def init_batch(self, balloc: BatchAllocator, n_ubatch: int) -> list[tuple[UBatch, SlotInfo]]:
        """Split the validated batch and find every slot (llama_kv_cache::init_batch)."""
        balloc.split_reset()
        ubatches = []
        while True:
            ub = (balloc.split_simple(n_ubatch) if self.n_stream == 1
                  else balloc.split_equal(n_ubatch, True))
            if ub is None:
                break
            ubatches.append(ub)
        if balloc.n_used < balloc.n_tokens:
            raise KVCacheFullError("failed to find a suitable split of the batch")
        return list(zip(ubatches, self.prepare(ubatches)))

    # -- attention inputs -----------------------------------------------------------------------

    def get_n_kv(self, sinfo: SlotInfo) -> int:
        """Cells attention reads: used_max_p1 padded to max(n_pad, 256), capped at kv_size."""
        pad = max(self.n_pad, 256)
        res = 0
        for st in sinfo.strm:
            c = self.v_cells[st]
            padded = (c.used_max_p1() + pad - 1) // pad * pad
            res = max(res, min(c.size, max(pad, padded)))
        return res

    def get_mask(self, ubatch: UBatch, n_kv: int, causal: bool = True, n_stream: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """float32[n_tokens, n_kv] KQ mask (0 keep, -inf drop) of llama_kv_cache::set_input_kq_mask.

        Token i attends cell j when j is not empty, holds the token's first sequence, is not in
        its future (causal) and is inside its sliding window (SWA caches). `n_stream` is the
        number of mask blocks (1 for a unified cache, else ubatch.n_seqs_unq). `out`, if given,
        is a float32 array of n_tokens * n_kv elements (an arena view) that receives the mask.
        """
        if n_stream is None:
            n_stream = 1 if self.n_stream == 1 else ubatch.n_seqs_unq
        n_tokens = ubatch.n_tokens
        if n_tokens % n_stream:
            raise BatchError(f"{n_tokens} tokens do not split into {n_stream} mask blocks")
        if out is None:
            out = np.empty((n_tokens, n_kv), dtype=np.float32)
        else:
            if out.dtype != np.float32 or out.size != n_tokens * n_kv:
                raise BatchError(f"mask buffer must be float32[{n_tokens * n_kv}], got {out.dtype}[{out.size}]")
            out = out.reshape(n_tokens, n_kv)
        if not 0 <= n_kv <= self.size:
            raise BatchError(f"n_kv = {n_kv} out of range [0, {self.size}]")
        flat = out.reshape(-1)
        tok_pos = np.ascontiguousarray(ubatch.pos, dtype=np.int32)
        tok_seq = np.ascontiguousarray(ubatch.seq_id, dtype=np.int32)
        if self.n_stream == 1:
            _kv.kq_mask_rows_f32(self.v_cells[0].pos, self.v_cells[0].seq, n_kv, tok_pos, tok_seq,
                                 _arange(n_tokens), causal, int(self.swa_type), self.n_swa, flat)
            return out
        # group rows by stream: each row reads the cells of its sequence's stream
        streams = np.asarray([self.seq_to_stream[s] for s in tok_seq], dtype=np.int64)
        for st in np.unique(streams):
            cells = self.v_cells[int(st)]
            _kv.kq_mask_rows_f32(cells.pos, cells.seq, n_kv, tok_pos, tok_seq,
                                 np.flatnonzero(streams == st), causal, int(self.swa_type),
                                 self.n_swa, flat)
        return out

    # -- defragmentation ------------------------------------------------------------------------

    def defrag(self) -> int:
        """Move used cells to the front of each stream, keeping their order; returns cells moved.

        llama.cpp 0.3.36 no longer defragments; masks depend only on cell contents, so attention
        results are unchanged. Pending shifts move with their cells.
        """
        moved = 0
        for st, cells in enumerate(self.v_cells):
            src = np.flatnonzero(cells.pos >= 0)
            dst = np.arange(src.shape[0])
            m = src != dst
            if not m.any():
                continue
            moved += int(m.sum())
            for il in self.layers:
                k = self.k_view(il)[st]
                k[dst] = k[src]
                v = self.v_view(il)[st]
                if self.v_trans:
                    v[:, dst] = v[:, src]
                else:
                    v[dst] = v[src]
            pos, seq, shift = cells.pos[src].copy(), cells.seq[src].copy(), cells.shift[src].copy()
            cells.pos[:] = -1
            cells.seq[:] = 0
            cells.shift[:] = 0
            cells.pos[dst], cells.seq[dst], cells.shift[dst] = pos, seq, shift
            cells._changed()
            self.v_heads[st] = int(src.shape[0]) if src.shape[0] < cells.size else 0
        return moved

    # -- sequence state (llama_kv_cache::state_write / state_read, in emel/kv_state.py) ------------

    def state_write(self, seq_id: int) -> bytes:
        """Serialize the cells and K/V rows of one sequence."""
        from .kv_state import state_write

        return state_write(self, seq_id)

    def state_read(self, data: bytes, seq_id: int) -> None:
        """Restore a sequence saved by state_write into seq_id (replacing what seq_id held).

        Raises KVCacheFullError (cache unchanged) if the cells do not fit, BatchError if the data
        does not match this cache.
        """
        from .kv_state import state_read

        state_read(self, data, seq_id)


_ARANGE = np.arange(4096, dtype=np.int64)  # row indices of one-stream masks (never written)


def _arange(n: int) -> np.ndarray:
    return _ARANGE[:n] if n <= _ARANGE.shape[0] else np.arange(n, dtype=np.int64)


def _align(n: int, a: int = 64) -> int:
    return (n + a - 1) // a * a
