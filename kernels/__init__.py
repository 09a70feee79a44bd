"""Numeric kernels over flat arrays: `kernels.cpu` (@njit) and `kernels.cuda` (@cuda.jit).

This package depends on numpy and numba alone and never imports `emel`.
"""
