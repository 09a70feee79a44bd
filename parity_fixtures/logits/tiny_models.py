"""Tiny random-weight GGUF models (2 layers, vocab 256, n_embd 64) for every supported arch.

Written with gguf-py's GGUFWriter from a fixed seed, so the fixture script (which records
llama.cpp's logits for them) and the tests (which regenerate them) build identical files.
Imports only numpy and gguf.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter, quants

N_VOCAB = 256
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = 16
N_FF = 128
N_LAYER = 2
N_CTX_TRAIN = 512

# arch -> (seed, weight type of the big matrices)
MODELS = {
    "llama": (11, T.Q8_0),
    "gemma3": (12, T.F16),
    "qwen2": (13, T.Q8_0),
    "qwen3": (14, T.F16),
    "phi3": (15, T.F32),
}


def _vocab(w: GGUFWriter) -> None:
    """A byte-level SPM vocabulary: token i is the byte i (llama.cpp needs some tokenizer)."""
    toks = [f"<0x{i:02X}>" for i in range(N_VOCAB)]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * N_VOCAB)
    w.add_token_types([6] * N_VOCAB)  # BYTE
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)


class _Tensors:
    def __init__(self, w: GGUFWriter, rng: np.random.Generator, qtype: T) -> None:
        self.w, self.rng, self.qtype = w, rng, qtype

    def norm(self, name: str, n: int) -> None:
        v = (1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)
        self.w.add_tensor(name, v)

    def bias(self, name: str, n: int) -> None:
        self.w.add_tensor(name, (0.1 * self.rng.standard_normal(n)).astype(np.float32))

    def mat(self, name: str, n_in: int, n_out: int, qtype: T | None = None) -> None:
        qtype = self.qtype if qtype is None else qtype
        a = (self.rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        if qtype == T.F32:
            self.w.add_tensor(name, a)
        elif qtype == T.F16:
            self.w.add_tensor(name, a.astype(np.float16))
        else:
            self.w.add_tensor(name, quants.quantize(a, qtype), raw_dtype=qtype)


def write(arch: str, path: str | Path) -> Path:
    """Write the tiny `arch` model to `path`; same bytes for the same arch every time."""
    seed, qtype = MODELS[arch]
    rng = np.random.default_rng(seed)
    path = Path(path)
    w = GGUFWriter(str(path), arch)
    w.add_name("tiny-random")  # no arch in the name: llama.cpp keys vocab quirks on it
    w.add_context_length(N_CTX_TRAIN)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(1e-6 if arch == "gemma3" else 1e-5)
    w.add_rope_freq_base(1000000.0 if arch == "gemma3" else 10000.0)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_vocab_size(N_VOCAB)
    if arch == "gemma3":
        w.add_sliding_window(8)
        w.add_uint32("gemma3.attention.sliding_window_pattern", 2)  # layer 0 SWA, layer 1 global
        w.add_float32("gemma3.final_logit_softcapping", 30.0)
    _vocab(w)
    t = _Tensors(w, rng, qtype)
    n_q = N_HEAD * HEAD_DIM
    n_kv = N_HEAD_KV * HEAD_DIM
    t.mat("token_embd.weight", N_EMBD, N_VOCAB, T.Q8_0 if arch != "phi3" else T.F16)
    t.norm("output_norm.weight", N_EMBD)
    if arch in ("llama", "qwen2", "phi3"):
        t.mat("output.weight", N_EMBD, N_VOCAB)
    if arch == "qwen2":
        t.bias("output.bias", N_VOCAB)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        t.norm(p + "attn_norm.weight", N_EMBD)
        if arch == "phi3":
            t.mat(p + "attn_qkv.weight", N_EMBD, n_q + 2 * n_kv)
        else:
            t.mat(p + "attn_q.weight", N_EMBD, n_q)
            t.mat(p + "attn_k.weight", N_EMBD, n_kv)
            t.mat(p + "attn_v.weight", N_EMBD, n_kv)
        if arch == "qwen2":
            t.bias(p + "attn_q.bias", n_q)
            t.bias(p + "attn_k.bias", n_kv)
            t.bias(p + "attn_v.bias", n_kv)
        if arch in ("gemma3", "qwen3"):
            t.norm(p + "attn_q_norm.weight", HEAD_DIM)
            t.norm(p + "attn_k_norm.weight", HEAD_DIM)
        t.mat(p + "attn_output.weight", n_q, N_EMBD)
        if arch == "gemma3":
            t.norm(p + "post_attention_norm.weight", N_EMBD)
        t.norm(p + "ffn_norm.weight", N_EMBD)
        if arch == "phi3":
            t.mat(p + "ffn_up.weight", N_EMBD, 2 * N_FF)
        else:
            t.mat(p + "ffn_gate.weight", N_EMBD, N_FF)
            t.mat(p + "ffn_up.weight", N_EMBD, N_FF)
        t.mat(p + "ffn_down.weight", N_FF, N_EMBD)
        if arch == "gemma3":
            t.norm(p + "post_ffw_norm.weight", N_EMBD)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tokens(arch: str, n: int = 24) -> list[int]:
    """The token ids the fixtures feed to the tiny `arch` model."""
    rng = np.random.default_rng(MODELS[arch][0] + 1000)
    return [int(x) for x in rng.integers(3, N_VOCAB, size=n)]
