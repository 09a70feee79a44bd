"""emel.loader.load_model_file: GGUF + hparams through the architecture registry, tensors checked,
progress reported per tensor; vocab_only reads metadata alone."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFWriter

from emel import GGUFError, ModelError, UnsupportedError
from emel.loader import ModelFile, load_model_file
from emel.models import get_arch

N_EMBD, N_FF, N_VOCAB, N_HEAD, N_HEAD_KV = 32, 64, 8, 4, 2


def _tiny_llama(path, drop: str | None = None, arch: str = "llama"):
    """A one-layer llama with F32 weights (shapes in numpy order: rows = ne1)."""
    head_dim = N_EMBD // N_HEAD
    shapes = {
        "token_embd.weight": (N_VOCAB, N_EMBD), "output_norm.weight": (N_EMBD,),
        "blk.0.attn_norm.weight": (N_EMBD,), "blk.0.attn_q.weight": (N_EMBD, N_EMBD),
        "blk.0.attn_k.weight": (head_dim * N_HEAD_KV, N_EMBD),
        "blk.0.attn_v.weight": (head_dim * N_HEAD_KV, N_EMBD),
        "blk.0.attn_output.weight": (N_EMBD, N_EMBD), "blk.0.ffn_norm.weight": (N_EMBD,),
        "blk.0.ffn_gate.weight": (N_FF, N_EMBD), "blk.0.ffn_up.weight": (N_FF, N_EMBD),
        "blk.0.ffn_down.weight": (N_EMBD, N_FF),
    }
    w = GGUFWriter(path, arch)
    w.add_uint32(f"{arch}.block_count", 1)
    w.add_uint32(f"{arch}.context_length", 128)
    w.add_uint32(f"{arch}.embedding_length", N_EMBD)
    w.add_uint32(f"{arch}.feed_forward_length", N_FF)
    w.add_uint32(f"{arch}.attention.head_count", N_HEAD)
    w.add_uint32(f"{arch}.attention.head_count_kv", N_HEAD_KV)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32(f"{arch}.vocab_size", N_VOCAB)
    rng = np.random.default_rng(0)
    for name, shape in shapes.items():
        if name != drop:
            w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("use_mmap", [True, False])
def test_tiny_llama_loads_with_progress(tmp_path, use_mmap) -> None:
    path = _tiny_llama(tmp_path / "tiny.gguf")
    calls = []
    mf = load_model_file(path, use_mmap=use_mmap, progress=lambda d, t: calls.append((d, t)))
    assert isinstance(mf, ModelFile) and mf.arch == "llama" and not mf.vocab_only
    assert mf.hparams == get_arch("llama").load_hparams(mf.metadata)
    assert (mf.hparams.n_embd, mf.hparams.n_layer, mf.hparams.n_head_kv) == (N_EMBD, 1, N_HEAD_KV)
    total = mf.gguf.n_bytes
    assert total == sum(t.nbytes for t in mf.gguf.tensors.values()) > 0
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert len(calls) == len(mf.gguf.tensors) + 1
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    emb = mf.gguf.tensor_array("token_embd.weight")
    assert emb.shape == (N_VOCAB, N_EMBD) and emb.dtype == np.float32


def test_missing_tensor_is_a_model_error(tmp_path) -> None:
    path = _tiny_llama(tmp_path / "tiny.gguf", drop="blk.0.ffn_up.weight")
    with pytest.raises(ModelError, match="blk.0.ffn_up.weight"):
        load_model_file(path)
    mf = load_model_file(path, vocab_only=True)  # vocab_only skips the tensor checks
    assert mf.vocab_only and mf.hparams.vocab_only and mf.hparams.n_vocab == N_VOCAB


def test_unknown_architecture_is_unsupported(tmp_path) -> None:
    path = _tiny_llama(tmp_path / "odd.gguf", arch="nonesuch")
    with pytest.raises(UnsupportedError, match="nonesuch"):
        load_model_file(path)


def test_missing_architecture_is_a_model_error(tmp_path) -> None:
    w = GGUFWriter(tmp_path / "noarch.gguf", "llama")
    w.kv_data[0].pop("general.architecture")
    w.add_uint32("llama.block_count", 1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ModelError, match="general.architecture"):
        load_model_file(tmp_path / "noarch.gguf")


def test_malformed_file_is_a_gguf_error(tmp_path) -> None:
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x07\x00\x00\x00" + bytes(16))
    with pytest.raises(GGUFError, match="unsupported GGUF version 7"):
        load_model_file(tmp_path / "bad.gguf")


def test_vocab_file_loads_vocab_only(vocab_dir) -> None:
    calls = []
    mf = load_model_file(vocab_dir / "ggml-vocab-llama-spm.gguf", vocab_only=True,
                         progress=lambda d, t: calls.append((d, t)))
    assert mf.arch == "llama" and mf.hparams.n_vocab == 32000 and calls == []
    assert len(mf.metadata["tokenizer.ggml.tokens"]) == 32000


@pytest.mark.slow
def test_smollm2_loads(smollm2_path) -> None:
    calls = []
    mf = load_model_file(smollm2_path, progress=lambda d, t: calls.append((d, t)))
    hp = mf.hparams
    assert (mf.arch, hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_vocab) == \
        ("llama", 30, 576, 9, 3, 1536, 49152)
    assert len(mf.gguf.tensors) == 272
    assert calls[-1] == (mf.gguf.n_bytes, mf.gguf.n_bytes)
    assert mf.gguf.n_bytes <= smollm2_path.stat().st_size - mf.gguf.data_offset


@pytest.mark.slow
def test_gemma3_loads(gemma3_path) -> None:
    calls = []
    mf = load_model_file(gemma3_path, progress=lambda d, t: calls.append((d, t)))
    hp = mf.hparams
    assert (mf.arch, hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_vocab,
            hp.n_swa) == ("gemma3", 18, 640, 4, 1, 2048, 262144, 512)
    assert len(mf.gguf.tensors) == 236 and len(calls) == 237
    assert calls[-1] == (mf.gguf.n_bytes, mf.gguf.n_bytes)
