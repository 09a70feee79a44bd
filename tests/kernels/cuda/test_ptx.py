"""Every CUDA kernel compiles to PTX for a real GPU (compute capability 9.0), without a GPU.

The simulator runs the kernels as Python, so it cannot see what only NVVM's typing and lowering
reject (a libdevice call on the wrong type, int/float unification, local and shared arrays, a
device function's tuple return). ptx_check.py (quants, q8, matmul) and ops_ptx_check.py (ops)
compile each kernel with the argument types the launchers pass. Needs libnvvm (the CUDA toolkit,
or numba-cuda's pip packages) but no driver; skipped with the reason when it is missing.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent
_NO_NVVM = 77

_CODE = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
try:
    from numba.cuda.cudadrv import nvvm
    nvvm.NVVM()
except ImportError as e:  # NvvmSupportError (an ImportError), or numba.cuda missing altogether
    print("no NVVM:", e)
    sys.exit({_NO_NVVM})
import ops_ptx_check, ptx_check
sys.exit(ptx_check.main([]) or ops_ptx_check.main([]))
"""


def test_every_cuda_kernel_compiles_to_ptx():
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # the real compiler, not the simulator
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _CODE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode == _NO_NVVM:
        pytest.skip(f"libnvvm not found, PTX not checked: {proc.stdout.strip()[:200]}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    compiled = [line for line in proc.stdout.splitlines() if line.endswith("bytes of PTX)")]
    # 27 dequantize + 6 q8 + 4 matmul kernels; 20 ops kernels
    assert len(compiled) >= 57, proc.stdout
