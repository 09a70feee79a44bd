"""Run every kernels.cuda.quants twin under the CUDA simulator and compare it with kernels.cpu.quants.

Run by tests/kernels/cuda/test_quants.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (the variable
must be set before numba.cuda is first imported). Prints one JSON line per check.

Shapes are tiny (the simulator runs each CUDA thread as a Python thread). Each type runs twice:
a grid with fewer threads than quant blocks (so the grid-stride loop matters) and the default
launch with device-array input and output.
"""

import json
import os
import sys

import numpy as np


def _same(gpu: np.ndarray, cpu: np.ndarray) -> bool:
    # bit-exact except NaN payloads (the CUDA kernels build NaN arithmetically)
    nan = np.isnan(cpu)
    return bool(np.array_equal(np.isnan(gpu), nan)
                and np.array_equal(gpu[~nan].view(np.uint32), cpu[~nan].view(np.uint32)))


def main() -> int:
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
    from numba import cuda

    from kernels.cpu import quants as cpu_quants
    from kernels.cpu.quants_base import TYPE_TRAITS
    from kernels.cuda import quants as cuda_quants

    failures = 0
    for t in sorted(cuda_quants.DEQUANTIZE_TYPES):
        name, block_size, type_size = TYPE_TRAITS[t]
        n_blocks = 5 if block_size > 1 else 40
        raw = np.random.default_rng(t).integers(0, 256, n_blocks * type_size, dtype=np.uint8)
        n = n_blocks * block_size
        cpu = cpu_quants.dequantize(raw, t, n)
        strided = cuda_quants.dequantize(raw, t, n, threads_per_block=2, max_blocks=1)
        d_out = cuda.device_array(n, dtype=np.float32)
        returned = cuda_quants.dequantize(cuda.to_device(raw), t, n, out=d_out)
        ok = (isinstance(strided, np.ndarray) and _same(strided, cpu) and returned is d_out
              and _same(d_out.copy_to_host(), cpu))
        failures += not ok
        print(json.dumps({"type": name, "ok": ok, "n": n}))

    errors = [
        (lambda: cuda_quants.dequantize(np.zeros(17, np.uint8), 2, 32), ValueError),
        (lambda: cuda_quants.dequantize(np.zeros(18, np.int8), 2, 32), TypeError),
        (lambda: cuda_quants.dequantize(np.zeros(18, np.uint8), 2, 31), ValueError),
        (lambda: cuda_quants.dequantize(np.zeros(36, np.uint8), 9, 32), NotImplementedError),  # Q8_1
    ]
    for i, (call, exc) in enumerate(errors):
        try:
            call()
            ok = False
        except exc:
            ok = True
        failures += not ok
        print(json.dumps({"type": f"error case {i}", "ok": ok, "n": 0}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
