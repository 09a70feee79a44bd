"""Repetition samplers: penalties (repeat, frequency, presence) and DRY.

Follows src/llama-sampler.cpp (llama_sampler_penalties, llama_sampler_dry, the latter ported by
llama.cpp from KoboldCpp). Both remember accepted tokens in a ring of `penalty_last_n`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, Iterable, Sequence

import numpy as np

from kernels.cpu.sampling import log_f32

from ..errors import SamplerError
from .samplers import NoOp, Sampler, _check_int, _finite
from .token_data import TokenDataArray

_F32 = np.float32
_DRY_MAX_CHAR_LEN = 40
_DRY_MAX_SEQ_LEN = 20
_FLOAT_MAX_LOG = np.float32(88.7228391)


class Penalties(Sampler):
    """Repeat / frequency / presence penalties over the last `penalty_last_n` accepted tokens."""

    name = "penalties"

    def __init__(self, n_vocab: int, penalty_last_n: int, penalty_repeat: float,
                 penalty_freq: float, penalty_present: float):
        self.n_vocab = _check_int("n_vocab", n_vocab, lo=1)
        self.penalty_last_n = max(_check_int("penalty_last_n", penalty_last_n), 0)
        self.penalty_repeat = _finite("repeat_penalty", penalty_repeat)
        if self.penalty_repeat <= 0.0 or not math.isfinite(1.0 / float(_F32(penalty_repeat))):
            raise SamplerError(f"repeat_penalty must be finite and greater than 0, got {penalty_repeat}")
        self.penalty_freq = _finite("frequency_penalty", penalty_freq)
        self.penalty_present = _finite("presence_penalty", penalty_present)
        self.prev: deque[int] = deque(maxlen=max(self.penalty_last_n, 1))
        self.counts = np.zeros(self.n_vocab, np.int32)

    def is_disabled(self) -> bool:
        return self.penalty_last_n == 0 or (self.penalty_repeat == 1.0 and self.penalty_freq == 0.0
                                            and self.penalty_present == 0.0)

    def accept(self, token: int) -> None:
        if self.penalty_last_n == 0:
            return
        if not 0 <= token < self.n_vocab:
            raise SamplerError(f"penalties: token {token} outside the vocabulary (n_vocab {self.n_vocab})")
        self.counts[token] += 1
        if len(self.prev) >= self.penalty_last_n:
            self.counts[self.prev[0]] -= 1
        self.prev.append(int(token))

    def apply(self, cur: TokenDataArray) -> None:
        if self.is_disabled():
            return
        ids, logits, _ = cur.live()
        ok = (ids >= 0) & (ids < self.n_vocab)
        count = np.zeros(len(ids), np.int32)
        count[ok] = self.counts[ids[ok]]
        hit = np.flatnonzero(count > 0)
        if len(hit):
            l = logits[hit]
            rep = _F32(self.penalty_repeat)
            l = np.where(l <= 0, l * rep, l / rep).astype(np.float32)
            l -= count[hit].astype(np.float32) * _F32(self.penalty_freq) + _F32(self.penalty_present)
            logits[hit] = l
        cur.sorted = False

    def reset(self) -> None:
        self.prev.clear()
        self.counts[:] = 0


class Dry(Sampler):
    """DRY ("don't repeat yourself"): penalises tokens that would extend a repeated sequence.

    Sequence breakers are either strings (`seq_breakers`, which need `detokenize(token) -> bytes`
    for one token as llama_vocab::detokenize(special=true) and `tokenize(bytes) -> list[int]`
    without specials) or already tokenized (`seq_breaker_tokens`: head token first).
    """

    name = "dry"

    def __init__(self, multiplier: float, base: float, allowed_length: int, penalty_last_n: int,
                 seq_breakers: Sequence[str] = (), *, n_vocab: int | None = None,
                 detokenize: Callable[[int], bytes] | None = None,
                 tokenize: Callable[[bytes], list[int]] | None = None,
                 seq_breaker_tokens: Iterable[Sequence[int]] = ()):
        self.multiplier = _finite("dry_multiplier", multiplier)
        self.base = _finite("dry_base", base)
        self.allowed_length = _check_int("dry_allowed_length", allowed_length)
        self.penalty_last_n = max(_check_int("dry_penalty_last_n", penalty_last_n), 0)
        self.breakers: dict[int, list[tuple[int, ...]]] = {}
        for seq in seq_breaker_tokens:
            seq = [int(t) for t in seq]
            if seq:
                self.breakers.setdefault(seq[0], []).append(tuple(seq[1:]))
        strings = [s for s in seq_breakers if s]
        if strings and self.enabled():
            if detokenize is None or tokenize is None or n_vocab is None:
                raise SamplerError("DRY sequence breakers given as text need a vocabulary "
                                   "(n_vocab, detokenize and tokenize)")
            pieces = [detokenize(t) for t in range(n_vocab)]
            for s in strings:
                b = s.encode("utf-8")[:_DRY_MAX_CHAR_LEN]
                _overlapping_sequences(pieces, b, tokenize, self.breakers)
        self.last_tokens: deque[int] = deque(maxlen=max(self.penalty_last_n, 1))

    def enabled(self) -> bool:
        return self.multiplier != 0.0 and self.base >= 1.0 and self.penalty_last_n != 0

    def accept(self, token: int) -> None:
        if self.enabled():
            self.last_tokens.append(int(token))

    def reset(self) -> None:
        self.last_tokens.clear()

    def apply(self, cur: TokenDataArray) -> None:
        if not self.enabled():
            return
        last_n = min(len(self.last_tokens), self.penalty_last_n)
        if last_n <= self.allowed_length:
            return
        # rat(i): the i-th most recent token
        toks = list(self.last_tokens)[::-1][:last_n]

        # Step 1: the nearest restart sequence limits how far back a repeat may reach.
        rep_limit = last_n
        for i in range(last_n):
            tails = self.breakers.get(toks[i])
            if tails is None:
                continue
            longest = -1
            for tail in tails:
                seq_len = len(tail)
                if longest < seq_len <= i and all(tail[o] == toks[i - o - 1] for o in range(seq_len)):
                    longest = seq_len
            if longest >= 0:
                rep_limit = i - longest
                break
        if rep_limit < self.allowed_length:
            return

        # Step 2: reverse Z-algorithm: for each position, how long a suffix of the context
        # also ends there.
        repeat = [0] * last_n
        last = last_n - 1
        lt = rt = 0
        for k in range(1, last_n):
            if k > rt:
                n = 0
                while n + k < last_n and toks[n] == toks[n + k]:
                    n += 1
                repeat[last - k] = min(n, rep_limit)
                if n > 0:
                    lt, rt = k, k + n - 1
            else:
                p = k - lt
                right_part_len = rt - k + 1
                if repeat[last - p] < right_part_len:
                    repeat[last - k] = min(repeat[last - p], rep_limit)
                else:
                    i = rt + 1
                    while i < last_n and toks[i] == toks[i - k]:
                        i += 1
                    repeat[last - k] = min(i - k, rep_limit)
                    lt, rt = k, i - 1

        # Step 3: the token after each repeat would extend it.
        max_repeat: dict[int, int] = {}
        for i in range(last_n - 1):
            rl = repeat[i]
            if rl >= self.allowed_length:
                tok = toks[last_n - 2 - i]
                if max_repeat.get(tok, -1) < rl:
                    max_repeat[tok] = rl
        if not max_repeat:
            cur.sorted = False
            return

        # Step 4: penalties, exponent clamped so pow() stays finite in float.
        base = _F32(self.base)
        max_exponent = 0
        if base > _F32(1.000001):
            max_exponent = int(_FLOAT_MAX_LOG / _F32(log_f32(base)))
        ids, logits, _ = cur.live()
        for i in np.flatnonzero(np.isin(ids, list(max_repeat))):
            tok = int(ids[i])
            if any(len(t) == 0 for t in self.breakers.get(tok, ())):
                continue  # a single-token sequence breaker is never penalised
            exp = max_repeat[tok] - self.allowed_length
            if max_exponent > 0 and exp > max_exponent:
                exp = max_exponent
            # float * std::pow(float, int) is computed in double, then stored as float
            penalty = _F32(float(_F32(self.multiplier)) * math.pow(float(base), float(exp)))
            logits[i] -= penalty
        cur.sorted = False


def penalties(n_vocab: int, penalty_last_n: int = 64, penalty_repeat: float = 1.0,
              penalty_freq: float = 0.0, penalty_present: float = 0.0) -> Sampler:
    s = Penalties(n_vocab, penalty_last_n, penalty_repeat, penalty_freq, penalty_present)
    return NoOp("?penalties") if s.is_disabled() else s


def dry(multiplier: float, base: float = 1.75, allowed_length: int = 2, penalty_last_n: int = 64,
        seq_breakers: Sequence[str] = ("\n", ":", "\"", "*"), **vocab) -> Sampler:
    _finite("dry_multiplier", multiplier), _finite("dry_base", base)
    if not (multiplier != 0.0 and base >= 1.0 and max(int(penalty_last_n), 0) != 0):
        return NoOp("?dry")
    return Dry(multiplier, base, allowed_length, penalty_last_n, seq_breakers, **vocab)


def _overlapping_sequences(pieces: list[bytes], s: bytes, tokenize, out: dict) -> None:
    """get_overlapping_token_sequences: tokens containing `s`, or ending in a prefix of it."""
    for token_id, word in enumerate(pieces):
        if s in word:
            tails = out.setdefault(token_id, [])
            tails.append(())
            continue
        pos = word.find(s[:1])
        while pos != -1:
            i = 1
            match = True
            while i < len(s) and i + pos < len(word):
                if word[pos + i] != s[i]:
                    match = False
                    break
                i += 1
            if match:
                tail = tuple(tokenize(s[i:]))[:_DRY_MAX_SEQ_LEN]
                tails = out.setdefault(token_id, [])
                if tail not in tails:
                    tails.append(tail)
            pos = word.find(s[:1], pos + 1)
