"""Qwen2 decoder: `general.architecture = "qwen2"`.

Follows llama.cpp src/models/qwen2.cpp: the llama layout with Q/K/V biases, NEOX RoPE, an
optional output bias, and tied embeddings when output.weight is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import common as C
from .linear import Linear, matmul_group

ARCH = "qwen2"
ROPE_TYPE = C.RopeType.NEOX


@dataclass(frozen=True)
class HParams(C.HParams):
    """qwen2 hparams (see common.HParams for the fields)."""


def load_hparams(meta: Mapping[str, Any], vocab_only: bool = False) -> HParams:
    """llama_model_qwen2::load_arch_hparams on top of the shared keys."""
    hp = C.base_hparams(meta, ROPE_TYPE, vocab_only)
    if not vocab_only:
        hp["f_norm_rms_eps"] = float(np.float32(C.get_key(meta, ARCH + ".attention.layer_norm_rms_epsilon", required=True)))
        if hp["n_rot"] != hp["n_embd_head_k"] or hp["n_embd_head_k"] != hp["n_embd_head_v"]:
            raise C.ModelError(f"{ARCH}: n_rot={hp['n_rot']} must equal the head size {hp['n_embd_head_k']}")
    return HParams(**hp)


@dataclass
class Layer:
    attn_norm: np.ndarray
    wq: Linear
    wk: Linear
    wv: Linear
    wq_b: np.ndarray | None
    wk_b: np.ndarray | None
    wv_b: np.ndarray | None
    wo: Linear
    ffn_norm: np.ndarray
    ffn_gate: Linear
    ffn_up: Linear
    ffn_down: Linear


@dataclass
class Weights:
    tok_embd: Linear
    output_norm: np.ndarray
    output: Linear
    output_b: np.ndarray | None
    layers: list[Layer]


def check_tensors(gguf_file, hp: HParams) -> None:
    """Raise ModelError if a tensor is missing or has the wrong shape."""
    load_weights(gguf_file, hp)


def load_weights(gguf_file, hp: HParams) -> Weights:
    """llama_model_qwen2::load_arch_tensors."""
    src = C.TensorSource(gguf_file)
    n_embd, n_vocab, n_ff, gqa = hp.n_embd, hp.n_vocab, hp.n_ff, hp.n_embd_k_gqa
    tok_embd = src.linear("token_embd.weight", n_embd, n_vocab)
    output = src.linear("output.weight", n_embd, n_vocab, required=False) or tok_embd
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        layers.append(Layer(
            attn_norm=src.f32(p + "attn_norm.weight", (n_embd,)),
            wq=src.linear(p + "attn_q.weight", n_embd, n_embd),
            wk=src.linear(p + "attn_k.weight", n_embd, gqa),
            wv=src.linear(p + "attn_v.weight", n_embd, gqa),
            wq_b=src.f32(p + "attn_q.bias", (n_embd,), required=False),
            wk_b=src.f32(p + "attn_k.bias", (gqa,), required=False),
            wv_b=src.f32(p + "attn_v.bias", (gqa,), required=False),
            wo=src.linear(p + "attn_output.weight", n_embd, n_embd),
            ffn_norm=src.f32(p + "ffn_norm.weight", (n_embd,)),
            ffn_gate=src.linear(p + "ffn_gate.weight", n_embd, n_ff),
            ffn_up=src.linear(p + "ffn_up.weight", n_embd, n_ff),
            ffn_down=src.linear(p + "ffn_down.weight", n_ff, n_embd),
        ))
    weights = Weights(tok_embd, src.f32("output_norm.weight", (n_embd,)), output,
                   src.f32("output.bias", (n_vocab,), required=False), layers)
    src.check_all_used()
    return weights


def _bias(x: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    return x if b is None else x + b


def build_graph(hp: HParams, w: Weights, ubatch, kv, out_ids: np.ndarray, want_logits: bool = True):
    """Run the qwen2 graph on one ubatch (eagerly); returns (embd rows, logits rows) of out_ids."""
    n_tokens = len(ubatch.token)
    hd = hp.n_embd_head_k
    kq_scale = np.float32(1.0) / np.sqrt(np.float32(hd))
    eps = hp.f_norm_rms_eps
    inpL = w.tok_embd.rows(ubatch.token)
    for il, L in enumerate(w.layers):
        rp = kv.rope_params(il)
        cur = C.rms_norm(inpL, L.attn_norm, eps)
        q, k, v = matmul_group([L.wq, L.wk, L.wv], cur)
        q = _bias(q, L.wq_b).reshape(n_tokens, hp.n_head, hd)
        k = _bias(k, L.wk_b).reshape(n_tokens, hp.n_head_kv, hd)
        v = _bias(v, L.wv_b)
        C.rope(q, ubatch.pos, rp, kv.scratch)
        C.rope(k, ubatch.pos, rp, kv.scratch)
        cur = L.wo(kv.attend(il, q, k, v, kq_scale, 0.0))
        inpSA = inpL
        if il == hp.n_layer - 1:
            cur, inpSA = cur[out_ids], inpSA[out_ids]
        ffn_inp = cur + inpSA
        cur = C.rms_norm(ffn_inp, L.ffn_norm, eps)
        cur = L.ffn_down(C.silu_mul(*matmul_group([L.ffn_gate, L.ffn_up], cur)))
        inpL = cur + ffn_inp
    embd = C.rms_norm(inpL, w.output_norm, eps)
    logits = None
    if want_logits:
        logits = _bias(w.output(embd), w.output_b)
    return embd, logits
