"""KV cache: llama.cpp replays, masks, SWA/iSWA, streams, storage, K-shift hook, state, errors.

- Recorded from llama.cpp: parity_fixtures/kv_cache/kv_scenarios.json holds real llama_decode
  return codes and llama_memory_seq_pos_min/max after every decode and sequence operation on
  Gemma-3-270M (iSWA, n_swa=512, with and without swa_full) and SmolLM2-135M (one stream per
  sequence); the same steps are replayed on emel's caches.
- Recorded from llama.cpp: parity_fixtures/kv_cache/kv_masks.json holds the KQ masks llama.cpp
  built for real ubatches (read back through the graph eval callback: multi-sequence and shared
  prompts, one stream per sequence, Gemma-3's SWA cache wrapping around); emel builds the same
  ubatches, cells and masks (test_masks_match_llama_cpp).
- Derived from llama.cpp's rules: the crafted masks below are written out by hand from
  set_input_kq_mask and is_masked_swa (causal: keep p0 <= p1; SWA standard: drop
  p1 - p0 >= n_swa; other sequences and empty cells dropped; n_kv padded to 256);
  test_kv_cells.py checks masks against a literal transliteration of set_input_kq_mask on
  thousands of random states.
"""

from __future__ import annotations

import base64
import json
import pathlib
import zlib

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf import quants as gguf_quants

from emel.batch import Batch, BatchAllocator
from emel.errors import BatchError, KVCacheFullError, UnsupportedError
from emel.kv_cache import KVCache, SwaType, is_masked_swa
from emel.kv_cache_iswa import KVCacheISWA

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "parity_fixtures" / "kv_cache"
NEG = -np.inf


def decode(cache, batch, n_ubatch=512, n_seq_max=None, balloc=None, iswa=False):
    """Validate, place and apply a batch; returns the ubatches and their slots."""
    balloc = balloc or BatchAllocator(n_vocab=1000, n_seq_max=n_seq_max or cache.n_seq_max)
    balloc.init(batch, memory=cache)
    placed = cache.init_batch(balloc, n_ubatch)
    for item in placed:
        if iswa:
            cache.apply_ubatch(item[1], item[2], item[0])
        else:
            cache.apply_ubatch(item[1], item[0])
    return placed


def seq_batch(seq, start, n):
    return Batch(token=np.ones(n, np.int32), pos=np.arange(start, start + n, dtype=np.int32),
                 seq_id=[[seq]] * n, logits=np.ones(n, np.int8))


# --- replays of llama.cpp ---------------------------------------------------------------------------


def _replay(name):
    data = json.loads((FIXTURES / "kv_scenarios.json").read_text())["scenarios"][name]
    n_ctx = (data["n_ctx"] + 255) // 256 * 256  # llama_context pads n_ctx to 256
    if name.startswith("gemma3"):
        cache = KVCacheISWA([0, 1], lambda il: il == 0, 64, 64, n_ctx, n_swa=512, swa_type=SwaType.STANDARD,
                            swa_full=data["swa_full"], n_ubatch=data["n_ubatch"], n_seq_max=data["n_seq_max"],
                            unified=data["kv_unified"])
    else:
        n_ctx_seq = n_ctx if data["kv_unified"] else (n_ctx // data["n_seq_max"] + 255) // 256 * 256
        cache = KVCache([0], 64, 64, n_ctx_seq, n_seq_max=data["n_seq_max"], unified=data["kv_unified"])
    balloc = BatchAllocator(n_vocab=1000, n_seq_max=data["n_seq_max"])
    for rec in data["records"]:
        step, ret = rec["step"], None
        if "decode" in step:
            d = step["decode"]
            cache.update(lambda il, k, shift: None)  # llama_decode applies pending K-shifts first
            b = Batch(token=np.asarray(d["token"], np.int32), pos=d.get("pos"), seq_id=d.get("seq_id"))
            try:
                balloc.init(b, memory=cache, n_batch=data["n_batch"])
                placed = cache.init_batch(balloc, data["n_ubatch"])
                for item in placed:
                    if isinstance(cache, KVCacheISWA):
                        cache.apply_ubatch(item[1], item[2], item[0])
                    else:
                        cache.apply_ubatch(item[1], item[0])
                ret = 0
            except BatchError:
                ret = -1
            except KVCacheFullError:
                ret = 1
        elif "rm" in step:
            ret = int(cache.seq_rm(*step["rm"]))
        elif "cp" in step:
            cache.seq_cp(*step["cp"])
        elif "keep" in step:
            cache.seq_keep(step["keep"])
        elif "add" in step:
            cache.seq_add(*step["add"])
        elif "div" in step:
            cache.seq_div(*step["div"])
        ranges = [[cache.seq_pos_min(s), cache.seq_pos_max(s)] for s in range(data["n_seq_max"])]
        assert (ret, ranges) == (rec["ret"], rec["ranges"]), step
    return cache


def _unpack(rec):
    ne = rec["ne"]
    n = ne[0] * ne[1] * ne[2] * ne[3]
    bits = np.unpackbits(np.frombuffer(zlib.decompress(base64.b64decode(rec["bits"])), np.uint8))[:n]
    return np.where(bits.reshape(ne[3] * ne[1], ne[0]) == 1, np.float32(0), np.float32(-np.inf))


@pytest.mark.parametrize("name", ["smollm2_multi_seq", "smollm2_streams", "gemma3_swa"])
def test_masks_match_llama_cpp(name):
    data = json.loads((FIXTURES / "kv_masks.json").read_text())["scenarios"][name]
    n_ctx = (data["n_ctx"] + 255) // 256 * 256
    iswa = name.startswith("gemma3")
    if iswa:
        cache = KVCacheISWA(range(data["n_layer"]), lambda il: il % 6 != 5, 64, 64, n_ctx, n_swa=512,
                            n_ubatch=data["n_ubatch"], n_seq_max=data["n_seq_max"], unified=data["kv_unified"])
    else:
        n_ctx_seq = n_ctx if data["kv_unified"] else (n_ctx // data["n_seq_max"] + 255) // 256 * 256
        cache = KVCache([0], 64, 64, n_ctx_seq, n_seq_max=data["n_seq_max"], unified=data["kv_unified"])
    balloc = BatchAllocator(n_vocab=1000, n_seq_max=data["n_seq_max"])
    n_checked = 0
    for rec in data["records"]:
        step = rec["step"]
        if "rm" in step:
            cache.seq_rm(*step["rm"])
            continue
        d = step["decode"]
        balloc.init(Batch(token=np.asarray(d["token"], np.int32), pos=d.get("pos"), seq_id=d.get("seq_id"),
                          logits=d.get("logits")), memory=cache, n_batch=data["n_batch"])
        placed = cache.init_batch(balloc, data["n_ubatch"])
        assert len(placed) == len(rec["ubatches"]), step
        for item, want in zip(placed, rec["ubatches"]):
            ub = item[0]
            if iswa:
                cache.apply_ubatch(item[1], item[2], ub)
                got = {"0": cache.kv_swa.get_mask(ub, cache.kv_swa.get_n_kv(item[2])),
                       "5": cache.kv_base.get_mask(ub, cache.kv_base.get_n_kv(item[1]))}
            else:
                cache.apply_ubatch(item[1], ub)
                got = {"0": cache.get_mask(ub, cache.get_n_kv(item[1]))}
            for il, m in want.items():
                exp = _unpack(m)
                assert got[il].shape == exp.shape, (step, il)
                np.testing.assert_array_equal(got[il], exp)
                n_checked += 1
    assert n_checked >= 4


def test_gemma3_swa_cache_wraps_and_purges_like_llama_cpp():
    cache = _replay("gemma3_swa")
    assert cache.kv_swa.size == 768 and cache.kv_base.size == 1024


def test_gemma3_swa_full_sequence_operations_like_llama_cpp():
    cache = _replay("gemma3_swa_full")
    assert cache.kv_swa.size == cache.kv_base.size == 256


def test_one_stream_per_sequence_like_llama_cpp():
    cache = _replay("smollm2_streams")
    assert cache.n_stream == 3


@pytest.mark.parametrize("name", ["smollm2_random", "smollm2_random_streams", "gemma3_random"])
def test_random_operations_like_llama_cpp(name):
    """Seeded random decodes and sequence operations recorded from llama.cpp (394 steps in all,
    with decodes that succeed, are rejected (-1) and find no slot (1))."""
    _replay(name)


# --- masks (derived from llama.cpp's rules) ------------------------------------------------------


def test_causal_mask_and_padded_n_kv():
    cache = KVCache([0], 64, 64, 512)
    decode(cache, seq_batch(0, 0, 4))
    placed = decode(cache, seq_batch(0, 4, 2))
    ub, sinfo = placed[0]
    assert sinfo.idxs[0].tolist() == [4, 5]
    n_kv = cache.get_n_kv(sinfo)
    assert n_kv == 256  # used_max_p1 = 6 padded to 256
    m = cache.get_mask(ub, n_kv)
    assert m.shape == (2, 256) and m.dtype == np.float32
    np.testing.assert_array_equal(m[:, :7], [[0, 0, 0, 0, 0, NEG, NEG], [0, 0, 0, 0, 0, 0, NEG]])
    assert np.all(m[:, 7:] == NEG)
    buf = np.zeros(2 * 256, np.float32)  # e.g. an arena view
    assert np.shares_memory(cache.get_mask(ub, n_kv, out=buf), buf)
    np.testing.assert_array_equal(buf.reshape(2, 256), m)
    with pytest.raises(BatchError):
        cache.get_mask(ub, n_kv, out=np.zeros(10, np.float32))


def test_n_kv_is_padded_to_256_and_capped_at_the_cache_size():
    cache = KVCache([0], 32, 32, 768)
    placed = decode(cache, seq_batch(0, 0, 300), n_ubatch=512)
    assert cache.get_n_kv(placed[0][1]) == 512
    placed = decode(cache, seq_batch(0, 300, 400), n_ubatch=512)
    assert cache.get_n_kv(placed[0][1]) == 768


def test_swa_mask_window_512_like_gemma3():
    # gemma3: LLAMA_SWA_TYPE_STANDARD, n_swa = 512 -> token at p1 sees p0 with p1 - 512 < p0 <= p1
    cache = KVCache([0], 32, 32, 1280, n_swa=512, swa_type=SwaType.STANDARD)
    decode(cache, seq_batch(0, 0, 1000), n_ubatch=1000)
    ub, sinfo = decode(cache, Batch(token=[1, 1], pos=[1000, 1001], logits=[1, 1]))[0]
    n_kv = cache.get_n_kv(sinfo)
    assert n_kv == 1024
    m = cache.get_mask(ub, n_kv)
    want = np.full((2, 1024), NEG, np.float32)
    want[0, 489:1001] = 0  # 1000 - 489 = 511 < 512 keeps, 1000 - 488 = 512 drops
    want[1, 490:1002] = 0
    np.testing.assert_array_equal(m, want)
    assert int((m[0] == 0).sum()) == 512


def test_swa_types_follow_is_masked_swa():
    p0 = np.arange(0, 20)
    assert is_masked_swa(4, SwaType.STANDARD, p0, 10).tolist() == [p <= 6 for p in range(20)]
    assert is_masked_swa(4, SwaType.CHUNKED, p0, 10).tolist() == [p < 8 for p in range(20)]
    assert is_masked_swa(4, SwaType.SYMMETRIC, p0, 10).tolist() == [abs(10 - p) > 2 for p in range(20)]
    assert not is_masked_swa(4, SwaType.NONE, p0, 10).any()


def test_multi_sequence_mask():
    cache = KVCache([0], 32, 32, 256, n_seq_max=3)
    # shared prompt of seq 0 and 1 in cells 0..1, then seq 0 at cell 2, seq 1 at cell 3
    decode(cache, Batch(token=[1, 1], pos=[0, 1], seq_id=[[0, 1], [0, 1]]))
    decode(cache, Batch(token=[1, 1], pos=[2, 2], seq_id=[[0], [1]], logits=[1, 1]))
    ub, sinfo = decode(cache, Batch(token=[1, 1, 1], pos=[3, 3, 0], seq_id=[[1], [0], [2]],
                                    logits=[1, 1, 1]))[0]
    assert sinfo.idxs[0].tolist() == [4, 5, 6]
    m = cache.get_mask(ub, cache.get_n_kv(sinfo))
    np.testing.assert_array_equal(m[:, :8], [
        [0, 0, NEG, 0, 0, NEG, NEG, NEG],  # seq 1 at pos 3: shared 0,1, own 2 (cell 3), itself
        [0, 0, 0, NEG, NEG, 0, NEG, NEG],  # seq 0 at pos 3
        [NEG, NEG, NEG, NEG, NEG, NEG, 0, NEG],  # seq 2 at pos 0 sees only itself
    ])
    # non-causal attention (embeddings) drops only the causal rule
    m_nc = cache.get_mask(ub, 8, causal=False)
    assert m_nc[2, 6] == 0 and m_nc[0, 5] == NEG


def test_streams_mask_blocks_follow_stream_order():
    cache = KVCache([0], 32, 32, 256, n_seq_max=2, unified=False)
    placed = decode(cache, Batch(token=[1] * 4, pos=[0, 0, 1, 1], seq_id=[[0], [1], [0], [1]],
                                 logits=[1] * 4), n_ubatch=8)
    ub, sinfo = placed[0]
    assert ub.seq_id.tolist() == [0, 0, 1, 1] and sinfo.strm == [0, 1]
    assert [ix.tolist() for ix in sinfo.idxs] == [[0, 1], [0, 1]]
    m = cache.get_mask(ub, 2)
    np.testing.assert_array_equal(m, [[0, NEG], [0, 0], [0, NEG], [0, 0]])
    assert cache.k_idxs(sinfo).tolist() == [0, 1, 256, 257]


# --- SWA caches --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kv,n_seq,unified,n_ubatch,swa_full,want", [
    (4096, 1, True, 512, False, 1024),   # pad(512 + 512, 256)
    (4096, 4, True, 512, False, 2560),   # pad(512 * 4 + 512, 256)
    (4096, 4, False, 512, False, 1024),  # per stream
    (512, 1, True, 512, False, 512),
    (4096, 1, True, 64, False, 768),
    (4096, 1, True, 512, True, 4096),
])
def test_iswa_sizes_follow_llama_cpp(kv, n_seq, unified, n_ubatch, swa_full, want):
    c = KVCacheISWA([0, 1, 2], lambda il: il % 2 == 0, 16, 16, kv, n_swa=512, n_seq_max=n_seq,
                    unified=unified, n_ubatch=n_ubatch, swa_full=swa_full)
    assert c.kv_swa.size == want and c.kv_base.size == kv
    assert c.kv_swa.layers == [0, 2] and c.kv_base.layers == [1]
    assert c.cache_of(2) is c.kv_swa and c.k_view(1).shape == (c.kv_base.n_stream, kv, 16)


def test_swa_cache_reuses_masked_cells_and_purges_older_positions():
    cache = KVCache([0], 32, 32, 8, n_swa=3, swa_type=SwaType.STANDARD)
    decode(cache, seq_batch(0, 0, 8))
    assert cache.seq_pos_min(0) == 0
    ub, sinfo = decode(cache, seq_batch(0, 8, 2))[0]
    # next token's window is (10-3, 10]: cells at pos 0..6 are masked; search wraps to 0
    assert sinfo.idxs[0].tolist() == [0, 1]
    assert cache.seq_pos_min(0) == 2 and cache.seq_pos_max(0) == 9


# --- storage ------------------------------------------------------------------------------------------


def test_storage_layout_and_types():
    c = KVCache([0, 3], [64, 32], [64, 32], 256, type_k=T.F16, type_v=T.F32)
    assert c.k_view(3).shape == (1, 256, 32) and c.k_view(3).dtype == np.float16
    assert c.v_view(0).shape == (1, 256, 64) and c.v_view(0).dtype == np.float32
    ct = KVCache([0], 64, 64, 256, v_trans=True)
    assert ct.v_view(0).shape == (1, 64, 256)
    cq = KVCache([0], 64, 64, 256, type_k=T.Q8_0, type_v=T.Q8_0)
    assert cq.k_view(0).shape == (1, 256, 68) and cq.k_view(0).dtype == np.uint8
    refs = [c.k_ref(0), c.v_ref(0), c.k_ref(3), c.v_ref(3)]
    spans = sorted((r.offset, r.offset + r.nbytes) for r in refs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])) and spans[-1][1] <= c.arena.nbytes
    with pytest.raises(UnsupportedError):
        KVCache([0], 64, 64, 256, type_k=T.Q4_0)
    with pytest.raises(UnsupportedError):
        KVCache([0], 48, 48, 256, type_k=T.Q8_0)


@pytest.mark.parametrize("type_k,v_trans", [(T.F16, False), (T.F32, True), (T.Q8_0, False)])
def test_store_writes_rows_of_the_slot(type_k, v_trans):
    c = KVCache([5], 64, 64, 256, type_k=type_k, type_v=T.F16, v_trans=v_trans)
    decode(c, seq_batch(0, 0, 3))
    ub, sinfo = decode(c, seq_batch(0, 3, 2))[0]
    rng = np.random.default_rng(0)
    k, v = rng.standard_normal((2, 64)).astype(np.float32), rng.standard_normal((2, 64)).astype(np.float32)
    c.store_k(5, sinfo, k)
    c.store_v(5, sinfo, v)
    got_k = c.k_view(5)[0, 3:5]
    if type_k == T.Q8_0:
        np.testing.assert_array_equal(got_k, gguf_quants.quantize(k, T.Q8_0))
    else:
        np.testing.assert_array_equal(got_k, k.astype(got_k.dtype))
    got_v = c.v_view(5)[0][:, 3:5].T if v_trans else c.v_view(5)[0, 3:5]
    np.testing.assert_array_equal(got_v, v.astype(np.float16))
    with pytest.raises(BatchError):
        c.store_k(5, sinfo, k[:, :32])


# --- K-shift hook ---------------------------------------------------------------------------------------


def test_seq_add_records_shifts_and_update_calls_the_rope_hook_per_layer():
    c = KVCache([0, 1], 8, 8, 16, n_seq_max=2)
    decode(c, seq_batch(0, 0, 6))
    c.seq_add(0, 2, -1, -2)  # positions 2..5 -> 0..3; cells 0,1 keep their positions
    assert c.v_cells[0].pos[:6].tolist() == [0, 1, 0, 1, 2, 3]
    calls = []

    def k_shift(il, k, shift):
        calls.append(il)
        assert k.shape == (1, 16, 8) and np.shares_memory(k, c.k_view(il))
        assert shift.dtype == np.int32 and shift[:6].tolist() == [0, 0, -2, -2, -2, -2]
        k[0, 2:6] = il + 1  # the hook rotates K in place

    assert c.update(k_shift) is True
    assert calls == [0, 1] and not c.get_has_shift() and c.get_k_shift().tolist() == [0] * 16
    assert np.all(c.k_view(1)[0, 2:6] == 2)
    assert c.update(k_shift) is False and calls == [0, 1]
    c.seq_add(0, 0, -1, 1)
    with pytest.raises(UnsupportedError):
        c.update(None)


# --- state save / restore ----------------------------------------------------------------------------


@pytest.mark.parametrize("type_k,v_trans", [(T.F16, False), (T.F16, True), (T.Q8_0, False)])
def test_sequence_state_roundtrip(type_k, v_trans):
    c = KVCache([0, 1], 32, 32, 64, n_seq_max=2, type_k=type_k, v_trans=v_trans)
    rng = np.random.default_rng(1)
    for start, n in ((0, 5), (5, 4)):
        for seq in (0, 1):
            ub, sinfo = decode(c, seq_batch(seq, start, n))[0]
            for il in (0, 1):
                c.store_k(il, sinfo, rng.standard_normal((n, 32)).astype(np.float32))
                c.store_v(il, sinfo, rng.standard_normal((n, 32)).astype(np.float32))
    def rows_by_pos(seq):
        cells = np.flatnonzero(c.v_cells[0].seq_mask(seq))
        cells = cells[np.argsort(c.v_cells[0].pos[cells], kind="stable")]
        return (c.v_cells[0].pos[cells].tolist(),
                [(c.k_view(il)[0, cells].copy(),
                  (c.v_view(il)[0][:, cells] if v_trans else c.v_view(il)[0][cells]).copy()) for il in (0, 1)])

    want_pos, want_rows = rows_by_pos(0)
    data = c.state_write(0)
    c.seq_rm(0)
    c.seq_rm(1, 3, -1)
    c.state_read(data, 1)  # restore sequence 0 as sequence 1 (replacing what 1 held)
    assert c.seq_pos_max(0) == -1 and c.v_cells[0].get_used() == 9
    got_pos, got_rows = rows_by_pos(1)
    assert got_pos == want_pos == list(range(9))
    for (wk, wv), (gk, gv) in zip(want_rows, got_rows):
        np.testing.assert_array_equal(gk, wk)
        np.testing.assert_array_equal(gv, wv)
    with pytest.raises(BatchError):
        c.state_read(data[:-3], 0)
    with pytest.raises(BatchError):
        KVCache([0, 1], 32, 32, 64, n_seq_max=2, type_k=T.F32, v_trans=v_trans).state_read(data, 0)


def test_state_read_that_cannot_fit_leaves_the_cache_unchanged():
    c = KVCache([0], 32, 32, 16, n_seq_max=2)
    decode(c, seq_batch(0, 0, 10))
    data = c.state_write(0)
    small = KVCache([0], 32, 32, 16, n_seq_max=2)
    decode(small, seq_batch(1, 0, 10))
    before = small.v_cells[0].pos.copy(), small.v_cells[0].seq.copy(), list(small.v_heads)
    with pytest.raises(KVCacheFullError):
        small.state_read(data, 0)
    np.testing.assert_array_equal(small.v_cells[0].pos, before[0])
    np.testing.assert_array_equal(small.v_cells[0].seq, before[1])
    assert small.v_heads == before[2]


# --- errors and defrag ---------------------------------------------------------------------------------


def test_ubatch_that_cannot_fit_raises_and_leaves_the_cache_unchanged():
    c = KVCache([0], 32, 32, 16, n_seq_max=2)
    decode(c, seq_batch(0, 0, 10))
    c.seq_add(0, 0, -1, 0)
    before = c.v_cells[0].pos.copy(), c.v_cells[0].seq.copy(), list(c.v_heads)
    with pytest.raises(KVCacheFullError, match="no KV cache slot"):
        decode(c, seq_batch(1, 0, 7))
    with pytest.raises(KVCacheFullError):
        decode(c, seq_batch(1, 0, 17))
    np.testing.assert_array_equal(c.v_cells[0].pos, before[0])
    np.testing.assert_array_equal(c.v_cells[0].seq, before[1])
    assert c.v_heads == before[2]
    decode(c, seq_batch(1, 0, 6))  # exactly the free cells
    assert c.v_cells[0].get_used() == 16


@pytest.mark.parametrize("call", [
    lambda c: c.seq_rm(5), lambda c: c.seq_cp(0, 2), lambda c: c.seq_keep(-1),
    lambda c: c.seq_add(9, 0, -1, 1), lambda c: c.seq_div(0, 0, -1, 0), lambda c: c.seq_pos_min(2),
    lambda c: c.k_view(7),
])
def test_bad_arguments_raise_batch_error(call):
    with pytest.raises(BatchError):
        call(KVCache([0], 32, 32, 16, n_seq_max=2))


def test_defrag_compacts_cells_and_rows_without_changing_masks():
    c = KVCache([0], 4, 4, 16, n_seq_max=2)
    decode(c, Batch(token=[1] * 8, pos=[0, 0, 1, 1, 2, 2, 3, 3], seq_id=[[0], [1]] * 4, logits=[1] * 8))
    c.k_view(0)[0, :8] = np.arange(8, dtype=np.float16)[:, None]
    c.seq_rm(1)
    ub = decode(c, seq_batch(0, 4, 1))[0][0]
    m_before = c.get_mask(ub, 16)
    kept = np.flatnonzero(m_before[0] == 0)
    rows = c.k_view(0)[0, kept].copy()
    assert c.defrag() > 0
    m_after = c.get_mask(ub, 16)
    assert np.count_nonzero(m_after == 0) == np.count_nonzero(m_before == 0)
    assert np.flatnonzero(m_after[0] == 0).tolist() == list(range(len(kept)))
    np.testing.assert_array_equal(c.k_view(0)[0, : len(kept)], rows)
    assert c.v_heads == [len(kept)]


def test_contiguous_slot_search_restarts_after_an_occupied_cell():
    """find_slot(cont=True), derived from llama_kv_cache::find_slot: a run of n usable cells."""
    c = KVCache([0], 8, 8, 8, n_seq_max=2)
    decode(c, Batch(token=[1] * 3, pos=[0, 0, 1], seq_id=[[0], [1], [0]], logits=[1] * 3))
    c.seq_rm(0)  # cells 0 and 2 free again, cell 1 (seq 1) occupied, head back at 0
    ub = BatchAllocator(10, 2).ubatch_reserve(2, 1)
    assert c.find_slot(ub, cont=False).idxs[0].tolist() == [0, 2]
    assert c.find_slot(ub, cont=True).idxs[0].tolist() == [2, 3]
    big = BatchAllocator(10, 2).ubatch_reserve(8, 1)
    assert c.find_slot(big, cont=True) is None and c.find_slot(big) is None
