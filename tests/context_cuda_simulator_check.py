"""CudaContext against the CPU Context on tiny random-weight models (parity_fixtures/logits/tiny_models.py).

Run by tests/test_context_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or `--gpu` on a
real GPU). For each architecture: a prompt of several tokens (all logits), a single-token decode step over
the cache, then a batch holding a second sequence; prints one JSON line per step with the
largest logit difference relative to the largest |logit|.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "parity_fixtures" / "logits"))


def run(arch: str, tmp: Path, n_prompt: int, two_sequences: bool = True) -> list[dict]:
    import tiny_models

    from emel.context import Batch, Context, ContextParams
    from emel.context_cuda import CudaContext

    path = tiny_models.write(arch, tmp / f"{arch}.gguf")
    toks = tiny_models.tokens(arch, n_prompt + 3)
    params = ContextParams(n_ctx=256, n_batch=64, n_ubatch=64, n_seq_max=2)
    cpu = Context(path, params)
    gpu = CudaContext(path, params, weights=cpu.weights)
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
        rows.append({"arch": arch, "step": name, "shape": list(a.shape), "rel": rel,
                     "same_argmax": same_argmax,
                     "ith": bool(np.array_equal(gpu.get_logits_ith(-1), b[-1]))})
    return rows


def _fast_simulator() -> None:
    """Make the simulator cheaper without changing what it computes.

    - Device functions become plain Python functions: the simulator runs them as Python anyway,
      but its wrapper swaps module globals on every call (~10x the cost of the kernels here).
      None of the device functions of kernels/cuda use the `cuda` API.
    - A short GIL switch interval: each syncthreads() waits for the simulator's polling thread,
      which otherwise holds the GIL for the default 5 ms.
    Must run before kernels.cuda is imported.
    """
    from numba import cuda

    jit = cuda.jit

    def device_as_python(func_or_sig=None, device=False, **kws):
        if device:
            return func_or_sig if callable(func_or_sig) else (lambda fn: fn)
        return jit(func_or_sig, device=device, **kws)

    cuda.jit = device_as_python
    sys.setswitchinterval(1e-5)


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
            for row in run(arch, Path(d), 12 if gpu else 3, two_sequences=full):
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
