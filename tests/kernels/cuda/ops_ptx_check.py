"""Compile every kernels.cuda.ops kernel to PTX without a GPU (type-checks the real CUDA path,
which the simulator does not: libdevice calls, local/shared arrays, integer/float unification).

    python tests/kernels/cuda/ops_ptx_check.py [compute capability, default 9.0]

Run by tests/kernels/cuda/test_ptx.py (skipped there when libnvvm is missing). Uses the
argument types the launchers pass.
"""

import sys
import types as pytypes

import numba.cuda.dispatcher as cuda_dispatcher
from numba import cuda, types


def main(argv: list[str]) -> int:
    cc = tuple(int(p) for p in (argv[0] if argv else "9.0").split("."))
    # device functions ask the current device for its compute capability: stand in a fake one
    fake_device = pytypes.SimpleNamespace(compute_capability=cc)
    cuda_dispatcher.get_current_device = lambda: fake_device
    from kernels.cuda import ops

    f32a, i32a, u16a = types.float32[::1], types.int32[::1], types.uint16[::1]
    i64, f32, b = types.int64, types.float32, types.boolean
    sigs = {
        ops.f32_to_f16_array: (f32a, u16a, i64),
        ops.rms_norm_f32: (f32a, f32a, f32a, i64, i64, f32, b),
        ops.add_f32: (f32a, f32a, f32a, i64),
        ops.add_rows_f32: (f32a, f32a, f32a, i64, i64),
        ops.mul_f32: (f32a, f32a, f32a, i64),
        ops.scale_f32: (f32a, f32, f32a, i64),
        ops.silu_f32: (f32a, f32a, i64),
        ops.swiglu_f32: (f32a, f32a, f32a, i64, i64, i64, i64),
        ops.gelu_f32: (f32a, f32a, i64, f32a),
        ops.geglu_f32: (f32a, f32a, f32a, i64, f32a),
        ops.tanh_softcap_f32: (f32a, f32a, i64, f32),
        ops.get_rows_f32: (f32a, i32a, f32a, i64, i64),
        ops.get_rows_f16: (u16a, i32a, f32a, i64, i64, f32a),
        ops.set_rows_f16: (f32a, i32a, f32a, i64, i64),
        ops.set_rows_f32: (f32a, i32a, f32a, i64, i64),
        ops.rope_f32: (f32a, i32a, i64, i64, i64, i64, b, f32, f32, f32, f32, f32, f32, f32a, b, f32a),
        ops.matmul_q6_k_tiled: (types.uint8[::1], i64, i64, types.uint8[::1], i64, f32a, f32a),
        ops.matmul_float_ggml: (f32a, i64, i64, f32a, i64, f32a, b, b, f32a, f32a),
        ops._round_f16_f32: (f32a, f32a, i64),
        ops.attention_f16kv: (f32a, f32a, f32a, f32a, f32a, i64, i64, i64, i64, i64, i64, f32, f32,
                              b, b, f32a, f32a, f32a),
    }
    for kernel, sig in sigs.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        print(f"{kernel.py_func.__name__}: ok ({len(ptx)} bytes of PTX)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
