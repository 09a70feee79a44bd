"""kernels.cuda.matmul (and its device activation quantizer, kernels/cuda/q8.py) against
kernels.cpu.matmul: under the CUDA simulator always, on a GPU when present.

The simulator run is one subprocess (NUMBA_ENABLE_CUDASIM must be set before numba.cuda is first
imported). Quantized and BF16 weights: bit-equal with the CPU (the *_lanes kernels follow its
float order). F32/F16 through kernels.cuda.matmul.matmul (the generic matmul_q; CudaContext uses
kernels.cuda.ops.matmul_float_ggml, checked in test_ops.py): only the float32 addition order
differs, |gpu - cpu| <= 1e-5 * (|W| @ |x|); see matmul_simulator_check.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
ACT_KINDS = ["Q8_0", "Q8_1", "Q8_K", "F16", "BF16", "F32"]
CUDA_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]


@pytest.fixture(scope="module")
def simulator_rows() -> list[dict]:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("matmul_simulator_check.py"))],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_cuda_matmul_matches_cpu_under_simulator(simulator_rows):
    rows = simulator_rows
    checked = {r["type"] for r in rows if "type" in r and r["ok"]}
    assert set(CUDA_TYPES) | {"error case"} <= checked, f"missing or failed: {set(CUDA_TYPES) - checked}"


def test_cuda_activation_quantizer_is_bit_equal_to_cpu_under_simulator(simulator_rows):
    # kernels.cuda.q8 through kernels.cuda.matmul.quantize_act: every vec_dot_type, byte for byte
    checked = {r["act"] for r in simulator_rows if "act" in r and r["ok"]}
    assert set(ACT_KINDS) | {"error case"} <= checked, \
        "\n".join(json.dumps(r) for r in simulator_rows if "act" in r)


sys.path.insert(0, str(Path(__file__).parent))
from real_gpu import needs_gpu  # noqa: E402 - the skip reason when there is no GPU


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("type_name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
                                       "F16", "BF16"])
def test_gpu_matmul_matches_cpu(type_name):
    sys.path.insert(0, str(Path(__file__).parent))
    import matmul_simulator_check as chk

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cpu import quants as cpu_quants
    from kernels.cuda import matmul as cuda_matmul

    t, qk, _, _ = chk.TYPES[type_name]
    rng = np.random.default_rng(t)
    # 264 rows: Q4_K's repacked kinds; 6 tokens: 4 by the gemm kind, 2 by gemv
    n_rows, n_cols, n_tokens = 264, 1024, 6
    w = chk._weight(rng, type_name, n_rows, n_cols)
    x = rng.standard_normal((n_tokens, n_cols)).astype(np.float32)
    cpu = cpu_matmul.matmul(w, t, n_rows, n_cols, x, np.zeros((n_tokens, n_rows), np.float32))
    gpu = cuda_matmul.matmul(w, t, n_rows, n_cols, x, np.zeros((n_tokens, n_rows), np.float32))
    if type_name not in ("F32", "F16"):  # the CPU's float order
        np.testing.assert_array_equal(gpu.view(np.uint32), cpu.view(np.uint32))
    wf = np.abs(cpu_quants.dequantize(w, t, n_rows * n_cols).reshape(n_rows, n_cols)).astype(np.float64)
    assert np.all(np.abs(gpu - cpu) <= 1e-5 * ((np.abs(x) * 1.01) @ wf.T) + 1e-30)


@pytest.mark.cuda
@needs_gpu
def test_gpu_activation_quantizer_is_bit_equal_to_cpu():
    # the real device: NVVM's float32 division, llrint rounding and frexp, not the simulator's NumPy
    import matmul_simulator_check as chk

    assert chk.check_act(np.random.default_rng(7)) == 0


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("type_name", ["Q8_0", "F16"])
def test_gpu_matmul_of_a_262k_vocab_output_matrix(type_name):
    # gemma3's output matrix: 262144 rows (grid-stride past the 65535-block grid), byte offsets
    # near 2^28..2^29; the last rows are where an int32 overflow of an offset would show
    import matmul_simulator_check as chk

    from kernels.cpu import matmul as cpu_matmul
    from kernels.cpu import quants as cpu_quants
    from kernels.cuda import matmul as cuda_matmul

    t = chk.TYPES[type_name][0]
    n_rows, n_cols, n_tokens = 262144, 640, 2
    w = chk._weight(np.random.default_rng(3), type_name, n_rows, n_cols)
    x = np.random.default_rng(4).standard_normal((n_tokens, n_cols)).astype(np.float32)
    cpu = cpu_matmul.matmul(w, t, n_rows, n_cols, x, np.zeros((n_tokens, n_rows), np.float32))
    gpu = cuda_matmul.matmul(w, t, n_rows, n_cols, x, np.zeros((n_tokens, n_rows), np.float32))
    wf = np.abs(cpu_quants.dequantize(w, t, n_rows * n_cols).reshape(n_rows, n_cols))
    bound = 1e-5 * ((np.abs(x) * 1.01) @ wf.T) + 1e-30  # as test_gpu_matmul_matches_cpu
    assert np.all(np.abs(gpu - cpu) <= bound)
    if type_name == "Q8_0":
        np.testing.assert_array_equal(gpu.view(np.uint32), cpu.view(np.uint32))
