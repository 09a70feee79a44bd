"""CUDA twins of kernels.cpu (@cuda.jit). numba.cuda is imported only inside this package."""
