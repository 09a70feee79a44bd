"""CudaContext against the CPU Context on tiny random-weight models (parity_fixtures/logits/tiny_models.py).

Run by tests/test_context_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or `--gpu` on a
real GPU). For each architecture: a prompt of several tokens (all logits), a single-token decode step over
the cache, then a batch holding a second sequence; prints one JSON line per step with the
largest logit difference relative to the largest |logit|. Each architecture runs twice: with the
CUDA matmul ("matmul": "cuda", the real thing) and with the CPU context's own matmul results
copied to the device ("matmul": "host"), which isolates everything but the matmul.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "parity_fixtures" / "logits"))


def run(arch: str, tmp: Path, n_prompt: int, two_sequences: bool = True,
        matmul: str = "cuda") -> list[dict]:
    import tiny_models

    from emel import context_cuda
    from emel.context import Batch, Context, ContextParams
    from emel.context_cuda import CudaContext

    path = tiny_models.write(arch, tmp / f"{arch}.gguf")
    toks = tiny_models.tokens(arch, n_prompt + 3)
    params = ContextParams(n_ctx=256, n_batch=64, n_ubatch=64, n_seq_max=2)
    cpu = Context(path, params)
    gpu = CudaContext(path, params, weights=cpu.weights)
    if matmul == "host":
        gpu.dev.linear = _host_matmul.__get__(gpu.dev, context_cuda._DeviceModel)
    steps = [
        # prompt: llamafile-order (sgemm) attention; decode: ggml_vec_dot_f16 order
        ("prompt", Batch(token=toks[:n_prompt], logits=[True] * n_prompt)),
        ("decode", Batch(token=[toks[n_prompt]])),
        # a second sequence in one batch with a token of the first: per-sequence gather/scatter
        ("two sequences", Batch(token=[toks[0], toks[n_prompt + 1]], pos=[0, n_prompt + 1],
                                seq_id=[1, 0], logits=[True, True])),
    ][:3 if two_sequences else 2]
    rows = []
    for name, batch in steps:
        cpu.decode(batch)
        gpu.decode(batch)
        a, b = cpu.get_logits(), gpu.get_logits()
        rel = float(np.abs(a - b).max() / np.abs(a).max())
        same_argmax = bool((a.argmax(axis=1) == b.argmax(axis=1)).all())
        rows.append({"arch": arch, "step": name, "matmul": matmul, "shape": list(a.shape), "rel": rel,
                     "same_argmax": same_argmax,
                     "ith": bool(np.array_equal(gpu.get_logits_ith(-1), b[-1]))})
    return rows


def _fast_simulator() -> None:
    """A short GIL switch interval: each syncthreads() waits for the simulator's polling thread,
    which otherwise holds the GIL for the default 5 ms. (Device functions of kernels/cuda are
    plain Python under the simulator, and its shared-array allocation is made thread-safe:
    kernels/cuda/simulator.py.)"""
    sys.setswitchinterval(1e-5)


def _host_matmul(self, A, lin, x, n_tokens: int, out=None, bias=None):
    """_DeviceModel.linear through the CPU context's own Linear (copied back to the device): with
    it, the device graph and the CPU context share the matmul results, so any other difference
    (an op, the KV cells, a mask, a position, a gather/scatter) shows up unamplified."""
    if out is None:
        out = A.take(n_tokens * lin.n_rows)
    xh = x[:n_tokens * lin.n_cols].copy_to_host().reshape(n_tokens, lin.n_cols)
    y = np.ascontiguousarray(lin(xh), dtype=np.float32).reshape(-1)
    out[:y.size].copy_to_device(y)
    if bias is not None:
        self.add_rows(out, bias, out, n_tokens, lin.n_rows)
    return out


def main(argv: list[str]) -> int:
    gpu = "--gpu" in argv
    if not gpu:
        assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
        _fast_simulator()
    archs = [a for a in argv if not a.startswith("--")] or ["llama", "gemma3", "qwen2", "qwen3"]
    with tempfile.TemporaryDirectory() as d:
        for arch in archs:
            # the batch plumbing (two sequences) once per graph function; qwen2/3 share llama's
            full = gpu or arch in ("llama", "gemma3")
            for matmul in ("cuda", "host"):
                for row in run(arch, Path(d), 12 if gpu else 3, two_sequences=full, matmul=matmul):
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
