"""The decoder context: batch -> ubatches -> per-ubatch graph -> logits and embeddings.

Follows llama.cpp src/llama-context.cpp (llama_context::decode, output buffers,
llama_get_logits_ith / llama_get_embeddings_ith), src/llama-cparams (runtime parameters) and the
KV-cache mask of src/llama-kv-cache.cpp (set_input_kq_mask, is_masked_swa). K and V are stored as
F16 like llama.cpp's default cache types.

Like llama.cpp's defaults (kv_unified=false, swa_full=true) every sequence has its own stream of
cells, n_ctx is padded to 256 and n_kv is the used range padded to 256: cell placement decides
the summation order inside attention, so it follows llama.cpp to give bit-identical logits.

Differences on purpose: the graph runs eagerly (one arch `build_graph` call per ubatch, NumPy
temporaries per op, no arena yet), except one-token ubatches of llama / gemma3, which run one
compiled call per layer (kernels.cpu.step, same arithmetic; K/V stored through `token_cells`); `_KVStore` is a private store (to be replaced by
emel.kv_cache) that keeps every cell of a sequence for SWA layers and masks the ones outside the
window; multi-sequence batches are split into consecutive n_ubatch chunks (not split_equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import BatchError, KVCacheFullError, ModelError, UnsupportedError
from .models import get_arch
from .models import common as C
from kernels.cpu import ops


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
    type_k: str = "f16"  # KV cache type; only F16 is supported
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


@dataclass
class UBatch:
    """A physical batch: consecutive tokens of the batch."""

    token: np.ndarray  # int32[n_tokens]
    pos: np.ndarray  # int32[n_tokens]
    seq_id: np.ndarray  # int32[n_tokens]
    output: np.ndarray  # int8[n_tokens]


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
    """A decoding context over one model: KV cache, output buffers, scratch."""

    def __init__(self, model_file, params: ContextParams | None = None, weights=None) -> None:
        self.params = params = params or ContextParams()
        self.model = mf = _model_file(model_file)
        self.arch = get_arch(mf.arch)
        self.hp = hp = mf.hparams
        if hp.vocab_only:
            raise ModelError("model was loaded vocab-only: it cannot decode")
        if params.type_k.lower() != "f16" or params.type_v.lower() != "f16":
            raise UnsupportedError(f"KV cache types {params.type_k}/{params.type_v}: only f16 is supported")
        if params.n_ubatch <= 0 or params.n_batch <= 0:
            raise BatchError("n_batch and n_ubatch must be > 0")
        self.n_ctx = params.n_ctx or hp.n_ctx_train
        self.n_seq_max = max(1, params.n_seq_max)
        self.weights = weights if weights is not None else self.arch.load_weights(mf.gguf, hp)
        self.cparams = _cparams(hp, params, self.n_ctx)
        # llama_context: n_ctx padded to 256; one stream of n_ctx/n_seq_max cells per sequence
        self.n_ctx = -(-self.n_ctx // 256) * 256
        n_ctx_seq = -(-(self.n_ctx // self.n_seq_max) // 256) * 256
        self.n_batch = min(self.n_ctx, params.n_batch) if hp.causal_attn else params.n_batch
        self.n_ubatch = min(self.n_batch, params.n_ubatch)
        self.kv = _KVStore(hp, n_ctx_seq, self.n_seq_max, self.cparams)
        pooling = params.pooling_type
        if pooling == PoolingType.UNSPECIFIED:
            pooling = hp.pooling_type if hp.pooling_type >= 0 else PoolingType.NONE
        self.pooling = pooling
        self._logits = np.zeros((0, hp.n_vocab), dtype=np.float32)
        self._embd = np.zeros((0, hp.n_embd), dtype=np.float32)
        self._output_ids: dict[int, int] = {}
        self._seq_embd: dict[int, np.ndarray] = {}

    # -- public API -----------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        return self.hp.n_vocab

    def decode(self, batch: Batch | Sequence[int]) -> None:
        """llama_decode: run the batch; logits (and embeddings) of its output tokens are kept."""
        if not isinstance(batch, Batch):
            batch = Batch(token=list(batch))
        tok, pos, seq, out = self._validate(batch)
        n = len(tok)
        want_embd = self.params.embeddings
        pooled = want_embd and self.pooling != PoolingType.NONE
        if pooled:
            out[:] = 1
        n_out = int(out.sum())
        self._logits = np.zeros((n_out, self.hp.n_vocab), dtype=np.float32)
        self._embd = np.zeros((n_out, self.hp.n_embd), dtype=np.float32) if want_embd else self._embd
        self._output_ids = {}
        self._seq_embd = {}
        j = 0
        for i in range(n):
            if out[i]:
                self._output_ids[i] = j
                j += 1
        row = 0
        for start in range(0, n, self.n_ubatch):
            sl = slice(start, min(n, start + self.n_ubatch))
            ub = UBatch(tok[sl], pos[sl], seq[sl], out[sl])
            out_ids = np.nonzero(ub.output)[0].astype(np.int64)
            self.kv.begin(ub)
            embd, logits = self.arch.build_graph(self.hp, self.weights, ub, self.kv, out_ids,
                                                 want_logits=True)
            k = len(out_ids)
            self._logits[row:row + k] = logits
            if want_embd:
                self._embd[row:row + k] = embd
            row += k
        if pooled:
            self._pool(seq, pos)

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

    # memory (llama_memory_*)
    def memory_clear(self) -> None:
        self.kv.clear()

    def memory_seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        return self.kv.seq_rm(seq_id, p0, p1)

    def memory_seq_pos_max(self, seq_id: int) -> int:
        return self.kv.seq_pos_max(seq_id)

    # -- internals ------------------------------------------------------------------------

    def _out_row(self, i: int) -> int:
        n_out = len(self._output_ids)
        if i < 0:
            # llama_get_logits_ith: a negative index counts the outputs from the end
            if -i > n_out:
                raise BatchError(f"output index {i}: the last batch has only {n_out} outputs")
            return n_out + i
        if i not in self._output_ids:
            raise BatchError(f"token {i} of the last batch has no output (logits flag not set)")
        return self._output_ids[i]

    def _validate(self, batch: Batch):
        tok = np.asarray(batch.token, dtype=np.int64)
        n = len(tok)
        if n == 0:
            raise BatchError("batch is empty")
        if n > self.n_batch:
            raise BatchError(f"batch of {n} tokens exceeds n_batch={self.n_batch}")
        if tok.ndim != 1 or (tok < 0).any() or (tok >= self.hp.n_vocab).any():
            bad = int(tok[(tok < 0) | (tok >= self.hp.n_vocab)][0])
            raise BatchError(f"token id {bad} is out of range [0, {self.hp.n_vocab})")
        seq = (np.zeros(n, dtype=np.int32) if batch.seq_id is None
               else np.asarray(batch.seq_id, dtype=np.int64))
        if len(seq) != n or (seq < 0).any() or (seq >= self.n_seq_max).any():
            raise BatchError(f"seq_id must be in [0, {self.n_seq_max}) for each of the {n} tokens")
        if batch.pos is None:
            pos = np.empty(n, dtype=np.int64)
            nxt: dict[int, int] = {}
            for i in range(n):
                s = int(seq[i])
                if s not in nxt:
                    nxt[s] = self.kv.seq_pos_max(s) + 1
                pos[i] = nxt[s]
                nxt[s] += 1
        else:
            pos = np.asarray(batch.pos, dtype=np.int64)
            if len(pos) != n or (pos < 0).any():
                raise BatchError(f"pos must hold {n} non-negative positions")
        if batch.logits is None:
            out = np.zeros(n, dtype=np.int8)
            out[-1] = 1
        else:
            out = np.asarray(batch.logits, dtype=np.int8)
            if len(out) != n:
                raise BatchError(f"logits flags: {len(out)} values for {n} tokens")
        return tok.astype(np.int32), pos.astype(np.int32), seq.astype(np.int32), out

    def _pool(self, seq: np.ndarray, pos: np.ndarray) -> None:
        for s in np.unique(seq):
            rows = [self._output_ids[i] for i in np.nonzero(seq == s)[0]]
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


# ---------------------------------------------------------------------------------------------
# KV store (private stand-in until emel.kv_cache lands)


class _KVStore:
    """F16 K/V per layer and per sequence stream (llama.cpp's default non-unified cache: one
    stream of cells per sequence), cell positions, and the attention masks of a ubatch."""

    def __init__(self, hp: C.HParams, size: int, n_stream: int, cp: _CParams) -> None:
        self.hp = hp
        self.size = size
        self.n_stream = n_stream
        self.cp = cp
        # F16 cache values held as float32 (F16 -> F32 is exact): rounded when stored
        self.k = [np.zeros((n_stream, size, hp.n_embd_k_gqa), dtype=np.float32) for _ in range(hp.n_layer)]
        self.v = [np.zeros((n_stream, size, hp.n_embd_v_gqa), dtype=np.float32) for _ in range(hp.n_layer)]
        self.pos = np.full((n_stream, size), -1, dtype=np.int64)
        self.scratch = np.zeros(max(hp.n_embd_head_k, hp.n_rot, 2), dtype=np.float32)
        self._rope: dict[tuple[int, bool], C.RopeParams] = {}
        self.ubatch = None
        self._groups: list[tuple[int, np.ndarray | slice, np.ndarray | slice]] = []
        self._masks: dict[tuple[int, bool], tuple[np.ndarray, int]] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self.step_args: dict = {}  # per-layer arguments of compiled steps, made once by the arch

    def clear(self) -> None:
        self.pos[:] = -1

    def seq_pos_max(self, s: int) -> int:
        p = self.pos[s]
        return int(p.max()) if (p >= 0).any() else -1

    def seq_rm(self, s: int, p0: int, p1: int) -> bool:
        p0 = 0 if p0 < 0 else p0
        p1 = np.iinfo(np.int64).max if p1 < 0 else p1
        streams = range(self.n_stream) if s < 0 else [s]
        for st in streams:
            rng = (self.pos[st] >= p0) & (self.pos[st] < p1)
            self.pos[st][rng] = -1
        return True

    def begin(self, ub: UBatch) -> None:
        """find_slot + apply_ubatch: claim free cells of each sequence's stream."""
        groups = []
        for s in np.unique(ub.seq_id):
            idx = np.nonzero(ub.seq_id == s)[0]
            free = np.nonzero(self.pos[s] < 0)[0]
            if len(free) < len(idx):
                raise KVCacheFullError(f"KV cache full: sequence {int(s)} needs {len(idx)} cells, "
                                       f"{len(free)} of {self.size} are free")
            slots = free[:len(idx)]
            self.pos[s, slots] = ub.pos[idx]
            groups.append((int(s), _as_slice(idx), _as_slice(slots)))
        self._groups = groups
        self.ubatch = ub
        self._masks = {}

    def mask(self, s: int, idx: np.ndarray, swa: bool) -> tuple[np.ndarray, int]:
        """set_input_kq_mask for the tokens idx of sequence s: float32[len(idx), n_kv], n_kv."""
        key = (s, swa)
        if key in self._masks:
            return self._masks[key]
        used = np.nonzero(self.pos[s] >= 0)[0]
        # llama_kv_cache::get_n_kv: the used range padded to 256 cells, at most the cache size
        n_kv = min(self.size, max(256, -(-(int(used.max()) + 1) // 256) * 256))
        cpos = self.pos[s, :n_kv][None, :]
        tpos = self.ubatch.pos[idx].astype(np.int64)[:, None]
        ok = np.broadcast_to(cpos >= 0, (len(tpos), n_kv)).copy()
        if self.hp.causal_attn:
            ok &= cpos <= tpos
        if swa:
            if self.hp.swa_type != C.SwaType.STANDARD:
                raise UnsupportedError(f"SWA type {self.hp.swa_type!r} is not supported")
            ok &= (tpos - cpos) < self.hp.n_swa
        m = np.where(ok, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
        self._masks[key] = (m, n_kv)
        return m, n_kv

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
        """For a one-token ubatch: (k cells, v cells, mask row, n_kv, slot) of layer il, the
        cells as flat float32 views of the token's stream, for a compiled step that stores K/V
        itself (same F16 rounding as `attend`); None for other ubatches."""
        if len(self._groups) != 1 or len(self.ubatch.token) != 1:
            return None
        s, idx, slots = self._groups[0]
        mask, n_kv = self.mask(s, idx, self.hp.is_swa(il))
        slot = slots.start if isinstance(slots, slice) else int(slots[0])
        return self.k[il][s].reshape(-1), self.v[il][s].reshape(-1), mask.reshape(-1), n_kv, slot

    def buffer(self, name: str, n: int, dtype) -> np.ndarray:
        """A scratch array kept across ubatches (grown when too small)."""
        b = self._buffers.get(name)
        if b is None or b.size < n or b.dtype != dtype:
            b = self._buffers[name] = np.empty(n, dtype=dtype)
        return b

    def attend(self, il: int, q: np.ndarray, k: np.ndarray, v: np.ndarray, kq_scale: float,
               softcap: float) -> np.ndarray:
        """Store k, v (rounded to F16) in the ubatch cells of layer il, then attend with q."""
        hp = self.hp
        n = q.shape[0]
        k = np.asarray(k, dtype=np.float32).reshape(n, -1).astype(np.float16)
        v = np.asarray(v, dtype=np.float32).reshape(n, -1).astype(np.float16)
        swa = hp.is_swa(il)
        s, idx, slots = self._groups[0]
        if len(self._groups) == 1 and isinstance(idx, slice) and idx == slice(0, n):
            # one sequence (the usual case): no gather / scatter of the token rows
            self.k[il][s, slots] = k
            self.v[il][s, slots] = v
            mask, n_kv = self.mask(s, slice(0, n), swa)
            return C.attention(q, self.k[il][s], self.v[il][s], mask, n_kv, kq_scale, softcap, hp)
        out = np.empty((n, hp.n_head * hp.n_embd_head_v), dtype=np.float32)
        for s, idx, slots in self._groups:
            self.k[il][s, slots] = k[idx]
            self.v[il][s, slots] = v[idx]
            mask, n_kv = self.mask(s, idx, swa)
            out[idx] = C.attention(q[idx], self.k[il][s], self.v[il][s], mask, n_kv, kq_scale,
                                   softcap, hp)
        return out


def _as_slice(idx: np.ndarray):
    """idx as a slice when it is a run of consecutive indices (cheaper to index with), else idx."""
    if len(idx) and int(idx[-1]) - int(idx[0]) == len(idx) - 1:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
