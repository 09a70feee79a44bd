"""Gemma 3 decoder: `general.architecture = "gemma3"`.

Follows llama.cpp src/models/gemma3.cpp: embeddings scaled by sqrt(n_embd), Q/K RMS norms,
post-attention and post-FFN norms, GELU-tanh gated FFN, NEOX RoPE, interleaved sliding-window
attention (5 SWA layers then 1 global; SWA layers use rope_freq_base_train_swa, 10000 by default)
and the optional final logit soft-capping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import common as C
from .linear import Linear

ARCH = "gemma3"
ROPE_TYPE = C.RopeType.NEOX


@dataclass(frozen=True)
class HParams(C.HParams):
    """gemma3 hparams (see common.HParams for the fields)."""


def load_hparams(meta: Mapping[str, Any], vocab_only: bool = False) -> HParams:
    """llama_model_gemma3::load_arch_hparams on top of the shared keys."""
    hp = C.base_hparams(meta, ROPE_TYPE, vocab_only)
    if vocab_only:
        return HParams(**hp)
    a = ARCH + "."
    n_layer = hp["n_layer"]
    n_swa = int(C.get_key(meta, a + "attention.sliding_window", 0))
    if n_swa > 0:
        hp["swa_type"] = C.SwaType.STANDARD
        hp["n_swa"] = n_swa
        pattern = C.get_key(meta, a + "attention.sliding_window_pattern")
        if isinstance(pattern, (np.ndarray, list, tuple)):
            if len(pattern) != n_layer:
                raise C.ModelError(f"{a}attention.sliding_window_pattern has {len(pattern)} "
                                   f"values, expected {n_layer}")
            hp["swa_layers"] = tuple(bool(x) for x in pattern)
        else:
            hp["swa_layers"] = C.swa_pattern(n_layer, int(pattern) if pattern is not None else 6)
        hp["rope_freq_base_train_swa"] = float(np.float32(
            C.get_key(meta, a + "rope.freq_base_swa", 10000.0)))
    hp["f_final_logit_softcapping"] = float(np.float32(C.get_key(meta, a + "final_logit_softcapping", 0.0)))
    hp["f_norm_rms_eps"] = float(np.float32(C.get_key(meta, a + "attention.layer_norm_rms_epsilon", required=True)))
    if n_layer == 62:  # 27B: ref gemma_pytorch config.py query_pre_attn_scalar
        hp["f_attention_scale"] = float(np.float32(1.0) / np.sqrt(np.float32(hp["n_embd"] // hp["n_head"])))
    else:
        hp["f_attention_scale"] = float(np.float32(1.0) / np.sqrt(np.float32(hp["n_embd_head_k"])))
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
    attn_post_norm: np.ndarray
    ffn_norm: np.ndarray
    ffn_gate: Linear
    ffn_up: Linear
    ffn_down: Linear
    ffn_post_norm: np.ndarray


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
    """llama_model_gemma3::load_arch_tensors."""
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
            attn_post_norm=src.f32(p + "post_attention_norm.weight", (n_embd,)),
            ffn_norm=src.f32(p + "ffn_norm.weight", (n_embd,)),
            ffn_gate=src.linear(p + "ffn_gate.weight", n_embd, n_ff),
            ffn_up=src.linear(p + "ffn_up.weight", n_embd, n_ff),
            ffn_down=src.linear(p + "ffn_down.weight", n_ff, n_embd),
            ffn_post_norm=src.f32(p + "post_ffw_norm.weight", (n_embd,)),
        ))
    weights = Weights(tok_embd, src.f32("output_norm.weight", (n_embd,)), output, layers)
    src.check_all_used()
    return weights


def build_graph(hp: HParams, w: Weights, ubatch, kv, out_ids: np.ndarray, want_logits: bool = True):
    """Run the gemma3 graph on one ubatch (eagerly); returns (embd rows, logits rows) of out_ids."""
    n_tokens = len(ubatch.token)
    hd = hp.n_embd_head_k
    eps = hp.f_norm_rms_eps
    inpL = w.tok_embd.rows(ubatch.token) * np.sqrt(np.float32(hp.n_embd))
    for il, L in enumerate(w.layers):
        rp = kv.rope_params(il)
        cur = C.rms_norm(inpL, L.attn_norm, eps)
        q = C.rms_norm(L.wq(cur).reshape(-1, hd), L.attn_q_norm, eps).reshape(n_tokens, hp.n_head, hd)
        k = C.rms_norm(L.wk(cur).reshape(-1, hd), L.attn_k_norm, eps).reshape(n_tokens, hp.n_head_kv, hd)
        v = L.wv(cur)
        C.rope(q, ubatch.pos, rp, kv.scratch)
        C.rope(k, ubatch.pos, rp, kv.scratch)
        q *= np.float32(hp.f_attention_scale)
        cur = L.wo(kv.attend(il, q, k, v, 1.0, 0.0))
        if il == hp.n_layer - 1:
            cur, inpL = cur[out_ids], inpL[out_ids]
        cur = C.rms_norm(cur, L.attn_post_norm, eps)
        sa_out = cur + inpL
        cur = C.rms_norm(sa_out, L.ffn_norm, eps)
        cur = L.ffn_down(C.gelu_mul(L.ffn_gate(cur), L.ffn_up(cur)))
        cur = C.rms_norm(cur, L.ffn_post_norm, eps)
        inpL = cur + sa_out
    embd = C.rms_norm(inpL, w.output_norm, eps)
    logits = None
    if want_logits:
        logits = w.output(embd)
        cap = hp.f_final_logit_softcapping
        if cap:
            C.softcap(logits, cap)
    return embd, logits
