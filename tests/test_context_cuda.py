"""emel.device and emel.context_cuda: device selection errors, and CudaContext against the CPU
Context on tiny random-weight models (simulator in a subprocess; a real GPU when there is one).

One tolerance for both kinds of row, 1e-6 of the largest |logit| with the same argmax
(measured, deterministic run to run: 0 for llama/qwen2/qwen3/phi3, ~6e-8 for gemma3, whose tanh
soft-capping and libm functions are evaluated in double on the device):
- "matmul": "cuda" rows: the real thing. The CUDA matmul is bit-equal with the CPU's (the tiny
  models: Q8_0 through kernels.cuda.matmul.matmul_q_lanes, llama.cpp's AVX2 lane order; F32/F16
  through kernels.cuda.ops.matmul_float_ggml, tinyBLAS / ggml_vec_dot_f16 order; the other
  types in tests/kernels/cuda/test_matmul.py), and so is the device activation quantizer
  (kernels/cuda/q8.py).
- "matmul": "host" rows (llama only under the simulator): the device graph with the CPU
  context's own matmul results, isolating every op, KV cell, mask, position and gather/scatter;
  a plumbing error gives differences of order 1.
Transfers: during each CUDA-matmul decode only the output rows' logits leave the device (one
copy out of the logits buffer per ubatch, n_outputs * n_vocab * 4 bytes in all); every other way
data can leave the device is counted too (context_cuda_simulator_check.py, `_D2H`). The "host"
rows copy on purpose, and show that the counting sees copies.
The simulator runs each CUDA thread as a Python thread; kernels/cuda/simulator.py removes a race
in Numba's simulator (shared arrays) that made this test flaky (logits off by ~1.4x).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import emel
from emel.device import resolve_device

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("context_cuda_simulator_check.py")
REL_TOL = 1e-6  # of the largest |logit|: see the module docstring


def test_cpu_device_resolves_and_unknown_device_raises():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(None) == "cpu"
    with pytest.raises(emel.UnsupportedError, match="not supported"):
        resolve_device("tpu")


def test_cuda_device_without_gpu_raises_clear_error():
    # a fresh interpreter without the simulator: numba.cuda finds no GPU on CI machines
    code = ("import emel\nfrom emel.device import resolve_device, cuda_status\n"
            "ok, why = cuda_status()\n"
            "try:\n    resolve_device('cuda'); print('OK' if ok else 'NO-RAISE')\n"
            "except emel.UnsupportedError as e:\n    print('RAISED', e)\n")
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120).stdout.strip()
    if out.startswith("OK"):  # this machine has a GPU: then "cuda" must resolve
        assert resolve_device("auto") == "cuda"
    else:
        assert out.startswith("RAISED device 'cuda' is not available"), out


def test_import_emel_does_not_import_numba_cuda():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    code = "import sys, emel, emel.device, emel.context\nprint('numba.cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


ARCHS = ("llama", "gemma3", "qwen2", "qwen3", "phi3", "phi3+q8_0")  # phi3 with Q8_0 weights too


def _rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _check_rows(rows: list[dict]) -> None:
    steps = {(r["arch"], r["step"], r["matmul"]) for r in rows}
    for arch in ARCHS:
        for step in ("prompt", "decode") + (("two sequences",) if arch in ("llama", "gemma3") else ()):
            for matmul in ("cuda", "host") if arch == "llama" else ("cuda",):
                assert (arch, step, matmul) in steps, f"missing {arch} {step} ({matmul} matmul)"
    bad = [r for r in rows if not (r["rel"] <= REL_TOL and r["same_argmax"] and r["ith"])]
    assert not bad, "\n".join(json.dumps(r) for r in rows)


def _check_transfers(rows: list[dict]) -> None:
    cuda_rows = [r for r in rows if r["matmul"] == "cuda"]
    assert {r["arch"] for r in cuda_rows} == set(ARCHS)
    # one copy out of the logits buffer per ubatch, nothing else
    bad = [r for r in cuda_rows if not r["d2h"] or any(kind != "logits" for kind, _ in r["d2h"])
           or sum(n for _, n in r["d2h"]) != r["logits_bytes"]]
    assert not bad, "\n".join(json.dumps(r) for r in bad)
    # the counting sees copies: the host-matmul rows copy every matmul input
    host = [r for r in rows if r["matmul"] == "host"]
    assert host and all(len(r["d2h"]) > 1 for r in host)


@pytest.fixture(scope="module")
def simulator_rows() -> list[dict]:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _rows(proc.stdout)


def test_cuda_context_matches_cpu_context_under_simulator(simulator_rows):
    _check_rows(simulator_rows)


def test_cuda_decode_copies_only_the_logits_to_the_host_under_simulator(simulator_rows):
    _check_transfers(simulator_rows)


sys.path.insert(0, str(REPO / "tests" / "kernels" / "cuda"))
from real_gpu import needs_gpu  # noqa: E402 - the skip reason when there is no GPU


@pytest.mark.cuda
@needs_gpu
def test_cuda_context_matches_cpu_context_on_gpu():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT), "--gpu"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _rows(proc.stdout)
    _check_rows(rows)
    _check_transfers(rows)


@pytest.mark.cuda
@pytest.mark.slow
@needs_gpu
@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_cuda_context_matches_cpu_context_on_real_models(model):
    # smollm2: Q4_1 + Q8_0; gemma3: Q4_K (repacked gemv/gemm kinds), Q5_0, Q6_K (tiled for the
    # 9-token prompt), Q8_0. Every matmul follows the CPU's float order; the ops equal their CPU
    # twins but for 1-4 ulp libm cases (kernels/cuda/ops.py), which F16/Q8 roundings can amplify
    # over the layers: 1e-3 of max |logit| (tiny models: <= 6e-8), same argmax.
    import numpy as np

    import assets
    from emel.context import Batch, Context, ContextParams
    from emel.context_cuda import CudaContext

    path = assets.model_path(model)
    params = ContextParams(n_ctx=256, n_batch=64, n_ubatch=64)
    cpu = Context(path, params)
    gpu = CudaContext(path, params, weights=cpu.weights)
    toks = [int(t) for t in np.random.default_rng(0).integers(100, 2000, 10)]
    for batch in (Batch(token=toks[:9], logits=[True] * 9), Batch(token=toks[9:])):
        cpu.decode(batch)
        gpu.decode(batch)
        a, b = cpu.get_logits(), gpu.get_logits()
        rel = float(np.abs(a - b).max() / np.abs(a).max())
        assert rel <= 1e-3 and (a.argmax(axis=1) == b.argmax(axis=1)).all(), (model, rel)
