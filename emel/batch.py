"""Batches: a `Batch` like llama_batch, validated and split into `UBatch`es of at most n_ubatch.

Follows llama.cpp src/llama-batch.cpp: `llama_batch_compat::init` (missing fields filled in:
sequence 0, positions continuing each sequence from the KV cache, only the last token an output)
and `llama_batch_allocr` (`init` validation, `split_simple`, `split_equal`, `split_seq`,
`ubatch_reserve`, the order of outputs `out_ids`).

Differences on purpose: every failed check raises `BatchError` (llama.cpp logs and returns
false); negative positions are rejected (llama.cpp only asserts on them later); at most
`MAX_SEQ` = 64 sequences; the sequence ids of a token keep the order given, duplicates dropped
(llama.cpp keeps them in an unordered_set, so which id is "first" is unspecified there); one
position per token (no M-RoPE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from .errors import BatchError
from .kv_cells import MAX_SEQ


class SeqPosMemory(Protocol):
    """What batch validation asks of the KV cache (llama_memory_i)."""

    def seq_pos_min(self, seq_id: int) -> int: ...
    def seq_pos_max(self, seq_id: int) -> int: ...


@dataclass
class Batch:
    """llama_batch: the input of one decode call. None fields are filled in by `BatchAllocator.init`."""

    token: np.ndarray | None = None  # int32[n_tokens] token ids (or None with embd)
    embd: np.ndarray | None = None  # float32[n_tokens, n_embd] input embeddings (or None)
    pos: np.ndarray | None = None  # int32[n_tokens]; None = continue each sequence in the cache
    seq_id: Sequence[Sequence[int]] | None = None  # per token, its sequence ids; None = [0]
    logits: np.ndarray | None = None  # int8[n_tokens] output flags; None = last token only

    @property
    def n_tokens(self) -> int:
        src = self.token if self.token is not None else self.embd
        return 0 if src is None else int(len(src))

    @classmethod
    def get_one(cls, tokens) -> "Batch":
        """llama_batch_get_one: tokens of sequence 0 continuing the cache, last one an output."""
        return cls(token=np.asarray(tokens, dtype=np.int32))


@dataclass
class UBatch:
    """llama_ubatch: a slice of a batch, the unit the decoder computes at once."""

    token: np.ndarray | None  # int32[n_tokens] token ids, or None for an embedding batch
    embd: np.ndarray | None  # float32[n_tokens, n_embd] embeddings, or None
    pos: np.ndarray  # int32[n_tokens] position of each token in its sequence
    seq_id: np.ndarray  # int32[n_tokens] first sequence id of each token (llama seq_id[i][0])
    seq_mask: np.ndarray  # uint64[n_tokens] every sequence of each token, bit s = sequence s
    n_seq_id: np.ndarray  # int32[n_tokens] number of sequences of each token
    output: np.ndarray  # int8[n_tokens] 1 = produce logits/embeddings for this token
    batch_idxs: np.ndarray  # int32[n_tokens] index of each token in the original batch
    seq_id_unq: np.ndarray  # int32[n_seqs_unq] distinct sequence ids, ascending
    seq_idx: np.ndarray  # int32[MAX_SEQ] index of a sequence id in seq_id_unq, -1 if absent
    n_seq_tokens: int  # tokens per sequence set (equal splits) else n_tokens / n_seqs
    n_seqs: int  # sequence sets in the ubatch
    equal_seqs: bool  # made by split_equal/split_seq/ubatch_reserve: n_seqs sets of n_seq_tokens

    @property
    def n_tokens(self) -> int:
        return int(self.pos.shape[0])

    @property
    def n_seqs_unq(self) -> int:
        return int(self.seq_id_unq.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(np.count_nonzero(self.output))

    def seq_ids_of(self, i: int) -> list[int]:
        """Every sequence id of token i, ascending."""
        m = int(self.seq_mask[i])
        return [s for s in range(MAX_SEQ) if m >> s & 1]


class BatchAllocator:
    """llama_batch_allocr: validates a batch against the cache and splits it into ubatches."""

    def __init__(self, n_vocab: int, n_seq_max: int = 1, n_embd: int = 0) -> None:
        if not 1 <= n_seq_max <= MAX_SEQ:
            raise BatchError(f"n_seq_max = {n_seq_max} must be in [1, {MAX_SEQ}]")
        self.n_vocab = n_vocab
        self.n_seq_max = n_seq_max
        self.n_embd = n_embd
        self._clear()

    def _clear(self) -> None:
        self.token: np.ndarray | None = None
        self.embd: np.ndarray | None = None
        self.pos = np.zeros(0, dtype=np.int32)
        self.seq_lists: list[list[int]] = []
        self.seq_set = np.zeros(0, dtype=np.uint64)  # [n_tokens] sequence set of each token
        self.output = np.zeros(0, dtype=np.int8)
        self.n_outputs = 0
        self.seq_id_unq: list[int] = []
        self.has_cpl = False
        self.seq_set_map: dict[int, list[int]] = {}
        self.out_ids: list[int] = []  # batch indices of outputs, in the order ubatches emit them
        self.used = np.zeros(0, dtype=bool)
        self.n_used = 0
        self._seq_pos_min: dict[int, int] = {}
        self._seq_pos_max: dict[int, int] = {}

    @property
    def n_tokens(self) -> int:
        return int(self.pos.shape[0])

    def seq_pos_min(self, seq_id: int) -> int:
        """Smallest position of `seq_id` in the batch, -1 if absent."""
        return self._seq_pos_min.get(seq_id, -1)

    def seq_pos_max(self, seq_id: int) -> int:
        return self._seq_pos_max.get(seq_id, -1)

    # -- init: fill in and validate (llama_batch_compat::init + llama_batch_allocr::init) ---

    def init(self, batch: Batch, memory: SeqPosMemory | None = None, output_all: bool = False,
             n_batch: int | None = None) -> None:
        """Fill in missing fields and validate `batch`; raises BatchError, leaving no state."""
        self._clear()
        n = batch.n_tokens
        if batch.token is None and batch.embd is None:
            raise BatchError("batch has neither token ids nor embeddings")
        if batch.token is not None and batch.embd is not None:
            raise BatchError("batch has both token ids and embeddings")
        if n == 0:
            raise BatchError("batch is empty (n_tokens == 0)")
        if n_batch is not None and n > n_batch:
            raise BatchError(f"batch has {n} tokens, more than n_batch = {n_batch}")
        token = embd = None
        if batch.token is not None:
            token = np.ascontiguousarray(batch.token, dtype=np.int64).reshape(-1)
            bad = np.flatnonzero((token < 0) | (token >= self.n_vocab))
            if bad.size:
                i = int(bad[0])
                raise BatchError(f"invalid token[{i}] = {int(token[i])}: must be in [0, {self.n_vocab})")
            token = token.astype(np.int32)
        else:
            embd = np.ascontiguousarray(batch.embd, dtype=np.float32)
            if embd.ndim != 2 or (self.n_embd and embd.shape[1] != self.n_embd):
                raise BatchError(f"embd has shape {embd.shape}, expected ({n}, {self.n_embd})")
        seq_lists = self._seq_lists(batch, n)
        pos = self._positions(batch, n, seq_lists, memory)
        output = self._outputs(batch, n, output_all)

        seq_set = np.zeros(n, dtype=np.uint64)
        seq_pos: dict[int, set[int]] = {}
        cpl: set[tuple[int, int]] = set()
        for i, sids in enumerate(seq_lists):
            m = 0
            for k, s in enumerate(sids):
                m |= 1 << s
                seq_pos.setdefault(s, set()).add(int(pos[i]))
                if k > 0:
                    cpl.add((s, sids[0]))  # sequence s is coupled to sids[0]
            seq_set[i] = m

        # consistency checks against the cache
        for s in sorted(seq_pos):
            pmin, pmax = min(seq_pos[s]), max(seq_pos[s])
            p0 = memory.seq_pos_max(s) if memory is not None else -1
            if p0 >= 0 and pmin != p0 + 1:
                raise BatchError(
                    f"the tokens of sequence {s} in the input batch have inconsistent sequence "
                    f"positions: the last position stored in the KV cache for sequence {s} is "
                    f"X = {p0}, the batch starts sequence {s} at Y = {pmin}; it is required that "
                    f"Y = X + 1"
                )
            if pmax - pmin + 1 > len(seq_pos[s]):
                raise BatchError(f"sequence {s} positions are not continuous")
        if memory is not None:
            for s0, s1 in sorted(cpl):
                if (memory.seq_pos_min(s0) != memory.seq_pos_min(s1)
                        or memory.seq_pos_max(s0) != memory.seq_pos_max(s1)):
                    raise BatchError(
                        f"sequence {s0} is coupled to {s1} in the input batch, but have diverged"
                    )
        # no partial sequence sub-sets, no decreasing positions
        cur_set = {s: (1 << MAX_SEQ) - 1 for s in range(self.n_seq_max)}
        cur_pos = {s: -1 for s in range(self.n_seq_max)}
        for i, sids in enumerate(seq_lists):
            for s in sids:
                cur_set[s] &= int(seq_set[i])
                if cur_set[s] == 0:
                    raise BatchError(f"sequence {s} belongs to incompatible sequence sets (not allowed)")
                if pos[i] < cur_pos[s]:
                    raise BatchError(f"sequence {s} positions are decreasing (not allowed)")
                cur_pos[s] = int(pos[i])

        self.token, self.embd, self.pos, self.output = token, embd, pos, output
        self.seq_lists, self.seq_set = seq_lists, seq_set
        self.n_outputs = int(np.count_nonzero(output))
        self.has_cpl = bool(cpl)
        self.seq_id_unq = sorted(seq_pos)
        self._seq_pos_min = {s: min(p) for s, p in seq_pos.items()}
        self._seq_pos_max = {s: max(p) for s, p in seq_pos.items()}
        for i in range(n):
            self.seq_set_map.setdefault(int(seq_set[i]), []).append(i)
        self.split_reset()

    def _seq_lists(self, batch: Batch, n: int) -> list[list[int]]:
        if batch.seq_id is None:
            return [[0] for _ in range(n)]
        if len(batch.seq_id) != n:
            raise BatchError(f"seq_id has {len(batch.seq_id)} entries for {n} tokens")
        out = []
        for i, sids in enumerate(batch.seq_id):
            sids = [int(s) for s in (np.atleast_1d(sids) if not isinstance(sids, (list, tuple)) else sids)]
            if not sids:
                raise BatchError(f"token {i} has no sequence id")
            for k, s in enumerate(sids):
                if not 0 <= s < self.n_seq_max:
                    raise BatchError(f"invalid seq_id[{i}][{k}] = {s}: must be in [0, {self.n_seq_max})")
            out.append(list(dict.fromkeys(sids)))
        return out

    def _positions(self, batch: Batch, n: int, seq_lists, memory) -> np.ndarray:
        if batch.pos is not None:
            pos = np.ascontiguousarray(batch.pos, dtype=np.int64).reshape(-1)
            if pos.shape[0] != n:
                raise BatchError(f"pos has {pos.shape[0]} entries for {n} tokens")
            bad = np.flatnonzero((pos < 0) | (pos >= 2**31 - 1))
            if bad.size:
                i = int(bad[0])
                raise BatchError(f"invalid pos[{i}] = {int(pos[i])}: positions must be >= 0")
            return pos.astype(np.int32)
        # llama_batch_compat::init: continue each sequence from the cache, by the first seq id
        nxt = {}
        pos = np.empty(n, dtype=np.int32)
        for i, sids in enumerate(seq_lists):
            s = sids[0]
            if s not in nxt:
                nxt[s] = (memory.seq_pos_max(s) if memory is not None else -1) + 1
            pos[i] = nxt[s]
            nxt[s] += 1
        return pos

    @staticmethod
    def _outputs(batch: Batch, n: int, output_all: bool) -> np.ndarray:
        if output_all:
            return np.ones(n, dtype=np.int8)
        if batch.logits is None:
            out = np.zeros(n, dtype=np.int8)
            out[-1] = 1
            return out
        out = np.asarray(batch.logits).reshape(-1)
        if out.shape[0] != n:
            raise BatchError(f"logits has {out.shape[0]} entries for {n} tokens")
        return (out != 0).astype(np.int8)

    # -- splitting ---------------------------------------------------------------------------

    def split_reset(self) -> None:
        """Start splitting from the first token again."""
        self.out_ids = []
        self.n_used = 0
        self.used = np.zeros(self.n_tokens, dtype=bool)

    def split_simple(self, n_ubatch: int) -> UBatch | None:
        """The next up-to-n_ubatch unused tokens in batch order; None when all are used."""
        free = np.flatnonzero(~self.used)
        if free.size == 0:
            return None
        start = int(free[0])
        idxs = list(range(start, min(start + n_ubatch, self.n_tokens)))
        if n_ubatch <= 0:
            idxs = [start]  # llama.cpp always takes at least one token
        self._use(idxs)
        return self._ubatch_add(idxs, len(idxs), False)

    def split_equal(self, n_ubatch: int, sequential: bool = False, n_keep_tail: int = 0) -> UBatch | None:
        """Equal-length runs of non-overlapping sequence sets (llama_batch_allocr::split_equal).

        As in llama.cpp, up to n_ubatch + 1 sequence sets may be taken, so a ubatch can exceed
        n_ubatch by one token when there are more sequence sets than n_ubatch.
        """
        if sequential and self.has_cpl:
            raise BatchError(
                "sequential split is not supported when there are coupled sequences in the input "
                "batch (use a unified KV cache)"
            )
        cur_sets: list[int] = []
        last_seq_id = -1
        for i in range(self.n_tokens):
            if self.used[i]:
                continue
            m = int(self.seq_set[i])
            add = all((c & m) == 0 for c in cur_sets)
            if sequential:
                add = add and (not cur_sets or self.seq_lists[i][0] == last_seq_id + 1)
            if add:
                cur_sets.append(m)
                last_seq_id = self.seq_lists[i][0]
                if len(cur_sets) > n_ubatch:
                    break
        n_seqs = len(cur_sets)
        if n_seqs == 0:
            return None
        lists = [self.seq_set_map[m] for m in cur_sets]
        cur = [0] * n_seqs
        for s in range(n_seqs):
            while self.used[lists[s][cur[s]]]:
                cur[s] += 1
        per_seq: list[list[int]] = [[] for _ in range(n_seqs)]
        while all(cur[s] < len(lists[s]) for s in range(n_seqs)):
            for s in range(n_seqs):
                idx = lists[s][cur[s]]
                per_seq[s].append(idx)
                self.used[idx] = True
                self.n_used += 1
                cur[s] += 1
            if (len(per_seq[0]) + 1) * n_seqs > n_ubatch:
                break
        if n_keep_tail > 0:
            if n_ubatch <= n_keep_tail:
                raise BatchError(f"n_ubatch = {n_ubatch} must exceed n_keep_tail = {n_keep_tail}")

            def remaining(s):
                return len(lists[s]) - cur[s]

            n_keep = 0
            while n_keep < n_seqs:
                r = remaining(n_keep)
                if r != 0 and r < n_keep_tail:
                    break
                n_keep += 1
            if n_keep == 0:
                idxs0 = per_seq[0]
                if len(idxs0) + remaining(0) <= n_ubatch:
                    while remaining(0) > 0:
                        idx = lists[0][cur[0]]
                        idxs0.append(idx)
                        self.used[idx] = True
                        self.n_used += 1
                        cur[0] += 1
                else:
                    while remaining(0) < n_keep_tail:
                        self.used[idxs0.pop()] = False
                        self.n_used -= 1
                        cur[0] -= 1
                n_keep = 1
            for s in range(n_keep, n_seqs):
                for idx in per_seq[s]:
                    self.used[idx] = False
                    self.n_used -= 1
            n_seqs = n_keep
        idxs = [i for s in range(n_seqs) for i in per_seq[s]]
        return self._ubatch_add(idxs, n_seqs, True)

    def split_seq(self, n_ubatch: int) -> UBatch | None:
        """One sequence set per ubatch, narrowing to subsets (llama_batch_allocr::split_seq)."""
        free = np.flatnonzero(~self.used)
        if free.size == 0:
            return None
        cur = int(free[0])
        cur_set = int(self.seq_set[cur])
        idxs = []
        while True:
            idxs.append(cur)
            self.used[cur] = True
            self.n_used += 1
            if len(idxs) >= n_ubatch:
                break
            cur += 1
            while cur < self.n_tokens and (
                self.used[cur] or (cur_set & int(self.seq_set[cur])) != int(self.seq_set[cur])
            ):
                cur += 1
            if cur == self.n_tokens:
                break
            cur_set = int(self.seq_set[cur])
        return self._ubatch_add(idxs, 1, True)

    def ubatch_reserve(self, n_seq_tokens: int, n_seqs: int) -> UBatch:
        """A well-formed dummy ubatch of n_seq_tokens * n_seqs tokens (for worst-case graphs)."""
        n = n_seq_tokens * n_seqs
        self._clear()
        seq_id = np.repeat(np.arange(n_seqs, dtype=np.int32), n_seq_tokens)
        seq_idx = np.full(MAX_SEQ, -1, dtype=np.int32)
        seq_idx[:n_seqs] = np.arange(n_seqs)
        return UBatch(
            token=np.zeros(n, dtype=np.int32), embd=None,
            pos=np.tile(np.arange(n_seq_tokens, dtype=np.int32), n_seqs),
            seq_id=seq_id, seq_mask=(np.uint64(1) << seq_id.astype(np.uint64)),
            n_seq_id=np.ones(n, dtype=np.int32), output=np.zeros(n, dtype=np.int8),
            batch_idxs=np.arange(n, dtype=np.int32), seq_id_unq=np.arange(n_seqs, dtype=np.int32),
            seq_idx=seq_idx, n_seq_tokens=n_seq_tokens, n_seqs=n_seqs, equal_seqs=True,
        )

    def _use(self, idxs: list[int]) -> None:
        self.used[idxs] = True
        self.n_used += len(idxs)

    def _ubatch_add(self, idxs: list[int], n_seqs: int, equal_seqs: bool) -> UBatch:
        ix = np.asarray(idxs, dtype=np.int64)
        seq_mask = self.seq_set[ix].copy()
        unq = sorted({s for i in idxs for s in self.seq_lists[i]})
        seq_idx = np.full(MAX_SEQ, -1, dtype=np.int32)
        seq_idx[unq] = np.arange(len(unq), dtype=np.int32)
        output = self.output[ix].copy()
        self.out_ids.extend(int(i) for i in ix[output != 0])
        return UBatch(
            token=None if self.token is None else self.token[ix].copy(),
            embd=None if self.embd is None else self.embd[ix].copy(),
            pos=self.pos[ix].copy(),
            seq_id=np.asarray([self.seq_lists[i][0] for i in idxs], dtype=np.int32),
            seq_mask=seq_mask,
            n_seq_id=np.bitwise_count(seq_mask).astype(np.int32),
            output=output,
            batch_idxs=ix.astype(np.int32),
            seq_id_unq=np.asarray(unq, dtype=np.int32),
            seq_idx=seq_idx,
            n_seq_tokens=len(idxs) // n_seqs,
            n_seqs=n_seqs,
            equal_seqs=equal_seqs,
        )


def output_order(out_ids: Sequence[int], n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Map outputs, produced in ubatch order, back to batch order (llama_context::decode).

    Returns (perm, output_ids): rows_in_batch_order = rows_in_ubatch_order[perm], and
    output_ids[i] = row of batch token i in batch order, -1 if token i is not an output
    (what llama_get_logits_ith(i) reads).
    """
    out_ids = np.asarray(out_ids, dtype=np.int64)
    perm = np.argsort(out_ids, kind="stable")
    output_ids = np.full(n_tokens, -1, dtype=np.int32)
    output_ids[out_ids[perm]] = np.arange(out_ids.shape[0], dtype=np.int32)
    return perm, output_ids
