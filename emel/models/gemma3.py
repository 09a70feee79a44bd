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

from kernels.cpu import step as _step

from . import common as C
from .linear import Linear, matmul_group

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
    if n_tokens == 1 and len(out_ids) == 1:
        # one token: the residual row and outputs live in the decode arena (kv.buffer)
        x = C.token_row(w.tok_embd, int(ubatch.token[0]), kv)
        if x is not None:
            np.multiply(x, np.sqrt(np.float32(hp.n_embd)), out=x)
            if _decode_token(hp, w, ubatch, kv, x):
                embd, logits = C.output_row(x, w.output_norm, eps, w.output, kv, want_logits)
                if logits is not None and hp.f_final_logit_softcapping:
                    C.softcap(logits, hp.f_final_logit_softcapping)
                return embd, logits
    inpL = w.tok_embd.rows(ubatch.token) * np.sqrt(np.float32(hp.n_embd))
    for il, L in enumerate(w.layers):
        rp = kv.rope_params(il)
        cur = C.rms_norm(inpL, L.attn_norm, eps)
        q, k, v = matmul_group([L.wq, L.wk, L.wv], cur)
        q = C.rms_norm(q.reshape(-1, hd), L.attn_q_norm, eps).reshape(n_tokens, hp.n_head, hd)
        k = C.rms_norm(k.reshape(-1, hd), L.attn_k_norm, eps).reshape(n_tokens, hp.n_head_kv, hd)
        C.rope(q, ubatch.pos, rp, kv.scratch)
        C.rope(k, ubatch.pos, rp, kv.scratch)
        q *= np.float32(hp.f_attention_scale)
        cur = L.wo(kv.attend(il, q, k, v, 1.0, 0.0))
        if il == hp.n_layer - 1:
            cur, inpL = cur[out_ids], inpL[out_ids]
        cur = C.rms_norm(cur, L.attn_post_norm, eps)
        sa_out = cur + inpL
        cur = C.rms_norm(sa_out, L.ffn_norm, eps)
        cur = L.ffn_down(C.gelu_mul(*matmul_group([L.ffn_gate, L.ffn_up], cur)))
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


def _fusable(hp: HParams, L: Layer) -> bool:
    """Whether kernels.cpu.step.gemma3_layer_token computes this layer (else the eager graph)."""
    if hp.n_embd_head_k != hp.n_embd_head_v:
        return False
    ws = (L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up, L.ffn_down)
    if not all(x._fast for x in ws):
        return False
    return (L.wq._vec_dot_type == L.wk._vec_dot_type == L.wv._vec_dot_type
            and L.ffn_gate._vec_dot_type == L.ffn_up._vec_dot_type)


def _decode_token(hp: HParams, w: Weights, ubatch, kv, x: np.ndarray) -> bool:
    """One token through every layer, one compiled call per layer; x: float32[1, n_embd] is
    updated in place. False (x untouched) when a layer needs the eager graph."""
    hd = hp.n_embd_head_k
    n_q, n_kd = hp.n_head * hd, hp.n_head_kv * hd
    step = C.step_buffers(hp, w, kv, _fusable, 4 * hp.n_embd + 3 * n_q + 3 * n_kd + 3 * hp.n_ff)
    if step is None:
        return False
    cells, buf, xq, att = step
    x1 = x.reshape(-1)
    for il, L in enumerate(w.layers):
        norms, types, dims, fl = _layer_args(hp, L, il, kv)
        kc, vc, mask, dims[7], dims[8] = cells[il]
        _step.gemma3_layer_token(x1, ubatch.pos, norms, L.wq.data, L.wk.data, L.wv.data, L.wo.data,
                                 L.ffn_gate.data, L.ffn_up.data, L.ffn_down.data, types, dims, fl,
                                 kc, vc, mask, buf, xq, kv.scratch, att, C.GELU_TABLE)
    return True


def _layer_args(hp: HParams, L: Layer, il: int, kv):
    """(norms, types, dims, fl) of gemma3_layer_token for layer il, made once per context."""
    key = ("gemma3_layer_token", il)
    args = kv.step_args.get(key)
    if args is None:
        rp = kv.rope_params(il)
        norms = np.concatenate([L.attn_norm, L.attn_post_norm, L.ffn_norm, L.ffn_post_norm,
                                L.attn_q_norm, L.attn_k_norm]).astype(np.float32)
        types = np.array([int(m.ggml_type) for m in (L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up,
                                                      L.ffn_down)], dtype=np.int64)
        dims = np.array([hp.n_embd, hp.n_head, hp.n_head_kv, hp.n_embd_head_k, hp.n_ff, rp.n_rot,
                         int(rp.neox), 0, 0, 0], dtype=np.int64)
        fl = np.array([hp.f_norm_rms_eps, rp.freq_base, rp.freq_scale, rp.ext_factor,
                       rp.attn_factor, rp.corr0, rp.corr1, hp.f_attention_scale], dtype=np.float32)
        args = kv.step_args[key] = (norms, types, dims, fl)
    return args
