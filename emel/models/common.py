"""Shared pieces of the decoder architectures: hyper-parameters, tensor checks, graph blocks.

Follows llama.cpp src/llama-model.cpp (llama_model_base::load_hparams, create_tensor,
create_tensor_qkv), src/llama-hparams.cpp (set_swa_pattern, is_masked_swa) and
src/llama-graph.cpp (build_norm, build_qkv, build_attn, build_ffn). Architecture quirks stay in
the arch files (emel/models/<arch>.py); this module holds only what several of them share.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from kernels.cpu import attention as _attention
from kernels.cpu import glu
from kernels.cpu import matmul as _km
from kernels.cpu import ops
from kernels.cpu import rows
from kernels.cpu import step as _step
from kernels.cpu import quants as _kq

from ..errors import AllocationError, BatchError, ModelError, UnsupportedError
from .linear import Linear, dequantize


class RopeType(enum.IntEnum):
    """llama_rope_type: how RoPE pairs head values (ggml's mode bits)."""

    NONE = -1
    NORM = 0  # adjacent pairs (x[2i], x[2i+1])
    NEOX = 2  # halves (x[i], x[i + n_rot/2])


class RopeScalingType(enum.IntEnum):
    """llama_rope_scaling_type (llama_rope_scaling_type_from_string)."""

    NONE = 0
    LINEAR = 1
    YARN = 2
    LONGROPE = 3


class SwaType(enum.IntEnum):
    """llama_swa_type."""

    NONE = 0
    STANDARD = 1
    CHUNKED = 2
    SYMMETRIC = 3


_ROPE_SCALING = {"none": RopeScalingType.NONE, "linear": RopeScalingType.LINEAR,
                 "yarn": RopeScalingType.YARN, "longrope": RopeScalingType.LONGROPE}


@dataclass(frozen=True)
class HParams:
    """llama_hparams for the dense decoders emel supports; names and defaults are llama.cpp's."""

    arch: str  # general.architecture
    vocab_only: bool  # loaded without the transformer keys (tokenizer use)
    n_vocab: int  # {arch}.vocab_size or the length of tokenizer.ggml.tokens
    n_ctx_train: int = 0  # {arch}.context_length
    n_embd: int = 0  # {arch}.embedding_length
    n_layer: int = 0  # {arch}.block_count
    n_head: int = 0  # {arch}.attention.head_count
    n_head_kv: int = 0  # {arch}.attention.head_count_kv, defaults to n_head
    n_embd_head_k: int = 0  # {arch}.attention.key_length, defaults to n_embd / n_head
    n_embd_head_v: int = 0  # {arch}.attention.value_length, defaults to n_embd / n_head
    n_rot: int = 0  # {arch}.rope.dimension_count, defaults to n_embd_head_k
    n_ff: int = 0  # {arch}.feed_forward_length
    f_norm_rms_eps: float = 0.0  # {arch}.attention.layer_norm_rms_epsilon
    rope_type: RopeType = RopeType.NORM  # llama_model_rope_type(arch)
    rope_freq_base_train: float = 10000.0  # {arch}.rope.freq_base
    rope_freq_scale_train: float = 1.0  # 1 / {arch}.rope.scaling.factor
    rope_scaling_type_train: RopeScalingType = RopeScalingType.LINEAR  # {arch}.rope.scaling.type
    rope_attn_factor: float = 1.0  # {arch}.rope.scaling.attn_factor
    n_ctx_orig_yarn: int = 0  # {arch}.rope.scaling.original_context_length (n_ctx_train)
    yarn_ext_factor: float = -1.0  # -1: decided by the context (1 for YaRN, else 0)
    yarn_attn_factor: float = 1.0
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    rope_freq_base_train_swa: float = 10000.0  # {arch}.rope.freq_base_swa (Gemma-3 SWA layers)
    rope_freq_scale_train_swa: float = 1.0
    swa_type: SwaType = SwaType.NONE
    n_swa: int = 0  # {arch}.attention.sliding_window
    swa_layers: tuple[bool, ...] = ()  # per layer: is_swa(il)
    f_attention_scale: float = 0.0  # 0: 1/sqrt(n_embd_head_k)
    attn_soft_cap: bool = False
    f_attn_logit_softcapping: float = 50.0  # {arch}.attn_logit_softcapping
    f_final_logit_softcapping: float = 0.0  # {arch}.final_logit_softcapping
    causal_attn: bool = True  # {arch}.attention.causal
    pooling_type: int = -1  # {arch}.pooling_type (-1 unspecified)
    extra: Mapping[str, Any] = field(default_factory=dict)  # arch-specific values

    @property
    def n_embd_k_gqa(self) -> int:
        return self.n_embd_head_k * self.n_head_kv

    @property
    def n_embd_v_gqa(self) -> int:
        return self.n_embd_head_v * self.n_head_kv

    def is_swa(self, il: int) -> bool:
        return bool(self.swa_layers) and self.swa_layers[il]


def get_key(meta: Mapping[str, Any], key: str, default: Any = None, required: bool = False) -> Any:
    """A metadata value; a missing required key raises ModelError."""
    if key in meta:
        return meta[key]
    if required:
        raise ModelError(f"model metadata: required key {key!r} is missing")
    return default


def _per_layer(meta, key, n_layer, default=None, required=False) -> int:
    """get_key_or_arr: a scalar, or an array whose values must all be equal (dense models only)."""
    v = get_key(meta, key, default, required)
    if isinstance(v, (np.ndarray, list, tuple)):
        vals = [int(x) for x in v]
        if len(vals) != n_layer:
            raise ModelError(f"model metadata: {key} has {len(vals)} values, expected {n_layer}")
        if len(set(vals)) != 1:
            raise UnsupportedError(f"model metadata: per-layer {key} values {vals[:8]}... "
                                   "are not supported")
        return vals[0]
    return v


def base_hparams(meta: Mapping[str, Any], rope_type: RopeType, vocab_only: bool = False) -> dict:
    """llama_model_base::load_hparams as a dict of HParams fields (before the arch quirks)."""
    arch = get_key(meta, "general.architecture", required=True)
    a = arch + "."
    n_vocab = get_key(meta, a + "vocab_size")
    if n_vocab is None:
        tokens = get_key(meta, "tokenizer.ggml.tokens")
        n_vocab = len(tokens) if tokens is not None else 0
    hp: dict[str, Any] = dict(arch=arch, vocab_only=vocab_only, n_vocab=int(n_vocab),
                              rope_type=rope_type)
    if vocab_only:
        return hp
    n_layer = int(get_key(meta, a + "block_count", required=True))
    if n_layer <= 0:
        raise ModelError(f"model metadata: {a}block_count must be > 0, got {n_layer}")
    n_embd = int(get_key(meta, a + "embedding_length", required=True))
    n_head = int(_per_layer(meta, a + "attention.head_count", n_layer, 0))
    n_head_kv = int(_per_layer(meta, a + "attention.head_count_kv", n_layer, n_head))
    n_ff = int(_per_layer(meta, a + "feed_forward_length", n_layer, 0))
    if n_head <= 0 or n_embd <= 0:
        raise ModelError(f"model metadata: n_head={n_head}, n_embd={n_embd} must be > 0")
    if n_head_kv <= 0 or n_head % n_head_kv:
        raise ModelError(f"model metadata: n_head={n_head} is not a multiple of "
                         f"n_head_kv={n_head_kv}")
    n_embd_head_k = int(get_key(meta, a + "attention.key_length", n_embd // n_head))
    n_embd_head_v = int(get_key(meta, a + "attention.value_length", n_embd // n_head))
    n_rot = int(get_key(meta, a + "rope.dimension_count", n_embd_head_k))
    n_ctx_train = int(get_key(meta, a + "context_length", required=True))
    scaling = str(get_key(meta, a + "rope.scaling.type", "linear"))
    if scaling not in _ROPE_SCALING:
        raise UnsupportedError(f"model metadata: rope scaling type {scaling!r} is not supported")
    ropescale = get_key(meta, a + "rope.scaling.factor")
    if ropescale is None:
        ropescale = get_key(meta, a + "rope.scale_linear", 0.0)
    ropescale = float(np.float32(ropescale))
    hp.update(
        n_ctx_train=n_ctx_train, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        n_head_kv=n_head_kv, n_embd_head_k=n_embd_head_k, n_embd_head_v=n_embd_head_v,
        n_rot=n_rot, n_ff=n_ff,
        f_norm_rms_eps=float(np.float32(get_key(meta, a + "attention.layer_norm_rms_epsilon", 0.0))),
        rope_freq_base_train=float(np.float32(get_key(meta, a + "rope.freq_base", 10000.0))),
        rope_freq_scale_train=1.0 if ropescale == 0.0 else float(np.float32(1.0) / np.float32(ropescale)),
        rope_scaling_type_train=_ROPE_SCALING[scaling],
        rope_attn_factor=float(get_key(meta, a + "rope.scaling.attn_factor", 1.0)),
        n_ctx_orig_yarn=int(get_key(meta, a + "rope.scaling.original_context_length", n_ctx_train)),
        causal_attn=bool(get_key(meta, a + "attention.causal", True)),
        pooling_type=int(get_key(meta, a + "pooling_type", -1)),
    )
    if get_key(meta, a + "expert_count", 0):
        raise UnsupportedError(f"{arch}: mixture-of-experts models are not supported")
    return hp


def swa_pattern(n_layer: int, n_pattern: int, dense_first: bool = False) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern: which layers use sliding-window attention."""
    if dense_first:
        return tuple(n_pattern == 0 or (il % n_pattern != 0) for il in range(n_layer))
    return tuple(n_pattern == 0 or (il % n_pattern < n_pattern - 1) for il in range(n_layer))


# ---------------------------------------------------------------------------------------------
# Weights


class TensorSource:
    """Looks up tensors of a GGUF file by name, checking shapes (ggml order) like create_tensor."""

    def __init__(self, gguf_file) -> None:
        self.gguf = gguf_file
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.gguf.tensors

    def info(self, name: str, shape: tuple[int, ...], required: bool = True):
        info = self.gguf.tensors.get(name)
        if info is None:
            if required:
                raise ModelError(f"tensor {name}: missing from the model file "
                                 f"(expected shape {list(shape)})")
            return None
        found = tuple(int(x) for x in info.shape)
        want = tuple(int(x) for x in shape)
        trim = found
        while len(trim) > len(want) and trim[-1] == 1:
            trim = trim[:-1]
        if trim != want:
            raise ModelError(f"tensor {name}: wrong shape; expected {list(want)}, found {list(found)}")
        self.used.add(name)
        return info

    def check_all_used(self) -> None:
        """llama_model_loader::done_getting_tensors: every tensor of the file must be used."""
        extra = sorted(set(self.gguf.tensors) - self.used)
        if extra:
            raise ModelError(f"model file has {len(extra)} tensor(s) the architecture does not use: "
                             f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")

    def f32(self, name: str, shape: tuple[int, ...], required: bool = True) -> np.ndarray | None:
        """A small tensor (norm weight, bias) as float32."""
        info = self.info(name, shape, required)
        if info is None:
            return None
        return np.ascontiguousarray(
            dequantize_tensor(self.gguf.tensor_data(name), info.ggml_type, int(np.prod(shape))))

    def linear(self, name: str, n_in: int, n_out: int, required: bool = True) -> Linear | None:
        info = self.info(name, (n_in, n_out), required)
        if info is None:
            return None
        return Linear(self.gguf.tensor_data(name), info.ggml_type, n_out, n_in, name)


def dequantize_tensor(data: np.ndarray, ggml_type, n_elements: int) -> np.ndarray:
    """A whole tensor of any GGML type as float32 (kernels.cpu.quants.dequantize)."""
    return dequantize(data, ggml_type, n_elements)


# ---------------------------------------------------------------------------------------------
# Graph blocks


@dataclass
class RopeParams:
    """The ggml_rope_ext arguments of one layer."""

    n_rot: int
    neox: bool
    freq_base: float
    freq_scale: float
    ext_factor: float
    attn_factor: float
    corr0: float
    corr1: float
    freq_factors: np.ndarray | None = None


def rms_norm(x: np.ndarray, w: np.ndarray | None, eps: float, out: np.ndarray | None = None) -> np.ndarray:
    """build_norm(LLM_NORM_RMS): rows of x normalised then multiplied by w."""
    n_rows, n_cols = x.shape
    if out is None:
        out = np.empty_like(x)
    has_w = w is not None
    # the row-parallel kernel for any row count (one chunk for one row): a second, serial kernel
    # would cost its own loaded code (~1 MiB each, plans/perf.md 7.3) for a few microseconds
    rows.rms_norm_rows_f32(x.reshape(-1), w if has_w else _EMPTY_F32, out.reshape(-1), n_rows, n_cols,
         np.float32(eps), has_w)
    return out


def rope(x: np.ndarray, pos: np.ndarray, rp: RopeParams, scratch: np.ndarray) -> None:
    """ggml_rope_ext in place on x: float32[n_tokens, n_head, head_dim]."""
    n_tokens, n_head, head_dim = x.shape
    ff = rp.freq_factors
    args = (x.reshape(-1), pos, n_tokens, n_head, head_dim, rp.n_rot, rp.neox,
            np.float32(rp.freq_base), np.float32(rp.freq_scale), np.float32(rp.ext_factor),
            np.float32(rp.attn_factor), np.float32(rp.corr0), np.float32(rp.corr1),
            ff if ff is not None else _EMPTY_F32, ff is not None)
    if n_tokens >= PARALLEL_MIN_ROWS:
        rows.rope_rows_f32(*args)
    else:
        ops.rope_f32(*args, scratch)


_EMPTY_F32 = np.zeros(1, dtype=np.float32)
PARALLEL_MIN_ROWS = 4  # ubatches of this many tokens run the row-wise ops over all threads
F16_TABLE = ops.f16_table()
GELU_TABLE = ops.gelu_f16_table()


def gelu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """ggml_geglu_split: gelu_tanh(gate) * up with ggml's F16 GELU table."""
    out = np.empty_like(gate)
    n_rows = gate.shape[0] if gate.ndim == 2 else 1
    if gate.ndim == 2 and up.shape == gate.shape:  # any row count: see rms_norm
        rows.geglu_rows_f32(np.ascontiguousarray(gate).reshape(-1), np.ascontiguousarray(up).reshape(-1),
                            out.reshape(-1), n_rows, gate.shape[1], GELU_TABLE)
    else:
        glu.geglu_f32(np.ascontiguousarray(gate).reshape(-1), np.ascontiguousarray(up).reshape(-1),
                      out.reshape(-1), gate.size, GELU_TABLE)
    return out


def silu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """ggml_swiglu_split: silu(gate) * up."""
    n_rows, n_cols = gate.shape
    gate = np.ascontiguousarray(gate, dtype=np.float32)
    up = np.ascontiguousarray(up, dtype=np.float32)
    out = np.empty((n_rows, n_cols), dtype=np.float32)
    rows.swiglu_rows_f32(gate.reshape(-1), up.reshape(-1), out.reshape(-1), n_rows, n_cols, n_cols, n_cols)
    return out


def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, mask: np.ndarray,
              n_kv: int, kq_scale: float, softcap: float, hp: HParams,
              f32kv: bool = False) -> np.ndarray:
    """build_attn_mha without flash attention.

    q: float32[n_tokens, n_head, n_embd_head_k]; k_cache/v_cache: rows per cell (at least n_kv)
    of an F16 cache (uint16 bits, float16, or float32 holding F16 values) or, with f32kv, of an
    F32 cache; mask: float32[n_tokens, n_kv]. ggml_compute_forward_mul_mat takes llamafile's
    tinyBLAS for batches of >= 2 tokens when the shapes allow (m % 4, k % 16) and
    ggml_vec_dot_f16 otherwise; the two sum in different orders. Returns
    float32[n_tokens, n_head * n_embd_head_v].
    """
    n_tokens = q.shape[0]
    k = k_cache.reshape(-1)
    v = v_cache.reshape(-1)
    if k.dtype == np.float16:
        k, v = k.view(np.uint16), v.view(np.uint16)
    if k.size < n_kv * hp.n_embd_k_gqa or v.size < n_kv * hp.n_embd_v_gqa or mask.size < n_tokens * n_kv:
        raise AllocationError(f"attention: K/V/mask hold fewer than n_kv = {n_kv} cells")
    out = np.empty((n_tokens, hp.n_head * hp.n_embd_head_v), dtype=np.float32)
    sgemm_kq = n_tokens >= 2 and n_kv % 4 == 0 and hp.n_embd_head_k % 16 == 0
    sgemm_kqv = n_tokens >= 2 and hp.n_embd_head_v % 4 == 0 and n_kv % 16 == 0
    fn = _attention.attention_f32kv if f32kv else _attention.attention_f16kv
    fn(np.ascontiguousarray(q).reshape(-1), k, v, np.ascontiguousarray(mask).reshape(-1),
       out.reshape(-1), n_tokens, hp.n_head, hp.n_head_kv, hp.n_embd_head_k, hp.n_embd_head_v,
       n_kv, np.float32(kq_scale), np.float32(softcap), sgemm_kq, sgemm_kqv, _SCRATCH, _SCRATCH,
       _SCRATCH)
    return out


_SCRATCH = np.zeros(64, dtype=np.float32)  # the attention kernels' unused scratch arguments


def step_buffers(hp: HParams, w, kv, fusable, n_f32: int):
    """What a compiled one-token layer step needs, or None when the eager graph must run: every
    layer fusable (checked once per weights), the token's cells per layer (kv.token_cells) and
    the decode arena's scratch: (cells, f32 scratch of n_f32 values, activation bytes, lanes)."""
    fused = getattr(w, "_fused", None)
    if fused is None:
        fused = w._fused = all(fusable(hp, L) for L in w.layers)
    if not fused:
        return None
    cells = [kv.token_cells(il) for il in range(hp.n_layer)]
    if cells[0] is None:
        return None
    n_q = hp.n_head * hp.n_embd_head_k
    buf = kv.buffer("step_f32", n_f32, np.float32)
    xq = kv.buffer("step_xq", 4 * max(hp.n_embd, n_q, hp.n_ff) + 64, np.uint8)  # >= any act_nbytes
    att = kv.buffer("step_att", 64, np.float32)
    return cells, buf, xq, att


def token_row(tok_embd: Linear, token: int, kv) -> np.ndarray | None:
    """ggml_get_rows of one token id into the decode arena's `inp` row: float32[1, n_embd], or
    None when the table's type has no row kernel (the caller then uses Linear.rows)."""
    x = kv.buffer("inp", tok_embd.n_cols, np.float32)
    if not 0 <= token < tok_embd.n_rows:
        raise BatchError(f"token id {token} is out of range [0, {tok_embd.n_rows})")
    if _kq.dequantize_row(tok_embd.data, token * tok_embd.row_nbytes, tok_embd.n_cols, x, 0,
                          int(tok_embd.ggml_type)) != 0:
        return None
    return x.reshape(1, -1)


def output_row(x: np.ndarray, output_norm: np.ndarray, eps: float, output: Linear, kv,
               want_logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The output norm and lm_head of one token row, written into the decode arena (`embd`,
    `out_xq`, `logits`): the numbers of rms_norm + Linear.__call__ for one row."""
    n_embd = x.shape[1]
    embd = rms_norm(x, output_norm, eps, out=kv.buffer("embd", n_embd, np.float32).reshape(1, -1))
    if not want_logits:
        return embd, None
    t = int(output.ggml_type)
    if not (output._fast and output.n_cols == n_embd):
        return embd, output(embd)
    xq = kv.buffer("out_xq", _km.act_nbytes(t, 1, n_embd), np.uint8)
    logits = kv.buffer("logits", output.n_rows, np.float32)
    rows.quantize_act_rows(embd.reshape(-1), t, 1, n_embd, xq, _km.act_nbytes(t, 1, n_embd))
    _step.matmul_q3(output.data, t, output.n_rows, logits, output.data, t, 0, logits,
                    output.data, t, 0, logits, n_embd, xq, 1)  # = matmul_q (see Linear.__call__)
    return embd, logits.reshape(1, -1)


def softcap(x: np.ndarray, cap: float) -> None:
    """In place: x = tanh(x / cap) * cap (final logit soft-capping)."""
    flat = x.reshape(-1)
    ops.tanh_softcap_f32(flat, flat, flat.size, np.float32(cap))
