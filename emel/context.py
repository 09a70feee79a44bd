"""The decoder context: batch -> ubatches -> per-ubatch graph -> logits and embeddings.

Follows llama.cpp src/llama-context.cpp (llama_context::decode, output buffers and their order,
llama_get_logits_ith / llama_get_embeddings_ith, llama_memory_* and llama_state_seq_*) and
src/llama-cparams (runtime parameters). Per decode call, as llama_context::decode:
- emel.batch.BatchAllocator.init validates the batch against the cache (token ids, sequence ids,
  positions continuing each sequence, output flags) and fills in what is missing;
- `cache.update(k_shift)` applies pending position shifts (seq_add / seq_div): K is re-rotated
  with RoPE at each cell's delta (emel.graph_memory.GraphMemory.k_shift);
- `cache.init_batch(balloc, n_ubatch)` splits the batch (split_simple with one stream,
  split_equal(sequential) with one stream per sequence) and finds every slot first, so a batch
  that does not fit raises KVCacheFullError with the cache unchanged;
- each ubatch is applied to the cells, its masks are built, and the arch's `build_graph` runs
  with an emel.graph_memory.GraphMemory as `kv`; outputs come back in batch order
  (emel.batch.output_order).
The cache is emel.kv_cache.KVCache, or KVCacheISWA for models with sliding-window layers
(gemma3); like llama.cpp's defaults (kv_unified=false, swa_full=true) every sequence has its own
stream of cells, n_ctx is padded to 256 and n_kv is the used range padded to 256. K and V are
stored as F16 (numpy float16 in the cache arena; the attention kernels widen them exactly), or
F32 with type_k = type_v = "f32".

One-token ubatches of llama / gemma3 run one compiled call per layer (kernels.cpu.step) with
every intermediate in the decode arena of GraphMemory, so after warm-up they allocate no NumPy
data; get_logits then returns a view of that arena (valid until the next decode, like the
pointer llama_get_logits returns). Differences on purpose: prompt ubatches run the graph eagerly
with NumPy temporaries per op (no emel.alloc plan yet); q8_0 caches are not supported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .batch import Batch as _BBatch
from .batch import BatchAllocator, output_order
from .errors import BatchError, ModelError, UnsupportedError
from .graph_memory import GraphMemory
from .kv_cache import GGMLType, KVCache, SwaType
from .kv_cache_iswa import KVCacheISWA
from .kv_cells import MAX_SEQ
from .models import get_arch
from .models import common as C


class PoolingType:
    """llama_pooling_type."""

    UNSPECIFIED = -1
    NONE = 0
    MEAN = 1
    CLS = 2
    LAST = 3


@dataclass
class ContextParams:
    """llama_context_params; defaults are llama.cpp's (llama_context_default_params)."""

    n_ctx: int = 512  # text context, 0 = from model (n_ctx_train)
    n_batch: int = 2048  # logical maximum batch size for decode
    n_ubatch: int = 512  # physical maximum batch size
    n_seq_max: int = 1  # max number of sequences
    n_threads: int = 4  # GGML_DEFAULT_N_THREADS
    n_threads_batch: int = 4
    rope_scaling_type: int = -1  # -1 unspecified: from model
    pooling_type: int = PoolingType.UNSPECIFIED
    rope_freq_base: float = 0.0  # 0 = from model
    rope_freq_scale: float = 0.0  # 0 = from model
    yarn_ext_factor: float = -1.0  # negative = from model
    yarn_attn_factor: float = -1.0
    yarn_beta_fast: float = -1.0
    yarn_beta_slow: float = -1.0
    yarn_orig_ctx: int = 0
    type_k: str = "f16"  # KV cache type: "f16" (llama.cpp default) or "f32", the same for V
    type_v: str = "f16"
    embeddings: bool = False  # extract embeddings (with logits)
    swa_full: bool = True  # llama.cpp's default: a full-size cache for SWA layers


@dataclass
class Batch:
    """llama_batch: one entry per token; `pos` and `seq_id` may be None (filled like llama_batch_allocr)."""

    token: Sequence[int]  # int32[n_tokens]
    pos: Sequence[int] | None = None  # int32[n_tokens] position of each token
    seq_id: Sequence[int] | None = None  # int32[n_tokens] one sequence per token (default 0)
    logits: Sequence[bool] | None = None  # int8[n_tokens] output flags (default: last token only)


def _model_file(model_file):
    """Accept a ModelFile (emel.loader), or a path opened here."""
    if hasattr(model_file, "gguf") and hasattr(model_file, "hparams"):
        return model_file
    from .gguf import read
    gf = read(model_file)
    arch = gf.metadata.get("general.architecture")
    if arch is None:
        raise ModelError(f"{model_file}: general.architecture is missing")
    mod = get_arch(arch)
    hp = mod.load_hparams(gf.metadata)
    return _LocalModelFile(str(model_file), gf, arch, hp)


@dataclass
class _LocalModelFile:
    path: str
    gguf: object
    arch: str
    hparams: C.HParams


class Context:
    """A decoding context over one model: KV cache, batch allocator, decode arena, outputs."""

    def __init__(self, model_file, params: ContextParams | None = None, weights=None) -> None:
        self.params = params = params or ContextParams()
        self.model = mf = _model_file(model_file)
        self.arch = get_arch(mf.arch)
        self.hp = hp = mf.hparams
        if hp.vocab_only:
            raise ModelError("model was loaded vocab-only: it cannot decode")
        type_k, type_v = _cache_type(params.type_k), _cache_type(params.type_v)
        if type_k != type_v or type_k == GGMLType.Q8_0:
            raise UnsupportedError(f"KV cache types {params.type_k}/{params.type_v}: f16/f16 or "
                                   "f32/f32 are supported")
        if params.n_ubatch <= 0 or params.n_batch <= 0:
            raise BatchError("n_batch and n_ubatch must be > 0")
        if not 1 <= params.n_seq_max <= MAX_SEQ:
            raise BatchError(f"n_seq_max = {params.n_seq_max} must be in [1, {MAX_SEQ}]")
        self.n_ctx = params.n_ctx or hp.n_ctx_train
        self.n_seq_max = params.n_seq_max
        self.weights = weights if weights is not None else self.arch.load_weights(mf.gguf, hp)
        self.cparams = _cparams(hp, params, self.n_ctx)
        # llama_context: n_ctx padded to 256; one stream of n_ctx/n_seq_max cells per sequence
        self.n_ctx = -(-self.n_ctx // 256) * 256
        n_ctx_seq = -(-(self.n_ctx // self.n_seq_max) // 256) * 256
        self.n_batch = min(self.n_ctx, params.n_batch) if hp.causal_attn else params.n_batch
        self.n_ubatch = min(self.n_batch, params.n_ubatch)
        self.cache = _make_cache(hp, n_ctx_seq, self.n_seq_max, self.n_ubatch, params.swa_full,
                                 type_k, type_v)
        self.mem = GraphMemory(hp, self.cache, self.cparams, hp.n_vocab,
                               getattr(self.weights, "rope_freqs", None))
        self.kv = self.mem  # what the graph gets as `kv` (CudaContext puts its device twin here)
        self.balloc = BatchAllocator(hp.n_vocab, self.n_seq_max, hp.n_embd)
        pooling = params.pooling_type
        if pooling == PoolingType.UNSPECIFIED:
            pooling = hp.pooling_type if hp.pooling_type >= 0 else PoolingType.NONE
        self.pooling = pooling
        self._logits = np.zeros((0, hp.n_vocab), dtype=np.float32)
        self._embd = np.zeros((0, hp.n_embd), dtype=np.float32)
        self._output_ids = np.zeros(0, dtype=np.int32)  # [n_tokens] row of each token, -1 none
        self._n_outputs = 0
        self._seq_embd: dict[int, np.ndarray] = {}

    # -- public API -----------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return self.hp.n_vocab

    @property
    def kv_bytes(self) -> int:
        """Bytes of K/V storage in the cache arena(s)."""
        return self.mem.kv_bytes

    @property
    def arena_bytes(self) -> int:
        """Bytes of the decode arena (the one-token path's intermediates)."""
        return self.mem.arena_bytes

    def decode(self, batch: Batch | Sequence[int]) -> None:
        """llama_decode: run the batch; logits (and embeddings) of its output tokens are kept.

        Raises BatchError (bad batch) or KVCacheFullError (no slot); the cache is then unchanged.
        """
        if not isinstance(batch, Batch):
            batch = Batch(token=list(batch))
        hp = self.hp
        tok = np.asarray(batch.token, dtype=np.int64).reshape(-1)
        bad = (tok < 0) | (tok >= hp.n_vocab)
        if bad.any():
            raise BatchError(f"token id {int(tok[bad][0])} is out of range [0, {hp.n_vocab})")
        want_embd = self.params.embeddings
        pooled = want_embd and self.pooling != PoolingType.NONE
        balloc = self.balloc
        balloc.init(_BBatch(token=tok, pos=batch.pos, seq_id=batch.seq_id, logits=batch.logits),
                    memory=self.cache, output_all=pooled, n_batch=self.n_batch)
        self.cache.update(self.kv.k_shift)
        plan = self.cache.init_batch(balloc, self.n_ubatch)
        n_out = balloc.n_outputs
        single = len(plan) == 1
        logits = None if single else np.empty((n_out, hp.n_vocab), dtype=np.float32)
        embd_rows = np.empty((n_out, hp.n_embd), dtype=np.float32) if want_embd and not single else None
        row = 0
        for ub, *sinfos in plan:
            self.cache.apply_ubatch(*sinfos, ub)
            self.kv.begin(ub, sinfos)
            out_ids = np.flatnonzero(ub.output)
            embd, lg = self.arch.build_graph(hp, self.weights, ub, self.kv, out_ids,
                                             want_logits=True)
            if single:  # the graph's own rows: no copy
                logits, embd_rows = lg, (embd if want_embd else None)
                continue
            k = len(out_ids)
            logits[row:row + k] = lg
            if want_embd:
                embd_rows[row:row + k] = embd
            row += k
        self.mem.ubatch = None
        perm, self._output_ids = output_order(balloc.out_ids, balloc.n_tokens)
        if not _is_identity(perm):
            logits = logits[perm]
            embd_rows = embd_rows[perm] if want_embd else None
        self._logits, self._n_outputs = logits, n_out
        if want_embd:
            self._embd = embd_rows
        self._seq_embd = {}
        if pooled:
            seq = np.asarray([s[0] for s in balloc.seq_lists], dtype=np.int32)
            self._pool(seq)

    def get_logits_ith(self, i: int) -> np.ndarray:
        """llama_get_logits_ith: float32[n_vocab] of batch token i (negative counts from the end)."""
        return self._logits[self._out_row(i)]

    def get_logits(self) -> np.ndarray:
        """float32[n_outputs, n_vocab] in batch order."""
        return self._logits

    def get_embeddings_ith(self, i: int) -> np.ndarray:
        """llama_get_embeddings_ith: the last hidden state (after the output norm) of token i."""
        if not self.params.embeddings:
            raise BatchError("embeddings were not requested (ContextParams.embeddings=False)")
        return self._embd[self._out_row(i)]

    def get_embeddings_seq(self, seq_id: int) -> np.ndarray:
        """llama_get_embeddings_seq: the pooled embedding of a sequence (mean, cls or last)."""
        if seq_id not in self._seq_embd:
            raise BatchError(f"no pooled embedding for sequence {seq_id}")
        return self._seq_embd[seq_id]

    # memory (llama_memory_*): sequence ids in [0, n_seq_max), -1 = every sequence where allowed;
    # positions p0 <= pos < p1, a negative bound is open
    def memory_clear(self, data: bool = True) -> None:
        self.cache.clear(data)

    def memory_seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        return self.cache.seq_rm(seq_id, p0, p1)

    def memory_seq_cp(self, seq_id_src: int, seq_id_dst: int, p0: int = -1, p1: int = -1) -> None:
        self.cache.seq_cp(seq_id_src, seq_id_dst, p0, p1)

    def memory_seq_keep(self, seq_id: int) -> None:
        self.cache.seq_keep(seq_id)

    def memory_seq_add(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        """Shift positions in [p0, p1) by delta; K is re-rotated (RoPE) before the next decode."""
        if not self.memory_can_shift():
            raise UnsupportedError("this context cannot shift positions (SWA cache without swa_full)")
        self.cache.seq_add(seq_id, p0, p1, delta)

    def memory_seq_div(self, seq_id: int, p0: int, p1: int, d: int) -> None:
        if not self.memory_can_shift():
            raise UnsupportedError("this context cannot shift positions (SWA cache without swa_full)")
        self.cache.seq_div(seq_id, p0, p1, d)

    def memory_seq_pos_min(self, seq_id: int) -> int:
        return self.cache.seq_pos_min(seq_id)

    def memory_seq_pos_max(self, seq_id: int) -> int:
        return self.cache.seq_pos_max(seq_id)

    def memory_can_shift(self) -> bool:
        """llama_memory_can_shift: RoPE models; an SWA cache only with swa_full."""
        if self.hp.rope_type == C.RopeType.NONE:
            return False
        return getattr(self.cache, "get_can_shift", lambda: True)()

    def state_seq_get_data(self, seq_id: int) -> bytes:
        """llama_state_seq_get_data: the cells and K/V rows of one sequence."""
        return self.cache.state_write(seq_id)

    def state_seq_set_data(self, data: bytes, seq_id: int) -> int:
        """llama_state_seq_set_data: restore into seq_id; returns the bytes read. Raises
        KVCacheFullError / BatchError, the cache unchanged, when the state cannot be restored."""
        self.cache.state_read(bytes(data), seq_id)
        return len(data)

    # -- internals ------------------------------------------------------------------------

    def _out_row(self, i: int) -> int:
        n_out = self._n_outputs
        if i < 0:
            # llama_get_logits_ith: a negative index counts the outputs from the end
            if -i > n_out:
                raise BatchError(f"output index {i}: the last batch has only {n_out} outputs")
            return n_out + i
        if i >= len(self._output_ids) or self._output_ids[i] < 0:
            raise BatchError(f"token {i} of the last batch has no output (logits flag not set)")
        return int(self._output_ids[i])

    def _pool(self, seq: np.ndarray) -> None:
        for s in np.unique(seq):
            rows = self._output_ids[np.flatnonzero(seq == s)]
            e = self._embd[rows]
            if self.pooling == PoolingType.MEAN:
                v = e.mean(axis=0, dtype=np.float64).astype(np.float32)
            elif self.pooling == PoolingType.CLS:
                v = e[0]
            elif self.pooling == PoolingType.LAST:
                v = e[-1]
            else:
                raise UnsupportedError(f"pooling type {self.pooling} is not supported")
            self._seq_embd[int(s)] = v


def _cache_type(name: str) -> GGMLType:
    t = {"f16": GGMLType.F16, "f32": GGMLType.F32, "q8_0": GGMLType.Q8_0}.get(str(name).lower())
    if t is None:
        raise UnsupportedError(f"KV cache type {name!r} (supported: f16, f32)")
    return t


def _make_cache(hp: C.HParams, kv_size: int, n_seq_max: int, n_ubatch: int, swa_full: bool,
                type_k: GGMLType, type_v: GGMLType) -> KVCache | KVCacheISWA:
    """llama_model::create_memory: llama_kv_cache, or llama_kv_cache_iswa for SWA models; one
    stream per sequence (kv_unified=false, llama.cpp's default)."""
    layers = range(hp.n_layer)
    common = dict(type_k=type_k, type_v=type_v, n_seq_max=n_seq_max, unified=False)
    if hp.swa_type != C.SwaType.NONE and any(hp.is_swa(il) for il in layers):
        return KVCacheISWA(layers, hp.is_swa, hp.n_embd_k_gqa, hp.n_embd_v_gqa, kv_size,
                           n_swa=hp.n_swa, swa_type=SwaType(int(hp.swa_type)), swa_full=swa_full,
                           n_ubatch=n_ubatch, **common)
    return KVCache(layers, hp.n_embd_k_gqa, hp.n_embd_v_gqa, kv_size, **common)


def _is_identity(perm: np.ndarray) -> bool:
    return bool(np.all(perm[1:] > perm[:-1])) if perm.size > 1 else True


def compute_logits(model_file, tokens: Sequence[int], n_ctx: int | None = None,
                   weights=None) -> np.ndarray:
    """Model.logits: float32[len(tokens), n_vocab], every position, in a fresh context."""
    n = len(tokens)
    if n == 0:
        raise BatchError("no tokens")
    params = ContextParams(n_ctx=max(n_ctx or n, n), n_batch=max(n, 1), n_ubatch=512)
    ctx = Context(model_file, params, weights=weights)
    ctx.decode(Batch(token=list(tokens), logits=[True] * n))
    return ctx.get_logits().copy()


# ---------------------------------------------------------------------------------------------
# Runtime RoPE parameters (llama_context constructor)


@dataclass
class _CParams:
    rope_freq_base: float
    rope_freq_scale: float
    yarn_ext_factor: float
    yarn_attn_factor: float
    yarn_beta_fast: float
    yarn_beta_slow: float
    n_ctx_orig_yarn: int


def _cparams(hp: C.HParams, p: ContextParams, n_ctx: int) -> _CParams:
    f32 = np.float32
    ext = p.yarn_ext_factor if p.yarn_ext_factor >= 0 else hp.yarn_ext_factor
    attn = p.yarn_attn_factor if p.yarn_attn_factor >= 0 else hp.yarn_attn_factor
    fast = p.yarn_beta_fast if p.yarn_beta_fast >= 0 else hp.yarn_beta_fast
    slow = p.yarn_beta_slow if p.yarn_beta_slow >= 0 else hp.yarn_beta_slow
    base = p.rope_freq_base or hp.rope_freq_base_train
    scale = p.rope_freq_scale or hp.rope_freq_scale_train
    orig = p.yarn_orig_ctx or hp.n_ctx_orig_yarn or hp.n_ctx_train
    scaling = p.rope_scaling_type if p.rope_scaling_type >= 0 else int(hp.rope_scaling_type_train)
    if scaling == C.RopeScalingType.NONE:
        scale = 1.0
    if ext < 0:
        ext = 1.0 if scaling == C.RopeScalingType.YARN else 0.0
    if ext != 0:
        factor = f32(1.0) / f32(scale)
        attn = float(f32(1.0) if factor <= 1 else f32(0.1) * f32(np.log(factor)) + f32(1.0))
        attn = float(f32(attn) * (f32(1.0) / (f32(1.0) + f32(0.1) * f32(np.log(factor)))))
    attn = float(f32(attn) * f32(hp.rope_attn_factor))
    return _CParams(float(base), float(scale), float(ext), attn, float(fast), float(slow), int(orig))
