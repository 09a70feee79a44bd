"""libstdc++ orderings llama.cpp's vocabulary depends on: unordered_map iteration, std::sort.

llama.cpp auto-detects EOT and FIM tokens by walking `token_to_id`, an unordered map, and keeps
the first match; which one that is depends on libstdc++: its string hash (`std::_Hash_bytes`,
MurmurHash64A with seed 0xc70f6907), its prime rehash policy and how its node list is relinked
on insert and rehash. This module replays inserting every token in id order and returns each
token's position in the final iteration order. The bucket primes are libstdc++'s
`std::__detail::__prime_list` (those below 2**32).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_PRIMES = np.array([
    2, 3, 5, 7, 11, 13, 17, 19,
    23, 29, 31, 37, 41, 43, 47, 53,
    59, 61, 67, 71, 73, 79, 83, 89,
    97, 103, 109, 113, 127, 137, 139, 149,
    157, 167, 179, 193, 199, 211, 227, 241,
    257, 277, 293, 313, 337, 359, 383, 409,
    439, 467, 503, 541, 577, 619, 661, 709,
    761, 823, 887, 953, 1031, 1109, 1193, 1289,
    1381, 1493, 1613, 1741, 1879, 2029, 2179, 2357,
    2549, 2753, 2971, 3209, 3469, 3739, 4027, 4349,
    4703, 5087, 5503, 5953, 6427, 6949, 7517, 8123,
    8783, 9497, 10273, 11113, 12011, 12983, 14033, 15173,
    16411, 17749, 19183, 20753, 22447, 24281, 26267, 28411,
    30727, 33223, 35933, 38873, 42043, 45481, 49201, 53201,
    57557, 62233, 67307, 72817, 78779, 85229, 92203, 99733,
    107897, 116731, 126271, 136607, 147793, 159871, 172933, 187091,
    202409, 218971, 236897, 256279, 277261, 299951, 324503, 351061,
    379787, 410857, 444487, 480881, 520241, 562841, 608903, 658753,
    712697, 771049, 834181, 902483, 976369, 1056323, 1142821, 1236397,
    1337629, 1447153, 1565659, 1693859, 1832561, 1982627, 2144977, 2320627,
    2510653, 2716249, 2938679, 3179303, 3439651, 3721303, 4026031, 4355707,
    4712381, 5098259, 5515729, 5967347, 6456007, 6984629, 7556579, 8175383,
    8844859, 9569143, 10352717, 11200489, 12117689, 13109983, 14183539, 15345007,
    16601593, 17961079, 19431899, 21023161, 22744717, 24607243, 26622317, 28802401,
    31160981, 33712729, 36473443, 39460231, 42691603, 46187573, 49969847, 54061849,
    58488943, 63278561, 68460391, 74066549, 80131819, 86693767, 93793069, 101473717,
    109783337, 118773397, 128499677, 139022417, 150406843, 162723577, 176048909, 190465427,
    206062531, 222936881, 241193053, 260944219, 282312799, 305431229, 330442829, 357502601,
    386778277, 418451333, 452718089, 489790921, 529899637, 573292817, 620239453, 671030513,
    725980837, 785430967, 849749479, 919334987, 994618837, 1076067617, 1164186217, 1259520799,
    1362662261, 1474249943, 1594975441, 1725587117, 1866894511, 2019773507, 2185171673, 2364114217,
    2557710269, 2767159799, 2993761039, 3238918481, 3504151727, 3791104843, 4101556399, 4294967291,
], dtype=np.int64)
_FAST_BKT = np.array([2, 2, 2, 3, 5, 5, 7, 7, 11, 11, 11, 11, 13, 13], dtype=np.int64)


def iteration_rank(tokens: list[bytes]) -> np.ndarray:
    """int64[n]: position of each token id when llama.cpp iterates token_to_id."""
    n = len(tokens)
    lens = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = np.frombuffer(b"".join(tokens), dtype=np.uint8) if n else np.zeros(0, np.uint8)
    return _replay(data, offsets, _PRIMES, _FAST_BKT)


@njit(cache=True, nogil=True)
def _shift_mix(v):
    return v ^ (v >> np.uint64(47))


@njit(cache=True, nogil=True)
def hash_bytes(data, a, b):
    """std::_Hash_bytes(data + a, b - a, 0xc70f6907) on a 64-bit little-endian machine."""
    mul = np.uint64(0xC6A4A7935BD1E995)
    ln = np.uint64(b - a)
    h = np.uint64(0xC70F6907) ^ (ln * mul)
    n_al = (b - a) & ~7
    p = a
    while p < a + n_al:
        v = np.uint64(0)
        for k in range(7, -1, -1):
            v = (v << np.uint64(8)) | np.uint64(data[p + k])
        h ^= _shift_mix(v * mul) * mul
        h *= mul
        p += 8
    rem = (b - a) & 7
    if rem:
        v = np.uint64(0)
        for k in range(rem - 1, -1, -1):
            v = (v << np.uint64(8)) | np.uint64(data[p + k])
        h ^= v
        h *= mul
    h = _shift_mix(h) * mul
    return _shift_mix(h)


@njit(cache=True, nogil=True)
def _next_bkt(n, primes, fast):
    """_Prime_rehash_policy::_M_next_bkt -> (buckets, next_resize)."""
    if n < fast.size:
        if n == 0:
            return np.int64(1), np.int64(0)
        return fast[n], fast[n]
    lo = 6
    hi = primes.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if primes[mid] < n:
            lo = mid + 1
        else:
            hi = mid
    return primes[lo], primes[lo]


@njit(cache=True, nogil=True)
def _replay(data, offsets, primes, fast):
    n = offsets.size - 1
    h = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h[i] = hash_bytes(data, offsets[i], offsets[i + 1])
    bb = n  # the list head (_M_before_begin)
    nxt = np.full(n + 1, -1, dtype=np.int64)
    n_bkt = np.int64(1)
    next_resize = np.int64(0)
    buckets = np.full(1, -1, dtype=np.int64)
    for i in range(n):
        # _M_need_rehash(n_bkt, n_elt=i, n_ins=1), max_load_factor 1.0
        if i + 1 > next_resize:
            min_bkts = max(i + 1, 0 if next_resize else 11)
            if min_bkts >= n_bkt:
                new_bkt, next_resize = _next_bkt(max(min_bkts + 1, n_bkt * 2), primes, fast)
                new_buckets = np.full(new_bkt, -1, dtype=np.int64)
                p = nxt[bb]
                nxt[bb] = -1
                bbegin = 0
                while p != -1:
                    p_next = nxt[p]
                    b = np.int64(h[p] % np.uint64(new_bkt))
                    if new_buckets[b] == -1:
                        nxt[p] = nxt[bb]
                        nxt[bb] = p
                        new_buckets[b] = bb
                        if nxt[p] != -1:
                            new_buckets[bbegin] = p
                        bbegin = b
                    else:
                        nxt[p] = nxt[new_buckets[b]]
                        nxt[new_buckets[b]] = p
                    p = p_next
                buckets = new_buckets
                n_bkt = new_bkt
            else:
                next_resize = n_bkt
        b = np.int64(h[i] % np.uint64(n_bkt))
        if buckets[b] != -1:
            nxt[i] = nxt[buckets[b]]
            nxt[buckets[b]] = i
        else:
            nxt[i] = nxt[bb]
            nxt[bb] = i
            if nxt[i] != -1:
                buckets[np.int64(h[nxt[i]] % np.uint64(n_bkt))] = i
            buckets[b] = bb
    rank = np.empty(n, dtype=np.int64)
    p = nxt[bb]
    k = 0
    while p != -1:
        rank[p] = k
        k += 1
        p = nxt[p]
    return rank


def sort_by_length_desc(ids: list[int], lengths: np.ndarray) -> list[int]:
    """`std::sort(ids, [](a, b) { return len(a) > len(b); })` with libstdc++'s introsort.

    llama.cpp orders its special-token cache this way; std::sort is not stable, so among tokens
    of equal length the order is libstdc++'s, which the partition of overlapping tokens sees.
    """
    arr = np.asarray(ids, dtype=np.int64)
    if arr.size > 1:
        _introsort(arr, np.ascontiguousarray(lengths, dtype=np.int64))
    return arr.tolist()


@njit(cache=True, nogil=True, inline="always")
def _less(key, a, b):
    return key[a] > key[b]


@njit(cache=True, nogil=True)
def _introsort(arr, key):
    n = arr.size
    depth = 0
    m = n
    while m > 1:
        m >>= 1
        depth += 1
    # explicit stack of (first, last, depth_limit) replaying __introsort_loop's recursion order
    stack = np.empty((2 * 64 + 8, 3), dtype=np.int64)
    stack[0, 0] = 0
    stack[0, 1] = n
    stack[0, 2] = depth * 2  # std::__lg(n) * 2
    sp = 1
    while sp > 0:
        sp -= 1
        first = stack[sp, 0]
        last = stack[sp, 1]
        limit = stack[sp, 2]
        while last - first > 16:
            if limit == 0:
                _heap_sort(arr, key, first, last)
                break
            limit -= 1
            cut = _partition_pivot(arr, key, first, last)
            # recurse on [cut, last) first, then loop on [first, cut): push the loop part
            # underneath so the right part is fully handled before it
            stack[sp, 0] = first
            stack[sp, 1] = cut
            stack[sp, 2] = limit
            sp += 1
            first = cut
            # the right part continues in this loop with the same limit
    _final_insertion_sort(arr, key, 0, n)


@njit(cache=True, nogil=True)
def _partition_pivot(arr, key, first, last):
    mid = first + (last - first) // 2
    a = first + 1
    b = mid
    c = last - 1
    if _less(key, arr[a], arr[b]):
        if _less(key, arr[b], arr[c]):
            arr[first], arr[b] = arr[b], arr[first]
        elif _less(key, arr[a], arr[c]):
            arr[first], arr[c] = arr[c], arr[first]
        else:
            arr[first], arr[a] = arr[a], arr[first]
    elif _less(key, arr[a], arr[c]):
        arr[first], arr[a] = arr[a], arr[first]
    elif _less(key, arr[b], arr[c]):
        arr[first], arr[c] = arr[c], arr[first]
    else:
        arr[first], arr[b] = arr[b], arr[first]
    lo = first + 1
    hi = last
    pivot = arr[first]
    while True:
        while _less(key, arr[lo], pivot):
            lo += 1
        hi -= 1
        while _less(key, pivot, arr[hi]):
            hi -= 1
        if not lo < hi:
            return lo
        arr[lo], arr[hi] = arr[hi], arr[lo]
        lo += 1


@njit(cache=True, nogil=True)
def _final_insertion_sort(arr, key, first, last):
    if last - first > 16:
        _insertion_sort(arr, key, first, first + 16)
        for i in range(first + 16, last):
            _linear_insert(arr, key, i)
    else:
        _insertion_sort(arr, key, first, last)


@njit(cache=True, nogil=True)
def _insertion_sort(arr, key, first, last):
    if first == last:
        return
    for i in range(first + 1, last):
        if _less(key, arr[i], arr[first]):
            val = arr[i]
            for j in range(i, first, -1):
                arr[j] = arr[j - 1]
            arr[first] = val
        else:
            _linear_insert(arr, key, i)


@njit(cache=True, nogil=True)
def _linear_insert(arr, key, last):
    val = arr[last]
    nxt = last - 1
    while nxt >= 0 and _less(key, val, arr[nxt]):
        arr[last] = arr[nxt]
        last = nxt
        nxt -= 1
    arr[last] = val


@njit(cache=True, nogil=True)
def _adjust_heap(arr, key, first, hole, n, value):
    top = hole
    second = hole
    while second < (n - 1) // 2:
        second = 2 * (second + 1)
        if _less(key, arr[first + second], arr[first + second - 1]):
            second -= 1
        arr[first + hole] = arr[first + second]
        hole = second
    if (n & 1) == 0 and second == (n - 2) // 2:
        second = 2 * (second + 1)
        arr[first + hole] = arr[first + second - 1]
        hole = second - 1
    parent = (hole - 1) // 2
    while hole > top and _less(key, arr[first + parent], value):
        arr[first + hole] = arr[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    arr[first + hole] = value


@njit(cache=True, nogil=True)
def _heap_sort(arr, key, first, last):
    n = last - first
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(arr, key, first, parent, n, arr[first + parent])
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        value = arr[last]
        arr[last] = arr[first]
        _adjust_heap(arr, key, first, 0, last - first, value)
