"""Launch tunables of the CUDA op kernels (kernels/cuda/ops.py), in one place.

Launchers take these as default arguments; callers (emel/context_cuda.py, the tests) pass their own
values to shrink launches, e.g. under the CUDA simulator where every thread is a Python thread.
Thread counts of kernels with a shared-memory reduction must be powers of two no larger than the
matching *_MAX constant, which sizes their shared arrays.
"""

from dataclasses import dataclass

ELEMENTWISE_THREADS = 256  # add/mul/scale/silu/gelu/copies: one thread per element
ROW_THREADS = 128  # rms_norm, rope, get_rows: one block per row (token)
ROW_THREADS_MAX = 1024  # shared-array size of the row reductions
ATTN_THREADS = 128  # attention: one block per (token, head)
ATTN_THREADS_MAX = 1024  # shared-array size of the attention reductions
MATMUL_THREADS = 128  # kernels.cuda.matmul.matmul_q: one block per (row, token)
MATMUL_LANES_THREADS = 128  # kernels.cuda.matmul.matmul_q_lanes: one thread per (row, token)
MAX_BLOCKS = 65535  # grid cap; grid-stride loops cover the rest


@dataclass(frozen=True)
class Tuning:
    """The tunables as one value, for code that launches many kernels (CudaContext)."""

    elementwise_threads: int = ELEMENTWISE_THREADS
    row_threads: int = ROW_THREADS
    attn_threads: int = ATTN_THREADS
    matmul_threads: int = MATMUL_THREADS
    matmul_lanes_threads: int = MATMUL_LANES_THREADS
    max_blocks: int = MAX_BLOCKS


DEFAULT = Tuning()
# tiny launches for the CUDA simulator: few threads and blocks, so grid-stride loops are exercised
SIMULATOR = Tuning(elementwise_threads=8, row_threads=4, attn_threads=4, matmul_threads=2,
                   matmul_lanes_threads=32, max_blocks=3)
