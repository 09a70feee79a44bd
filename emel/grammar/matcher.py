"""Grammar stacks: advance, accept characters and tokens, reject candidates.

Follows llama.cpp src/llama-grammar.cpp (`llama_grammar_advance_stack`, `llama_grammar_accept_chr`,
`llama_grammar_accept_token`, `llama_grammar_reject_candidates_for_stack`, `decode_utf8`,
`llama_grammar_match_partial_char`, left recursion detection) in behaviour.

A stack is a tuple of element offsets into one flat element array (top last), so stacks hash and
compare as llama.cpp's vectors of element pointers do. A `Grammar` holds the rules and the caches
shared by every state of it: advanced stacks and, for the sampler, interned sets of stacks
("states") with their per-code-point transitions. A `GrammarState` is one llama_grammar: its stacks
and its partial UTF-8 sequence.
"""

from __future__ import annotations

from typing import Callable, Iterable

from emel.errors import GrammarError
from emel.grammar.parser import GreType, ParsedGrammar, parse

END, ALT, RULE_REF, CHAR, CHAR_NOT, CHAR_RNG_UPPER, CHAR_ALT, CHAR_ANY, TOKEN, TOKEN_NOT = range(10)

Stack = tuple[int, ...]
Partial = tuple[int, int]  # llama_partial_utf8: (value so far, bytes remaining; -1 = invalid)
NO_PARTIAL: Partial = (0, 0)
DEAD = -1

_UTF8_LOOKUP = (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 3, 4)


def decode_utf8(piece: bytes, partial: Partial = NO_PARTIAL) -> tuple[list[int], Partial]:
    """decode_utf8 with a partial start: full code points, then the trailing partial sequence.

    As llama.cpp: stops at a NUL byte; a continuation byte where a sequence should start makes
    the whole piece invalid (no code points, n_remain = -1).
    """
    nul = piece.find(b"\0")
    if nul >= 0:
        piece = piece[:nul]
    n = len(piece)
    cps: list[int] = []
    value, n_remain = partial
    pos = 0
    while pos < n and n_remain > 0:
        b = piece[pos]
        if (b >> 6) != 2:
            return [], (0, -1)
        value = (value << 6) + (b & 0x3F)
        pos += 1
        n_remain -= 1
    if partial[1] > 0 and n_remain == 0:
        cps.append(value)
    while pos < n:
        b = piece[pos]
        n_remain = _UTF8_LOOKUP[b >> 4] - 1
        if n_remain < 0:
            return [], (0, n_remain)
        value = b & ((1 << (7 - n_remain)) - 1)
        pos += 1
        while pos < n and n_remain > 0:
            value = (value << 6) + (piece[pos] & 0x3F)
            pos += 1
            n_remain -= 1
        if n_remain == 0:
            cps.append(value)
    return cps, (value, n_remain)


class Grammar:
    """Rules of one grammar, flattened, with the caches shared by all its states."""

    def __init__(self, parsed: ParsedGrammar, root: str = "root"):
        if not parsed.rules:
            err = GrammarError("grammar has no rules at line 1, column 1")
            err.line, err.column = 1, 1
            raise err
        if root not in parsed.symbol_ids:
            err = GrammarError(f"grammar does not contain a '{root}' symbol (rules: "
                               f"{', '.join(sorted(parsed.symbol_ids)[:8])})")
            err.line = err.column = None  # nowhere in the text
            raise err
        self.parsed = parsed
        self.root = root
        rules = parsed.rules
        _check_left_recursion(rules, parsed.rule_names(), parsed.positions)
        self.rule_start: list[int] = []
        types: list[int] = []
        values: list[int] = []
        for rule in rules:
            self.rule_start.append(len(types))
            for t, v in rule:
                types.append(int(t))
                values.append(int(v))
        self.types = types
        self.values = values
        self._advance_cache: dict[Stack, tuple[Stack, ...]] = {}
        self._accept_cache: dict[tuple[Stack, int], tuple[Stack, ...]] = {}
        self._partial_memo: dict[tuple[int, Partial], bool] = {}  # (element, partial) -> match
        # interned stack sets (states) for the sampler
        self.state_stacks: list[tuple[Stack, ...]] = []
        self._state_ids: dict[frozenset, int] = {}
        self._trans: list[dict[int, int]] = []
        self._partial_ok: list[dict[Partial, bool]] = []
        start = self.rule_start[parsed.symbol_ids[root]]
        stacks: list[Stack] = []
        for alt in self._alternates(start):
            for s in self.advance((alt,) if types[alt] not in (END, ALT) else ()):
                if s not in stacks:
                    stacks.append(s)
        self.initial_stacks: tuple[Stack, ...] = tuple(stacks)

    @classmethod
    def from_text(cls, text: str | bytes, root: str = "root",
                  tokenize: Callable[[bytes], list[int]] | None = None) -> "Grammar":
        return cls(parse(text, tokenize), root)

    # --- llama_grammar_advance_stack ------------------------------------------------------------
    def _alternates(self, pos: int) -> Iterable[int]:
        types = self.types
        while True:
            yield pos
            while types[pos] not in (END, ALT):
                pos += 1
            if types[pos] == ALT:
                pos += 1
            else:
                return

    def advance(self, stack: Stack) -> tuple[Stack, ...]:
        """All stacks that `stack` expands to, each empty or with a terminal on top."""
        cached = self._advance_cache.get(stack)
        if cached is not None:
            return cached
        types, values = self.types, self.values
        out: list[Stack] = []
        todo = [stack]
        seen = set()
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            if not cur:
                if cur not in out:
                    out.append(cur)
                continue
            pos = cur[-1]
            t = types[pos]
            if t == RULE_REF:
                base = cur[:-1]
                if types[pos + 1] not in (END, ALT):
                    base = base + (pos + 1,)
                for sub in self._alternates(self.rule_start[values[pos]]):
                    todo.append(base + (sub,) if types[sub] not in (END, ALT) else base)
            elif t in (CHAR, CHAR_NOT, CHAR_ANY, TOKEN, TOKEN_NOT):
                if cur not in out:
                    out.append(cur)
            else:
                raise GrammarError(f"grammar stack left on element type {t}")
        result = tuple(out)
        self._advance_cache[stack] = result
        return result

    # --- characters -------------------------------------------------------------------------------
    def match_char(self, pos: int, chr_: int) -> tuple[bool, int]:
        """llama_grammar_match_char: (matched, position after the char element)."""
        types, values = self.types, self.values
        positive = types[pos] in (CHAR, CHAR_ANY)
        found = False
        while True:
            if types[pos + 1] == CHAR_RNG_UPPER:
                found = found or (values[pos] <= chr_ <= values[pos + 1])
                pos += 2
            elif types[pos] == CHAR_ANY:
                found = True
                pos += 1
            else:
                found = found or values[pos] == chr_
                pos += 1
            if types[pos] != CHAR_ALT:
                break
        return found == positive, pos

    def match_partial_char(self, pos: int, partial: Partial) -> bool:
        """llama_grammar_match_partial_char: can some completion of `partial` match at pos."""
        types, values = self.types, self.values
        positive = types[pos] in (CHAR, CHAR_ANY)
        value, n_remain = partial
        if n_remain < 0 or (n_remain == 1 and value < 2):
            return False
        low = value << (n_remain * 6)
        high = low | ((1 << (n_remain * 6)) - 1)
        if low == 0:
            if n_remain == 2:
                low = 1 << 11
            elif n_remain == 3:
                low = 1 << 16
        while True:
            if types[pos + 1] == CHAR_RNG_UPPER:
                if values[pos] <= high and low <= values[pos + 1]:
                    return positive
                pos += 2
            elif types[pos] == CHAR_ANY:
                return True
            else:
                if low <= values[pos] <= high:
                    return positive
                pos += 1
            if types[pos] != CHAR_ALT:
                break
        return not positive

    def accept_chr(self, stack: Stack, chr_: int) -> tuple[Stack, ...]:
        """llama_grammar_accept_chr for one stack: the advanced stacks after `chr_`."""
        key = (stack, chr_)
        cached = self._accept_cache.get(key)
        if cached is not None:
            return cached
        result: tuple[Stack, ...] = ()
        if stack:
            pos = stack[-1]
            if self.types[pos] not in (TOKEN, TOKEN_NOT):
                ok, after = self.match_char(pos, chr_)
                if ok:
                    new = stack[:-1]
                    if self.types[after] not in (END, ALT):
                        new = new + (after,)
                    result = self.advance(new)
        if len(self._accept_cache) > 1_000_000:
            self._accept_cache.clear()
        self._accept_cache[key] = result
        return result

    def is_token_top(self, stack: Stack) -> bool:
        return bool(stack) and self.types[stack[-1]] in (TOKEN, TOKEN_NOT)

    def match_token(self, pos: int, token: int) -> bool:
        if self.types[pos] == TOKEN:
            return self.values[pos] == token
        return self.values[pos] != token

    # --- states: interned sets of stacks, for the sampler ---------------------------------------
    def intern(self, stacks: Iterable[Stack]) -> int:
        stacks = tuple(stacks)
        key = frozenset(stacks)
        sid = self._state_ids.get(key)
        if sid is None:
            sid = len(self.state_stacks)
            self._state_ids[key] = sid
            self.state_stacks.append(stacks)
            self._trans.append({})
            self._partial_ok.append({})
        return sid

    def transition(self, sid: int, chr_: int) -> int:
        """State after `chr_` from state `sid` (the union of accept_chr over its stacks)."""
        t = self._trans[sid]
        nxt = t.get(chr_)
        if nxt is None:
            out: dict[Stack, None] = {}
            for s in self.state_stacks[sid]:
                for ns in self.accept_chr(s, chr_):
                    out[ns] = None
            nxt = self.intern(out) if out else DEAD
            t[chr_] = nxt
        return nxt

    def end_ok(self, sid: int, partial: Partial) -> bool:
        """Whether a token ending in state `sid` with `partial` left over is accepted."""
        if partial[1] == 0:
            return True
        d = self._partial_ok[sid]
        ok = d.get(partial)
        if ok is None:
            memo = self._partial_memo
            ok = False
            for pos in {s[-1] for s in self.state_stacks[sid] if s}:
                if self.types[pos] in (TOKEN, TOKEN_NOT):
                    continue
                m = memo.get((pos, partial))
                if m is None:
                    m = memo[(pos, partial)] = self.match_partial_char(pos, partial)
                if m:
                    ok = True
                    break
            d[partial] = ok
        return ok

    def state_token_elems(self, sid: int) -> list[tuple[int, int]]:
        """(type, value) of the token elements on top of the stacks of a state."""
        return [(self.types[s[-1]], self.values[s[-1]]) for s in self.state_stacks[sid]
                if self.is_token_top(s)]

    def token_accepted(self, sid: int, token: int, cps: list[int], partial: Partial) -> bool:
        """Whether a candidate (decoded piece) survives state `sid` (state-set form)."""
        if partial[1] < 0:
            return False
        for c in cps:
            for t, v in self.state_token_elems(sid):
                if (v == token) == (t == TOKEN):
                    return True
            sid = self.transition(sid, c)
            if sid == DEAD:
                return False
        return self.end_ok(sid, partial)

    def fork_states(self) -> "Grammar":
        """A view sharing the rules and stack caches, with its own interned states."""
        other = object.__new__(Grammar)
        other.__dict__.update(self.__dict__)
        other.state_stacks = []
        other._state_ids = {}
        other._trans = []
        other._partial_ok = []
        return other

    def reset_states(self) -> None:
        """Drop the interned states (a long generation can make many)."""
        self.state_stacks.clear()
        self._state_ids.clear()
        self._trans.clear()
        self._partial_ok.clear()


class GrammarState:
    """One llama_grammar: the current stacks and the partial UTF-8 sequence."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.stacks: tuple[Stack, ...] = grammar.initial_stacks
        self.partial: Partial = NO_PARTIAL

    def clone(self) -> "GrammarState":
        other = GrammarState(self.grammar)
        other.stacks = self.stacks
        other.partial = self.partial
        return other

    def can_end(self) -> bool:
        """True when some stack is empty: the grammar may stop here (EOG allowed)."""
        return any(not s for s in self.stacks)

    def accept_token(self, token: int, piece: bytes) -> None:
        """llama_grammar_accept_token: advance all stacks over the token; raises if none survive."""
        g = self.grammar
        cps, partial = decode_utf8(piece, self.partial)
        new: dict[Stack, None] = {}
        for stack in self.stacks:
            if not stack:
                continue
            pos = stack[-1]
            if g.types[pos] in (TOKEN, TOKEN_NOT):
                if g.match_token(pos, token):
                    ns = stack[:-1]
                    if g.types[pos + 1] not in (END, ALT):
                        ns = ns + (pos + 1,)
                    for s in g.advance(ns):
                        new[s] = None
            else:
                cur: tuple[Stack, ...] = (stack,)
                for c in cps:
                    nxt: dict[Stack, None] = {}
                    for s in cur:
                        for ns in g.accept_chr(s, c):
                            nxt[ns] = None
                    cur = tuple(nxt)
                    if not cur:
                        break
                for s in cur:
                    new[s] = None
        if not new:
            raise GrammarError(f"token {token} ({piece!r}) cannot continue the grammar")
        self.stacks = tuple(new)
        self.partial = partial

    def accept_str(self, text: str | bytes) -> None:
        """llama_grammar_accept_str: accept characters (no token semantics)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        g = self.grammar
        cps, partial = decode_utf8(data, self.partial)
        stacks = self.stacks
        for c in cps:
            nxt: dict[Stack, None] = {}
            for s in stacks:
                for ns in g.accept_chr(s, c):
                    nxt[ns] = None
            stacks = tuple(nxt)
        if not stacks:
            raise GrammarError(f"text {data!r} cannot continue the grammar")
        self.stacks = stacks
        self.partial = partial

    def matches(self, text: str | bytes) -> bool:
        """Whether `text` completes the grammar from this state (state unchanged)."""
        st = self.clone()
        try:
            st.accept_str(text)
        except GrammarError:
            return False
        return st.can_end()

    def reject_candidates(self, candidates: list[tuple[int, bytes]]) -> set[int]:
        """Faithful llama_grammar_reject_candidates over (token, piece): indices rejected."""
        g = self.grammar
        cands = []
        for i, (tok, piece) in enumerate(candidates):
            cps, partial = decode_utf8(piece, self.partial)
            cands.append((i, tuple(cps), 0, partial, tok))
        rejects = _reject(g, self.stacks, cands)
        return {c[0] for c in rejects}


# ---------------------------------------------------------------------------------------------

def _reject(g: Grammar, stacks, cands):
    if not cands:
        return []
    rejects = _reject_for_stack(g, stacks[0], cands)
    for s in stacks[1:]:
        rejects = _reject_for_stack(g, s, rejects)
    return rejects


def _reject_for_stack(g: Grammar, stack: Stack, cands):
    """llama_grammar_reject_candidates_for_stack; a candidate is (idx, cps, k, partial, id)."""
    rejects = []
    if not stack:
        for c in cands:
            if c[2] < len(c[1]) or c[3][1] != 0:
                rejects.append(c)
        return rejects
    pos = stack[-1]
    if g.types[pos] in (TOKEN, TOKEN_NOT):
        for c in cands:
            if c[2] >= len(c[1]):
                if c[3][1] != 0:
                    rejects.append(c)
            elif not g.match_token(pos, c[4]):
                rejects.append(c)
        return rejects
    nxt = []
    for c in cands:
        if c[2] >= len(c[1]):
            if c[3][1] != 0 and not g.match_partial_char(pos, c[3]):
                rejects.append(c)
        elif g.match_char(pos, c[1][c[2]])[0]:
            nxt.append((c[0], c[1], c[2] + 1, c[3], c[4]))
        else:
            rejects.append(c)
    after = g.match_char(pos, 0)[1]
    stack_after = stack[:-1]
    if g.types[after] not in (END, ALT):
        stack_after = stack_after + (after,)
    next_stacks = g.advance(stack_after)
    for c in _reject(g, next_stacks, nxt):
        rejects.append((c[0], c[1], c[2] - 1, c[3], c[4]))
    return rejects


def _check_left_recursion(rules, names: dict[int, str], positions: dict) -> None:
    """llama_grammar_detect_left_recursion, iterative (generated rule chains can be deep).

    A rule finished without finding recursion cannot reach a rule in progress through its
    leftmost references, so it is not walked again (llama.cpp walks it again, to the same end).
    """
    n = len(rules)
    visited = [False] * n
    in_progress = [False] * n
    may_be_empty = [False] * n

    def enter(i: int) -> None:
        in_progress[i] = True
        at_start = True
        for t, _ in rules[i]:
            if t in (END, ALT):
                if at_start:
                    may_be_empty[i] = True
                    break
                at_start = True
            else:
                at_start = False

    for root in range(n):
        if visited[root]:
            continue
        enter(root)
        stack = [[root, 0, True]]  # rule, element index, recurse into the next nonterminal
        while stack:
            frame = stack[-1]
            i, k, recurse = frame
            rule = rules[i]
            if k >= len(rule):
                in_progress[i] = False
                visited[i] = True
                stack.pop()
                if stack:
                    parent = stack[-1]
                    if not may_be_empty[i]:
                        parent[2] = False
                    parent[1] += 1
                continue
            t, v = rule[k]
            if t == RULE_REF and recurse:
                if in_progress[v]:
                    where = positions.get(v)
                    err = GrammarError(
                        f"unsupported grammar: left recursion detected for rule "
                        f"'{names.get(v, v)}' (index {v})"
                        + (f" at line {where[0]}, column {where[1]}" if where else ""))
                    err.line, err.column = where if where else (None, None)
                    raise err
                if not visited[v]:
                    enter(v)
                    stack.append([v, 0, True])
                    continue
                if not may_be_empty[v]:
                    frame[2] = False
            elif t in (END, ALT):
                frame[2] = True
            else:
                frame[2] = False
            frame[1] += 1


__all__ = ["GreType", "Grammar", "GrammarState", "decode_utf8", "DEAD", "NO_PARTIAL"]
