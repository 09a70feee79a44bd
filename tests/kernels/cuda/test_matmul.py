"""kernels.cuda.matmul against kernels.cpu.matmul: under the CUDA simulator always, on a GPU when present.

The simulator run is one subprocess (NUMBA_ENABLE_CUDASIM must be set before numba.cuda is first
imported). Tolerance (integer block dots exact, float32 addition order differs):
|gpu - cpu| <= 1e-5 * (|W| @ |x|); see matmul_simulator_check.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
CUDA_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]


def test_cuda_matmul_matches_cpu_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("matmul_simulator_check.py"))],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = {r["type"] for r in rows if r["ok"]}
    assert set(CUDA_TYPES) | {"error case"} <= checked, f"missing or failed: {set(CUDA_TYPES) - checked}"


def _cuda_available() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16"])
def test_gpu_matmul_matches_cpu(type_name):
    sys.path.insert(0, str(Path(__file__).parent))
    import matmul_simulator_check as chk

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cpu import quants as cpu_quants
    from kernels.cuda import matmul as cuda_matmul

    t, qk, _, _ = chk.TYPES[type_name]
    rng = np.random.default_rng(t)
    n_rows, n_cols, n_tokens = 257, 1024, 3
    w = chk._weight(rng, type_name, n_rows, n_cols)
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    cpu = cpu_matmul.matmul(w, t, n_rows, n_cols, x, np.zeros((n_tokens, n_rows), np.float32))
    gpu = cuda_matmul.matmul(w, t, n_rows, n_cols, x, np.zeros((n_tokens, n_rows), np.float32))
    wf = np.abs(cpu_quants.dequantize(w, t, n_rows * n_cols).reshape(n_rows, n_cols)).astype(np.float64)
    assert np.all(np.abs(gpu - cpu) <= 1e-5 * ((np.abs(x) * 1.01) @ wf.T) + 1e-30)
