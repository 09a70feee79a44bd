"""KV cells and cache bookkeeping against a plain reference model of llama.cpp's code.

`RefCache` below is a line-by-line transliteration of llama.cpp's llama_kv_cells
(src/llama-kv-cells.h) and of the cell loops of llama_kv_cache (src/llama-kv-cache.cpp:
seq_rm, seq_cp, seq_keep, seq_add, seq_div, find_slot, apply_ubatch, get_n_kv and
set_input_kq_mask with its per-sequence row-copy shortcut), written with Python lists and sets
only. A hypothesis RuleBasedStateMachine drives random batches (split into ubatches and placed
through emel's real BatchAllocator + KVCache.init_batch) and sequence operations on both, and
after every step checks every cell's position, sequence set and pending shift, the heads, the
used counts, each sequence's min/max position, n_kv and the KQ masks.

One deliberate difference is modelled: when a batch does not fit, emel leaves the cache exactly
as it was (llama.cpp's prepare() restores only the slot cells, so an SWA purge done while
probing would survive).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from emel.batch import Batch, BatchAllocator
from emel.errors import BatchError, KVCacheFullError
from emel.kv_cache import KVCache, SwaType
from emel.kv_cells import KVCells

INT_MAX = 2**31 - 1


# --- reference model -----------------------------------------------------------------------------


def ref_is_masked_swa(n_swa, swa_type, p0, p1):
    assert p0 >= 0 and p1 >= 0
    if swa_type == SwaType.STANDARD:
        return p1 - p0 >= n_swa
    if swa_type == SwaType.CHUNKED:
        return p0 < (p1 // n_swa) * n_swa
    if swa_type == SwaType.SYMMETRIC:
        h = n_swa // 2
        return p1 - p0 < -h or p1 - p0 > h
    return False


class RefCells:
    def __init__(self, size):
        self.pos = [-1] * size
        self.seq = [set() for _ in range(size)]
        self.shift = [0] * size
        self.has_shift = False

    def size(self):
        return len(self.pos)

    def used(self):
        return sum(p != -1 for p in self.pos)

    def used_max_p1(self):
        u = [i for i, p in enumerate(self.pos) if p != -1]
        return u[-1] + 1 if u else 0

    def seq_pos_min(self, s):
        ps = [self.pos[i] for i in range(self.size()) if s in self.seq[i]]
        return min(ps) if ps else -1

    def seq_pos_max(self, s):
        ps = [self.pos[i] for i in range(self.size()) if s in self.seq[i]]
        return max(ps) if ps else -1

    def rm(self, i):
        self.seq[i] = set()
        self.pos[i] = -1
        self.shift[i] = 0

    def seq_rm(self, i, s):
        self.seq[i].discard(s)
        if not self.seq[i]:
            self.pos[i] = -1
            self.shift[i] = 0
            return True
        return False

    def seq_keep(self, i, s):
        if s in self.seq[i]:
            self.seq[i] = {s}
            return False
        if self.seq[i]:
            self.rm(i)
            return True
        return False

    def pos_add(self, i, d):
        self.pos[i] += d
        self.shift[i] += d
        self.has_shift = True
        if self.pos[i] < 0:
            self.rm(i)
            return True
        return False

    def pos_div(self, i, d):
        old = self.pos[i]
        self.pos[i] = old // d
        self.shift[i] += old - self.pos[i]
        self.has_shift = True


class RefCache:
    def __init__(self, size, n_seq_max, unified, n_swa, swa_type):
        self.n_stream = 1 if unified else n_seq_max
        self.cells = [RefCells(size) for _ in range(self.n_stream)]
        self.heads = [0] * self.n_stream
        self.s2s = [0] * n_seq_max if unified else list(range(n_seq_max))
        self.n_swa, self.swa_type = n_swa, swa_type

    def seq_rm(self, s, p0, p1):
        p0 = 0 if p0 < 0 else p0
        p1 = INT_MAX if p1 < 0 else p1
        streams = [self.s2s[s]] if s >= 0 else range(self.n_stream)
        for st in streams:
            c = self.cells[st]
            new_head = c.size()
            for i in range(c.size()):
                if not (p0 <= c.pos[i] < p1):
                    continue
                if s >= 0:
                    if s in c.seq[i] and c.seq_rm(i, s) and new_head == c.size():
                        new_head = i
                else:
                    c.rm(i)
                    if new_head == c.size():
                        new_head = i
            if new_head != c.size() and new_head < self.heads[st]:
                self.heads[st] = new_head

    def seq_cp(self, src, dst, p0, p1):
        s0, s1 = self.s2s[src], self.s2s[dst]
        if s0 == s1:
            if src == dst:
                return
            p0 = 0 if p0 < 0 else p0
            p1 = INT_MAX if p1 < 0 else p1
            c = self.cells[s0]
            for i in range(c.size()):
                if p0 <= c.pos[i] < p1 and src in c.seq[i]:
                    c.seq[i].add(dst)
            return
        a, b = self.cells[s0], RefCells(self.cells[s1].size())
        for i in range(a.size()):
            if src in a.seq[i]:
                b.pos[i] = a.pos[i] - a.shift[i]
                b.seq[i] = {dst}
                if a.shift[i] != 0:
                    b.pos_add(i, a.shift[i])
        self.cells[s1] = b
        self.heads[s1] = self.heads[s0]

    def seq_keep(self, s):
        st = self.s2s[s]
        c = self.cells[st]
        new_head = c.size()
        for i in range(c.size()):
            if c.seq_keep(i, s) and new_head == c.size():
                new_head = i
        if new_head != c.size() and new_head < self.heads[st]:
            self.heads[st] = new_head

    def seq_add(self, s, p0, p1, d):
        st = self.s2s[s]
        c = self.cells[st]
        if d == 0:
            return
        p0 = 0 if p0 < 0 else p0
        p1 = INT_MAX if p1 < 0 else p1
        if p0 == p1:
            return
        new_head = c.size()
        for i in range(c.size()):
            if p0 <= c.pos[i] < p1 and s in c.seq[i]:
                if c.pos_add(i, d) and new_head == c.size():
                    new_head = i
        self.heads[st] = new_head if new_head != c.size() else 0

    def seq_div(self, s, p0, p1, d):
        c = self.cells[self.s2s[s]]
        if d == 1:
            return
        p0 = 0 if p0 < 0 else p0
        p1 = INT_MAX if p1 < 0 else p1
        if p0 == p1:
            return
        for i in range(c.size()):
            if p0 <= c.pos[i] < p1 and s in c.seq[i]:
                c.pos_div(i, d)

    def find_slot(self, ub):
        """ub: dict(pos=[..], seqs=[[..]], seq_id_unq=[..])."""
        n_tokens, n_seqs = len(ub["pos"]), 1
        if self.n_stream > 1:
            n_seqs = len(ub["seq_id_unq"])
            n_tokens //= n_seqs
        res = []
        for s in range(n_seqs):
            seq_id = ub["seq_id_unq"][s]
            st = self.s2s[seq_id]
            c = self.cells[st]
            head_cur = self.heads[st]
            if head_cur > c.used() + 2 * n_tokens:
                head_cur = 0
            if n_tokens > c.size():
                return None
            n_tested, idxs = 0, []
            while True:
                if head_cur + 1 > c.size():
                    n_tested += c.size() - head_cur
                    head_cur = 0
                    continue
                idx = head_cur
                head_cur += 1
                n_tested += 1
                can_use = c.pos[idx] == -1
                if not can_use and len(c.seq[idx]) == 1:
                    (sc,) = c.seq[idx]
                    if ref_is_masked_swa(self.n_swa, self.swa_type, c.pos[idx], c.seq_pos_max(sc) + 1):
                        can_use = True
                if can_use:
                    idxs.append(idx)
                if len(idxs) == n_tokens:
                    break
                if n_tested >= c.size():
                    return None
            res.append((st, idxs))
        return res

    def apply_ubatch(self, sinfo, ub):
        n_per = len(sinfo[0][1])
        rm_max = {}
        for s, (st, idxs) in enumerate(sinfo):
            c = self.cells[st]
            for ii, idx in enumerate(idxs):
                i = s * n_per + ii
                if c.pos[idx] != -1:
                    assert len(c.seq[idx]) == 1
                    (sid,) = c.seq[idx]
                    rm_max[sid] = max(rm_max.get(sid, -1), c.pos[idx])
                    c.rm(idx)
                c.pos[idx] = ub["pos"][i]
                c.seq[idx] = set(ub["seqs"][i])
        for sid in sorted(rm_max):
            c = self.cells[self.s2s[sid]]
            if c.seq_pos_min(sid) <= rm_max[sid]:
                self.seq_rm(sid, c.seq_pos_min(sid), rm_max[sid] + 1)
        for st, idxs in sinfo:
            self.heads[st] = idxs[-1] + 1

    def get_n_kv(self, sinfo):
        pad, res = 256, 0
        for st, _ in sinfo:
            c = self.cells[st]
            padded = -(-c.used_max_p1() // pad) * pad
            res = max(res, min(c.size(), max(pad, padded)))
        return res

    def mask(self, ub, n_kv, n_stream, causal=True):
        """set_input_kq_mask_impl<float, causal, swa, is_2d=false, alibi=false>, literally."""
        n_tokens = len(ub["pos"])
        n_tps = n_tokens // n_stream
        swa = self.swa_type != SwaType.NONE
        data = [0.0] * (n_tokens * n_kv)
        seq_pos_min = {}
        for i in range(n_tokens):
            s = ub["seqs"][i][0]
            seq_pos_min[s] = min(seq_pos_min.get(s, INT_MAX), ub["pos"][i])
        for s in range(n_stream):
            seq_srct, seq_idxs = {}, {}
            for ii in range(n_tps):
                i = s * n_tps + ii
                seq_id = ub["seqs"][i][0]
                c = self.cells[self.s2s[seq_id]]
                p1 = ub["pos"][i]
                idst = n_kv * i
                prev = False
                idxs = seq_idxs.setdefault(seq_id, [])
                if seq_id in seq_srct:
                    src = n_kv * seq_srct[seq_id]
                    data[idst : idst + n_kv] = data[src : src + n_kv]
                    prev = True
                else:
                    idxs.clear()
                    seq_srct[seq_id] = i
                for jj in range(n_kv):
                    j = jj
                    if prev:
                        if jj >= len(idxs):
                            break
                        j = idxs[jj]
                    keep = False
                    if c.pos[j] != -1 and seq_id in c.seq[j]:
                        p0 = c.pos[j]
                        if not prev and p0 + self.n_swa + 32 >= seq_pos_min[seq_id]:
                            idxs.append(j)
                        keep = True
                        if causal and p0 > p1:
                            keep = False
                        if keep and swa and ref_is_masked_swa(self.n_swa, self.swa_type, p0, p1):
                            keep = False
                    data[idst + j] = 0.0 if keep else -np.inf
        return np.asarray(data, dtype=np.float32).reshape(n_tokens, n_kv)


def assert_same_state(cache: KVCache, ref: RefCache, n_seq_max: int) -> None:
    assert cache.v_heads == ref.heads
    for c, r in zip(cache.v_cells, ref.cells):
        np.testing.assert_array_equal(c.pos, np.asarray(r.pos, dtype=np.int32))
        want_seq = [sum(1 << s for s in ss) for ss in r.seq]
        assert [int(x) for x in c.seq] == want_seq
        np.testing.assert_array_equal(c.shift, np.asarray(r.shift, dtype=np.int32))
        assert c.has_shift == r.has_shift
        assert c.get_used() == r.used() and c.used_max_p1() == r.used_max_p1()
        for s in range(n_seq_max):
            assert (c.seq_pos_min(s), c.seq_pos_max(s)) == (r.seq_pos_min(s), r.seq_pos_max(s))
        # structural invariants of llama_kv_cells
        assert np.all((c.pos == -1) == (c.seq == 0))
        assert np.all(c.pos >= -1)


def ub_dict(ub) -> dict:
    return {
        "pos": [int(p) for p in ub.pos],
        "seqs": [[int(ub.seq_id[i])] + [s for s in ub.seq_ids_of(i) if s != ub.seq_id[i]] for i in range(ub.n_tokens)],
        "seq_id_unq": [int(s) for s in ub.seq_id_unq],
    }


# --- the state machine -----------------------------------------------------------------------------


class CacheMachine(RuleBasedStateMachine):
    SIZE, N_SEQ, UNIFIED, N_SWA, SWA_TYPE = 24, 3, True, 0, SwaType.NONE

    def __init__(self) -> None:
        super().__init__()
        self.cache = KVCache([0], 32, 32, self.SIZE, n_seq_max=self.N_SEQ, unified=self.UNIFIED,
                             n_swa=self.N_SWA, swa_type=self.SWA_TYPE)
        self.ref = RefCache(self.SIZE, self.N_SEQ, self.UNIFIED, self.N_SWA, self.SWA_TYPE)
        self.balloc = BatchAllocator(n_vocab=100, n_seq_max=self.N_SEQ)

    seqs = st.integers(0, 2)
    poss = st.integers(-1, 40)

    def _decode(self, seq_lists, n_ubatch):
        n = len(seq_lists)
        batch = Batch(token=np.arange(n, dtype=np.int32) % 100, seq_id=seq_lists,
                      logits=np.ones(n, dtype=np.int8))
        try:
            self.balloc.init(batch, memory=self.cache)
        except BatchError:
            return
        before = copy.deepcopy(self.ref)
        try:
            placed = self.cache.init_batch(self.balloc, n_ubatch)
        except KVCacheFullError:
            # the reference agrees that some ubatch cannot be placed
            ubs = []
            self.balloc.split_reset()
            while True:
                ub = (self.balloc.split_simple(n_ubatch) if self.cache.n_stream == 1
                      else self.balloc.split_equal(n_ubatch, True))
                if ub is None:
                    break
                ubs.append(ub)
            probe, ok = copy.deepcopy(self.ref), True
            for ub in ubs:
                d = ub_dict(ub)
                si = probe.find_slot(d)
                if si is None:
                    ok = False
                    break
                probe.apply_ubatch(si, d)
            assert not ok, "emel found no slot where the reference did"
            assert_same_state(self.cache, before, self.N_SEQ)
            return
        for ub, sinfo in placed:
            d = ub_dict(ub)
            rs = self.ref.find_slot(d)
            assert rs is not None
            assert [(st_, list(map(int, ix))) for st_, ix in zip(sinfo.strm, sinfo.idxs)] == rs
            self.cache.apply_ubatch(sinfo, ub)
            self.ref.apply_ubatch(rs, d)
            n_kv = self.cache.get_n_kv(sinfo)
            assert n_kv == self.ref.get_n_kv(rs)
            n_stream = 1 if self.cache.n_stream == 1 else ub.n_seqs_unq
            np.testing.assert_array_equal(self.cache.get_mask(ub, n_kv), self.ref.mask(d, n_kv, n_stream))

    @rule(seq=seqs, n=st.integers(1, 10), n_ubatch=st.integers(1, 8))
    def decode(self, seq, n, n_ubatch):
        self._decode([[seq]] * n, n_ubatch)

    @rule(a=seqs, b=seqs, n=st.integers(1, 6), n_ubatch=st.integers(1, 8))
    def decode_two_sequences(self, a, b, n, n_ubatch):
        self._decode([[a]] * n + [[b]] * n, n_ubatch)

    @precondition(lambda self: self.UNIFIED)
    @rule(a=seqs, b=seqs, n=st.integers(1, 6), n_ubatch=st.integers(1, 8))
    def decode_shared_tokens(self, a, b, n, n_ubatch):
        self._decode([[a, b]] * n, n_ubatch)

    @rule(seq=st.integers(-1, 2), p0=poss, p1=poss)
    def seq_rm(self, seq, p0, p1):
        self.cache.seq_rm(seq, p0, p1)
        self.ref.seq_rm(seq, p0, p1)

    @rule(src=seqs, dst=seqs, p0=poss, p1=poss)
    def seq_cp(self, src, dst, p0, p1):
        if self.cache.seq_to_stream[src] != self.cache.seq_to_stream[dst]:
            p0, p1 = -1, -1  # across streams only whole sequences are supported
        self.cache.seq_cp(src, dst, p0, p1)
        self.ref.seq_cp(src, dst, p0, p1)

    @rule(seq=seqs)
    def seq_keep(self, seq):
        self.cache.seq_keep(seq)
        self.ref.seq_keep(seq)

    @rule(seq=seqs, p0=poss, p1=poss, d=st.integers(-12, 12))
    def seq_add(self, seq, p0, p1, d):
        self.cache.seq_add(seq, p0, p1, d)
        self.ref.seq_add(seq, p0, p1, d)

    @rule(seq=seqs, p0=poss, p1=poss, d=st.integers(1, 4))
    def seq_div(self, seq, p0, p1, d):
        self.cache.seq_div(seq, p0, p1, d)
        self.ref.seq_div(seq, p0, p1, d)

    @rule()
    def update_k_shift(self):
        calls = []
        want = [(r.shift[i] if r.pos[i] != -1 else 0) for r in self.ref.cells for i in range(r.size())]
        had = any(r.has_shift for r in self.ref.cells)
        self.cache.update(lambda il, k, shift: calls.append((il, k.shape, shift.tolist())))
        if had:
            assert calls == [(0, (self.cache.n_stream, self.SIZE, 32), want)]
            for r in self.ref.cells:
                r.shift = [0] * r.size()
                r.has_shift = False
        else:
            assert calls == []

    @invariant()
    def same_as_reference(self):
        assert_same_state(self.cache, self.ref, self.N_SEQ)


class SwaCacheMachine(CacheMachine):
    SIZE, N_SEQ, UNIFIED, N_SWA, SWA_TYPE = 20, 3, True, 5, SwaType.STANDARD


class ChunkedSwaCacheMachine(CacheMachine):
    SIZE, N_SEQ, UNIFIED, N_SWA, SWA_TYPE = 16, 3, True, 4, SwaType.CHUNKED


class StreamsCacheMachine(CacheMachine):
    SIZE, N_SEQ, UNIFIED, N_SWA, SWA_TYPE = 12, 3, False, 0, SwaType.NONE


_SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])

TestCacheMachine = CacheMachine.TestCase
TestCacheMachine.settings = _SETTINGS
TestSwaCacheMachine = SwaCacheMachine.TestCase
TestSwaCacheMachine.settings = _SETTINGS
TestChunkedSwaCacheMachine = ChunkedSwaCacheMachine.TestCase
TestChunkedSwaCacheMachine.settings = _SETTINGS
TestStreamsCacheMachine = StreamsCacheMachine.TestCase
TestStreamsCacheMachine.settings = _SETTINGS


# --- KVCells unit cases ------------------------------------------------------------------------------


def test_new_cells_are_empty():
    c = KVCells(8)
    assert c.get_used() == 0 and c.used_max_p1() == 0
    assert c.seq_pos_min(0) == -1 and c.seq_pos_max(0) == -1
    assert np.all(c.pos == -1) and c.pos.dtype == np.int32 and c.seq.dtype == np.uint64


def test_seq_rm_frees_a_cell_only_when_its_last_sequence_leaves():
    c = KVCells(4)
    c.pos_set(1, 7)
    c.seq_add(1, 0)
    c.seq_add(1, 2)
    assert c.seq_rm_range(0, 0, 100) == -1 and c.pos[1] == 7
    assert c.seq_rm_range(2, 0, 100) == 1 and c.pos[1] == -1 and c.get_used() == 0


def test_seq_add_records_shift_and_drops_cells_below_zero():
    c = KVCells(4)
    for i, p in enumerate([0, 1, 2]):
        c.pos_set(i, p)
        c.seq_add(i, 0)
    assert c.pos_add_range(0, 0, 2**31 - 1, -1) == 0
    assert c.pos.tolist() == [-1, 0, 1, -1] and c.shift.tolist() == [0, -1, -1, 0] and c.has_shift
    c.pos_div_range(0, 0, 10, 2)
    assert c.pos.tolist() == [-1, 0, 0, -1] and c.shift.tolist() == [0, -1, 0, 0]


def test_snapshot_restores_cells():
    c = KVCells(4)
    c.pos_set(2, 5)
    c.seq_add(2, 1)
    snap = c.cp([1, 2])
    c.rm(2)
    c.pos_set(1, 9)
    c.seq_add(1, 0)
    c.set(snap)
    assert c.pos.tolist() == [-1, -1, 5, -1] and c.seq_pos_max(1) == 5 and c.seq_pos_max(0) == -1


@pytest.mark.parametrize("bad", [64, -2])
def test_seq_id_outside_the_cache_raises(bad):
    cache = KVCache([0], 32, 32, 8, n_seq_max=2)
    with pytest.raises(BatchError):
        cache.seq_rm(bad if bad != -2 else -2)
    with pytest.raises(BatchError):
        cache.seq_pos_max(2)
