"""What a model graph sees of memory while it runs one ubatch: the KV cache and the decode arena.

The arch files (emel/models/<arch>.py) call `build_graph(hp, weights, ubatch, mem, out_ids)` with
a `GraphMemory` as `mem` (named `kv` there). It is an adapter over emel.kv_cache.KVCache or
emel.kv_cache_iswa.KVCacheISWA (gemma3's SWA layers in their own cache) that offers the graph:
- `rope_params(il, freq_factors)`: ggml_rope_ext arguments of layer il (SWA layers take their
  own base and scale), as the llama_context constructor and build_rope_shift derive them;
- `attend(il, q, k, v, kq_scale, softcap)`: store K/V of the ubatch in its cells (ggml_set_rows:
  F16 round-to-nearest-even, or F32 as is) and run build_attn_mha over the n_kv cells with the
  KQ mask of llama_kv_cache::set_input_kq_mask; with one stream per sequence (llama.cpp's
  default kv_unified=false) each block of the ubatch's sequences reads its own stream;
- `token_cells(il)`: for a one-token ubatch, the raw F16 cells (uint16 views of the cache arena),
  the mask row, n_kv and the slot, for a compiled step (kernels.cpu.step) that stores K/V and
  attends itself;
- `buffer(name, n, dtype)`: scratch of the compiled one-token step, placed in one `Arena`;
- `step_args`: per-layer arguments of compiled steps, made once per context;
- `k_shift(il, k, shift)`: the K re-rotation that `cache.update` calls after seq_add/seq_div
  (llama.cpp build_graph_shift: F16 K widened, ggml_rope_ext at the cell's delta, rounded back).

Decode arena (a documented fixed layout, no graph allocator plan): the one-token path of the
arch files needs only the buffers of `_decode_layout`: the residual row, the compiled step's
float32 scratch, the quantized activation, the output-norm row, the logits row and one KQ mask
row per cache. They are laid out once at context creation, so after the first call decoding one
token allocates no NumPy data. Prompt ubatches (several tokens) still run the eager graph with
NumPy temporaries per op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.cpu import attention as _attention
from kernels.cpu import ops

from .arena import Arena, TensorRef
from .errors import AllocationError, UnsupportedError
from .kv_cache import GGMLType, KVCache
from .kv_cache_iswa import KVCacheISWA
from .models import common as C


@dataclass
class _Slot:
    """Where the current ubatch lives in one cache (llama_kv_cache::slot_info + its inputs)."""

    cache: KVCache
    sinfo: object  # emel.kv_cache.SlotInfo
    n_kv: int  # cells attention reads
    mask: np.ndarray  # float32[n_tokens, n_kv]


class GraphMemory:
    """KV cache adapter and decode arena of one context (see the module docstring)."""

    def __init__(self, hp: C.HParams, cache: KVCache | KVCacheISWA, cparams, n_vocab_out: int,
                 freq_factors: np.ndarray | None = None) -> None:
        self.hp = hp
        self.cache = cache
        self.cp = cparams
        self.freq_factors = freq_factors
        caches = [cache.kv_base, cache.kv_swa] if isinstance(cache, KVCacheISWA) else [cache]
        self._caches = [c for c in caches if c.layers]
        self._of_layer = {il: c for c in self._caches for il in c.layers}
        t = self._caches[0].type_k
        if any(c.type_k != t or c.type_v != t for c in self._caches):
            raise UnsupportedError("type_k and type_v must be the same cache type")
        if t not in (GGMLType.F16, GGMLType.F32):
            raise UnsupportedError(f"KV cache type {t.name}: only f16 and f32 are supported")
        self.type_kv = t
        # flat views of K/V per layer and stream: uint16 F16 bits or float32
        dt = np.uint16 if t == GGMLType.F16 else np.float32
        self._k = {il: [s.reshape(-1).view(dt) for s in c.k_view(il)] for il, c in self._of_layer.items()}
        self._v = {il: [s.reshape(-1).view(dt) for s in c.v_view(il)] for il, c in self._of_layer.items()}
        self.scratch = np.zeros(max(hp.n_embd_head_k, hp.n_rot, 2), dtype=np.float32)
        self._rope: dict[tuple[bool, bool], C.RopeParams] = {}
        self.step_args: dict = {}
        self._refs = _decode_layout(hp, n_vocab_out, [c.size for c in self._caches])
        self.arena = Arena(max((r.offset + r.nbytes for r in self._refs.values()), default=0))
        self._views = {name: self.arena.view(r) for name, r in self._refs.items()}
        self._extra: dict[str, np.ndarray] = {}
        self.ubatch = None
        self._slots: list[_Slot] = []
        self._slot_of: dict[int, _Slot] = {}

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def kv_bytes(self) -> int:
        """Bytes of K/V storage (every cache arena)."""
        return sum(c.arena.nbytes for c in self._caches)

    @property
    def arena_bytes(self) -> int:
        """Bytes of the decode arena."""
        return self.arena.nbytes

    @property
    def size(self) -> int:
        """Cells per stream of the largest cache."""
        return max(c.size for c in self._caches)

    @property
    def n_stream(self) -> int:
        return self._caches[0].n_stream

    def blocks(self, il: int) -> list[tuple[int, slice, np.ndarray, KVCache]]:
        """The current ubatch in layer il's cache, per stream block: (stream, token rows, cells
        int32[len(rows)], cache); the mask rows of a block are `mask(il)[rows]`."""
        s = self._slot_of[il]
        strm = s.sinfo.strm
        n_per = self.ubatch.n_tokens // len(strm)
        return [(st, slice(b * n_per, (b + 1) * n_per), s.sinfo.idxs[b], s.cache)
                for b, st in enumerate(strm)]

    def blocks_cache(self, il: int) -> KVCache:
        """The cache that holds layer il."""
        return self._of_layer[il]

    def mask(self, il: int) -> tuple[np.ndarray, int]:
        """The KQ mask float32[n_tokens, n_kv] of layer il's cache for the current ubatch, n_kv."""
        s = self._slot_of[il]
        return s.mask, s.n_kv

    # -- per ubatch ----------------------------------------------------------------------------

    def begin(self, ub, sinfos) -> None:
        """Take the ubatch placed at sinfos (one per cache, in `cache.init_batch`'s order)."""
        caches = [self.cache.kv_base, self.cache.kv_swa] if isinstance(self.cache, KVCacheISWA) else [self.cache]
        self.ubatch = ub
        self._slots = []
        self._slot_of = {}
        k = 0
        for c, sinfo in zip(caches, sinfos):
            if not c.layers:
                continue
            n_kv = c.get_n_kv(sinfo)
            out = self._views[f"mask{k}"] if ub.n_tokens == 1 else None
            k += 1
            mask = c.get_mask(ub, n_kv, causal=self.hp.causal_attn,
                              out=None if out is None else out[:n_kv])
            slot = _Slot(c, sinfo, n_kv, mask)
            self._slots.append(slot)
            for il in c.layers:
                self._slot_of[il] = slot

    def rope_params(self, il: int, freq_factors: np.ndarray | None = None) -> C.RopeParams:
        """ggml_rope_ext arguments of layer il (SWA layers use their own base and scale)."""
        swa = self.hp.is_swa(il)
        key = (swa, freq_factors is not None)
        rp = self._rope.get(key)
        if rp is None:
            hp, cp = self.hp, self.cp
            base = hp.rope_freq_base_train_swa if swa else cp.rope_freq_base
            scale = hp.rope_freq_scale_train_swa if swa else cp.rope_freq_scale
            c0, c1 = ops.rope_yarn_corr_dims(hp.n_rot, cp.n_ctx_orig_yarn, base,
                                             cp.yarn_beta_fast, cp.yarn_beta_slow)
            rp = C.RopeParams(hp.n_rot, hp.rope_type == C.RopeType.NEOX, base, scale,
                              cp.yarn_ext_factor, cp.yarn_attn_factor, c0, c1, freq_factors)
            self._rope[key] = rp
        return rp

    def token_cells(self, il: int):
        """For a one-token ubatch with an F16 cache: (k cells, v cells, mask row, n_kv, slot) of
        layer il, the cells as flat uint16 views of the token's stream; None otherwise."""
        if self.ubatch is None or self.ubatch.n_tokens != 1 or self.type_kv != GGMLType.F16:
            return None
        s = self._slot_of[il]
        st = s.sinfo.strm[0]
        return self._k[il][st], self._v[il][st], s.mask.reshape(-1), s.n_kv, int(s.sinfo.idxs[0][0])

    def buffer(self, name: str, n: int, dtype) -> np.ndarray:
        """Scratch of at least n elements: a view of the decode arena for the names of
        `_decode_layout`; any other name gets an array kept across ubatches."""
        v = self._views.get(name)
        if v is not None:
            if v.dtype != np.dtype(dtype) or v.size < n:
                raise AllocationError(f"decode arena buffer {name}: {v.dtype}[{v.size}] cannot hold "
                                      f"{np.dtype(dtype)}[{n}]")
            return v
        b = self._extra.get(name)
        if b is None or b.size < n or b.dtype != dtype:
            b = self._extra[name] = np.empty(n, dtype=dtype)
        return b

    def attend(self, il: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, kq_scale: float,
               softcap: float) -> np.ndarray:
        """Store k, v in the ubatch cells of layer il, then attend with q; returns
        float32[n_tokens, n_head * n_embd_head_v]."""
        hp = self.hp
        s = self._slot_of[il]
        n = q.shape[0]
        s.cache.store_k(il, s.sinfo, np.asarray(k, dtype=np.float32).reshape(n, -1))
        s.cache.store_v(il, s.sinfo, np.asarray(v, dtype=np.float32).reshape(n, -1))
        f32kv = self.type_kv == GGMLType.F32
        strm = s.sinfo.strm
        if len(strm) == 1:
            return C.attention(q, self._k[il][strm[0]], self._v[il][strm[0]], s.mask, s.n_kv,
                               kq_scale, softcap, hp, f32kv)
        # one stream per sequence: the ubatch holds len(strm) equal blocks, one per stream
        n_per = n // len(strm)
        out = np.empty((n, hp.n_head * hp.n_embd_head_v), dtype=np.float32)
        for b, st in enumerate(strm):
            r = slice(b * n_per, (b + 1) * n_per)
            out[r] = C.attention(q[r], self._k[il][st], self._v[il][st], s.mask[r], s.n_kv,
                                 kq_scale, softcap, hp, f32kv)
        return out

    # -- K-shift (llama_kv_cache::build_graph_shift) --------------------------------------------

    def k_shift(self, il: int, k: np.ndarray, shift: np.ndarray) -> None:
        """Rotate K of layer il in place by each cell's position delta (cache.update callback).

        k: [n_stream, kv_size, n_embd_k_gqa] in the cache type; shift: int32[n_stream * kv_size].
        Like ggml_rope_ext on the F16 cache: values widened to float32, rotated, rounded back.
        """
        hp = self.hp
        rp = self.rope_params(il, self.freq_factors)
        n_cells = shift.shape[0]
        rows = k.reshape(n_cells, hp.n_head_kv, hp.n_embd_head_k)
        # every cell, as llama.cpp: a zero delta is exact unless YaRN's mscale != 1 scales it
        x = rows.astype(np.float32)
        C.rope(x, np.ascontiguousarray(shift, dtype=np.int32), rp, self.scratch)
        rows[:] = x.astype(rows.dtype)


def _decode_layout(hp: C.HParams, n_vocab_out: int, cache_sizes: list[int]) -> dict[str, TensorRef]:
    """The decode arena: every buffer the one-token path uses, 64-byte aligned, in this order.

    step_f32: the compiled layer step's float32 scratch (kernels.cpu.step: gemma3's needs
    4 n_embd + 3 n_q + 3 n_kv_dim + 3 n_ff, llama's less); step_xq: the largest quantized
    activation (Q8_K rows: 292 bytes per 256 values, so 4 bytes per value bounds every type);
    step_att: the attention kernel's workspace for one token over the largest cache
    (kernels.cpu.attention.workspace_nbytes); inp, embd: the residual and output-norm rows;
    logits: one row of n_vocab; out_xq: the output matmul's quantized activation; pos: the
    token's position; mask{k}: one KQ mask row of cache k.
    """
    n_q = hp.n_head * hp.n_embd_head_k
    n_kd = hp.n_head_kv * max(hp.n_embd_head_k, hp.n_embd_head_v)
    n_embd, n_ff = hp.n_embd, hp.n_ff
    sizes = [
        ("step_f32", np.float32, 4 * n_embd + 3 * n_q + 3 * n_kd + 3 * n_ff),
        ("step_xq", np.uint8, 4 * max(n_embd, n_q, n_ff) + 64),
        ("step_att", np.float32, max(64, _attention.workspace_nbytes(
            1, hp.n_head, max(cache_sizes), hp.n_embd_head_k, hp.n_embd_head_v) // 4)),
        ("inp", np.float32, n_embd),
        ("embd", np.float32, n_embd),
        ("logits", np.float32, n_vocab_out),
        ("out_xq", np.uint8, 4 * n_embd + 64),
        ("pos", np.int32, 1),
    ] + [(f"mask{k}", np.float32, n) for k, n in enumerate(cache_sizes)]
    refs, off = {}, 0
    for name, dt, n in sizes:
        nbytes = int(n) * np.dtype(dt).itemsize
        refs[name] = TensorRef(np.dtype(dt), (int(n),), off, nbytes)
        off = (off + nbytes + 63) // 64 * 64
    return refs
