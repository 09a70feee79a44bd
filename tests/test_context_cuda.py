"""emel.device and emel.context_cuda: device selection errors, and CudaContext against the CPU
Context on tiny random-weight models (simulator in a subprocess; a real GPU when there is one).

Tolerance of the logits: 3e-2 of the largest |logit|, with the same argmax. The CUDA ops equal
their CPU twins (tests/kernels/cuda/test_ops.py), but the CUDA matmul adds its block products in
another order (~1e-7 relative per dot). llama.cpp's numerics then amplify such last-bit
differences at rounding boundaries: the activation of an F16/Q8_0 matmul is rounded to F16/Q8_0,
and GELU goes through an F16 table, so an element can move by one F16 or Q8 step (~5e-4 to 1e-2
relative). On these random 2-layer models that gives up to ~1.2e-2 of max |logit| (measured);
a plumbing error (wrong cell, mask, position or row) gives differences of order 1.
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
REL_TOL = 3e-2


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


def _check_rows(stdout: str) -> None:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    steps = {(r["arch"], r["step"]) for r in rows}
    for arch in ("llama", "gemma3", "qwen2", "qwen3"):
        for step in ("prompt", "decode") + (("two sequences",) if arch in ("llama", "gemma3") else ()):
            assert (arch, step) in steps, f"missing {arch} {step}"
    bad = [r for r in rows if not (r["rel"] <= REL_TOL and r["same_argmax"] and r["ith"])]
    assert not bad, "\n".join(json.dumps(r) for r in rows)


def test_cuda_context_matches_cpu_context_under_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_rows(proc.stdout)


def _cuda_available() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    from emel.device import cuda_status

    return cuda_status()[0]


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_available(), reason="no CUDA GPU")
def test_cuda_context_matches_cpu_context_on_gpu():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT), "--gpu"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_rows(proc.stdout)
