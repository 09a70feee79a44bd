"""std::mt19937 and the libstdc++ conversions llama.cpp's samplers use to turn its bits into draws.

Follows the C++ standard's mt19937 (32-bit Mersenne Twister, `seed()` by init_genrand) and
libstdc++ 12's bits/random.tcc:
- `generate_canonical<double, 53>` (what `std::uniform_real_distribution<double>(0, 1)` calls):
  two 32-bit words, `(w0 + w1 * 2**32) / 2**64` in double, clamped below 1.0 with nextafter.
- `generate_canonical<float, 24>` (`std::uniform_real_distribution<float>(0, 1)`, used by XTC):
  one word, `float(w0) / 2**32` in float, clamped below 1.0f.
- `std::discrete_distribution<int>` (mirostat): weights normalised in double, partial sums with the
  last forced to 1.0, one canonical double, `lower_bound`. Fewer than two weights draw nothing.
"""

from __future__ import annotations

import bisect
import math
import os

import numpy as np

from ..errors import SamplerError

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.h: "pick a random seed"

_N = 624
_M = 397
_MATRIX_A = 0x9908B0DF
_UPPER = 0x80000000
_LOWER = 0x7FFFFFFF
_MASK32 = 0xFFFFFFFF
_TWO32 = 4294967296.0
_TWO64 = 18446744073709551616.0
_ONE_BELOW_D = math.nextafter(1.0, 0.0)
_ONE_BELOW_F = np.float32(1.0) - np.float32(2.0**-24)


def resolve_seed(seed: int | None) -> int:
    """llama.cpp's get_rng_seed: LLAMA_DEFAULT_SEED (or None / -1) means a fresh random seed."""
    if seed is None or seed == -1 or seed == LLAMA_DEFAULT_SEED:
        return int.from_bytes(os.urandom(4), "little")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise SamplerError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) <= _MASK32:
        raise SamplerError(f"seed must be in [0, 2**32 - 1] or -1 for random, got {seed}")
    return int(seed)


class MT19937:
    """The 32-bit Mersenne Twister, bit-identical to std::mt19937."""

    __slots__ = ("_mt", "_i")

    def __init__(self, seed: int = 5489):
        self.seed(seed)

    def seed(self, seed: int) -> None:
        mt = [0] * _N
        mt[0] = int(seed) & _MASK32
        for i in range(1, _N):
            prev = mt[i - 1]
            mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & _MASK32
        self._mt = mt
        self._i = _N

    def copy(self) -> "MT19937":
        other = MT19937.__new__(MT19937)
        other._mt = list(self._mt)
        other._i = self._i
        return other

    def __call__(self) -> int:
        """The next 32-bit output."""
        if self._i >= _N:
            self._twist()
        y = self._mt[self._i]
        self._i += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & _MASK32

    def _twist(self) -> None:
        mt = self._mt
        for i in range(_N):
            y = (mt[i] & _UPPER) | (mt[(i + 1) % _N] & _LOWER)
            v = mt[(i + _M) % _N] ^ (y >> 1)
            if y & 1:
                v ^= _MATRIX_A
            mt[i] = v
        self._i = 0


def uniform_double(rng: MT19937) -> float:
    """std::uniform_real_distribution<double>(0, 1)(rng) under libstdc++: two words per draw."""
    w0 = rng()
    w1 = rng()
    ret = (float(w0) + float(w1) * _TWO32) / _TWO64
    return _ONE_BELOW_D if ret >= 1.0 else ret


def uniform_float(rng: MT19937) -> np.float32:
    """std::uniform_real_distribution<float>(0, 1)(rng) under libstdc++: one word per draw."""
    ret = np.float32(rng()) / np.float32(_TWO32)
    return _ONE_BELOW_F if ret >= np.float32(1.0) else np.float32(ret)


def discrete(rng: MT19937, weights: np.ndarray) -> int:
    """std::discrete_distribution<int>(weights)(rng) under libstdc++."""
    w = [float(x) for x in weights]
    if len(w) < 2:
        return 0  # libstdc++ clears the table and returns 0 without drawing
    total = 0.0
    for x in w:
        total += x  # std::accumulate: left to right in double
    if not total > 0.0:
        raise SamplerError("discrete distribution: the weights sum to zero")
    cp = []
    run = 0.0
    for x in w:
        run += x / total
        cp.append(run)
    cp[-1] = 1.0
    return bisect.bisect_left(cp, uniform_double(rng))
