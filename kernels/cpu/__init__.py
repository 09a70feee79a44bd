"""CPU kernels (@njit, cache=True)."""
