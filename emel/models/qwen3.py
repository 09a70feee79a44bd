"""Qwen3 decoder: `general.architecture = "qwen3"`.

Follows llama.cpp src/models/qwen3.cpp: the llama layout with per-head Q/K RMS norms (before
RoPE), NEOX RoPE, head size from attention.key_length, tied embeddings when output.weight is
absent. No biases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import common as C
from .linear import Linear, matmul_group

ARCH = "qwen3"
ROPE_TYPE = C.RopeType.NEOX


@dataclass(frozen=True)
class HParams(C.HParams):
    """qwen3 hparams (see common.HParams for the fields)."""


def load_hparams(meta: Mapping[str, Any], vocab_only: bool = False) -> HParams:
    """llama_model_qwen3::load_arch_hparams on top of the shared keys."""
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
    wo: Linear
    attn_q_norm: np.ndarray
    attn_k_norm: np.ndarray
    ffn_norm: np.ndarray
    ffn_gate: Linear
    ffn_up: Linear
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
    """llama_model_qwen3::load_arch_tensors."""
    src = C.TensorSource(gguf_file)
    n_embd, n_vocab, n_ff, hd = hp.n_embd, hp.n_vocab, hp.n_ff, hp.n_embd_head_k
    tok_embd = src.linear("token_embd.weight", n_embd, n_vocab)
    output = src.linear("output.weight", n_embd, n_vocab, required=False) or tok_embd
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        layers.append(Layer(
            attn_norm=src.f32(p + "attn_norm.weight", (n_embd,)),
            wq=src.linear(p + "attn_q.weight", n_embd, hd * hp.n_head),
            wk=src.linear(p + "attn_k.weight", n_embd, hp.n_embd_k_gqa),
            wv=src.linear(p + "attn_v.weight", n_embd, hp.n_embd_v_gqa),
            wo=src.linear(p + "attn_output.weight", hd * hp.n_head, n_embd),
            attn_q_norm=src.f32(p + "attn_q_norm.weight", (hd,)),
            attn_k_norm=src.f32(p + "attn_k_norm.weight", (hd,)),
            ffn_norm=src.f32(p + "ffn_norm.weight", (n_embd,)),
            ffn_gate=src.linear(p + "ffn_gate.weight", n_embd, n_ff),
            ffn_up=src.linear(p + "ffn_up.weight", n_embd, n_ff),
            ffn_down=src.linear(p + "ffn_down.weight", n_ff, n_embd),
        ))
    weights = Weights(tok_embd, src.f32("output_norm.weight", (n_embd,)), output, layers)
    src.check_all_used()
    return weights


def build_graph(hp: HParams, w: Weights, ubatch, kv, out_ids: np.ndarray, want_logits: bool = True):
    """Run the qwen3 graph on one ubatch (eagerly); returns (embd rows, logits rows) of out_ids."""
    n_tokens = len(ubatch.token)
    hd = hp.n_embd_head_k
    kq_scale = np.float32(1.0) / np.sqrt(np.float32(hd))
    eps = hp.f_norm_rms_eps
    inpL = w.tok_embd.rows(ubatch.token)
    for il, L in enumerate(w.layers):
        rp = kv.rope_params(il)
        cur = C.rms_norm(inpL, L.attn_norm, eps)
        q, k, v = matmul_group([L.wq, L.wk, L.wv], cur)
        q = C.rms_norm(q.reshape(-1, hd), L.attn_q_norm, eps).reshape(n_tokens, hp.n_head, hd)
        k = C.rms_norm(k.reshape(-1, hd), L.attn_k_norm, eps).reshape(n_tokens, hp.n_head_kv, hd)
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
    logits = w.output(embd) if want_logits else None
    return embd, logits
