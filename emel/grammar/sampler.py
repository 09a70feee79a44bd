"""The grammar sampler: sets the logit of every candidate that cannot continue the grammar to -inf.

Follows llama.cpp src/llama-grammar.cpp (`llama_grammar_apply_impl`, `llama_grammar_accept_impl`)
and src/llama-sampler.cpp (`llama_sampler_init_grammar`): end-of-generation tokens are allowed only
when a stack is empty, empty pieces and pieces starting with NUL are rejected, pieces are decoded
with the partial UTF-8 sequence left by the previous token, accepting a token the grammar cannot
take raises (llama.cpp aborts).

How it is fast: the vocabulary is decoded to code points once (`GrammarVocab`) into a trie, so
tokens sharing a prefix are checked together. A grammar state (a set of stacks) is interned; code
points are grouped into classes the grammar cannot tell apart, and the transitions state x class
are filled lazily and reused across steps; the trie walk is a Numba kernel (`walk.py`). The mask of
allowed tokens is cached per state. Results equal llama.cpp's per-stack candidate rejection, which
`GrammarState.reject_candidates` ports literally and the tests compare against.

Not supported: lazy grammars (trigger words / patterns / tokens).
"""

from __future__ import annotations

import re
import time
from typing import Iterable, Sequence

import numpy as np

from emel.errors import GrammarError
from emel.grammar.matcher import (CHAR, CHAR_ALT, CHAR_NOT, CHAR_RNG_UPPER, TOKEN,
                                  TOKEN_NOT, Grammar, GrammarState, decode_utf8)
from emel.grammar.parser import parse
from emel.grammar.walk import UNKNOWN, grammar_trie_walk
from emel.sampling.samplers import Sampler
from emel.sampling.token_data import TokenDataArray

_MAX_CACHED_MASKS = 256
_MAX_STATES = 1 << 16
_MISS_CAP = 1 << 16
_FEW_CANDIDATES = 16
_SPECIAL_RE = re.compile(r"[.^$|()*+?\[\]{}\\]")


class GrammarVocab:
    """The vocabulary as the grammar sees it: pieces decoded once, in a trie of code points.

    pieces: `token_to_piece(id, special=True)` of every token; eog: end-of-generation token ids.
    Build once per model and share it between grammar samplers.
    """

    def __init__(self, pieces: Sequence[bytes], eog: Iterable[int] = ()):
        self.n_vocab = n = len(pieces)
        self.pieces = [bytes(p) for p in pieces]
        self.is_eog = np.zeros(n, np.bool_)
        for t in eog:
            if not 0 <= int(t) < n:
                raise GrammarError(f"eog token {t} is outside the vocabulary of {n} tokens")
            self.is_eog[int(t)] = True
        self.eog_ids = np.flatnonzero(self.is_eog).astype(np.int32)
        keys = []
        partial_ids: dict[tuple[int, int], int] = {(0, 0): 0}
        cont = []  # tokens whose piece starts with a UTF-8 continuation byte
        for tid, piece in enumerate(self.pieces):
            if self.is_eog[tid] or not piece or piece[0] == 0:
                continue  # eog handled apart; empty / NUL pieces are always rejected
            if 0x80 <= piece[0] < 0xC0:
                cont.append(tid)
            cps, partial = decode_utf8(piece)
            if partial[1] < 0:
                continue  # invalid UTF-8 start: rejected in every state without a partial
            # decode_utf8 leaves the last value in a complete partial: all of those are "none"
            pid = 0 if partial[1] == 0 else partial_ids.setdefault(partial, len(partial_ids))
            keys.append((tuple(cps), tid, pid))
        self.cont_tokens = np.array(cont, np.int32)
        self.partials = [p for p, _ in sorted(partial_ids.items(), key=lambda kv: kv[1])]
        self._build_trie(keys)

    def _build_trie(self, keys) -> None:
        keys.sort()
        alphabet = sorted({c for k, _, _ in keys for c in k})
        alpha_of = {c: i for i, c in enumerate(alphabet)}
        children: list[list[tuple[int, int]]] = [[]]  # node -> [(alpha, child)]
        node_of_depth = [0]  # node path of the previous key
        tok_lo = [0]
        n_end = [0]
        prev: tuple[int, ...] = ()
        sorted_tok = []
        sorted_pid = []
        for j, (cps, tid, pid) in enumerate(keys):
            lcp = 0
            m = min(len(prev), len(cps))
            while lcp < m and prev[lcp] == cps[lcp]:
                lcp += 1
            del node_of_depth[lcp + 1:]
            for d in range(lcp, len(cps)):
                node = len(children)
                children.append([])
                tok_lo.append(j)
                n_end.append(0)
                children[node_of_depth[d]].append((alpha_of[cps[d]], node))
                node_of_depth.append(node)
            n_end[node_of_depth[len(cps)]] += 1
            sorted_tok.append(tid)
            sorted_pid.append(pid)
            prev = cps
        n_nodes = len(children)
        # subtree end: preorder ids, so a node's subtree ends where the next non-descendant begins
        tok_hi = [len(keys)] * n_nodes
        stack = [0]
        order = []
        while stack:  # iterative postorder over preorder ids
            node = stack.pop()
            order.append(node)
            stack.extend(c for _, c in children[node])
        for node in reversed(order):
            hi = tok_lo[node] + n_end[node]
            for _, c in children[node]:
                hi = max(hi, tok_hi[c])
            tok_hi[node] = hi
        edges_alpha, edges_node, start, end = [], [], [], []
        for node in range(n_nodes):
            start.append(len(edges_alpha))
            for a, c in children[node]:
                edges_alpha.append(a)
                edges_node.append(c)
            end.append(len(edges_alpha))
        i32 = np.int32
        self.alphabet = np.array(alphabet, np.int64)
        self.n_nodes = n_nodes
        self.child_start = np.array(start, i32)
        self.child_end = np.array(end, i32)
        self.child_alpha = np.array(edges_alpha, i32)
        self.child_node = np.array(edges_node, i32)
        self.tok_lo = np.array(tok_lo, i32)
        self.n_end = np.array(n_end, i32)
        self.tok_hi = np.array(tok_hi, i32)
        self.sorted_tok = np.array(sorted_tok, i32)
        self.sorted_pid = np.array(sorted_pid, i32)


class _Tables:
    """Per (grammar, vocab) caches: char classes, state transitions, partial checks, masks."""

    def __init__(self, grammar: Grammar, vocab: GrammarVocab):
        self.g = grammar.fork_states()  # state ids index this object's tables only
        self.v = vocab
        bounds = {0}
        types, values = grammar.types, grammar.values
        for i, t in enumerate(types):
            if t in (CHAR, CHAR_NOT, CHAR_ALT):
                if types[i + 1] == CHAR_RNG_UPPER:
                    bounds.update((values[i], values[i + 1] + 1))
                else:
                    bounds.update((values[i], values[i] + 1))
        self.bounds = sorted(bounds)
        cls = np.searchsorted(np.array(self.bounds, np.int64), vocab.alphabet, side="right") - 1
        self.child_cls = cls.astype(np.int32)[vocab.child_alpha]
        self.n_classes = len(self.bounds)
        # forget the states (start the caches again) past about 128 MiB of transitions
        self.max_states = max(1024, min(_MAX_STATES, (32 << 20) // self.n_classes))
        self.miss = [np.zeros(_MISS_CAP, np.int32) for _ in range(3)]
        self.stack_node = np.zeros(vocab.n_nodes + 1, np.int32)
        self.stack_state = np.zeros(vocab.n_nodes + 1, np.int32)
        self._partial_vecs: dict[int, np.ndarray] = {}  # char element -> int8[n_pid] matches
        self._clear()

    def _clear(self) -> None:
        self.g.reset_states()
        self.trans = np.full((64, self.n_classes), UNKNOWN, np.int32)
        self.partial_ok = np.full((64, len(self.v.partials)), -1, np.int8)
        self.st_tok_start = np.zeros(64, np.int32)
        self.st_tok_end = np.zeros(64, np.int32)
        self.tok_type: list[int] = []
        self.tok_val: list[int] = []
        self.tok_arrays = (np.zeros(1, np.int32), np.zeros(1, np.int32))
        self.n_known = 0
        self.masks: dict = {}  # state id, or (state id, partial) -> uint8[n_vocab]

    def state_id(self, stacks) -> int:
        if len(self.g.state_stacks) > self.max_states:
            self._clear()
        sid = self.g.intern(stacks)
        self._sync()
        return sid

    def _sync(self) -> None:
        """Give every interned state its table rows and token elements."""
        n = len(self.g.state_stacks)
        if n <= self.n_known:
            return
        cap = self.trans.shape[0]
        if n > cap:
            new_cap = max(n, 2 * cap)
            trans = np.full((new_cap, self.n_classes), UNKNOWN, np.int32)
            trans[:cap] = self.trans
            pok = np.full((new_cap, self.partial_ok.shape[1]), -1, np.int8)
            pok[:cap] = self.partial_ok
            s0 = np.zeros(new_cap, np.int32)
            s0[:cap] = self.st_tok_start
            s1 = np.zeros(new_cap, np.int32)
            s1[:cap] = self.st_tok_end
            self.trans, self.partial_ok, self.st_tok_start, self.st_tok_end = trans, pok, s0, s1
        changed = False
        for sid in range(self.n_known, n):
            self.st_tok_start[sid] = len(self.tok_type)
            for t, v in self.g.state_token_elems(sid):
                self.tok_type.append(t)
                self.tok_val.append(v)
                changed = True
            self.st_tok_end[sid] = len(self.tok_type)
        if changed:
            self.tok_arrays = (np.array(self.tok_type, np.int32), np.array(self.tok_val, np.int32))
        self.n_known = n

    def mask(self, sid: int) -> np.ndarray:
        """uint8[n_vocab]: 1 for the non-eog tokens allowed from state `sid` (no partial UTF-8)."""
        cached = self.masks.get(sid)
        if cached is not None:
            return cached
        v = self.v
        allowed = np.zeros(v.n_vocab, np.uint8)
        while True:
            allowed[:] = 0
            n_miss = grammar_trie_walk(
                sid, v.child_start, v.child_end, self.child_cls, v.child_node, v.tok_lo, v.n_end,
                v.tok_hi, v.sorted_tok, v.sorted_pid, self.trans, self.partial_ok,
                self.st_tok_start, self.st_tok_end, self.tok_arrays[0], self.tok_arrays[1],
                allowed, self.miss[0], self.miss[1], self.miss[2], self.stack_node, self.stack_state)
            if n_miss == 0:
                break
            k = min(n_miss, _MISS_CAP)
            for kind, st, key in set(zip(self.miss[0][:k].tolist(), self.miss[1][:k].tolist(),
                                         self.miss[2][:k].tolist())):
                if kind == 0:
                    nxt = self.g.transition(st, self.bounds[key])
                    self._sync()
                    self.trans[st, key] = nxt
                elif self.partial_ok[st, key] < 0:
                    self.partial_ok[st] = self._partial_row(st)
        self.remember(sid, allowed)
        return allowed

    def _partial_row(self, sid: int) -> np.ndarray:
        """int8[n_pid]: which partial UTF-8 endings a token may have in state `sid` (end_ok)."""
        row = np.array([p[1] == 0 for p in self.v.partials], np.int8)
        g = self.g
        for pos in {s[-1] for s in g.state_stacks[sid] if s}:
            if g.types[pos] in (TOKEN, TOKEN_NOT):
                continue
            vec = self._partial_vecs.get(pos)
            if vec is None:
                vec = np.array([g.match_partial_char(pos, p) if p[1] else True
                                for p in self.v.partials], np.int8)
                self._partial_vecs[pos] = vec
            row |= vec
        return row

    def remember(self, key, allowed: np.ndarray) -> None:
        if len(self.masks) >= _MAX_CACHED_MASKS:
            self.masks.pop(next(iter(self.masks)))
        self.masks[key] = allowed


class GrammarSampler(Sampler):
    """llama_sampler_init_grammar: constrains candidates to continuations of a GBNF grammar.

    grammar: GBNF text (or an already parsed `Grammar`); root: the start rule; vocab: a
    `GrammarVocab` or the list of `token_to_piece(id, special=True)` bytes; eog: end-of-generation
    ids (when vocab is a list). An empty grammar text gives a sampler that changes nothing, as
    llama.cpp's.

    Lazy grammars (llama_sampler_init_grammar_lazy_patterns): with `lazy=True` nothing is
    constrained until a trigger token is accepted or the text generated so far matches a trigger
    pattern (a regex, matched on bytes; `^...$` patterns must match it all); the grammar then takes
    the text from the pattern's first non-empty group (or the match) onwards. `trigger_words` are
    the deprecated form, turned into one pattern as llama.cpp does.
    """

    name = "grammar"

    def __init__(self, grammar: str | bytes | Grammar, root: str = "root",
                 vocab: GrammarVocab | Sequence[bytes] | None = None, eog: Iterable[int] = (),
                 tokenize=None, lazy: bool = False, trigger_patterns: Sequence[str] = (),
                 trigger_tokens: Iterable[int] = (), trigger_words: Sequence[str] = ()):
        if vocab is None:
            raise GrammarError("the grammar sampler needs the vocabulary pieces")
        self.vocab = vocab if isinstance(vocab, GrammarVocab) else GrammarVocab(vocab, eog)
        patterns = list(trigger_patterns)
        if trigger_words:
            if patterns:
                raise GrammarError("give trigger_words or trigger_patterns, not both")
            patterns = ["[\\s\\S]*?(" + "|".join(_SPECIAL_RE.sub(r"\\\g<0>", w)
                                                  for w in trigger_words) + ")[\\s\\S]*"]
        self.lazy = bool(lazy)
        self.trigger_patterns = patterns
        try:
            self._trigger_res = [re.compile(p.encode("utf-8")) for p in patterns]
        except re.error as e:
            raise GrammarError(f"bad trigger pattern: {e}") from None
        self.trigger_tokens = [int(t) for t in trigger_tokens]
        self.awaiting_trigger = self.lazy
        self._trigger_buffer = b""
        self._trigger_positions: list[tuple[int, int, int]] = []
        if isinstance(grammar, Grammar):
            self.grammar = grammar
        elif not grammar:
            self.grammar = None
        else:
            self.grammar = Grammar(parse(grammar, tokenize), root)
        self._tables = _Tables(self.grammar, self.vocab) if self.grammar is not None else None
        self.state = GrammarState(self.grammar) if self.grammar is not None else None
        self.n_apply = 0
        self.n_accept = 0
        self.t_apply_s = 0.0
        self.t_accept_s = 0.0

    def apply(self, cur: TokenDataArray) -> None:
        if self.grammar is None or self.awaiting_trigger:
            return
        t0 = time.perf_counter()
        n = cur.size
        ids = cur.ids[:n]
        if n and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab.n_vocab):
            raise GrammarError(f"candidate token ids must be in [0, {self.vocab.n_vocab}), got "
                               f"[{int(ids.min())}, {int(ids.max())}]")
        logits = cur.logits[:n]
        if n <= _FEW_CANDIDATES:
            # e.g. common_sampler's check of the one selected token: no whole-vocabulary walk
            for i, tok in enumerate(ids.tolist()):
                if not self._allowed_one(tok):
                    logits[i] = -np.inf
        else:
            allowed = self.allowed_mask()
            logits[allowed[ids] == 0] = -np.inf
        self.n_apply += 1
        self.t_apply_s += time.perf_counter() - t0

    def _allowed_one(self, tok: int) -> bool:
        st = self.state
        v = self.vocab
        if v.is_eog[tok]:
            return st.can_end()
        piece = v.pieces[tok]
        if not piece or piece[0] == 0:
            return False
        tables = self._tables
        sid = tables.state_id(st.stacks)
        cached = tables.masks.get(sid) if st.partial[1] <= 0 else None
        if cached is not None:
            return bool(cached[tok])
        cps, partial = decode_utf8(piece, st.partial)
        ok = tables.g.token_accepted(sid, tok, cps, partial)
        tables._sync()
        return ok

    def allowed_mask(self) -> np.ndarray:
        """uint8[n_vocab]: 1 for every token the grammar allows next (eog included)."""
        st = self.state
        tables = self._tables
        sid = tables.state_id(st.stacks)
        v = self.vocab
        if st.partial[1] > 0:
            # only pieces that start with continuation bytes can finish the partial character
            key = (sid, st.partial)
            allowed = tables.masks.get(key)
            if allowed is None:
                allowed = np.zeros(v.n_vocab, np.uint8)
                for tid in v.cont_tokens.tolist():
                    cps, partial = decode_utf8(v.pieces[tid], st.partial)
                    if tables.g.token_accepted(sid, tid, cps, partial):
                        allowed[tid] = 1
                tables._sync()
                tables.remember(key, allowed)
            allowed = allowed.copy()
        else:
            allowed = tables.mask(sid).copy()
        allowed[v.eog_ids] = 1 if st.can_end() else 0
        return allowed

    def accept(self, token: int) -> None:
        if self.grammar is None:
            return
        t0 = time.perf_counter()
        token = int(token)
        if not 0 <= token < self.vocab.n_vocab:
            raise GrammarError(f"token {token} is outside the vocabulary of {self.vocab.n_vocab}")
        if self.awaiting_trigger:
            self._accept_awaiting(token)
        elif self.vocab.is_eog[token]:
            if not self.state.can_end():
                raise GrammarError(f"end-of-generation token {token} accepted before the grammar "
                                   "can end")
        else:
            self.state.accept_token(token, self.vocab.pieces[token])
        self.n_accept += 1
        self.t_accept_s += time.perf_counter() - t0

    def _accept_awaiting(self, token: int) -> None:
        """llama_grammar_accept_impl while a lazy grammar waits for its trigger."""
        piece = self.vocab.pieces[token]
        if token in self.trigger_tokens:
            self.awaiting_trigger = False
            self._trigger_buffer = b""
            self._trigger_positions = []
            self.state.accept_token(token, piece)
            return
        start = len(self._trigger_buffer)
        self._trigger_positions.append((token, start, start + len(piece)))
        self._trigger_buffer += piece
        for pattern, rx in zip(self.trigger_patterns, self._trigger_res):
            at = _trigger_find(pattern, rx, self._trigger_buffer)
            if at is None:
                continue
            self.awaiting_trigger = False
            buf = self._trigger_buffer
            for tok, tok_start, tok_end in self._trigger_positions:
                if tok_end <= at:
                    continue
                self.state.accept_token(tok, buf[max(tok_start, at):tok_end])
            self._trigger_buffer = b""
            self._trigger_positions = []
            return

    def reset(self) -> None:
        if self.grammar is not None:
            self.state = GrammarState(self.grammar)
            self.awaiting_trigger = self.lazy
            self._trigger_buffer = b""
            self._trigger_positions = []

    def clone(self) -> "GrammarSampler":
        other = object.__new__(GrammarSampler)
        other.__dict__.update(self.__dict__)
        other.state = self.state.clone() if self.state is not None else None
        other._trigger_positions = list(self._trigger_positions)
        return other

    def perf(self) -> dict:
        """Cost per token: mean apply and accept time in milliseconds."""
        return {"n_apply": self.n_apply, "n_accept": self.n_accept,
                "apply_ms": 1e3 * self.t_apply_s / max(self.n_apply, 1),
                "accept_ms": 1e3 * self.t_accept_s / max(self.n_accept, 1)}


def _trigger_find(pattern: str, rx: "re.Pattern[bytes]", text: bytes) -> int | None:
    """llama_grammar_trigger_pattern::find: where the constrained text starts, or None."""
    m = None
    if pattern.startswith("^") and pattern.endswith("$"):
        m = rx.fullmatch(text)
    if m is None:
        m = rx.search(text)
    if m is None:
        return None
    for i in range(1, (m.re.groups or 0) + 1):
        if m.start(i) >= 0 and m.end(i) > m.start(i):
            return m.start(i)
    return m.start(0)


def grammar_sampler(vocab: GrammarVocab | Sequence[bytes], grammar: str | bytes, root: str = "root",
                    eog: Iterable[int] = ()) -> GrammarSampler:
    """llama_sampler_init_grammar(vocab, grammar_str, grammar_root)."""
    return GrammarSampler(grammar, root, vocab, eog)


__all__ = ["GrammarSampler", "GrammarVocab", "grammar_sampler"]
