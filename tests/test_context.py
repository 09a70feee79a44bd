"""emel.context: batches, outputs, sequences, KV limits, embeddings (on the tiny llama GGUF)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from emel import BatchError, KVCacheFullError, ModelError
from emel.context import Batch, Context, ContextParams, PoolingType, compute_logits
from emel.loader import load_model_file

sys.path.insert(0, str(Path(__file__).resolve().parent / "models"))
from tiny import tiny_models  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tiny_models.write("llama", tmp_path_factory.mktemp("ctx") / "tiny-llama.gguf")
    return load_model_file(path)


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    path = tiny_models.write("gemma3", tmp_path_factory.mktemp("ctx") / "tiny-gemma3.gguf")
    return load_model_file(path)


def _seqs(n_seq=3, n=12):
    rng = np.random.default_rng(7)
    return [rng.integers(3, 256, size=n).tolist() for _ in range(n_seq)]


def test_default_params_are_llama_cpp_defaults():
    p = ContextParams()
    assert (p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max) == (512, 2048, 512, 1)
    assert (p.type_k, p.type_v, p.swa_full) == ("f16", "f16", True)


@pytest.mark.parametrize("model", ["tiny", "tiny_gemma"])
def test_three_interleaved_sequences_give_the_logits_of_each_alone(model, request):
    mf = request.getfixturevalue(model)
    seqs = _seqs()
    alone = [compute_logits(mf, s, n_ctx=256) for s in seqs]
    ctx = Context(mf, ContextParams(n_ctx=768, n_seq_max=3))
    tok, pos, sid = [], [], []
    for i in range(len(seqs[0])):
        for s in range(3):
            tok.append(seqs[s][i])
            pos.append(i)
            sid.append(s)
    ctx.decode(Batch(tok, pos, sid, [True] * len(tok)))
    for j in range(len(tok)):
        assert np.array_equal(ctx.get_logits_ith(j), alone[sid[j]][pos[j]])


def test_positions_default_to_the_next_position_of_each_sequence(tiny):
    seq = _seqs(1, 10)[0]
    ref = compute_logits(tiny, seq)
    ctx = Context(tiny, ContextParams(n_ctx=256))
    ctx.decode(Batch(seq[:6]))
    ctx.decode(Batch(seq[6:], logits=[True] * 4))
    assert ctx.memory_seq_pos_max(0) == 9
    np.testing.assert_array_equal(ctx.get_logits(), ref[6:])
    assert np.array_equal(ctx.get_logits_ith(-1), ref[9])


def test_memory_seq_rm_lets_a_sequence_be_decoded_again(tiny):
    seq = _seqs(1, 8)[0]
    ctx = Context(tiny, ContextParams(n_ctx=256))
    ctx.decode(Batch(seq))
    first = ctx.get_logits_ith(-1).copy()
    ctx.memory_seq_rm(0, 4, -1)
    assert ctx.memory_seq_pos_max(0) == 3
    ctx.decode(Batch(seq[4:]))
    assert np.array_equal(ctx.get_logits_ith(-1), first)


def test_output_flags_select_the_rows(tiny):
    seq = _seqs(1, 6)[0]
    ref = compute_logits(tiny, seq)
    ctx = Context(tiny, ContextParams(n_ctx=256))
    ctx.decode(Batch(seq, logits=[False, True, False, False, True, False]))
    assert ctx.get_logits().shape == (2, 256)
    assert np.array_equal(ctx.get_logits_ith(1), ref[1])
    assert np.array_equal(ctx.get_logits_ith(4), ref[4])
    with pytest.raises(BatchError, match="no output"):
        ctx.get_logits_ith(2)


@pytest.mark.parametrize("batch,match", [
    (Batch([]), "empty"),
    (Batch([5, 256]), "out of range"),
    (Batch([5, -1]), "out of range"),
    (Batch([5, 6], seq_id=[0, 1]), "seq_id"),
    (Batch([5, 6], pos=[0]), "pos"),
    (Batch([5, 6], logits=[True]), "logits"),
])
def test_bad_batches_raise_batch_error(tiny, batch, match):
    ctx = Context(tiny, ContextParams(n_ctx=256))
    with pytest.raises(BatchError, match=match):
        ctx.decode(batch)


def test_batch_larger_than_n_batch_is_rejected(tiny):
    ctx = Context(tiny, ContextParams(n_ctx=256, n_batch=8))
    with pytest.raises(BatchError, match="n_batch"):
        ctx.decode(Batch(list(range(3, 13))))


def test_full_kv_cache_raises(tiny):
    ctx = Context(tiny, ContextParams(n_ctx=256))
    ctx.decode(Batch(list(range(3, 253))))
    with pytest.raises(KVCacheFullError):
        ctx.decode(Batch(list(range(3, 13))))


def test_vocab_only_model_cannot_decode(tmp_path):
    mf = load_model_file(tiny_models.write("llama", tmp_path / "t.gguf"), vocab_only=True)
    with pytest.raises(ModelError, match="vocab"):
        Context(mf)


def test_mean_pooled_embedding_is_the_mean_of_the_token_embeddings(tiny):
    seq = _seqs(1, 5)[0]
    ctx = Context(tiny, ContextParams(n_ctx=256, embeddings=True))
    ctx.decode(Batch(seq, logits=[True] * 5))
    rows = np.array([ctx.get_embeddings_ith(i) for i in range(5)])
    assert rows.shape == (5, 64)
    pctx = Context(tiny, ContextParams(n_ctx=256, embeddings=True, pooling_type=PoolingType.MEAN))
    pctx.decode(Batch(seq))
    np.testing.assert_allclose(pctx.get_embeddings_seq(0), rows.mean(axis=0), rtol=1e-6, atol=1e-6)
    lctx = Context(tiny, ContextParams(n_ctx=256, embeddings=True, pooling_type=PoolingType.LAST))
    lctx.decode(Batch(seq))
    assert np.array_equal(lctx.get_embeddings_seq(0), rows[-1])
