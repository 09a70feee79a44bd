"""Whether this pytest process can run the real-GPU tests (marked `cuda`), and why not.

The tests marked `cuda` run on an NVIDIA GPU only (tools/gpu_check.sh runs them); elsewhere they
skip with the reason given here. Importing this module never fails: numba.cuda is imported
inside `status()`, and an import error becomes the skip reason.
"""

from __future__ import annotations

import os

import pytest


def status() -> tuple[bool, str]:
    """(usable, reason): a real CUDA GPU with a working driver, and the simulator off."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False, ("NUMBA_ENABLE_CUDASIM=1 in the pytest process: real-GPU tests skipped "
                       "(the simulator tests run in their own subprocesses)")
    try:
        from kernels.cuda import runtime
    except ImportError as e:  # neither numba-cuda nor a numba with numba.cuda
        return False, f"numba.cuda cannot be imported ({e}): no real-GPU tests"
    ok, reason = runtime.status()
    return ok, reason if ok else f"no real GPU ({reason})"


OK, REASON = status()
needs_gpu = pytest.mark.skipif(not OK, reason=f"needs an NVIDIA GPU: {REASON}")
