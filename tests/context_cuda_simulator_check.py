"""CudaContext against the CPU Context on tiny random-weight models (parity_fixtures/logits/tiny_models.py).

Run by tests/test_context_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or `--gpu` on a
real GPU). For each architecture: a prompt of several tokens (all logits), then two single-token
decode steps over the cache, then a second sequence; prints one JSON line per step with the
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


def run(arch: str, tmp: Path, n_prompt: int) -> list[dict]:
    import tiny_models

    from emel.context import Batch, Context, ContextParams
    from emel.context_cuda import CudaContext

    path = tiny_models.write(arch, tmp / f"{arch}.gguf")
    toks = tiny_models.tokens(arch, n_prompt + 3)
    params = ContextParams(n_ctx=256, n_batch=64, n_ubatch=64, n_seq_max=2)
    cpu = Context(path, params)
    gpu = CudaContext(path, params, weights=cpu.weights)
    steps = [
        ("prompt", Batch(token=toks[:n_prompt], logits=[True] * n_prompt)),
        ("decode 1", Batch(token=[toks[n_prompt]])),
        ("decode 2", Batch(token=[toks[n_prompt + 1]])),
        # a second sequence in one batch with a token of the first: per-sequence gather/scatter
        ("two sequences", Batch(token=[toks[0], toks[1], toks[n_prompt + 2]],
                                pos=[0, 1, n_prompt + 2], seq_id=[1, 1, 0], logits=[True, True, True])),
    ]
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


def main(argv: list[str]) -> int:
    gpu = "--gpu" in argv
    if not gpu:
        assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    archs = [a for a in argv if not a.startswith("--")] or ["llama", "gemma3"]
    with tempfile.TemporaryDirectory() as d:
        for arch in archs:
            for row in run(arch, Path(d), 12 if gpu else 6):
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
