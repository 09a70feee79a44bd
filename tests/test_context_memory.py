"""emel.context over emel.kv_cache: sequence operations, K-shift, state round trips, split_equal
batches, bad input leaving the cache unchanged, real F16 storage, and an allocation-free decode.

Tiny random-weight models (tests/models/tiny.py). What is exact and what has a tolerance:
- seq_rm / seq_cp / seq_keep / state save+restore / multi-sequence batches: bit-identical logits
  (the same cells, K/V bits and arithmetic as a fresh decode);
- seq_add (K-shift): llama.cpp re-rotates the cached F16 K by the position delta
  (build_graph_shift), so K holds RoPE(RoPE(k, p) rounded to F16, delta) rounded to F16 instead
  of RoPE(k, p + delta) rounded once: layer 0's K differs from a fresh decode at the shifted
  positions by <= 2 F16 steps of each head's largest value (measured 1.0), and logits by
  <= 5e-2 of max |logit| (measured 1.8e-2 on the Q8_0 llama, whose activation quantization
  amplifies last-bit differences, 2.1e-3 on the F16 gemma3), with the same argmax; without the
  rotation they differ by 0.2-0.5.
"""

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from emel import BatchError, KVCacheFullError
from emel.context import Batch, Context, ContextParams, compute_logits
from emel.loader import load_model_file

sys.path.insert(0, str(Path(__file__).resolve().parent / "models"))
from tiny import tiny_models  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model_file(tiny_models.write("llama", tmp_path_factory.mktemp("mem") / "llama.gguf"))


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    return load_model_file(tiny_models.write("gemma3", tmp_path_factory.mktemp("mem") / "gemma3.gguf"))


def _toks(n, seed=3):
    return np.random.default_rng(seed).integers(3, 256, size=n).tolist()


def _caches(ctx):
    return [ctx.cache.kv_base, ctx.cache.kv_swa] if hasattr(ctx.cache, "kv_swa") else [ctx.cache]


def _cache_of(ctx, il):
    return ctx.cache.cache_of(il) if hasattr(ctx.cache, "kv_swa") else ctx.cache


def _cells(ctx):
    caches = _caches(ctx)
    return [(c.pos.copy(), c.seq.copy(), c.shift.copy()) for k in caches for c in k.v_cells], \
        [list(k.v_heads) for k in caches]


def _k_by_pos(ctx, il, positions):
    """float32 K rows of layer il (stream 0) of the cells holding `positions`."""
    cache = _cache_of(ctx, il)
    cell_pos = cache.v_cells[0].pos
    rows = [int(np.flatnonzero(cell_pos == p)[0]) for p in positions]
    return cache.k_view(il)[0, rows].astype(np.float32)


def _same_cells(a, b):
    (ca, ha), (cb, hb) = a, b
    assert ha == hb
    for x, y in zip(ca, cb):
        for u, v in zip(x, y):
            assert np.array_equal(u, v)


@pytest.mark.parametrize("model", ["tiny", "tiny_gemma"])
def test_seq_rm_then_redecode_equals_a_fresh_context(model, request):
    mf = request.getfixturevalue(model)
    seq = _toks(14)
    fresh = compute_logits(mf, seq)
    ctx = Context(mf, ContextParams(n_ctx=256))
    ctx.decode(Batch(seq[:10]))
    ctx.decode(Batch(_toks(3, seed=9)))  # a detour, then removed
    assert ctx.memory_seq_rm(0, 10, -1)
    assert ctx.memory_seq_pos_max(0) == 9
    ctx.decode(Batch(seq[10:], logits=[True] * 4))
    assert np.array_equal(ctx.get_logits(), fresh[10:])


@pytest.mark.parametrize("model", ["tiny", "tiny_gemma"])
def test_seq_cp_across_streams_then_decode_equals_the_source(model, request):
    mf = request.getfixturevalue(model)
    seq = _toks(9)
    ref = compute_logits(mf, seq)
    ctx = Context(mf, ContextParams(n_ctx=512, n_seq_max=2))
    ctx.decode(Batch(seq[:8]))
    ctx.memory_seq_cp(0, 1)
    assert (ctx.memory_seq_pos_min(1), ctx.memory_seq_pos_max(1)) == (0, 7)
    ctx.decode(Batch([seq[8]], seq_id=[1]))  # the copy's K/V rows land in stream 1 first
    assert np.array_equal(ctx.get_logits_ith(0), ref[8])
    ctx.memory_seq_keep(1)  # stream-local (llama.cpp): sequence 0 has its own stream
    assert ctx.memory_seq_pos_max(0) == 7 and ctx.memory_seq_pos_max(1) == 8
    assert ctx.memory_seq_rm(0)
    assert ctx.memory_seq_pos_max(0) == -1 and ctx.memory_seq_pos_max(1) == 8


@pytest.mark.parametrize("model", ["tiny", "tiny_gemma"])
def test_state_save_restore_round_trip_gives_identical_logits(model, request):
    # 7 cached tokens: inside gemma's 8-token window, so the saved cells are every cell
    mf = request.getfixturevalue(model)
    seq = _toks(8)
    a = Context(mf, ContextParams(n_ctx=512, n_seq_max=2))  # the same streams (llama.cpp too)
    a.decode(Batch(seq[:7]))
    data = a.state_seq_get_data(0)
    b = Context(mf, ContextParams(n_ctx=512, n_seq_max=2))
    assert b.state_seq_set_data(data, 1) == len(data)
    assert b.memory_seq_pos_max(1) == 6
    a.decode(Batch([seq[7]]))
    b.decode(Batch([seq[7]], seq_id=[1]))
    assert np.array_equal(a.get_logits_ith(0), b.get_logits_ith(0))
    with pytest.raises(BatchError):
        b.state_seq_set_data(data[:-3], 0)
    assert b.memory_seq_pos_max(0) == -1
    assert all(c.get_used() == 0 for c in b.cache.kv_base.v_cells[:1]) if model == "tiny_gemma" else True


@pytest.mark.parametrize("model", ["tiny", "tiny_gemma"])  # NORM and NEOX RoPE
def test_seq_add_re_rotates_cached_k_like_a_fresh_decode(model, request):
    """Tokens decoded at positions 6.., shifted by -6: K and the next logits match a fresh
    decode at 0.. within the documented tolerance (llama.cpp's shift rounds to F16 twice)."""
    mf = request.getfixturevalue(model)
    seq = _toks(20)
    shift = 6
    fresh = Context(mf, ContextParams(n_ctx=256))
    fresh.decode(Batch(seq))
    ctx = Context(mf, ContextParams(n_ctx=256))
    ctx.decode(Batch(seq[:19], pos=list(range(shift, shift + 19))))
    stale = Context(mf, ContextParams(n_ctx=256))  # positions moved, K not rotated
    stale.decode(Batch(seq[:19], pos=list(range(shift, shift + 19))))
    ctx.memory_seq_add(0, -1, -1, -shift)
    assert (ctx.memory_seq_pos_min(0), ctx.memory_seq_pos_max(0)) == (0, 18)
    ctx.decode(Batch([seq[19]]))  # applies the K-shift first
    # layer 0's K depends on the token and its position only: compare by position (after
    # seq_add the head is 0, as in llama.cpp, so the new token may take the cell of position 0,
    # which gemma's sliding window masks)
    kept = [p for p in range(19) if (_cache_of(ctx, 0).v_cells[0].pos == p).any()]
    assert len(kept) >= 18
    got, want = (_k_by_pos(c, 0, kept) for c in (ctx, fresh))
    hd = mf.hparams.n_embd_head_k
    got, want = got.reshape(-1, hd), want.reshape(-1, hd)
    # per head: within 2 F16 steps (2^-10 relative) of the head's largest value (measured <= 1)
    print("K err / F16 step of the head max:",
          float((np.abs(got - want).max(axis=1) / np.abs(want).max(axis=1)).max() * 1024))
    assert np.all(np.abs(got - want).max(axis=1) <= 2.0**-9 * np.abs(want).max(axis=1))
    stale.cache.seq_add(0, -1, -1, -shift)
    for c in _caches(stale):
        for cells in c.v_cells:
            cells.reset_shift()
    stale.decode(Batch([seq[19]]))
    want = fresh.get_logits_ith(-1)
    scale = float(np.abs(want).max())
    err = float(np.abs(ctx.get_logits_ith(0) - want).max())
    err_stale = float(np.abs(stale.get_logits_ith(0) - want).max())
    print(f"logits err {err / scale:.3g}, without rotation {err_stale / scale:.3g} of max |logit|")
    assert err <= 5e-2 * scale  # measured 1.8e-2 (llama, Q8_0 activations), 2.1e-3 (gemma3)
    assert np.argmax(ctx.get_logits_ith(0)) == np.argmax(want)
    assert err_stale > 5 * err  # measured 0.47 and 0.19


def test_split_equal_batch_of_unequal_sequences_equals_each_alone(tiny):
    lens = [8, 4, 6]  # ubatches: 3 x 4 tokens, then 2 x 2, then 1 x 2
    seqs = [_toks(n, seed=20 + i) for i, n in enumerate(lens)]
    alone = [compute_logits(tiny, s) for s in seqs]
    ctx = Context(tiny, ContextParams(n_ctx=768, n_seq_max=3))
    tok, sid, pos = [], [], []
    for s, q in enumerate(seqs):  # sequence by sequence: split_equal reorders, outputs do not
        tok += q
        sid += [s] * len(q)
        pos += list(range(len(q)))
    ctx.decode(Batch(tok, pos, sid, [True] * len(tok)))
    for j in range(len(tok)):
        assert np.array_equal(ctx.get_logits_ith(j), alone[sid[j]][pos[j]])


@pytest.mark.parametrize("batch,error", [
    (Batch([5, 6], pos=[3, -1]), BatchError),
    (Batch([5, 6], seq_id=[0, 2]), BatchError),
    (Batch([5, 6], pos=[7, 8]), BatchError),  # does not continue the cached positions
    (Batch(list(range(3, 255))), KVCacheFullError),  # 5 + 252 tokens > 256 cells
])
def test_bad_input_raises_and_leaves_the_cache_unchanged(tiny, batch, error):
    seq = _toks(6)
    ctx = Context(tiny, ContextParams(n_ctx=256, n_seq_max=2))
    ctx.decode(Batch(seq[:5]))
    before = _cells(ctx)
    with pytest.raises(error):
        ctx.decode(batch)
    _same_cells(before, _cells(ctx))
    ctx.decode(Batch([seq[5]]))
    assert np.array_equal(ctx.get_logits_ith(0), compute_logits(tiny, seq)[5])


def test_kv_is_stored_as_f16_and_sizes_are_reported(tiny):
    hp = tiny.hparams
    ctx = Context(tiny, ContextParams(n_ctx=256))
    assert ctx.cache.k_view(0).dtype == np.float16
    assert ctx.kv_bytes == hp.n_layer * 2 * 256 * hp.n_embd_k_gqa * 2
    assert ctx.arena_bytes > hp.n_vocab * 4
    f32 = Context(tiny, ContextParams(n_ctx=256, type_k="f32", type_v="f32"))
    assert f32.cache.k_view(0).dtype == np.float32 and f32.kv_bytes == 2 * ctx.kv_bytes
    seq = _toks(7)
    f32.decode(Batch(seq))
    ref = compute_logits(tiny, seq)[-1]
    # F32 K/V (and F32 q, probabilities) vs the F16 cache: F16 rounding of K, V, q and the
    # probabilities, amplified by the random model's Q8_0 activations (measured 1.3e-2)
    assert np.abs(f32.get_logits_ith(-1) - ref).max() <= 5e-2 * np.abs(ref).max()
    assert not np.array_equal(f32.get_logits_ith(-1), ref)


def test_single_token_decode_allocates_nothing_proportional_to_the_model(tmp_path):
    """tracemalloc traces NumPy data: after warm-up, a one-token decode allocates no row of
    n_embd (64 KiB here) or n_vocab floats; what remains is Python objects and cell bookkeeping."""
    saved = tiny_models.N_EMBD
    tiny_models.N_EMBD = 16384
    try:
        mf = load_model_file(tiny_models.write("llama", tmp_path / "wide.gguf"))
    finally:
        tiny_models.N_EMBD = saved
    n_embd = mf.hparams.n_embd
    ctx = Context(mf, ContextParams(n_ctx=256))
    ctx.decode(Batch(_toks(4)))
    for t in _toks(3, seed=5):  # warm-up: compiles, first use of every buffer
        ctx.decode(Batch([t]))
    tracemalloc.start()
    try:
        peaks = []
        for t in _toks(6, seed=6):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            ctx.decode(Batch([t]))
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    print("peak bytes per decode:", peaks)
    assert max(peaks) < n_embd * 4 // 4, peaks
    assert ctx.get_logits().shape == (1, mf.hparams.n_vocab)
