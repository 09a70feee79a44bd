"""Phi-3 decoder: `general.architecture = "phi3"`.

Follows llama.cpp src/models/phi3.cpp: fused QKV projection (or separate Q/K/V), NEOX RoPE,
queries scaled by 1/sqrt(head size) before attention, SwiGLU on the two halves of one fused
ffn_up projection (LLM_FFN_SWIGLU, LLM_FFN_SEQ), no output bias (llama.cpp creates none for phi3). Like llama.cpp, the
sliding window in the metadata is ignored (llama.cpp disables Phi SWA). Not supported: the
LongRoPE factor tensors (rope_factors_long/short) of the 128k models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import common as C
from .linear import Linear
from ..errors import UnsupportedError

ARCH = "phi3"
ROPE_TYPE = C.RopeType.NEOX


@dataclass(frozen=True)
class HParams(C.HParams):
    """phi3 hparams (see common.HParams for the fields)."""


def load_hparams(meta: Mapping[str, Any], vocab_only: bool = False) -> HParams:
    """llama_model_phi3::load_arch_hparams on top of the shared keys (SWA forced off)."""
    hp = C.base_hparams(meta, ROPE_TYPE, vocab_only)
    if not vocab_only:
        hp["f_norm_rms_eps"] = float(np.float32(C.get_key(meta, ARCH + ".attention.layer_norm_rms_epsilon", required=True)))
        if hp["n_embd_head_k"] != hp["n_embd_head_v"]:
            raise C.ModelError(f"{ARCH}: key and value head sizes differ")
    return HParams(**hp)


@dataclass
class Layer:
    attn_norm: np.ndarray
    wqkv: Linear | None
    wq: Linear | None
    wk: Linear | None
    wv: Linear | None
    wo: Linear
    ffn_norm: np.ndarray
    ffn_up: Linear  # [n_embd -> 2*n_ff]: gate half then up half
    ffn_down: Linear


@dataclass
class Weights:
    tok_embd: Linear
    output_norm: np.ndarray
    output: Linear
    layers: list[Layer]


def check_tensors(gguf_file, hp: HParams) -> None:
    """Raise ModelError if a tensor is missing or has the wrong shape."""
    load_weights(gguf_file, hp)


def load_weights(gguf_file, hp: HParams) -> Weights:
    """llama_model_phi3::load_arch_tensors."""
    src = C.TensorSource(gguf_file)
    n_embd, n_vocab, n_ff, gqa = hp.n_embd, hp.n_vocab, hp.n_ff, hp.n_embd_k_gqa
    tok_embd = src.linear("token_embd.weight", n_embd, n_vocab)
    output = src.linear("output.weight", n_embd, n_vocab, required=False) or tok_embd
    if src.has("rope_factors_long.weight") or src.has("rope_factors_short.weight"):
        raise UnsupportedError(f"{ARCH}: LongRoPE factor tensors are not supported")
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        wqkv = src.linear(p + "attn_qkv.weight", n_embd, n_embd + 2 * gqa, required=False)
        sep = wqkv is None
        layers.append(Layer(
            attn_norm=src.f32(p + "attn_norm.weight", (n_embd,)),
            wqkv=wqkv,
            wq=src.linear(p + "attn_q.weight", n_embd, n_embd) if sep else None,
            wk=src.linear(p + "attn_k.weight", n_embd, gqa) if sep else None,
            wv=src.linear(p + "attn_v.weight", n_embd, gqa) if sep else None,
            wo=src.linear(p + "attn_output.weight", n_embd, n_embd),
            ffn_norm=src.f32(p + "ffn_norm.weight", (n_embd,)),
            ffn_up=src.linear(p + "ffn_up.weight", n_embd, 2 * n_ff),
            ffn_down=src.linear(p + "ffn_down.weight", n_ff, n_embd),
        ))
    weights = Weights(tok_embd, src.f32("output_norm.weight", (n_embd,)), output, layers)
    src.check_all_used()
    return weights


def build_graph(hp: HParams, w: Weights, ubatch, kv, out_ids: np.ndarray, want_logits: bool = True):
    """Run the phi3 graph on one ubatch (eagerly); returns (embd rows, logits rows) of out_ids."""
    n_tokens = len(ubatch.token)
    hd = hp.n_embd_head_k
    n_ff = hp.n_ff
    eps = hp.f_norm_rms_eps
    gqa = hp.n_embd_k_gqa
    inpL = w.tok_embd.rows(ubatch.token)
    for il, L in enumerate(w.layers):
        rp = kv.rope_params(il)
        residual = inpL
        cur = C.rms_norm(inpL, L.attn_norm, eps)
        if L.wqkv is not None:
            qkv = L.wqkv(cur)
            q = qkv[:, :hp.n_embd]
            k = qkv[:, hp.n_embd:hp.n_embd + gqa]
            v = qkv[:, hp.n_embd + gqa:]
        else:
            q, k, v = L.wq(cur), L.wk(cur), L.wv(cur)
        q = np.ascontiguousarray(q).reshape(n_tokens, hp.n_head, hd)
        k = np.ascontiguousarray(k).reshape(n_tokens, hp.n_head_kv, hd)
        C.rope(q, ubatch.pos, rp, kv.scratch)
        C.rope(k, ubatch.pos, rp, kv.scratch)
        q *= np.float32(1.0) / np.sqrt(np.float32(hd))
        cur = L.wo(kv.attend(il, q, k, np.ascontiguousarray(v), 1.0, 0.0))
        if il == hp.n_layer - 1:
            cur, residual = cur[out_ids], residual[out_ids]
        cur = cur + residual
        residual = cur
        cur = C.rms_norm(cur, L.ffn_norm, eps)
        up = L.ffn_up(cur)
        cur = L.ffn_down(C.silu_mul(up[:, :n_ff], up[:, n_ff:]))
        inpL = residual + cur
    embd = C.rms_norm(inpL, w.output_norm, eps)
    logits = None
    if want_logits:
        logits = w.output(embd)
    return embd, logits
