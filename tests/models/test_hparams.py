"""Hyper-parameters from GGUF metadata (llama.cpp's names and defaults) and tensor checks."""

import numpy as np
import pytest
from gguf import GGUFWriter

from emel import ModelError, UnsupportedError
from emel.gguf import read
from emel.loader import load_model_file
from emel.models import common as C
from emel.models import get_arch

from .tiny import tiny_models


def test_registry_knows_the_supported_architectures():
    for arch in ("llama", "gemma3", "qwen2", "qwen3", "phi3"):
        assert get_arch(arch).ARCH == arch


def test_registry_rejects_an_unknown_architecture():
    with pytest.raises(UnsupportedError, match="mamba"):
        get_arch("mamba")


def test_smollm2_hparams(smollm2_path):
    hp = get_arch("llama").load_hparams(read(smollm2_path).metadata)
    assert (hp.n_vocab, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv) == (49152, 576, 30, 9, 3)
    assert (hp.n_embd_head_k, hp.n_rot, hp.n_ff, hp.n_ctx_train) == (64, 64, 1536, 8192)
    assert hp.rope_type == C.RopeType.NORM
    assert hp.rope_freq_base_train == 100000.0
    assert hp.rope_freq_scale_train == 1.0
    assert hp.f_norm_rms_eps == pytest.approx(1e-5)
    assert hp.swa_type == C.SwaType.NONE and not hp.is_swa(0)


def test_gemma3_hparams(gemma3_path):
    hp = get_arch("gemma3").load_hparams(read(gemma3_path).metadata)
    assert (hp.n_vocab, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv) == (262144, 640, 18, 4, 1)
    assert (hp.n_embd_head_k, hp.n_embd_head_v, hp.n_ff) == (256, 256, 2048)
    assert hp.rope_type == C.RopeType.NEOX
    assert hp.rope_freq_base_train == 1000000.0 and hp.rope_freq_base_train_swa == 10000.0
    assert hp.swa_type == C.SwaType.STANDARD and hp.n_swa == 512
    # set_swa_pattern(6): five sliding-window layers, then one global
    assert [il for il in range(18) if not hp.is_swa(il)] == [5, 11, 17]
    assert hp.f_attention_scale == pytest.approx(1 / 16)
    assert hp.f_final_logit_softcapping == 0.0


def test_vocab_only_hparams_need_no_transformer_keys():
    meta = {"general.architecture": "qwen2", "tokenizer.ggml.tokens": ["a", "b", "c"]}
    hp = get_arch("qwen2").load_hparams(meta, vocab_only=True)
    assert hp.vocab_only and hp.n_vocab == 3


def test_missing_required_key_is_a_model_error():
    meta = {"general.architecture": "llama", "llama.embedding_length": 64}
    with pytest.raises(ModelError, match="llama.block_count"):
        get_arch("llama").load_hparams(meta)


def test_head_count_must_divide_by_head_count_kv():
    meta = {"general.architecture": "llama", "llama.block_count": 2, "llama.context_length": 64,
            "llama.embedding_length": 64, "llama.attention.head_count": 4,
            "llama.attention.head_count_kv": 3, "llama.attention.layer_norm_rms_epsilon": 1e-5}
    with pytest.raises(ModelError, match="n_head_kv"):
        get_arch("llama").load_hparams(meta)


def _rewrite(src_path, dst_path, drop=(), reshape=None, extra=None):
    """Copy a GGUF, dropping/reshaping tensors or adding one."""
    gf = read(src_path)
    arch = gf.metadata["general.architecture"]
    w = GGUFWriter(str(dst_path), arch)
    for k, v in gf.metadata.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        if isinstance(v, bool):
            w.add_bool(k, v)
        elif isinstance(v, int):
            w.add_uint32(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        elif isinstance(v, str):
            w.add_string(k, v)
        elif isinstance(v, list):
            w.add_array(k, v)
        else:
            w.add_array(k, list(np.asarray(v).tolist()))
    for name, info in gf.tensors.items():
        if name in drop:
            continue
        arr = gf.tensor_data(name)
        if reshape and name == reshape[0]:
            w.add_tensor(name, np.zeros(reshape[1][::-1], dtype=np.float32))
            continue
        shape = [int(x) for x in info.shape[::-1]]
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        w.add_tensor(name, np.array(arr).reshape(rows, -1), raw_dtype=info.ggml_type)
    if extra:
        w.add_tensor(extra, np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst_path


@pytest.fixture
def tiny_llama(tmp_path):
    return tiny_models.write("llama", tmp_path / "tiny-llama.gguf")


def test_missing_tensor_is_a_model_error_naming_it(tiny_llama, tmp_path):
    bad = _rewrite(tiny_llama, tmp_path / "bad.gguf", drop={"blk.1.ffn_up.weight"})
    with pytest.raises(ModelError, match=r"blk\.1\.ffn_up\.weight.*missing"):
        load_model_file(bad)


def test_wrong_tensor_shape_is_a_model_error_with_both_shapes(tiny_llama, tmp_path):
    bad = _rewrite(tiny_llama, tmp_path / "bad.gguf", reshape=("blk.0.attn_norm.weight", (32,)))
    with pytest.raises(ModelError, match=r"blk\.0\.attn_norm\.weight.*expected \[64\], found \[32\]"):
        load_model_file(bad)


def test_unused_tensor_is_a_model_error(tiny_llama, tmp_path):
    bad = _rewrite(tiny_llama, tmp_path / "bad.gguf", extra="blk.0.surprise.weight")
    with pytest.raises(ModelError, match="surprise"):
        load_model_file(bad)
