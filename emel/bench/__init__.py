"""Benchmarks (`python -m emel.bench`): speed and memory are measured here, never in unit tests.

Each mode lives in its own module: `load` (GGUF parse and model load), `kernels` (matmul GB/s),
`tokenize` (tokenizer MB/s), `model` (pp/tg tok/s like llama-bench), `grammar`.
"""
