"""kernels.cuda.ops against kernels.cpu.ops: the CUDA simulator always, a real GPU when there is one.

The checks and their tolerances (each with its reason) live in ops_simulator_check.py. The
simulator run happens in a subprocess: NUMBA_ENABLE_CUDASIM must be set before numba.cuda is first
imported, and this process may already have imported it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("ops_simulator_check.py")
# every op of kernels/cuda/ops.py has at least one checked case
OPS = {"add_f32", "mul_f32", "scale_f32", "f32_to_f16_array", "add_rows_f32", "silu_f32",
       "swiglu_f32", "gelu_f32", "geglu_f32", "tanh_softcap_f32", "rms_norm_f32", "get_rows_f32",
       "get_rows_f16", "set_rows_f16", "set_rows_f32", "rope_f32", "attention_f16kv",
       "matmul_q6_k_tiled", "matmul_float_ggml", "errors"}


def _rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_cuda_ops_match_cpu_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    rows = _rows(proc.stdout)
    failed = [r for r in rows if not r["ok"]]
    assert proc.returncode == 0 and not failed, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert OPS <= {r["op"] for r in rows}, f"ops not checked: {OPS - {r['op'] for r in rows}}"
    rope = {r["case"] for r in rows if r["op"] == "rope_f32"}
    assert {"normal", "neox partial", "yarn"} <= rope
    assert sum(r["op"] == "attention_f16kv" for r in rows) >= 3


sys.path.insert(0, str(Path(__file__).parent))
from real_gpu import needs_gpu  # noqa: E402 - the skip reason when there is no GPU


@pytest.mark.cuda
@needs_gpu
def test_gpu_ops_match_cpu():
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT), "--gpu"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    rows = _rows(proc.stdout)
    failed = [r for r in rows if not r["ok"]]
    assert proc.returncode == 0 and not failed, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert OPS <= {r["op"] for r in rows}
