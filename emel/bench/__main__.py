"""Dispatch `python -m emel.bench` to one benchmark module by its flag.

  --load MODEL       GGUF parse and model load time           (emel.bench.load)
  --kernels          quantized matmul GB/s per type           (emel.bench.kernels)
  --alloc            graph allocator plan vs llama.cpp        (emel.bench.alloc)
  --dequant          dequantize throughput per type           (emel.bench.dequant)
  --tokenize         tokenizer MB/s per family                (emel.bench.tokenize)
  --grammar          grammar sampler cost per token           (emel.bench.grammar)
  -m MODEL ...       prefill / decode tok/s like llama-bench  (emel.bench.model)
"""

from __future__ import annotations

import importlib
import sys

_MODES = {"--load": "load", "--dequant": "dequant", "--alloc": "alloc", "--kernels": "kernels", "--tokenize": "tokenize", "--grammar": "grammar"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    mode = next((m for flag, m in _MODES.items() if flag in argv), "model")
    module = importlib.import_module(f"emel.bench.{mode}")
    return module.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
