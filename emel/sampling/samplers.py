"""The candidate samplers: greedy, dist, temperature, top-k/p, min-p, typical, XTC, mirostat, ...

Follows src/llama-sampler.cpp (llama.cpp b8xxx as vendored by llama-cpp-python 0.3.36). Each
factory (`top_k(k)`, ...) validates its parameters, raising `SamplerError`, and returns a
`NoOp` sampler where llama.cpp's `llama_sampler_init_*` returns its empty sampler. Float loops run
in `kernels.cpu.sampling` in llama.cpp's precision and order; random samplers draw from
`MT19937` through libstdc++'s conversions (see mt19937.py), so seeded draws equal llama.cpp's.

Differences on purpose: sorts are stable where llama.cpp's std::partial_sort leaves ties in an
unspecified order (equal logits may come out in another order; which tied token is cut at a
top-k boundary may differ).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from kernels.cpu import sampling as K

from ..errors import SamplerError
from .mt19937 import MT19937, discrete, resolve_seed, uniform_double, uniform_float
from .token_data import TokenDataArray

_F32 = np.float32
_NEG_INF = np.float32(-np.inf)


class Sampler:
    """Base class: `apply` is required; `accept` and `reset` are no-ops; `clone` deep-copies."""

    name = "sampler"

    def apply(self, cur: TokenDataArray) -> None:
        raise NotImplementedError

    def accept(self, token: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def clone(self) -> "Sampler":
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if not k.startswith("_") and not isinstance(v, (MT19937, np.ndarray)))
        return f"{type(self).__name__}({fields})"


class NoOp(Sampler):
    """llama.cpp's empty sampler: what a disabling parameter value turns a sampler into."""

    def __init__(self, name: str):
        self.name = name

    def apply(self, cur: TokenDataArray) -> None:
        pass


# -- shared steps (llama-sampler.cpp's *_impl helpers) -------------------------------------------

def sort_desc(cur: TokenDataArray, k: int) -> None:
    """llama_token_data_array_partial_sort_inplace: keep the k largest logits, sorted."""
    n = cur.size
    neg = -cur.logits[:n]
    if k < n:
        part = np.argpartition(neg, k - 1)[:k]
        order = part[np.argsort(neg[part], kind="stable")]
    else:
        order = np.argsort(neg, kind="stable")
    cur.keep(order)
    cur.sorted = True


def softmax(cur: TokenDataArray, do_sort: bool) -> None:
    """llama_sampler_softmax_impl: probabilities of the live candidates (sorted first if asked)."""
    if cur.size == 0:
        raise SamplerError("softmax over zero candidates")
    if do_sort and not cur.sorted:
        sort_desc(cur, cur.size)
    n = cur.size
    max_l = cur.logits[0] if cur.sorted else K.max_f32(cur.logits, n)
    K.softmax_f32(cur.logits, cur.p, n, _F32(max_l))


def temp_impl(cur: TokenDataArray, temp: float) -> None:
    """Divide logits by temp; temp <= 0 keeps only the (first) largest logit."""
    n = cur.size
    if n == 0:
        return
    if temp <= 0.0:
        live = cur.logits[:n]
        i = int(np.argmax(live))
        best = live[i]
        live[:] = _NEG_INF
        live[i] = best
        return
    cur.logits[:n] /= _F32(temp)


def top_k_impl(cur: TokenDataArray, k: int) -> None:
    if k <= 0:
        return
    k = min(k, cur.size)
    if not cur.sorted:
        sort_desc(cur, k)
    cur.size = k


# -- selecting samplers --------------------------------------------------------------------------

class Greedy(Sampler):
    """Selects the first candidate with the largest logit."""

    name = "greedy"

    def apply(self, cur: TokenDataArray) -> None:
        cur.selected = int(np.argmax(cur.logits[:cur.size])) if cur.size else 0


class Dist(Sampler):
    """Samples from the softmax of the live logits with a seeded std::mt19937.

    As llama_sampler_dist_apply: one `uniform_real_distribution<double>` draw (two 32-bit words)
    per call, also when a single candidate is left; float probabilities summed in double.
    """

    name = "dist"

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.seed_cur = resolve_seed(seed)
        self.rng = MT19937(self.seed_cur)

    def apply(self, cur: TokenDataArray) -> None:
        n = cur.size
        if n == 0:
            cur.selected = -1
            return
        cur.selected = 0
        if n == 1:
            uniform_double(self.rng)
            cur.p[0] = 1.0
            return
        max_l = cur.logits[0] if cur.sorted else K.max_f32(cur.logits, n)
        rnd = uniform_double(self.rng)
        cur.selected = int(K.dist_select_f32(cur.logits, cur.p, n, _F32(max_l), rnd))

    def reset(self) -> None:
        self.seed_cur = resolve_seed(self.seed)
        self.rng.seed(self.seed_cur)


class Mirostat(Sampler):
    """Mirostat 1.0 (Basu et al.): top-k chosen from the estimated Zipf exponent, then a draw."""

    name = "mirostat"

    def __init__(self, n_vocab: int, seed: int | None, tau: float, eta: float, m: int = 100):
        _check_int("mirostat n_vocab", n_vocab, lo=1)
        _check_int("mirostat m", m, lo=1)
        self.n_vocab, self.tau, self.eta, self.m = n_vocab, _finite("mirostat tau", tau), \
            _finite("mirostat eta", eta), m
        self.seed = seed
        self.seed_cur = resolve_seed(seed)
        self.rng = MT19937(self.seed_cur)
        self.mu = _F32(2.0) * _F32(tau)

    def apply(self, cur: TokenDataArray) -> None:
        softmax(cur, True)
        k = K.mirostat_k_f32(cur.p, cur.size, self.m, _F32(self.mu), self.n_vocab)
        top_k_impl(cur, max(_c_int(k), 1))
        softmax(cur, True)
        idx = discrete(self.rng, cur.p[:cur.size])
        cur.selected = idx
        self._update_mu(cur.p[idx])

    def _update_mu(self, p_sel) -> None:
        e = _F32(K.neg_log2_f32(_F32(p_sel))) - _F32(self.tau)
        self.mu = _F32(self.mu) - _F32(self.eta) * e

    def reset(self) -> None:
        self.mu = _F32(2.0) * _F32(self.tau)
        self.seed_cur = resolve_seed(self.seed)
        self.rng.seed(self.seed_cur)


class MirostatV2(Mirostat):
    """Mirostat 2.0: drop candidates whose surprise exceeds mu, then a draw."""

    name = "mirostat-v2"

    def __init__(self, seed: int | None, tau: float, eta: float):
        super().__init__(1, seed, tau, eta, 1)

    def apply(self, cur: TokenDataArray) -> None:
        softmax(cur, True)
        cur.size = max(int(K.mirostat_v2_cut_f32(cur.p, cur.size, _F32(self.mu))), 1)
        softmax(cur, True)
        idx = discrete(self.rng, cur.p[:cur.size])
        cur.selected = idx
        self._update_mu(cur.p[idx])


# -- filters and transforms ----------------------------------------------------------------------

class TopK(Sampler):
    name = "top-k"

    def __init__(self, k: int):
        _check_int("top_k", k)
        self.k = k

    def apply(self, cur: TokenDataArray) -> None:
        top_k_impl(cur, self.k)


class TopP(Sampler):
    """Nucleus: the smallest sorted prefix whose float probability sum reaches p."""

    name = "top-p"

    def __init__(self, p: float, min_keep: int = 0):
        self.p = _finite("top_p", p)
        self.min_keep = _check_int("min_keep", min_keep, lo=0)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p >= 1.0:
            return
        softmax(cur, False)
        if not cur.sorted:
            # llama.cpp sorts a 256-candidate prefix first and widens it when needed; the kept
            # prefix is the same as after a full sort.
            sort_desc(cur, cur.size)
        cur.size = int(K.top_p_cut_f32(cur.p, cur.size, _F32(self.p), self.min_keep))


class MinP(Sampler):
    """Keeps candidates with p >= min_p * p_max, compared in logit space as llama.cpp does."""

    name = "min-p"

    def __init__(self, p: float, min_keep: int = 0):
        self.p = _finite("min_p", p)
        self.min_keep = _check_int("min_keep", min_keep, lo=0)

    def apply(self, cur: TokenDataArray) -> None:
        n = cur.size
        if self.p <= 0.0 or n == 0:
            return
        log_p = _F32(K.log_f32(_F32(self.p)))
        if not cur.sorted:
            live = cur.logits[:n]
            min_logit = _F32(live.max()) + log_p
            keep = np.flatnonzero(live >= min_logit)
            if len(keep) > 0 and len(keep) >= self.min_keep:
                cur.keep(keep)
                return
            sort_desc(cur, n)
        min_logit = cur.logits[0] + log_p
        below = np.flatnonzero(cur.logits[1:n] < min_logit) + 1
        below = below[below >= self.min_keep]
        cur.size = int(below[0]) if len(below) else n


class Typical(Sampler):
    """Locally typical sampling (Meister et al.)."""

    name = "typical"

    def __init__(self, p: float, min_keep: int = 0):
        self.p = _finite("typical_p", p)
        self.min_keep = _check_int("min_keep", min_keep, lo=0)

    def apply(self, cur: TokenDataArray) -> None:
        if self.p >= 1.0:
            return
        softmax(cur, True)
        n = cur.size
        scores = np.empty(n, np.float32)
        K.typical_scores_f32(cur.p, n, scores)
        order = np.argsort(scores, kind="stable").astype(np.int64)
        last = int(K.typical_cut_f32(cur.p, order, n, _F32(self.p), self.min_keep))
        cur.keep(order[:last])
        cur.sorted = False


class Temp(Sampler):
    name = "temp"

    def __init__(self, temp: float):
        self.temp = _finite("temperature", temp)

    def apply(self, cur: TokenDataArray) -> None:
        temp_impl(cur, self.temp)


class TempExt(Sampler):
    """Dynamic temperature: temp +- delta, scaled by the normalised entropy to `exponent`."""

    name = "temp-ext"

    def __init__(self, temp: float, delta: float, exponent: float):
        self.temp = _finite("temperature", temp)
        self.delta = _finite("dynatemp_range", delta)
        self.exponent = _finite("dynatemp_exponent", exponent)

    def apply(self, cur: TokenDataArray) -> None:
        if self.delta <= 0.0:
            temp_impl(cur, self.temp)
            return
        if cur.size <= 1:
            return
        softmax(cur, True)
        dyn = K.dyn_temp_f32(cur.p, cur.size, _F32(self.temp), _F32(self.delta),
                             _F32(self.exponent))
        temp_impl(cur, float(_F32(dyn)))
        K.softmax_f64_f32(cur.logits, cur.p, cur.size)


class XTC(Sampler):
    """Exclude Top Choices: with probability `p`, drop every candidate above `t` but the last."""

    name = "xtc"

    def __init__(self, p: float, t: float, min_keep: int = 0, seed: int | None = None):
        self.probability = _finite("xtc_probability", p)
        self.threshold = _finite("xtc_threshold", t)
        self.min_keep = _check_int("min_keep", min_keep, lo=0)
        self.seed = seed
        self.seed_cur = resolve_seed(seed)
        self.rng = MT19937(self.seed_cur)

    def apply(self, cur: TokenDataArray) -> None:
        if self.probability <= 0.0 or self.threshold > 0.5 or cur.size < 2:
            return
        if uniform_float(self.rng) > _F32(self.probability):
            return
        softmax(cur, True)
        n = cur.size
        below = np.flatnonzero(~(cur.p[:n] >= _F32(self.threshold)))
        first_below = int(below[0]) if len(below) else n
        pos_last = max(first_below - 1, 0)
        if n - pos_last >= self.min_keep and pos_last > 0:
            cur.keep(np.arange(pos_last, n))

    def reset(self) -> None:
        self.seed_cur = resolve_seed(self.seed)
        self.rng.seed(self.seed_cur)


class TopNSigma(Sampler):
    """Masks logits more than n standard deviations below the maximum."""

    name = "top-n-sigma"

    def __init__(self, n: float):
        self.n = _finite("top_n_sigma", n)

    def apply(self, cur: TokenDataArray) -> None:
        if self.n <= 0.0 or cur.size <= 1:
            return
        K.top_n_sigma_mask_f32(cur.logits, cur.size, _F32(self.n))


class LogitBias(Sampler):
    """Adds a bias to given tokens' logits (-inf bans a token)."""

    name = "logit-bias"

    def __init__(self, n_vocab: int, biases):
        items = list(biases.items()) if isinstance(biases, dict) else list(biases)
        self.n_vocab = n_vocab
        self.tokens = np.array([_check_int("logit bias token", t, lo=0, hi=n_vocab - 1)
                                for t, _ in items], np.int32)
        self.biases = np.array([_nan_free("logit bias", b) for _, b in items], np.float32)

    def apply(self, cur: TokenDataArray) -> None:
        if len(self.tokens) == 0:
            return
        ids, logits, _ = cur.live()
        n = cur.size
        for tok, bias in zip(self.tokens, self.biases):
            # llama.cpp applies every entry in order; a token listed twice gets both biases
            # when it sits at its own index, the first only otherwise.
            if tok < n and ids[tok] == tok:
                logits[tok] += bias
        rest = [(t, b) for t, b in zip(self.tokens, self.biases) if not (t < n and ids[t] == t)]
        if rest:
            first: dict[int, np.float32] = {}
            for t, b in rest:
                first.setdefault(int(t), b)
            for i in np.flatnonzero(np.isin(ids, list(first))):
                logits[i] += first[int(ids[i])]


# -- factories (llama_sampler_init_*) ------------------------------------------------------------

def greedy() -> Sampler:
    return Greedy()


def dist(seed: int | None = None) -> Sampler:
    return Dist(seed)


def top_k(k: int) -> Sampler:
    return TopK(k)


def top_p(p: float, min_keep: int = 0) -> Sampler:
    s = TopP(p, min_keep)
    return NoOp("?top-p") if s.p >= 1.0 else s


def min_p(p: float, min_keep: int = 0) -> Sampler:
    s = MinP(p, min_keep)
    return NoOp("?min-p") if s.p <= 0.0 else s


def typical(p: float, min_keep: int = 0) -> Sampler:
    s = Typical(p, min_keep)
    return NoOp("?typical") if s.p >= 1.0 else s


def temp(t: float) -> Sampler:
    s = Temp(t)
    return NoOp("?temp") if s.temp == 1.0 else s


def temp_ext(t: float, delta: float = 0.0, exponent: float = 1.0) -> Sampler:
    s = TempExt(t, delta, exponent)
    return NoOp("?temp-ext") if s.temp == 1.0 and s.delta <= 0.0 else s


def xtc(p: float, t: float, min_keep: int = 0, seed: int | None = None) -> Sampler:
    _finite("xtc_probability", p), _finite("xtc_threshold", t)
    return NoOp("?xtc") if p <= 0.0 or t > 0.5 else XTC(p, t, min_keep, seed)


def top_n_sigma(n: float) -> Sampler:
    s = TopNSigma(n)
    return NoOp("?top-n-sigma") if s.n <= 0.0 else s


def mirostat(n_vocab: int, seed: int | None, tau: float = 5.0, eta: float = 0.1,
             m: int = 100) -> Sampler:
    return Mirostat(n_vocab, seed, tau, eta, m)


def mirostat_v2(seed: int | None, tau: float = 5.0, eta: float = 0.1) -> Sampler:
    return MirostatV2(seed, tau, eta)


def logit_bias(n_vocab: int, biases) -> Sampler:
    s = LogitBias(n_vocab, biases)
    return NoOp("?logit-bias") if len(s.tokens) == 0 else s


# -- validation helpers --------------------------------------------------------------------------

def _finite(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SamplerError(f"{name} must be a number, got {type(value).__name__}")
    # llama.cpp takes these parameters as C floats: keep float32 precision so that comparisons
    # such as `p >= 1.0` decide as they do there.
    if not math.isfinite(float(value)) or not np.isfinite(np.float32(value)):
        raise SamplerError(f"{name} must be finite (as a float32), got {value}")
    return float(np.float32(value))


def _nan_free(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SamplerError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(float(value)) or float(value) == math.inf:
        raise SamplerError(f"{name} must not be NaN or +inf, got {value}")
    return float(value)


def _check_int(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SamplerError(f"{name} must be an integer, got {type(value).__name__}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise SamplerError(f"{name} must be in {rng}, got {value}")
    return int(value)


def _c_int(x) -> int:
    """C's float -> int conversion as x86 does it: out-of-range and NaN give INT_MIN."""
    x = float(x)
    if not math.isfinite(x) or not -2147483648.0 <= x < 2147483648.0:
        return -2147483648
    return int(x)
