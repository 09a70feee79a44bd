"""Save and restore one sequence of a KV cache to bytes.

Follows llama.cpp src/llama-kv-cache.cpp (state_write / state_write_meta / state_write_data and
state_read / state_read_meta / state_read_data) for one sequence: the stream count, per stream a
cell count, for each cell its position, 1 and the sequence id, then per layer K rows (type, row
size, rows) and V rows (type, row size, rows; or type, element size, n_embd_v_gqa and the
elements when V is transposed). On SWA caches the cells the window already masks are left out,
as llama.cpp does. Reading removes what the destination sequence held, finds a slot with
find_slot and applies the cells like a ubatch.

Differences on purpose: no M-RoPE cell extension; the whole-cache (seq_id = -1) form is not
implemented; a restore that cannot fit raises KVCacheFullError and leaves the cache unchanged.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING

import numpy as np

from .batch import BatchAllocator
from .errors import BatchError, KVCacheFullError
from .kv_cache import SwaType, is_masked_swa

if TYPE_CHECKING:
    from .kv_cache import KVCache


def state_write(cache: KVCache, seq_id: int) -> bytes:
    """Serialize the cells and K/V rows of one sequence."""
    cache._check_seq(seq_id)
    out = io.BytesIO()
    out.write(struct.pack("<I", cache.n_stream))
    for st, cells in enumerate(cache.v_cells):
        sel = cells.seq_mask(seq_id) & (cells.pos >= 0)
        if cache.swa_type != SwaType.NONE:
            sel &= ~is_masked_swa(cache.n_swa, cache.swa_type, cells.pos, cells.seq_pos_max(seq_id))
        ix = np.flatnonzero(sel)
        out.write(struct.pack("<I", ix.shape[0]))
        if ix.shape[0] == 0:
            continue
        for i in ix:
            out.write(struct.pack("<iIi", int(cells.pos[i]), 1, seq_id))
        out.write(struct.pack("<II", int(cache.v_trans), len(cache.layers)))
        for il in cache.layers:
            k = cache.k_view(il)[st].reshape(cache.size, -1)
            out.write(struct.pack("<iQ", int(cache.type_k), k.shape[1] * k.itemsize))
            out.write(np.ascontiguousarray(k[ix]).tobytes())
        for il in cache.layers:
            v = cache.v_view(il)[st]
            if cache.v_trans:
                out.write(struct.pack("<iII", int(cache.type_v), v.itemsize, v.shape[0]))
                out.write(np.ascontiguousarray(v[:, ix]).tobytes())
            else:
                v = v.reshape(cache.size, -1)
                out.write(struct.pack("<iQ", int(cache.type_v), v.shape[1] * v.itemsize))
                out.write(np.ascontiguousarray(v[ix]).tobytes())
    return out.getvalue()


def state_read(cache: KVCache, data: bytes, seq_id: int) -> None:
    """Restore a sequence saved by state_write into seq_id (replacing what seq_id held).

    Raises KVCacheFullError (nothing changed) if the cells do not fit, BatchError if the data
    does not match this cache.
    """
    cache._check_seq(seq_id)
    rd = _Reader(data)
    if rd.u32() != cache.n_stream:
        raise BatchError("saved state has a different number of streams")
    plans = []
    for st in range(cache.n_stream):
        n = rd.u32()
        if n == 0:
            continue
        pos = np.empty(n, dtype=np.int32)
        for i in range(n):
            p, n_seq_id = rd.unpack("<iI")
            if n_seq_id != 1:
                raise BatchError("saved state holds cells of several sequences")
            rd.unpack("<i")
            pos[i] = p
        v_trans, n_layer = rd.unpack("<II")
        if bool(v_trans) != cache.v_trans or n_layer != len(cache.layers):
            raise BatchError("saved state does not match this cache's layout")
        ks, vs = [], []
        for il in cache.layers:
            t, row = rd.unpack("<iQ")
            if t != int(cache.type_k) or row != cache._k_refs[il].shape[2] * cache._k_refs[il].dtype.itemsize:
                raise BatchError(f"saved K of layer {il} has another type or row size")
            ks.append(rd.take(n * row))
        for il in cache.layers:
            if cache.v_trans:
                t, el, n_embd = rd.unpack("<iII")
                ok = t == int(cache.type_v) and n_embd == cache.n_embd_v_gqa[il]
                vs.append(rd.take(n * n_embd * el))
            else:
                t, row = rd.unpack("<iQ")
                ok = t == int(cache.type_v) and row == cache._v_refs[il].shape[2] * cache._v_refs[il].dtype.itemsize
                vs.append(rd.take(n * row))
            if not ok:
                raise BatchError(f"saved V of layer {il} has another type or row size")
        plans.append((pos, ks, vs))
    if rd.left():
        raise BatchError(f"{rd.left()} unexpected trailing bytes in saved state")
    for pos, ks, vs in plans:
        _restore_seq(cache, seq_id, pos, ks, vs)


def _restore_seq(cache: KVCache, seq_id: int, pos: np.ndarray, ks: list, vs: list) -> None:
    n = pos.shape[0]
    st = cache.seq_to_stream[seq_id]
    if n > cache.size:
        raise KVCacheFullError(f"saved sequence has {n} cells, the cache {cache.size}")
    saved = cache._snapshot_all(), list(cache.v_heads)
    cache.seq_rm(seq_id, -1, -1)
    ub = BatchAllocator(1, cache.n_seq_max).ubatch_reserve(n, 1)
    ub.pos[:] = pos
    ub.seq_id[:] = seq_id
    ub.seq_mask[:] = np.uint64(1) << np.uint64(seq_id)
    ub.seq_id_unq[:] = seq_id
    sinfo = cache.find_slot(ub, False)
    if sinfo is None:
        cache._restore_all(saved[0])
        cache.v_heads = saved[1]
        raise KVCacheFullError(f"no room for the {n} cells of the saved sequence")
    cache.apply_ubatch(sinfo, ub)
    ix = sinfo.idxs[0]
    for il, kb, vb in zip(cache.layers, ks, vs):
        k = cache.k_view(il)[st].reshape(cache.size, -1)
        k[ix] = np.frombuffer(kb, dtype=k.dtype).reshape(n, -1)
        v = cache.v_view(il)[st]
        if cache.v_trans:
            v[:, ix] = np.frombuffer(vb, dtype=v.dtype).reshape(v.shape[0], n)
        else:
            v = v.reshape(cache.size, -1)
            v[ix] = np.frombuffer(vb, dtype=v.dtype).reshape(n, -1)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.off = memoryview(data), 0

    def take(self, n: int) -> bytes:
        if self.off + n > len(self.data):
            raise BatchError(f"saved state truncated: need {n} bytes at offset {self.off}")
        b = bytes(self.data[self.off : self.off + n])
        self.off += n
        return b

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def u32(self) -> int:
        return self.unpack("<I")[0]

    def left(self) -> int:
        return len(self.data) - self.off
