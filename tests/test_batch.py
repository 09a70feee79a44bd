"""Batch validation and ubatch splitting (llama.cpp src/llama-batch.cpp).

Expected splits and errors are derived from llama_batch_allocr's rules (the allocator is internal
to llama.cpp, so its splits cannot be recorded through the public API); whether llama.cpp
accepts or rejects a batch is also recorded from llama_decode itself in
parity_fixtures/batch/ (see test_decode_outcomes_and_sequence_ranges_match_llama_decode).
"""

from __future__ import annotations

import json
import re
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emel.batch import Batch, BatchAllocator, output_order
from emel.errors import BatchError, EmelError, KVCacheFullError
from emel.kv_cache import KVCache

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "parity_fixtures" / "batch"


class Mem:
    """A KV cache stand-in holding fixed (pos_min, pos_max) per sequence."""

    def __init__(self, ranges=None):
        self.ranges = ranges or {}

    def seq_pos_min(self, s):
        return self.ranges.get(s, (-1, -1))[0]

    def seq_pos_max(self, s):
        return self.ranges.get(s, (-1, -1))[1]


def alloc(batch, n_seq_max=4, mem=None, **kw):
    b = BatchAllocator(n_vocab=50, n_seq_max=n_seq_max)
    b.init(batch, memory=mem, **kw)
    return b


def splits(b, how, n_ubatch, **kw):
    b.split_reset()
    out = []
    while (ub := getattr(b, how)(n_ubatch, **kw)) is not None:
        out.append(ub)
    return out


# --- filling in missing fields (llama_batch_compat::init) ------------------------------------------


def test_missing_fields_are_filled_like_llama_batch_get_one():
    b = alloc(Batch.get_one([5, 6, 7]), mem=Mem({0: (0, 9)}))
    assert b.pos.tolist() == [10, 11, 12]
    assert [list(s) for s in b.seq_lists] == [[0], [0], [0]]
    assert b.output.tolist() == [0, 0, 1] and b.n_outputs == 1


def test_positions_continue_per_first_sequence_id():
    batch = Batch(token=[1, 2, 3, 4], seq_id=[[1], [2], [1], [2]])
    b = alloc(batch, mem=Mem({1: (0, 4), 2: (3, 3)}))
    assert b.pos.tolist() == [5, 4, 6, 5]


def test_output_all_marks_every_token():
    b = alloc(Batch(token=[1, 2, 3], logits=[0, 1, 0]), output_all=True)
    assert b.output.tolist() == [1, 1, 1]


# --- validation (llama_batch_allocr::init) -----------------------------------------------------------

BAD = [
    ("empty", Batch(token=[]), None, "empty"),
    ("token too large", Batch(token=[1, 50]), None, "invalid token[1] = 50"),
    ("negative token", Batch(token=[-1]), None, "invalid token[0] = -1"),
    ("seq id too large", Batch(token=[1, 2], seq_id=[[0], [4]]), None, "invalid seq_id[1][0] = 4"),
    ("negative seq id", Batch(token=[1], seq_id=[[-1]]), None, "invalid seq_id[0][0] = -1"),
    ("negative position", Batch(token=[1, 2], pos=[-1, 0]), None, "invalid pos[0] = -1"),
    ("gap after cache", Batch(token=[1], pos=[7]), Mem({0: (0, 5)}), "Y = X + 1"),
    ("overlap with cache", Batch(token=[1], pos=[5]), Mem({0: (0, 5)}), "X = 5"),
    ("gap in batch", Batch(token=[1, 2], pos=[0, 2]), None, "not continuous"),
    ("decreasing", Batch(token=[1, 2, 3], pos=[1, 0, 2]), None, "decreasing"),
    # llama.cpp's "incompatible sequence sets" check can never fire (a token's set always holds
    # its own sequence), so that case has no row; a shared sequence still must not go backwards
    ("decreasing in shared", Batch(token=[1, 2, 3], pos=[0, 1, 0], seq_id=[[0, 1], [0, 1], [1, 2]]), None,
     "sequence 1 positions are decreasing"),
    ("coupled diverged", Batch(token=[1], pos=[4], seq_id=[[0, 1]]), Mem({0: (0, 3), 1: (1, 3)}),
     "coupled"),
    ("pos length", Batch(token=[1, 2], pos=[0]), None, "pos has 1 entries"),
    ("both inputs", Batch(token=[1], embd=np.zeros((1, 4), np.float32)), None, "both"),
    ("no inputs", Batch(), None, "neither"),
]


@pytest.mark.parametrize("name,batch,mem,msg", BAD, ids=[c[0] for c in BAD])
def test_bad_batches_raise_batch_error(name, batch, mem, msg):
    with pytest.raises(BatchError, match=re.escape(msg)) as e:
        alloc(batch, mem=mem)
    assert isinstance(e.value, EmelError) and isinstance(e.value, ValueError)


def test_batch_larger_than_n_batch_is_rejected():
    with pytest.raises(BatchError, match="n_batch"):
        alloc(Batch(token=[1] * 9), n_batch=8)


def test_a_rejected_batch_leaves_the_cache_and_allocator_unchanged():
    cache = KVCache([0], 32, 32, 16, n_seq_max=2)
    b = BatchAllocator(n_vocab=50, n_seq_max=2)
    b.init(Batch(token=[1, 2, 3]), memory=cache)
    placed = cache.init_batch(b, 8)
    for ub, si in placed:
        cache.apply_ubatch(si, ub)
    before = (cache.v_cells[0].pos.copy(), cache.v_cells[0].seq.copy(), list(cache.v_heads))
    with pytest.raises(BatchError):
        b.init(Batch(token=[1], seq_id=[[2]]), memory=cache)
    assert b.n_tokens == 0
    np.testing.assert_array_equal(cache.v_cells[0].pos, before[0])
    np.testing.assert_array_equal(cache.v_cells[0].seq, before[1])
    assert cache.v_heads == before[2]


# llama.cpp accepts a negative position (it only asserts on it in SWA masks); emel rejects it
DELIBERATE = {"negative position"}


def test_decode_outcomes_and_sequence_ranges_match_llama_decode():
    """Replays recorded llama_decode calls: same accept / invalid (-1) / no slot (1) outcome, and
    the same llama_memory_seq_pos_min/max of every sequence before and after each test batch."""
    data = json.loads((FIXTURES / "decode_validation.json").read_text())
    assert len(data["cases"]) >= 20
    for case in data["cases"]:
        cache = KVCache([0], 32, 32, data["n_ctx"], n_seq_max=data["n_seq_max"])
        b = BatchAllocator(n_vocab=data["n_vocab"], n_seq_max=data["n_seq_max"])

        def decode(step):
            if "rm" in step:
                return int(cache.seq_rm(*step["rm"]))
            try:
                b.init(_fixture_batch(step), memory=cache, n_batch=data["n_batch"])
            except BatchError:
                return -1
            try:
                placed = cache.init_batch(b, data["n_ubatch"])
            except KVCacheFullError:
                return 1
            for ub, si in placed:
                cache.apply_ubatch(si, ub)
            return 0

        def ranges():
            return [[cache.seq_pos_min(s), cache.seq_pos_max(s)] for s in range(data["n_seq_max"])]

        for step in case["setup"]:
            assert decode(step) == (1 if "rm" in step else 0), case["name"]
        assert ranges() == case["ranges_before"], case["name"]
        ret = decode(case["batch"])
        if case["name"] in DELIBERATE:
            assert (ret, case["ret"]) == (-1, 0)
            continue
        assert ret == case["ret"], case["name"]
        assert ranges() == case["ranges_after"], case["name"]


def _fixture_batch(d):
    return Batch(token=np.asarray(d["token"], np.int32),
                 pos=None if d.get("pos") is None else np.asarray(d["pos"], np.int32),
                 seq_id=d.get("seq_id"), logits=d.get("logits"))


# --- splitting ---------------------------------------------------------------------------------------


def test_split_simple_takes_consecutive_tokens():
    b = alloc(Batch(token=list(range(7))))
    ubs = splits(b, "split_simple", 3)
    assert [u.batch_idxs.tolist() for u in ubs] == [[0, 1, 2], [3, 4, 5], [6]]
    assert not ubs[0].equal_seqs and ubs[0].n_seqs == 3


def test_split_equal_takes_one_token_per_sequence_set_per_round():
    # derived by hand from llama_batch_allocr::split_equal
    b = alloc(Batch(token=[1] * 6, seq_id=[[0], [0], [1], [1], [1], [2]]))
    ubs = splits(b, "split_equal", 4)
    assert [u.batch_idxs.tolist() for u in ubs] == [[0, 2, 5], [1, 3], [4]]
    assert [(u.n_seqs, u.n_seq_tokens) for u in ubs] == [(3, 1), (2, 1), (1, 1)]
    ubs = splits(b, "split_equal", 6)
    assert [u.batch_idxs.tolist() for u in ubs] == [[0, 2, 5], [1, 3], [4]]
    b = alloc(Batch(token=[1] * 6, seq_id=[[0], [0], [0], [1], [1], [1]]))
    ubs = splits(b, "split_equal", 4)
    assert [u.batch_idxs.tolist() for u in ubs] == [[0, 1, 3, 4], [2, 5]]


def test_split_equal_sequential_needs_consecutive_sequence_ids():
    b = alloc(Batch(token=[1] * 4, seq_id=[[0], [2], [1], [3]]))
    ubs = splits(b, "split_equal", 8, sequential=True)
    assert [u.seq_id_unq.tolist() for u in ubs] == [[0, 1], [2, 3]]
    b = alloc(Batch(token=[1] * 3, seq_id=[[0], [2], [3]]))
    ubs = splits(b, "split_equal", 8, sequential=True)
    assert [u.seq_id_unq.tolist() for u in ubs] == [[0], [2, 3]]
    b = alloc(Batch(token=[1] * 2, seq_id=[[0, 1], [0, 1]]))
    with pytest.raises(BatchError, match="coupled"):
        b.split_equal(8, sequential=True)


def test_split_equal_may_exceed_n_ubatch_by_one_like_llama():
    b = alloc(Batch(token=[1] * 3, seq_id=[[0], [1], [2]]))
    ubs = splits(b, "split_equal", 2)
    assert [u.n_tokens for u in ubs] == [3]


def test_split_equal_keeps_tails_together():
    b = alloc(Batch(token=[1] * 5, seq_id=[[0]] * 5))
    ubs = splits(b, "split_equal", 4, n_keep_tail=2)
    assert [u.batch_idxs.tolist() for u in ubs] == [[0, 1, 2], [3, 4]]


def test_split_seq_narrows_to_subsets():
    b = alloc(Batch(token=[1] * 5, pos=[0, 1, 2, 1, 2], seq_id=[[0, 1], [0], [0], [1], [1]]))
    ubs = splits(b, "split_seq", 8)
    assert [u.batch_idxs.tolist() for u in ubs] == [[0, 1, 2], [3, 4]]
    assert ubs[0].seq_ids_of(0) == [0, 1] and ubs[0].n_seqs == 1


def test_outputs_return_in_batch_order():
    b = alloc(Batch(token=[1] * 6, seq_id=[[0], [1], [0], [1], [0], [1]], logits=[1, 1, 0, 1, 1, 0]))
    splits(b, "split_equal", 2)
    assert b.out_ids == [0, 1, 3, 4]
    b = alloc(Batch(token=[1] * 4, seq_id=[[0], [0], [1], [1]], logits=[1, 1, 1, 1]))
    ubs = splits(b, "split_equal", 2)
    assert b.out_ids == [0, 2, 1, 3]
    rows = np.concatenate([u.batch_idxs[u.output != 0] for u in ubs])  # "logits" in ubatch order
    perm, output_ids = output_order(b.out_ids, b.n_tokens)
    assert rows[perm].tolist() == [0, 1, 2, 3]
    assert output_ids.tolist() == [0, 1, 2, 3]


def test_ubatch_reserve_is_well_formed():
    ub = BatchAllocator(10, 4).ubatch_reserve(3, 2)
    assert ub.n_tokens == 6 and ub.equal_seqs and ub.seq_id_unq.tolist() == [0, 1]
    assert ub.pos.tolist() == [0, 1, 2, 0, 1, 2] and ub.seq_id.tolist() == [0, 0, 0, 1, 1, 1]


@st.composite
def batches(draw):
    n_seq = draw(st.integers(1, 4))
    lens = [draw(st.integers(0, 6)) for _ in range(n_seq)]
    order = draw(st.permutations([s for s, n in enumerate(lens) for _ in range(n)]))
    if not order:
        order = [0]
        lens[0] = 1
    nxt = [draw(st.integers(0, 5)) for _ in range(n_seq)]
    pos, seq = [], []
    for s in order:
        pos.append(nxt[s])
        nxt[s] += 1
        seq.append([s])
    logits = draw(st.lists(st.integers(0, 1), min_size=len(order), max_size=len(order)))
    return Batch(token=np.zeros(len(order), np.int32), pos=pos, seq_id=seq, logits=logits)


@settings(max_examples=150, deadline=None)
@given(batch=batches(), n_ubatch=st.integers(1, 7), how=st.sampled_from(["split_simple", "split_equal", "split_seq"]))
def test_every_split_uses_each_token_once_in_sequence_order(batch, n_ubatch, how):
    b = alloc(batch)
    ubs = splits(b, how, n_ubatch)
    idx = np.concatenate([u.batch_idxs for u in ubs])
    assert sorted(idx.tolist()) == list(range(batch.n_tokens)) and b.n_used == batch.n_tokens
    last = {}
    for u in ubs:
        assert u.n_tokens <= n_ubatch + (1 if how == "split_equal" else 0)
        assert u.n_tokens == u.n_seqs * u.n_seq_tokens
        for i in range(u.n_tokens):  # each sequence keeps increasing positions
            s = int(u.seq_id[i])
            assert u.pos[i] > last.get(s, -1)
            last[s] = int(u.pos[i])
        if how == "split_equal":
            blocks = u.seq_mask.reshape(u.n_seqs, u.n_seq_tokens)
            assert np.all(blocks == blocks[:, :1])
            assert len(set(blocks[:, 0].tolist())) == u.n_seqs
        if how == "split_seq":
            assert u.n_seqs == 1
    outs = [int(i) for u in ubs for i in u.batch_idxs[u.output != 0]]
    assert b.out_ids == outs
    perm, ids = output_order(b.out_ids, batch.n_tokens)
    assert np.asarray(outs)[perm].tolist() == sorted(outs)
    assert [i for i in range(batch.n_tokens) if ids[i] >= 0] == sorted(outs)
