"""Dequantize throughput per quant type: `python -m emel.bench.dequant [--model NAME] [--repeat N]`.

For every quantized type of the model (default gemma3-270m) it dequantizes the largest tensor of
that type with kernels.dequantize (all threads) and reports input GB/s and output Gvalues/s, then
the time of one token_embd row (the decoder's get_rows) through the njit entry point.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from emel import catalog, gguf
from kernels.cpu import quants


@njit(cache=True, nogil=True)
def _get_row(data, row_nbytes, n_cols, row, out, ggml_type):
    return quants.dequantize_row(data, row * row_nbytes, n_cols, out, 0, ggml_type)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emel.bench.dequant")
    ap.add_argument("--dequant", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    f = gguf.read(catalog.fetch(args.model))
    largest: dict[int, gguf.TensorInfo] = {}
    for info in f.tensors.values():
        t = int(info.ggml_type)
        if t in quants.DEQUANTIZE_TYPES and (t not in largest or info.nbytes > largest[t].nbytes):
            largest[t] = info
    print(f"model {args.model}, best of {args.repeat}")
    print(f"{'type':8} {'tensor':28} {'MB':>8} {'ms':>8} {'GB/s in':>8} {'Gval/s':>7}")
    for t, info in sorted(largest.items()):
        data = f.tensor_data(info.name)
        out = np.empty(info.n_elements, np.float32)
        quants.dequantize(data, t, info.n_elements, out=out)  # compile / warm up
        best = min(_timed(lambda: quants.dequantize(data, t, info.n_elements, out=out)) for _ in range(args.repeat))
        print(f"{quants.type_name(t):8} {info.name:28} {info.nbytes / 1e6:8.2f} {best * 1e3:8.2f} "
              f"{info.nbytes / best / 1e9:8.2f} {info.n_elements / best / 1e9:7.2f}")

    emb = f.tensors["token_embd.weight"]
    n_cols, n_rows = emb.shape
    data = f.tensor_data(emb.name)
    row = np.empty(n_cols, np.float32)
    _get_row(data, emb.nbytes // n_rows, n_cols, 0, row, int(emb.ggml_type))
    best = min(_timed(lambda: _get_row(data, emb.nbytes // n_rows, n_cols, n_rows - 1, row, int(emb.ggml_type)))
               for _ in range(args.repeat * 20))
    print(f"get_rows token_embd ({quants.type_name(int(emb.ggml_type))}, {n_cols} values): {best * 1e6:.1f} us")
    return 0


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
