"""kernels.cuda.quants against kernels.cpu.quants: simulator always, real GPU when there is one.

The simulator run happens in one subprocess (NUMBA_ENABLE_CUDASIM must be set before numba.cuda is
first imported, and this process may already have imported it). Tolerance: bit-exact, NaN
payloads aside (the CUDA kernels build floats arithmetically, so a NaN comes out canonical).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
# every type the CPU dequantizes has a CUDA twin
CUDA_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K",
              "Q5_K", "Q6_K", "Q8_K", "TQ1_0", "TQ2_0", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS",
              "IQ3_S", "IQ1_S", "IQ1_M", "IQ4_NL", "IQ4_XS", "MXFP4", "NVFP4"]


def test_cuda_twins_match_cpu_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("simulator_check.py"))],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = {r["type"] for r in rows if r["ok"]}
    assert set(CUDA_TYPES) <= checked, f"missing or failed: {set(CUDA_TYPES) - checked}"
    assert all(r["ok"] for r in rows)


sys.path.insert(0, str(Path(__file__).parent))
from real_gpu import needs_gpu  # noqa: E402 - the skip reason when there is no GPU


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("type_name", CUDA_TYPES)
def test_gpu_dequantize_matches_cpu(type_name):
    from kernels.cpu import quants as cpu_quants
    from kernels.cpu.quants_base import TYPE_TRAITS
    from kernels.cuda import quants as cuda_quants

    t = next(k for k, v in TYPE_TRAITS.items() if v[0] == type_name)
    _, block_size, type_size = TYPE_TRAITS[t]
    n_blocks = 3001 if block_size > 1 else 300001
    raw = np.random.default_rng(t).integers(0, 256, n_blocks * type_size, dtype=np.uint8)
    cpu = cpu_quants.dequantize(raw, t, n_blocks * block_size)
    gpu = cuda_quants.dequantize(raw, t, n_blocks * block_size)
    nan = np.isnan(cpu)
    np.testing.assert_array_equal(np.isnan(gpu), nan)
    np.testing.assert_array_equal(gpu[~nan].view(np.uint32), cpu[~nan].view(np.uint32))


@pytest.mark.cuda
@needs_gpu
def test_gpu_dequantize_real_gemma3_tensors(gemma3_path):
    import emel.gguf
    from kernels.cpu import quants as cpu_quants
    from kernels.cuda import quants as cuda_quants

    f = emel.gguf.read(gemma3_path)
    for name in ("blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.0.attn_k.weight"):
        info = f.tensors[name]
        raw = np.ascontiguousarray(f.tensor_data(name))
        cpu = cpu_quants.dequantize(raw, int(info.ggml_type), info.n_elements)
        gpu = cuda_quants.dequantize(raw, int(info.ggml_type), info.n_elements)
        np.testing.assert_array_equal(gpu.view(np.uint32), cpu.view(np.uint32), err_msg=name)
