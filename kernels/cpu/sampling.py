"""Sampling kernels: the float loops of llama.cpp's samplers, in llama.cpp's precision and order.

Follows src/llama-sampler.cpp. Every sum runs left to right in the type llama.cpp uses (float for
softmax, top-p, typical and entropy; double where llama.cpp uses double: dist, temp-ext), and
exp/log/pow go through libm's expf/logf/powf as llama.cpp's scalar C++ does, so probabilities
match bit for bit. `error_model="numpy"`: a division by zero gives inf/NaN as in C instead of
raising. Inputs are C-contiguous 1-D arrays: float32 logits/p, int64 order, plus a
live length `n` that the Python wrapper has checked against the arrays' lengths.
"""

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def max_f32(logits, n):
    """Largest of logits[:n] (n >= 1); float32[n]."""
    m = logits[0]
    for i in range(1, n):
        if logits[i] > m:
            m = logits[i]
    return m


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_f32(logits, p, n, max_l):
    """llama_sampler_softmax_impl: p[i] = expf(logits[i] - max_l) / float sum; float32[n]."""
    cum_sum = np.float32(0.0)
    for i in range(n):
        e = np.float32(math.exp(logits[i] - max_l))
        p[i] = e
        cum_sum += e
    for i in range(n):
        p[i] = p[i] / cum_sum


@njit(cache=True, nogil=True, error_model="numpy")
def dist_select_f32(logits, p, n, max_l, rnd):
    """llama_sampler_dist_apply for n >= 2: fills p, returns the index picked by `rnd` in [0, 1).

    The unnormalised float probabilities are summed in double; the target is sum * rnd and the
    first index whose running (double) sum reaches it is selected; p is then normalised.
    """
    sum_cum = 0.0
    for i in range(n):
        e = np.float32(math.exp(logits[i] - max_l))
        p[i] = e
        sum_cum += np.float64(e)
    sum_tgt = sum_cum * rnd
    sum_run = 0.0
    selected = -1
    for i in range(n):
        if selected < 0:
            sum_run += np.float64(p[i])
            if sum_run >= sum_tgt:
                selected = i
        p[i] = np.float32(np.float64(p[i]) / sum_cum)
    if selected < 0:
        selected = n - 1
    return selected


@njit(cache=True, nogil=True, error_model="numpy")
def top_p_cut_f32(p, n, top_p, min_keep):
    """Number of leading (sorted) entries whose float running sum first reaches top_p."""
    cum_sum = np.float32(0.0)
    for i in range(n):
        cum_sum += p[i]
        if cum_sum >= top_p and i + 1 >= min_keep:
            return i + 1
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def typical_scores_f32(p, n, scores):
    """Entropy (float) of p[:n], and scores[i] = |-logf(p[i]) - entropy|; float32[n]."""
    entropy = np.float32(0.0)
    for i in range(n):
        entropy += -p[i] * np.float32(math.log(p[i]))
    for i in range(n):
        scores[i] = abs(-np.float32(math.log(p[i])) - entropy)
    return entropy


@njit(cache=True, nogil=True, error_model="numpy")
def typical_cut_f32(p, order, n, typ_p, min_keep):
    """Entries of `order` kept by locally typical sampling (float running sum, strict >)."""
    cum_sum = np.float32(0.0)
    for i in range(n):
        cum_sum += p[order[i]]
        if cum_sum > typ_p and (min_keep == 0 or i >= min_keep - 1):
            return i + 1
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def entropy_f32(p, n):
    """-sum p*logf(p) over p > 0, in float."""
    entropy = np.float32(0.0)
    for i in range(n):
        if p[i] > np.float32(0.0):
            entropy -= p[i] * np.float32(math.log(p[i]))
    return entropy


@njit(cache=True, nogil=True, error_model="numpy")
def softmax_f64_f32(logits, p, n):
    """temp-ext's second softmax: exp in double from logits[0] (the max), double sum, float p."""
    max_l = np.float64(logits[0])
    cum_sum = 0.0
    for i in range(n):
        e = math.exp(np.float64(logits[i]) - max_l)
        p[i] = np.float32(e)
        cum_sum += e
    for i in range(n):
        p[i] = np.float32(np.float64(p[i]) / cum_sum)


@njit(cache=True, nogil=True, error_model="numpy")
def top_n_sigma_mask_f32(logits, n, nsigma):
    """Set logits below max - nsigma * std (over finite entries) to -inf; float32[n]."""
    neg_inf = np.float32(-np.inf)
    mx = logits[0]
    logits_sum = np.float32(0.0)
    valid = 0
    for i in range(n):
        if logits[i] != neg_inf:
            if logits[i] > mx:
                mx = logits[i]
            logits_sum += logits[i]
            valid += 1
    mean = np.float32(0.0)
    if valid > 0:
        mean = logits_sum / np.float32(valid)
    acc = np.float32(0.0)
    for i in range(n):
        if logits[i] != neg_inf:
            d = np.float64(logits[i] - mean)
            acc = np.float32(np.float64(acc) + d * d)
    std = np.float32(0.0)
    if valid > 0:
        std = np.float32(math.sqrt(acc / np.float32(valid)))
    cut = mx - nsigma * std
    for i in range(n):
        if logits[i] < cut:
            logits[i] = neg_inf


@njit(cache=True, nogil=True, error_model="numpy")
def mirostat_k_f32(p, n, m, mu, n_vocab):
    """Mirostat v1's k estimate from the m most probable (sorted) probabilities, in float."""
    sum_ti_bi = np.float32(0.0)
    sum_ti_sq = np.float32(0.0)
    i = 0
    while i < m - 1 and i < n - 1:
        t_i = np.float32(math.log(np.float32(i + 2) / np.float32(i + 1)))
        b_i = np.float32(math.log(p[i] / p[i + 1]))
        sum_ti_bi += t_i * b_i
        sum_ti_sq += t_i * t_i
        i += 1
    s_hat = sum_ti_bi / sum_ti_sq
    epsilon_hat = s_hat - np.float32(1.0)
    num = epsilon_hat * np.float32(math.pow(np.float32(2.0), mu))
    den = np.float32(1.0) - np.float32(math.pow(np.float32(n_vocab), -epsilon_hat))
    return np.float32(math.pow(num / den, np.float32(1.0) / s_hat))


@njit(cache=True, nogil=True, error_model="numpy")
def neg_log2_f32(x):
    """-log2f(x) in float."""
    return -np.float32(math.log2(x))


@njit(cache=True, nogil=True, error_model="numpy")
def log_f32(x):
    """logf(x)."""
    return np.float32(math.log(np.float32(x)))


@njit(cache=True, nogil=True, error_model="numpy")
def dyn_temp_f32(p, n, temp, delta, exponent):
    """temp-ext's dynamic temperature from the entropy of p[:n] (n >= 2), all in float."""
    min_temp = max(np.float32(0.0), temp - delta)
    max_temp = temp + delta
    max_entropy = -np.float32(math.log(np.float32(1.0) / np.float32(n)))
    entropy = np.float32(0.0)
    for i in range(n):
        if p[i] > np.float32(0.0):
            entropy -= p[i] * np.float32(math.log(p[i]))
    normalized = entropy / max_entropy
    return min_temp + (max_temp - min_temp) * np.float32(math.pow(normalized, exponent))


@njit(cache=True, nogil=True, error_model="numpy")
def mirostat_v2_cut_f32(p, n, mu):
    """Index of the first (sorted) entry whose surprise -log2f(p) exceeds mu, or n."""
    for i in range(n):
        if -np.float32(math.log2(p[i])) > mu:
            return i
    return n
