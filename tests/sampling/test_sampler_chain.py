"""The sampler chain, the RNG, defaults and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

from emel import SamplerError
from emel import sampling as S
from emel.sampling.mt19937 import MT19937, discrete, resolve_seed, uniform_double, uniform_float


def test_mt19937_10000th_output_is_the_standards_value():
    # C++ [rand.predef]: the 10000th consecutive invocation of a default-constructed mt19937
    rng = MT19937()
    for _ in range(9999):
        rng()
    assert rng() == 4123659995


def test_mt19937_copy_continues_the_same_stream():
    a = MT19937(77)
    for _ in range(700):
        a()
    b = a.copy()
    assert [a() for _ in range(10)] == [b() for _ in range(10)]


def test_uniform_double_uses_two_words_and_uniform_float_one():
    a, b = MT19937(5), MT19937(5)
    uniform_double(a)
    b(), b()
    assert a() == b()
    uniform_float(a)
    b()
    assert a() == b()


def test_uniform_double_is_generate_canonical():
    rng, ref = MT19937(9), MT19937(9)
    for _ in range(50):
        w0, w1 = ref(), ref()
        assert uniform_double(rng) == (w0 + w1 * 2.0**32) / 2.0**64


def test_discrete_with_one_weight_draws_nothing():
    a, b = MT19937(3), MT19937(3)
    assert discrete(a, np.array([0.7], np.float32)) == 0
    assert a() == b()


@pytest.mark.parametrize("seed", [None, -1, 0xFFFFFFFF])
def test_default_seed_means_random(seed):
    assert 0 <= resolve_seed(seed) <= 0xFFFFFFFF


@pytest.mark.parametrize("seed", [2**32, -2, 1.5, "7"])
def test_bad_seed_is_refused(seed):
    with pytest.raises(SamplerError):
        resolve_seed(seed)


def test_default_chain_is_llama_cpps_common_order():
    chain = S.build_chain(S.SamplerParams(seed=1), n_vocab=100)
    assert [s.name for s in chain.samplers] == [
        "?penalties", "?dry", "?top-n-sigma", "top-k", "?typical", "top-p", "min-p", "?xtc",
        "temp-ext", "dist"]


def test_every_sampler_enabled_in_the_configured_order():
    p = S.SamplerParams(seed=3, penalty_repeat=1.1, dry_multiplier=0.5, top_n_sigma=1.0,
                        typ_p=0.9, xtc_probability=0.5, dynatemp_range=0.2,
                        samplers=("temperature", "top_k", "penalties"), logit_bias={1: 2.0})
    chain = S.build_chain(p, n_vocab=10)
    assert [s.name for s in chain.samplers] == ["logit-bias", "temp-ext", "top-k", "penalties",
                                                "dist"]


@pytest.mark.parametrize("mirostat,last", [(1, "mirostat"), (2, "mirostat-v2")])
def test_mirostat_replaces_the_chain(mirostat, last):
    chain = S.build_chain(S.SamplerParams(seed=3, mirostat=mirostat), n_vocab=10)
    assert [s.name for s in chain.samplers] == ["temp", last]


def test_ignore_eos_bans_end_of_generation_tokens():
    chain = S.build_chain(S.SamplerParams(seed=1, ignore_eos=True), n_vocab=8, eog_tokens=[7])
    logits = np.zeros(8, np.float32)
    logits[7] = 50.0
    assert all(chain.sample(logits) != 7 for _ in range(20))


def test_sample_accepts_the_token_into_penalties():
    chain = S.SamplerChain([S.penalties(4, 8, 1.0, 0.0, 100.0), S.greedy()])
    logits = np.array([1.0, 3.0, 2.0, 0.0], np.float32)
    assert chain.sample(logits) == 1
    assert chain.sample(logits) == 2  # token 1 now carries the presence penalty
    chain.reset()
    assert chain.sample(logits) == 1


def test_clone_copies_rng_state():
    a = S.SamplerChain([S.top_k(5), S.dist(123)])
    logits = np.linspace(0, 1, 50).astype(np.float32)
    a.sample(logits)
    b = a.clone()
    assert [a.sample(logits) for _ in range(30)] == [b.sample(logits) for _ in range(30)]


def test_reset_restarts_the_seeded_stream():
    a = S.SamplerChain([S.dist(9)])
    logits = np.linspace(0, 2, 30).astype(np.float32)
    first = [a.sample(logits) for _ in range(10)]
    a.reset()
    assert [a.sample(logits) for _ in range(10)] == first


def test_chain_without_a_selecting_sampler_raises():
    with pytest.raises(SamplerError, match="selecting sampler"):
        S.SamplerChain([S.top_k(3)]).sample(np.zeros(5, np.float32))


@pytest.mark.parametrize("make", [
    lambda: S.top_p(float("nan")),
    lambda: S.temp(float("inf")),
    lambda: S.top_k(2.5),
    lambda: S.min_p(0.1, -1),
    lambda: S.penalties(10, 64, 0.0, 0.0, 0.0),
    lambda: S.penalties(10, 64, float("nan"), 0.0, 0.0),
    lambda: S.mirostat(10, 1, float("nan"), 0.1),
    lambda: S.logit_bias(10, {10: 1.0}),
    lambda: S.logit_bias(10, {3: float("nan")}),
    lambda: S.dist(2**33),
    lambda: S.dry(0.8, 1.75, 2, 64, ["\n"]),  # text breakers without a vocabulary
    lambda: S.build_chain(S.SamplerParams(samplers=("top_q",)), 10),
    lambda: S.build_chain(S.SamplerParams(mirostat=3), 10),
])
def test_invalid_parameters_raise_sampler_error(make):
    with pytest.raises(SamplerError):
        make()


@pytest.mark.parametrize("make,name", [
    (lambda: S.top_p(1.0), "?top-p"), (lambda: S.min_p(0.0), "?min-p"),
    (lambda: S.typical(1.0), "?typical"), (lambda: S.temp(1.0), "?temp"),
    (lambda: S.xtc(0.0, 0.1), "?xtc"), (lambda: S.top_n_sigma(-1.0), "?top-n-sigma"),
    (lambda: S.penalties(10, 0, 1.3, 0, 0), "?penalties"), (lambda: S.dry(0.0), "?dry"),
])
def test_disabling_values_give_a_no_op(make, name):
    s = make()
    assert isinstance(s, S.NoOp) and s.name == name


def test_wrong_logits_shape_raises():
    with pytest.raises(SamplerError):
        S.SamplerChain([S.greedy()]).sample(np.zeros((2, 3), np.float32))
