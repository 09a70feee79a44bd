"""CUDA twins of kernels.cpu.quants: dequantize GGUF tensor data on the GPU.

Each kernel has the name and arguments of its CPU twin (kernels/cuda/quants_legacy.py,
quants_k.py and quants_iq.py mirror the kernels/cpu files of the same names):
`dequantize_row_<type>[grid, block](data, byte_offset, n, out, out_offset)`. One thread
dequantizes one quant block (one value for F32/F16/BF16) in a grid-stride loop, so any launch
size is correct. Arithmetic is float32 in ggml's order, so results equal the CPU kernels bit for
bit, except that NaNs come out as the canonical NaN (the kernels build floats arithmetically).

Host entry point: `dequantize(data, ggml_type, n_elements, out=None, threads_per_block=...,
max_blocks=...)`, checked like the CPU one, for every type kernels.cpu.quants dequantizes.
numba.cuda is imported only inside kernels/cuda.
"""

import numpy as np
from numba import cuda

from kernels.cpu import quants_base as qb
from kernels.cuda import quants_iq as iq
from kernels.cuda import quants_k as kq
from kernels.cuda import quants_legacy as lq

THREADS_PER_BLOCK = 128
MAX_BLOCKS = 4096  # grid size cap; the grid-stride loops cover the rest

KERNELS = {
    qb.GGML_TYPE_F32: lq.dequantize_row_f32,
    qb.GGML_TYPE_F16: lq.dequantize_row_f16,
    qb.GGML_TYPE_BF16: lq.dequantize_row_bf16,
    qb.GGML_TYPE_Q4_0: lq.dequantize_row_q4_0,
    qb.GGML_TYPE_Q4_1: lq.dequantize_row_q4_1,
    qb.GGML_TYPE_Q5_0: lq.dequantize_row_q5_0,
    qb.GGML_TYPE_Q5_1: lq.dequantize_row_q5_1,
    qb.GGML_TYPE_Q8_0: lq.dequantize_row_q8_0,
    qb.GGML_TYPE_Q2_K: kq.dequantize_row_q2_k,
    qb.GGML_TYPE_Q3_K: kq.dequantize_row_q3_k,
    qb.GGML_TYPE_Q4_K: kq.dequantize_row_q4_k,
    qb.GGML_TYPE_Q5_K: kq.dequantize_row_q5_k,
    qb.GGML_TYPE_Q6_K: kq.dequantize_row_q6_k,
    qb.GGML_TYPE_Q8_K: kq.dequantize_row_q8_k,
    qb.GGML_TYPE_TQ1_0: kq.dequantize_row_tq1_0,
    qb.GGML_TYPE_TQ2_0: kq.dequantize_row_tq2_0,
    qb.GGML_TYPE_IQ2_XXS: iq.dequantize_row_iq2_xxs,
    qb.GGML_TYPE_IQ2_XS: iq.dequantize_row_iq2_xs,
    qb.GGML_TYPE_IQ2_S: iq.dequantize_row_iq2_s,
    qb.GGML_TYPE_IQ3_XXS: iq.dequantize_row_iq3_xxs,
    qb.GGML_TYPE_IQ3_S: iq.dequantize_row_iq3_s,
    qb.GGML_TYPE_IQ1_S: iq.dequantize_row_iq1_s,
    qb.GGML_TYPE_IQ1_M: iq.dequantize_row_iq1_m,
    qb.GGML_TYPE_IQ4_NL: iq.dequantize_row_iq4_nl,
    qb.GGML_TYPE_IQ4_XS: iq.dequantize_row_iq4_xs,
    qb.GGML_TYPE_MXFP4: iq.dequantize_row_mxfp4,
    qb.GGML_TYPE_NVFP4: iq.dequantize_row_nvfp4,
}
DEQUANTIZE_TYPES = frozenset(KERNELS)


def dequantize(data, ggml_type: int, n_elements: int, out=None,
               threads_per_block: int = THREADS_PER_BLOCK, max_blocks: int = MAX_BLOCKS):
    """Dequantize n_elements values of ggml_type from data (uint8 numpy or device array).

    A numpy `data` gives a numpy float32[n_elements] result; a device array gives a device array
    (`out`, when given, must be a float32 device array of n_elements). Raises TypeError /
    ValueError / NotImplementedError like kernels.cpu.quants.dequantize.
    """
    if isinstance(ggml_type, (bool, np.bool_)) or not isinstance(ggml_type, (int, np.integer)):
        raise TypeError(f"dequantize: ggml_type must be an int, got {type(ggml_type).__name__}")
    kernel = KERNELS.get(int(ggml_type))
    if kernel is None:
        raise NotImplementedError(f"CUDA dequantize: no kernel for GGML {qb.type_name(ggml_type)}")
    if isinstance(n_elements, (bool, np.bool_)) or not isinstance(n_elements, (int, np.integer)) or n_elements < 0:
        raise ValueError(f"n_elements must be a non-negative int, got {n_elements!r}")
    n_elements = int(n_elements)
    nbytes = qb.row_nbytes(ggml_type, n_elements)
    on_device = _on_device(data)
    if not on_device and not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a numpy or CUDA device array, got {type(data).__name__}")
    if data.dtype != np.uint8:
        raise TypeError(f"data must have dtype uint8, got {data.dtype}")
    if data.ndim != 1 or (not on_device and not data.flags.c_contiguous):
        raise TypeError("data must be a 1-D C-contiguous array")
    if data.size != nbytes:
        raise ValueError(
            f"dequantize {qb.type_name(ggml_type)}: data holds {data.size} bytes, expected {nbytes} "
            f"for {n_elements} elements")
    d_data = data if on_device else cuda.to_device(data)
    if out is None:
        d_out = cuda.device_array(n_elements, dtype=np.float32)
    else:
        if not _on_device(out) or out.dtype != np.float32 or out.ndim != 1 or out.size != n_elements:
            raise ValueError(f"out must be a 1-D float32 device array of {n_elements} values")
        d_out = out
    _, block_size, _ = qb.TYPE_TRAITS[int(ggml_type)]
    n_units = n_elements // block_size
    if n_units:
        blocks = max(1, min(max_blocks, (n_units + threads_per_block - 1) // threads_per_block))
        kernel[blocks, threads_per_block](d_data, 0, n_elements, d_out, 0)
    return d_out if on_device else d_out.copy_to_host()


def _on_device(a) -> bool:
    # numba's device arrays, real or simulated, carry __cuda_ndarray__ (what
    # numba.cuda.cudadrv.devicearray.is_cuda_ndarray tests; cuda.is_cuda_array is missing in the
    # simulator, and `cuda.devicearray` is not part of numba-cuda's documented namespace)
    return bool(getattr(a, "__cuda_ndarray__", False))
