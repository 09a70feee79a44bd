"""The sampler chain and llama.cpp's common sampling parameters.

Follows src/llama-sampler.cpp (llama_sampler_chain) and common/sampling.cpp (common_sampler_init:
which samplers, in which order, with which defaults; common/common.h common_params_sampling).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import SamplerError
from . import samplers as S
from .mt19937 import LLAMA_DEFAULT_SEED
from .penalties import dry, penalties
from .token_data import TokenDataArray


class SamplerType(str, enum.Enum):
    """common_sampler_type, named as llama.cpp's --samplers option names them."""

    PENALTIES = "penalties"
    DRY = "dry"
    TOP_N_SIGMA = "top_n_sigma"
    TOP_K = "top_k"
    TYPICAL_P = "typ_p"
    TOP_P = "top_p"
    MIN_P = "min_p"
    XTC = "xtc"
    TEMPERATURE = "temperature"


DEFAULT_SAMPLERS = (
    SamplerType.PENALTIES, SamplerType.DRY, SamplerType.TOP_N_SIGMA, SamplerType.TOP_K,
    SamplerType.TYPICAL_P, SamplerType.TOP_P, SamplerType.MIN_P, SamplerType.XTC,
    SamplerType.TEMPERATURE,
)


@dataclass
class SamplerParams:
    """common_params_sampling: every default is llama.cpp's (common/common.h)."""

    seed: int = LLAMA_DEFAULT_SEED  # LLAMA_DEFAULT_SEED (or -1/None): a random seed
    min_keep: int = 0  # 0 = off; samplers keep at least this many candidates
    top_k: int = 40  # <= 0: the whole vocabulary
    top_p: float = 0.95  # 1.0 = off
    min_p: float = 0.05  # 0.0 = off
    xtc_probability: float = 0.0  # 0.0 = off
    xtc_threshold: float = 0.10  # > 0.5 turns XTC off
    typ_p: float = 1.0  # 1.0 = off
    temp: float = 0.80  # <= 0: greedy (only the largest logit survives)
    dynatemp_range: float = 0.0  # 0.0 = off
    dynatemp_exponent: float = 1.0
    penalty_last_n: int = 64  # 0 = off, -1 = context size
    penalty_repeat: float = 1.0  # 1.0 = off
    penalty_freq: float = 0.0  # 0.0 = off
    penalty_present: float = 0.0  # 0.0 = off
    dry_multiplier: float = 0.0  # 0.0 = off
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = 64  # 0 = off, -1 = context size
    mirostat: int = 0  # 0 = off, 1 = mirostat, 2 = mirostat 2.0
    top_n_sigma: float = -1.0  # <= 0 = off
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    ignore_eos: bool = False  # ban end-of-generation tokens (logit bias -inf)
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", "\"", "*")
    samplers: tuple[SamplerType, ...] = DEFAULT_SAMPLERS  # the chain's order before dist
    logit_bias: dict[int, float] = field(default_factory=dict)


class SamplerChain(S.Sampler):
    """Samplers applied in order; `sample(logits)` runs them and accepts the chosen token."""

    name = "chain"

    def __init__(self, samplers: Iterable[S.Sampler] = ()):
        self.samplers: list[S.Sampler] = list(samplers)
        self.t_sample_s = 0.0  # time spent in apply/accept (llama_perf_sampler t_sample_ms)
        self.n_sample = 0  # accepted tokens

    def add(self, sampler: S.Sampler) -> "SamplerChain":
        if not isinstance(sampler, S.Sampler):
            raise SamplerError(f"not a sampler: {sampler!r}")
        self.samplers.append(sampler)
        return self

    def apply(self, cur: TokenDataArray) -> None:
        t0 = time.perf_counter()
        for s in self.samplers:
            s.apply(cur)
        self.t_sample_s += time.perf_counter() - t0

    def accept(self, token: int) -> None:
        t0 = time.perf_counter()
        for s in self.samplers:
            s.accept(int(token))
        self.n_sample += 1
        self.t_sample_s += time.perf_counter() - t0

    def reset(self) -> None:
        for s in self.samplers:
            s.reset()

    def clone(self) -> "SamplerChain":
        return SamplerChain(s.clone() for s in self.samplers)

    def sample(self, logits: np.ndarray, pre: Sequence[S.Sampler] = ()) -> int:
        """Apply `pre` (e.g. a grammar) then the chain to one row of logits; accept and return."""
        cur = TokenDataArray.from_logits(logits)
        for s in pre:
            s.apply(cur)
        self.apply(cur)
        token = cur.selected_token()
        self.accept(token)
        return token

    def __repr__(self) -> str:
        return "SamplerChain(" + " -> ".join(s.name for s in self.samplers) + ")"


def build_chain(params: SamplerParams, n_vocab: int, *, n_ctx: int | None = None,
                eog_tokens: Sequence[int] = (), detokenize: Callable[[int], bytes] | None = None,
                tokenize: Callable[[bytes], list[int]] | None = None) -> SamplerChain:
    """common_sampler_init: logit bias, then `params.samplers` in order, then dist (or mirostat)."""
    p = params
    chain = SamplerChain()
    bias = dict(p.logit_bias)
    if p.ignore_eos:
        for t in eog_tokens:
            bias[int(t)] = float("-inf")
    if bias:
        chain.add(S.logit_bias(n_vocab, bias))
    if p.mirostat == 0:
        for kind in p.samplers:
            chain.add(_make(_sampler_type(kind), p, n_vocab, n_ctx, detokenize, tokenize))
        chain.add(S.dist(p.seed))
    elif p.mirostat == 1:
        chain.add(S.temp(p.temp))
        chain.add(S.mirostat(n_vocab, p.seed, p.mirostat_tau, p.mirostat_eta, 100))
    elif p.mirostat == 2:
        chain.add(S.temp(p.temp))
        chain.add(S.mirostat_v2(p.seed, p.mirostat_tau, p.mirostat_eta))
    else:
        raise SamplerError(f"mirostat must be 0, 1 or 2, got {p.mirostat!r}")
    return chain


def _sampler_type(kind) -> SamplerType:
    try:
        return SamplerType(kind)
    except ValueError:
        names = ", ".join(t.value for t in SamplerType)
        raise SamplerError(f"unknown sampler {kind!r}; known: {names}") from None


def _last_n(value: int, n_ctx: int | None, name: str) -> int:
    if value == -1:
        if n_ctx is None:
            raise SamplerError(f"{name} = -1 means the context size, which was not given")
        return n_ctx
    return value


def _make(kind: SamplerType, p: SamplerParams, n_vocab: int, n_ctx, detokenize, tokenize):
    if kind is SamplerType.PENALTIES:
        return penalties(n_vocab, _last_n(p.penalty_last_n, n_ctx, "penalty_last_n"),
                         p.penalty_repeat, p.penalty_freq, p.penalty_present)
    if kind is SamplerType.DRY:
        return dry(p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                   _last_n(p.dry_penalty_last_n, n_ctx, "dry_penalty_last_n"),
                   p.dry_sequence_breakers, n_vocab=n_vocab, detokenize=detokenize,
                   tokenize=tokenize)
    if kind is SamplerType.TOP_N_SIGMA:
        return S.top_n_sigma(p.top_n_sigma)
    if kind is SamplerType.TOP_K:
        return S.top_k(p.top_k)
    if kind is SamplerType.TYPICAL_P:
        return S.typical(p.typ_p, p.min_keep)
    if kind is SamplerType.TOP_P:
        return S.top_p(p.top_p, p.min_keep)
    if kind is SamplerType.MIN_P:
        return S.min_p(p.min_p, p.min_keep)
    if kind is SamplerType.XTC:
        return S.xtc(p.xtc_probability, p.xtc_threshold, p.min_keep, p.seed)
    return S.temp_ext(p.temp, p.dynatemp_range, p.dynatemp_exponent)
