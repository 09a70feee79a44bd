"""Compile every kernels.cuda.quants, q8 and matmul kernel to PTX without a GPU (type-checks the
real CUDA path, which the simulator does not). Needs NVVM (libnvvm) but no driver:

    python tests/kernels/cuda/ptx_check.py [compute capability, default 9.0]

Run by tests/kernels/cuda/test_ptx.py (skipped there when libnvvm is missing). Device functions
ask the current device for its compute capability, so this script stands in a fake device.
"""

import sys
import types as pytypes

import numba.cuda.dispatcher as cuda_dispatcher
from numba import cuda, types


def main(argv: list[str]) -> int:
    cc = tuple(int(p) for p in (argv[0] if argv else "9.0").split("."))
    fake_device = pytypes.SimpleNamespace(compute_capability=cc)
    cuda_dispatcher.get_current_device = lambda: fake_device
    from kernels.cuda import matmul, q8, quants

    u8a, f32a, i64 = types.uint8[::1], types.float32[::1], types.int64
    sig = (u8a, i64, i64, f32a, i64)
    for kernel in quants.KERNELS.values():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        print(f"{kernel.py_func.__name__}: ok ({len(ptx)} bytes of PTX)")
    for kernel in (q8.quantize_row_q8_0, q8.quantize_row_q8_1, q8.quantize_row_q8_K,
                   q8.quantize_row_f16, q8.quantize_row_bf16, q8.quantize_row_f32):
        ptx, _ = cuda.compile_ptx(kernel.py_func, (f32a, i64, i64, u8a), cc=cc)
        _no_f64_division(kernel, ptx)
        print(f"{kernel.py_func.__name__}: ok ({len(ptx)} bytes of PTX)")
    for kernel in (matmul.matmul_q, matmul.matmul_q_lanes):
        ptx, _ = cuda.compile_ptx(kernel.py_func, (u8a, i64, i64, i64, u8a, i64, f32a), cc=cc)
        print(f"{kernel.py_func.__name__}: ok ({len(ptx)} bytes of PTX)")
    ptx, _ = cuda.compile_ptx(matmul.matmul_q_k_lanes.py_func,
                              (u8a, i64, i64, i64, u8a, i64, i64, f32a), cc=cc)
    print(f"matmul_q_k_lanes: ok ({len(ptx)} bytes of PTX)")
    ptx, _ = cuda.compile_ptx(matmul.matmul_bf16_lanes.py_func, (u8a, i64, i64, u8a, i64, f32a), cc=cc)
    print(f"matmul_bf16_lanes: ok ({len(ptx)} bytes of PTX)")
    return 0


def _no_f64_division(kernel, ptx: str) -> None:
    """The quantizers divide in float32 as the CPU does (a float64 division would round differently)."""
    if "div.rn.f64" in ptx:
        raise SystemExit(f"{kernel.py_func.__name__}: float64 division in the PTX")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
