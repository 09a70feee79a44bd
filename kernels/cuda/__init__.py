"""CUDA twins of kernels.cpu (@cuda.jit). numba.cuda is imported only inside this package.

Every kernel is `@cuda.jit(cache=True)`: on a GPU, a process after the first loads the compiled
kernels from __pycache__ instead of compiling them again (the simulator ignores the flag).
"""
