"""GGUF parse and model load time: `python -m emel.bench --load MODEL [--runs N] [--no-mmap]
[--no-gguf-py]`.

MODEL is a catalog name (`smollm2-135m`, `gemma3-270m`) or a path. Prints the median of N runs of
emel.gguf.read (metadata + tensor table) and of emel.loader.load_model_file (parse, hparams, tensor
checks, every page touched), beside gguf-py GGUFReader's time to open the same file, measured in
this run. llama.cpp parses Gemma-3-270M's header in about 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from .. import catalog, gguf
from ..errors import EmelError
from ..loader import load_model_file


def _model_path(model: str) -> Path:
    if model in catalog.CATALOG:
        return catalog.fetch(model)
    path = Path(model)
    if not path.is_file():
        raise SystemExit(f"--load: {model!r} is neither a catalog model "
                         f"({', '.join(catalog.CATALOG)}) nor a file")
    return path


def _median_s(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m emel.bench --load")
    ap.add_argument("--load", required=True, metavar="MODEL")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-mmap", action="store_true", help="read the file instead of mapping it")
    ap.add_argument("--no-gguf-py", action="store_true", help="skip gguf-py's GGUFReader")
    args = ap.parse_args(argv)
    path = _model_path(args.load)
    use_mmap = not args.no_mmap

    gf = gguf.read(path, use_mmap=use_mmap)  # warm the page cache
    n_str = sum(len(v) for v in gf.metadata.values() if isinstance(v, list))
    print(f"model: {path} ({path.stat().st_size / 2**20:.1f} MiB, {len(gf.metadata)} keys, "
          f"{n_str} strings in arrays, {len(gf.tensors)} tensors, mmap={use_mmap})")
    parse = _median_s(lambda: gguf.read(path, use_mmap=use_mmap), args.runs)
    print(f"emel parse (metadata + tensor table): {parse * 1e3:9.1f} ms  (median of {args.runs})")
    try:
        load = _median_s(lambda: load_model_file(path, use_mmap=use_mmap), args.runs)
        print(f"emel full load (hparams, tensor checks, pages touched): {load * 1e3:9.1f} ms")
    except EmelError as e:
        print(f"emel full load: not available: {e}")
    if not args.no_gguf_py:
        from gguf import GGUFReader
        t0 = time.perf_counter()
        GGUFReader(path)
        ref = time.perf_counter() - t0
        print(f"gguf-py GGUFReader open:              {ref * 1e3:9.1f} ms  (1 run), "
              f"{ref / parse:.0f}x emel's parse")
    return 0
