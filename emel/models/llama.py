"""LLaMA decoder (Llama 2/3, Mistral, SmolLM2): `general.architecture = "llama"`.

Follows llama.cpp src/models/llama.cpp (hparams, tensors, graph) with NORM RoPE
(llama_model_rope_type). Not supported: mixture-of-experts (Mixtral), LoRA adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from kernels.cpu import step as _step

from . import common as C
from .linear import Linear, matmul_group

ARCH = "llama"
ROPE_TYPE = C.RopeType.NORM


@dataclass(frozen=True)
class HParams(C.HParams):
    """llama hparams (see common.HParams for the fields)."""


def load_hparams(meta: Mapping[str, Any], vocab_only: bool = False) -> HParams:
    """llama_model_llama::load_arch_hparams on top of the shared keys."""
    hp = C.base_hparams(meta, ROPE_TYPE, vocab_only)
    if not vocab_only:
        hp["f_norm_rms_eps"] = float(np.float32(C.get_key(meta, ARCH + ".attention.layer_norm_rms_epsilon", required=True)))
        if hp["n_rot"] != hp["n_embd_head_k"]:
            raise C.ModelError(f"invalid n_rot: {hp['n_rot']}, expected {hp['n_embd_head_k']}")
    return HParams(**hp)


@dataclass
class Layer:
    attn_norm: np.ndarray
    wq: Linear
    wk: Linear
    wv: Linear
    wo: Linear
    wo_b: np.ndarray | None
    ffn_norm: np.ndarray
    ffn_gate: Linear
    ffn_up: Linear
    ffn_down: Linear


@dataclass
class Weights:
    tok_embd: Linear
    output_norm: np.ndarray
    output: Linear  # token_embd when the model ties embeddings
    rope_freqs: np.ndarray | None
    layers: list[Layer]


def check_tensors(gguf_file, hp: HParams) -> None:
    """Raise ModelError if a tensor is missing or has the wrong shape."""
    load_weights(gguf_file, hp)


def load_weights(gguf_file, hp: HParams) -> Weights:
    """llama_model_llama::load_arch_tensors: the tensors by GGUF name, shapes checked."""
    src = C.TensorSource(gguf_file)
    n_embd, n_vocab, n_ff = hp.n_embd, hp.n_vocab, hp.n_ff
    tok_embd = src.linear("token_embd.weight", n_embd, n_vocab)
    output = src.linear("output.weight", n_embd, n_vocab, required=False) or tok_embd
    rope_freqs = src.f32("rope_freqs.weight", (hp.n_rot // 2,), required=False)
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        layers.append(Layer(
            attn_norm=src.f32(p + "attn_norm.weight", (n_embd,)),
            wq=src.linear(p + "attn_q.weight", n_embd, hp.n_embd_head_k * hp.n_head),
            wk=src.linear(p + "attn_k.weight", n_embd, hp.n_embd_k_gqa),
            wv=src.linear(p + "attn_v.weight", n_embd, hp.n_embd_v_gqa),
            wo=src.linear(p + "attn_output.weight", hp.n_embd_head_k * hp.n_head, n_embd),
            wo_b=src.f32(p + "attn_output.bias", (n_embd,), required=False),
            ffn_norm=src.f32(p + "ffn_norm.weight", (n_embd,)),
            ffn_gate=src.linear(p + "ffn_gate.weight", n_embd, n_ff),
            ffn_up=src.linear(p + "ffn_up.weight", n_embd, n_ff),
            ffn_down=src.linear(p + "ffn_down.weight", n_ff, n_embd),
        ))
    weights = Weights(tok_embd, src.f32("output_norm.weight", (n_embd,)), output, rope_freqs, layers)
    src.check_all_used()
    return weights


def build_graph(hp: HParams, w: Weights, ubatch, kv, out_ids: np.ndarray, want_logits: bool = True):
    """Run the llama graph on one ubatch (eagerly); returns (embd rows, logits rows) of out_ids."""
    n_tokens = len(ubatch.token)
    hd = hp.n_embd_head_k
    kq_scale = hp.f_attention_scale or 1.0 / np.sqrt(np.float32(hd))
    if n_tokens == 1 and len(out_ids) == 1:
        # one token: the residual row and outputs live in the decode arena (kv.buffer)
        x = C.token_row(w.tok_embd, int(ubatch.token[0]), kv)
        if x is not None and _decode_token(hp, w, ubatch, kv, x, kq_scale):
            return C.output_row(x, w.output_norm, hp.f_norm_rms_eps, w.output, kv, want_logits)
    inpL = w.tok_embd.rows(ubatch.token)
    for il, L in enumerate(w.layers):
        rp = kv.rope_params(il, w.rope_freqs)
        cur = C.rms_norm(inpL, L.attn_norm, hp.f_norm_rms_eps)
        q, k, v = matmul_group([L.wq, L.wk, L.wv], cur)
        q = q.reshape(n_tokens, hp.n_head, hd)
        k = k.reshape(n_tokens, hp.n_head_kv, hd)
        C.rope(q, ubatch.pos, rp, kv.scratch)
        C.rope(k, ubatch.pos, rp, kv.scratch)
        cur = kv.attend(il, q, k, v, kq_scale, 0.0)
        cur = L.wo(cur)
        if L.wo_b is not None:
            cur = cur + L.wo_b
        inpSA = inpL
        if il == hp.n_layer - 1:
            cur, inpSA = cur[out_ids], inpSA[out_ids]
        ffn_inp = cur + inpSA
        cur = C.rms_norm(ffn_inp, L.ffn_norm, hp.f_norm_rms_eps)
        cur = L.ffn_down(C.silu_mul(*matmul_group([L.ffn_gate, L.ffn_up], cur)))
        inpL = cur + ffn_inp
    embd = C.rms_norm(inpL, w.output_norm, hp.f_norm_rms_eps)
    logits = w.output(embd) if want_logits else None
    return embd, logits


def _fusable(hp: HParams, L: Layer) -> bool:
    """Whether kernels.cpu.step.llama_layer_token computes this layer (else the eager graph)."""
    if L.wo_b is not None or hp.n_embd_head_k != hp.n_embd_head_v:
        return False
    ws = (L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up, L.ffn_down)
    if not all(x._fast for x in ws):
        return False
    return (L.wq._vec_dot_type == L.wk._vec_dot_type == L.wv._vec_dot_type
            and L.ffn_gate._vec_dot_type == L.ffn_up._vec_dot_type)


def _decode_token(hp: HParams, w: Weights, ubatch, kv, x: np.ndarray, kq_scale) -> bool:
    """One token through every layer, one compiled call per layer; x: float32[1, n_embd] is
    updated in place. False (x untouched) when a layer needs the eager graph."""
    hd = hp.n_embd_head_k
    n_q, n_kd = hp.n_head * hd, hp.n_head_kv * hd
    step = C.step_buffers(hp, w, kv, _fusable, 4 * hp.n_embd + 2 * n_q + 2 * n_kd + 3 * hp.n_ff)
    if step is None:
        return False
    cells, buf, xq, att = step
    x1 = x.reshape(-1)
    for il, L in enumerate(w.layers):
        types, dims, fl, ff = _layer_args(hp, w, L, il, kv, kq_scale)
        kc, vc, mask, dims[7], dims[8] = cells[il]
        _step.llama_layer_token(x1, ubatch.pos, L.attn_norm, L.ffn_norm, L.wq.data, L.wk.data,
                                L.wv.data, L.wo.data, L.ffn_gate.data, L.ffn_up.data,
                                L.ffn_down.data, types, dims, fl, ff, kc, vc, mask, buf, xq,
                                kv.scratch, att)
    return True


def _layer_args(hp: HParams, w: Weights, L: Layer, il: int, kv, kq_scale):
    """(types, dims, fl, freq_factors) of llama_layer_token for layer il, made once per context."""
    key = ("llama_layer_token", il)
    args = kv.step_args.get(key)
    if args is None:
        rp = kv.rope_params(il, w.rope_freqs)
        ff = rp.freq_factors
        types = np.array([int(m.ggml_type) for m in (L.wq, L.wk, L.wv, L.wo, L.ffn_gate, L.ffn_up,
                                                      L.ffn_down)], dtype=np.int64)
        dims = np.array([hp.n_embd, hp.n_head, hp.n_head_kv, hp.n_embd_head_k, hp.n_ff, rp.n_rot,
                         int(rp.neox), 0, 0, int(ff is not None)], dtype=np.int64)
        fl = np.array([hp.f_norm_rms_eps, rp.freq_base, rp.freq_scale, rp.ext_factor,
                       rp.attn_factor, rp.corr0, rp.corr1, kq_scale], dtype=np.float32)
        args = kv.step_args[key] = (types, dims, fl, ff if ff is not None else _NO_FF)
    return args


_NO_FF = np.zeros(1, dtype=np.float32)
