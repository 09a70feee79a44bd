"""Numeric kernels over flat arrays: `kernels.cpu` (@njit) and `kernels.cuda` (@cuda.jit).

This package depends on numpy and numba alone and never imports `emel`. The top-level names
(`kernels.dequantize`, `kernels.quantize`, `kernels.matmul`) are the CPU kernels' checked
wrappers, imported on first use so that `import kernels` compiles nothing.
"""

import importlib

_EXPORTS = {
    "dequantize": "kernels.cpu.quants",
    "quantize": "kernels.cpu.quants",
    "get_rows": "kernels.cpu.quants",
    "matmul": "kernels.cpu.matmul",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
