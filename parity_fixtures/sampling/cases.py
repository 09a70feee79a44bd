"""The sampler parity table, shared by make_fixtures.py (llama.cpp side) and the emel tests.

A case names an input (seeded random logits), a chain of samplers (llama_sampler_init_* names
with their positional arguments), tokens to accept before the first step, and a number of steps.
Each step applies the chain to a fresh candidate array (ids 0..n-1, unsorted) built from the
input; `accept_selected` then accepts the chosen token. A new case is a new row.
"""

from __future__ import annotations

import numpy as np

INF = float("inf")


def make_inputs() -> dict[str, np.ndarray]:
    """Seeded float32 logits; distinct values so llama.cpp's unstable sorts cannot reorder ties."""
    rs = np.random.RandomState(20261130)
    inputs = {
        "small": rs.randn(32) * 2.0,
        "small_b": rs.randn(32) * 0.5,
        "medium": rs.randn(300) * 3.0,
        "large": rs.randn(2000) * 2.5,
        "peaked": np.concatenate([[9.0, 7.5, 7.0], rs.randn(125) - 2.0]),
        "flat": rs.randn(64) * 0.05,
    }
    out = {}
    for k, v in inputs.items():
        v = v.astype(np.float32)
        assert len(np.unique(v)) == len(v), k
        out[k] = v
    return out


def _rows():
    rows = []

    def add(name, inp, chain, accept=(), steps=1, accept_selected=False, record="full"):
        rows.append(dict(name=name, input=inp, chain=chain, accept=list(accept), steps=steps,
                         accept_selected=accept_selected, record=record))

    add("greedy/small", "small", [["greedy", []]])
    add("greedy/large", "large", [["greedy", []]], record="selected")
    for k in (-3, 0, 1, 5, 31, 40, 200, 1500):
        for inp in ("small", "medium", "large"):
            if k in (-3, 0, 1500) and inp == "large":
                continue  # nothing cut: the whole array, recorded on the smaller inputs
            add(f"top_k/{k}/{inp}", inp, [["top_k", [k]]])
    add("top_k/1100/large", "large", [["top_k", [1100]], ["top_k", [3]]])
    for p in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0):
        for mk in (0, 1, 5):
            for inp in ("small", "large", "peaked"):
                if p == 1.0 and inp == "large":
                    continue
                add(f"top_p/{p}/{mk}/{inp}", inp, [["top_p", [p, mk]]])
    for p in (0.0, 0.01, 0.05, 0.2, 0.9, 1.5):
        for mk in (0, 3, 20):
            for inp in ("small", "medium", "peaked"):
                add(f"min_p/{p}/{mk}/{inp}", inp, [["min_p", [p, mk]]])
            add(f"min_p/{p}/{mk}/sorted", "medium", [["top_k", [60]], ["min_p", [p, mk]]])
    for p in (0.2, 0.5, 0.9, 0.99, 1.0):
        for mk in (0, 1, 3):
            for inp in ("small", "medium", "flat"):
                add(f"typical/{p}/{mk}/{inp}", inp, [["typical", [p, mk]]])
    for t in (-1.0, 0.0, 0.5, 0.8, 1.0, 1.7):
        add(f"temp/{t}", "small", [["temp", [t]]])
        add(f"temp/{t}/softmax", "medium", [["temp", [t]], ["top_p", [0.999, 0]]])
    for t, d, e in ((0.8, 0.5, 1.0), (1.0, 0.5, 2.0), (0.3, 0.5, 0.5), (0.8, 0.0, 1.0),
                    (0.5, 1.0, 1.0), (1.0, 0.0, 1.0), (0.2, 0.3, 1.0)):
        for inp in ("small", "medium", "peaked"):
            add(f"temp_ext/{t}/{d}/{e}/{inp}", inp, [["temp_ext", [t, d, e]]])
    for n in (-1.0, 0.5, 1.0, 2.0, 3.5):
        add(f"top_n_sigma/{n}/small", "small", [["top_n_sigma", [n]]])
        add(f"top_n_sigma/{n}/large", "large", [["top_n_sigma", [n]], ["top_k", [5]]])
        add(f"top_n_sigma/{n}/masked", "medium", [["top_k", [50]], ["temp", [0.0]],
                                                   ["top_n_sigma", [n]]])
    for p, t, mk, seed in ((0.5, 0.1, 1, 42), (1.0, 0.05, 0, 7), (0.3, 0.02, 2, 1234),
                           (1.0, 0.2, 5, 3), (0.9, 0.6, 1, 3)):
        for inp in ("small", "peaked"):
            add(f"xtc/{p}/{t}/{mk}/{seed}/{inp}", inp, [["xtc", [p, t, mk, seed]]], steps=20,
                record="size")
        add(f"xtc/{p}/{t}/{mk}/{seed}/full", "small", [["xtc", [p, t, mk, seed]]], steps=2)
    hist = [3, 5, 3, 7, 7, 7, 1, 3, 30, 31, 12, 3, 5, 5, 9, 0, 3]
    for last_n, rep, freq, pres in ((64, 1.1, 0.0, 0.0), (64, 1.0, 0.5, 0.3), (4, 1.3, 0.1, 0.2),
                                    (0, 1.5, 0.0, 0.0), (8, 0.8, -0.2, 0.4), (1, 2.0, 1.0, 1.0)):
        add(f"penalties/{last_n}/{rep}/{freq}/{pres}", "small",
            [["penalties", [32, last_n, rep, freq, pres]]], accept=hist)
    add("penalties/steps", "small", [["penalties", [32, 16, 1.3, 0.2, 0.1]], ["top_k", [8]],
                                     ["dist", [99]]], accept=hist, steps=40, accept_selected=True,
        record="selected")
    dry_hist = [1, 2, 3, 4, 1, 2, 3, 9, 1, 2, 3, 4, 1, 2, 3, 5, 6, 1, 2, 3, 4, 1, 2]
    for mult, base, allowed, last_n in ((0.8, 1.75, 2, 64), (1.0, 1.1, 1, 32), (2.0, 3.0, 3, 12),
                                        (0.5, 1.75, 2, 0), (0.8, 1.0, 0, 64), (1.0, 100.0, 0, 64)):
        add(f"dry/{mult}/{base}/{allowed}/{last_n}", "small",
            [["dry", [mult, base, allowed, last_n]]], accept=dry_hist)
    add("dry/steps", "small_b", [["dry", [1.5, 1.75, 1, 32]], ["top_k", [6]], ["dist", [5]]],
        accept=dry_hist, steps=40, accept_selected=True, record="selected")
    for bias in ([[3, 5.0], [7, -INF], [3, 1.0]], [[0, -2.5]], [[31, 10.0], [30, -1.0]]):
        add(f"logit_bias/{bias}", "small", [["logit_bias", [32, bias]]])
        add(f"logit_bias/{bias}/shuffled", "small", [["top_k", [20]], ["logit_bias", [32, bias]]])
    for seed in (0, 1, 42, 1234, 4294967294):
        for inp in ("small", "large"):
            add(f"dist/{seed}/{inp}", inp, [["dist", [seed]]], steps=1000, record="selected")
        add(f"dist/{seed}/probs", "medium", [["dist", [seed]]])
        add(f"dist/{seed}/sorted", "large", [["top_k", [40]], ["dist", [seed]]], steps=200,
            record="selected")
        add(f"dist/{seed}/single", "small", [["top_k", [1]], ["dist", [seed]], ["top_k", [3]]],
            steps=3, record="full")
    add("dist/single_then_many", "small",
        [["top_k", [1]], ["dist", [77]]], steps=5, record="selected")
    for seed, tau, eta, m in ((42, 5.0, 0.1, 100), (7, 3.0, 0.2, 100), (9, 8.0, 0.05, 10)):
        for inp in ("medium", "large"):
            add(f"mirostat/{seed}/{tau}/{eta}/{m}/{inp}", inp,
                [["mirostat", [len_of(inp), seed, tau, eta, m]]], steps=50, accept_selected=True,
                record="selected")
    for seed, tau, eta in ((42, 5.0, 0.1), (7, 2.0, 0.3), (9, 9.0, 0.05)):
        for inp in ("medium", "peaked"):
            add(f"mirostat_v2/{seed}/{tau}/{eta}/{inp}", inp,
                [["mirostat_v2", [seed, tau, eta]]], steps=50, accept_selected=True,
                record="selected")
        add(f"mirostat_v2/{seed}/{tau}/{eta}/full", "medium", [["mirostat_v2", [seed, tau, eta]]])
    # llama.cpp's common default chain (common/sampling.cpp) at several temperatures
    for seed in (1, 2026):
        for temp in (0.8, 0.0, 1.5):
            add(f"default_chain/{seed}/{temp}", "large",
                [["penalties", [2000, 64, 1.1, 0.0, 0.0]], ["top_k", [40]], ["top_p", [0.95, 0]],
                 ["min_p", [0.05, 0]], ["temp_ext", [temp, 0.0, 1.0]], ["dist", [seed]]],
                steps=300, accept_selected=True, record="selected")
    add("everything_chain", "large",
        [["logit_bias", [2000, [[5, 3.0]]]], ["penalties", [2000, 32, 1.2, 0.1, 0.1]],
         ["dry", [0.8, 1.75, 2, 64]], ["top_n_sigma", [3.0]], ["top_k", [100]],
         ["typical", [0.95, 1]], ["top_p", [0.9, 1]], ["min_p", [0.02, 1]],
         ["xtc", [0.5, 0.05, 1, 11]], ["temp_ext", [0.9, 0.3, 1.0]], ["dist", [11]]],
        steps=200, accept_selected=True, record="selected")
    # degenerate inputs: one candidate left, every logit but one at -inf
    add("edge/mirostat_single", "small", [["top_k", [1]], ["mirostat", [32, 3, 5.0, 0.1, 100]]],
        steps=3, accept_selected=True, record="full")
    add("edge/mirostat_v2_single", "small", [["top_k", [1]], ["mirostat_v2", [3, 5.0, 0.1]]],
        steps=3, accept_selected=True, record="full")
    add("edge/greedy_then_everything", "medium",
        [["temp", [0.0]], ["temp_ext", [0.8, 0.5, 1.0]], ["top_p", [0.9, 0]],
         ["typical", [0.5, 0]], ["min_p", [0.1, 0]], ["xtc", [1.0, 0.01, 1, 3]], ["dist", [3]]],
        steps=3, record="full")
    add("edge/top_n_sigma_then_dist", "large",
        [["top_n_sigma", [0.1]], ["dist", [8]]], steps=50, record="selected")
    add("edge/min_keep_larger_than_size", "small",
        [["top_k", [3]], ["top_p", [0.1, 10]], ["min_p", [0.9, 10]], ["typical", [0.1, 10]]])
    return rows


def len_of(inp: str) -> int:
    return {"small": 32, "small_b": 32, "medium": 300, "large": 2000, "peaked": 128,
            "flat": 64}[inp]


CASES = _rows()
