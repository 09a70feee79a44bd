"""Compile every kernels.cuda.quants kernel to PTX without a GPU (type-checks the real CUDA path,
which the simulator does not). Needs NVVM (libnvvm) but no driver:

    python tests/kernels/cuda/ptx_check.py [compute capability, default 9.0]

Not collected by pytest: CI has no guarantee of NVVM. Device functions ask the current device for
its compute capability, so this script stands in a fake device for them.
"""

import sys
import types as pytypes

import numba.cuda.dispatcher as cuda_dispatcher
from numba import cuda, types


def main(argv: list[str]) -> int:
    cc = tuple(int(p) for p in (argv[0] if argv else "9.0").split("."))
    fake_device = pytypes.SimpleNamespace(compute_capability=cc)
    cuda_dispatcher.get_current_device = lambda: fake_device
    from kernels.cuda import quants

    sig = (types.uint8[::1], types.int64, types.int64, types.float32[::1], types.int64)
    for kernel in quants.KERNELS.values():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        print(f"{kernel.py_func.__name__}: ok ({len(ptx)} bytes of PTX)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
