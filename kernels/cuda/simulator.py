"""What the kernels of kernels/cuda need from Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1).

`device`: the decorator of every device function in kernels/cuda. On a GPU it is
`cuda.jit(device=True)`. Under the simulator it returns the plain Python function: the
simulator's device-function wrapper swaps `cuda` in the function's module globals on every call
and restores it after, which is not thread-safe (each CUDA thread is a Python thread: two
overlapping calls can leave the module holding a stale kernel context, or the real module while a
kernel of that module still runs) and costs ~10x the device function itself. A device function
that calls `cuda.*` (a syncthreads helper) must live in the module of the kernels that call it,
whose `cuda` the simulator swaps for the whole launch.

`install()` (run on import under the simulator): makes `cuda.shared.array` thread-safe. Numba's
simulator (0.68) keys a block's shared arrays by the calling source line and creates one on first
use with get-then-set on a dict; two threads of the first block of a launch that both find no
array get different ones, so their writes never meet (a reduction then reads another thread's
uninitialised np.empty memory: wrong results, ~1 in 3000 launches of a 4-thread kernel with a
short GIL switch interval). The replacement creates the array with dict.setdefault (atomic under
the GIL), so every thread gets the same one, and finds the caller with sys._getframe instead of
traceback.extract_stack (which reads the source lines of the whole stack on every call).
"""

import sys

import numpy as np
from numba import config, cuda

ENABLED = bool(config.ENABLE_CUDASIM)


def _plain(fn):
    return fn


device = _plain if ENABLED else cuda.jit(device=True)


def _shared_array(self, shape, dtype):
    """FakeCUDAShared.array without the creation race (same keys: caller's file and line)."""
    from numba.core import types
    from numba.np import numpy_support

    if isinstance(dtype, types.Type):
        dtype = numpy_support.as_dtype(dtype)
    if shape == 0:  # dynamic shared memory: one buffer for all
        count = self._dynshared_size // np.dtype(dtype).itemsize
        return np.frombuffer(self._dynshared.data, dtype=dtype, count=count)
    f = sys._getframe(1)
    caller = (f.f_code.co_filename, f.f_lineno)
    res = self._allocations.get(caller)
    if res is None:
        res = self._allocations.setdefault(caller, np.empty(shape, dtype))
    return res


def install() -> None:
    """Install the thread-safe shared-array allocation in Numba's simulator (idempotent)."""
    if not ENABLED:
        return
    from numba.cuda.simulator import kernelapi

    kernelapi.FakeCUDAShared.array = _shared_array


install()
