"""CUDA twin of kernels.cpu.matmul: out = W @ x for GGML weights, integer block dots on the GPU.

Same names and arguments as the CPU module: `matmul_q[grid, block](w, ggml_type, n_rows, n_cols,
xq, n_tokens, out)` takes activations already converted to the weight type's vec_dot_type
(kernels.cpu.matmul.quantize_act, bit-exact with llama.cpp), and the host entry point
`matmul(w, ggml_type, n_rows, n_cols, x, out)` does that conversion on the host, then launches.

One CUDA block computes one output (row r, token t) per iteration of a grid-stride loop; its
threads take the quant blocks of the row in a stride loop, each summing `scale * integer block
dot` in float32, then a shared-memory tree reduction (pairs at distance blockDim/2, /4, ... 1)
adds the per-thread sums. The integer block dots are exact, as on the CPU; only the float32
addition order differs from llama.cpp's AVX2 lanes (difference <= ~1e-6 of sum |terms|).

Types: F16, BF16, F32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K. The activation is
converted on the host (a device-side quantizer is not written yet), so each host call copies x.
numba.cuda is imported only inside kernels/cuda.
"""

import numpy as np
from numba import cuda

from kernels.cpu import matmul as cpu_matmul
from kernels.cpu.q8 import quantize_row_q8_K
from kernels.cuda.quants_base import f32_from_bits, int8_of, read_f16, read_u16, read_u32
from kernels.cuda.simulator import device

THREADS_PER_BLOCK = 128  # also the shared-memory size: launches may use any power of two <= 128
MAX_BLOCKS = 65535

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q4_0 = 2
GGML_TYPE_Q4_1 = 3
GGML_TYPE_Q5_0 = 6
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8
GGML_TYPE_Q4_K = 12
GGML_TYPE_Q5_K = 13
GGML_TYPE_Q6_K = 14
GGML_TYPE_BF16 = 30
CUDA_TYPES = frozenset({GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                        GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                        GGML_TYPE_Q6_K})


def matmul(w, ggml_type: int, n_rows: int, n_cols: int, x: np.ndarray, out: np.ndarray,
           threads_per_block: int = THREADS_PER_BLOCK, max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """out = W @ x on the GPU; arguments as kernels.cpu.matmul.matmul (w may be a device array).

    Raises ValueError for a bad type, dtype, layout or size.
    """
    ggml_type = int(ggml_type)
    if ggml_type not in CUDA_TYPES:
        raise ValueError(f"CUDA matmul: unsupported weight type {ggml_type}")
    tpb = int(threads_per_block)
    if tpb < 1 or tpb > THREADS_PER_BLOCK or tpb & (tpb - 1):
        raise ValueError(f"threads_per_block must be a power of two <= {THREADS_PER_BLOCK}, got {tpb}")
    if isinstance(w, np.ndarray):
        n_tokens = cpu_matmul.check_args(w, ggml_type, n_rows, n_cols, x, out)
    else:  # a device array already holding the weight
        if w.dtype != np.uint8 or w.ndim != 1:
            raise ValueError("CUDA matmul: w must be a 1-D uint8 array")
        n_tokens = cpu_matmul.check_args(None, ggml_type, n_rows, n_cols, x, out, w_size=w.size)
    if n_tokens == 0 or n_rows == 0:
        return out
    xf = x.reshape(-1)
    if ggml_type == GGML_TYPE_Q5_K:
        xq = np.empty(n_tokens * (n_cols // 256) * 292, np.uint8)
        quantize_row_q8_K(xf, n_tokens, n_cols, xq)
    else:
        xq = np.empty(cpu_matmul.act_nbytes(ggml_type, n_tokens, n_cols), np.uint8)
        cpu_matmul.quantize_act(xf, ggml_type, n_tokens, n_cols, xq)
    d_w = cuda.to_device(w) if isinstance(w, np.ndarray) else w
    d_out = cuda.device_array(n_rows * n_tokens, np.float32)
    grid = max(1, min(int(max_blocks), n_rows * n_tokens))
    matmul_q[grid, tpb](d_w, ggml_type, n_rows, n_cols, cuda.to_device(xq), n_tokens, d_out)
    out.reshape(-1)[:] = d_out.copy_to_host()
    return out


@device
def _layout(ggml_type):
    """(elements per block, weight block bytes, activation block bytes)."""
    if ggml_type == GGML_TYPE_Q4_0:
        return 32, 18, 34
    if ggml_type == GGML_TYPE_Q4_1:
        return 32, 20, 36
    if ggml_type == GGML_TYPE_Q5_0:
        return 32, 22, 34
    if ggml_type == GGML_TYPE_Q5_1:
        return 32, 24, 36
    if ggml_type == GGML_TYPE_Q8_0:
        return 32, 34, 34
    if ggml_type == GGML_TYPE_Q4_K:
        return 256, 144, 292
    if ggml_type == GGML_TYPE_Q5_K:
        return 256, 176, 292
    if ggml_type == GGML_TYPE_Q6_K:
        return 256, 210, 292
    if ggml_type == GGML_TYPE_F32:
        return 1, 4, 4
    return 1, 2, 2  # F16, BF16


@device
def _legacy_block(w, bo, x, xo, ggml_type):
    """Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 block times its Q8_0 / Q8_1 block."""
    isum = 0
    if ggml_type == GGML_TYPE_Q8_0:
        for j in range(32):
            isum += int8_of(w[bo + 2 + j]) * int8_of(x[xo + 2 + j])
        return (read_f16(w, bo) * read_f16(x, xo)) * np.float32(isum)
    has_min = ggml_type == GGML_TYPE_Q4_1 or ggml_type == GGML_TYPE_Q5_1
    five = ggml_type == GGML_TYPE_Q5_0 or ggml_type == GGML_TYPE_Q5_1
    qs = bo + 2
    qh = 0
    if ggml_type == GGML_TYPE_Q4_1:
        qs = bo + 4
    elif ggml_type == GGML_TYPE_Q5_0:
        qh = read_u32(w, bo + 2)
        qs = bo + 6
    elif ggml_type == GGML_TYPE_Q5_1:
        qh = read_u32(w, bo + 4)
        qs = bo + 8
    off = 0
    if ggml_type == GGML_TYPE_Q4_0:
        off = 8
    elif ggml_type == GGML_TYPE_Q5_0:
        off = 16
    xs = xo + 4 if has_min else xo + 2
    for j in range(16):
        b = np.int32(w[qs + j])
        lo = b & 15
        hi = b >> 4
        if five:
            lo |= np.int32((qh >> j) & 1) << 4
            hi |= np.int32((qh >> (j + 16)) & 1) << 4
        isum += (lo - off) * int8_of(x[xs + j]) + (hi - off) * int8_of(x[xs + 16 + j])
    v = (read_f16(w, bo) * read_f16(x, xo)) * np.float32(isum)
    if has_min:
        v += read_f16(w, bo + 2) * read_f16(x, xo + 2)
    return v


@device
def _scale_min_k4(w, s, j):
    """get_scale_min_k4: (scale, min) j of the 12 packed bytes at s."""
    if j < 4:
        return np.int32(w[s + j]) & 63, np.int32(w[s + j + 4]) & 63
    sc = (np.int32(w[s + j + 4]) & 0xF) | ((np.int32(w[s + j - 4]) >> 6) << 4)
    mn = (np.int32(w[s + j + 4]) >> 4) | ((np.int32(w[s + j]) >> 6) << 4)
    return sc, mn


@device
def _bsum(x, xo, g):
    v = read_u16(x, xo + 260 + 2 * g)
    return v - ((v & 0x8000) << 1)


@device
def _k_block(w, bo, x, xo, ggml_type):
    """Q4_K / Q5_K / Q6_K super-block times its Q8_K block."""
    yd = f32_from_bits(read_u32(x, xo))
    if ggml_type == GGML_TYPE_Q6_K:
        isum = 0
        for g in range(16):  # 16 sub-blocks of 16 values
            half = g // 8
            k = (g % 8) // 2
            part = (g % 2) * 16
            p = 0
            for e in range(16):
                byte = part + e
                lo = np.int32(w[bo + 64 * half + 32 * (k & 1) + byte])
                lo = (lo & 15) if k < 2 else (lo >> 4)
                hb = (np.int32(w[bo + 128 + 32 * half + byte]) >> (2 * k)) & 3
                p += ((lo | (hb << 4)) - 32) * int8_of(x[xo + 4 + 128 * half + 32 * k + byte])
            isum += int8_of(w[bo + 192 + g]) * p
        return (yd * read_f16(w, bo + 208)) * np.float32(isum)
    isum = 0
    msum = 0
    qs = bo + 16 if ggml_type == GGML_TYPE_Q4_K else bo + 48
    for j in range(8):  # 8 sub-blocks of 32 values
        sc, mn = _scale_min_k4(w, bo + 4, j)
        chunk = j // 2
        p = 0
        for l in range(32):
            b = np.int32(w[qs + 32 * chunk + l])
            q = (b & 15) if j % 2 == 0 else (b >> 4)
            if ggml_type == GGML_TYPE_Q5_K:
                q |= ((np.int32(w[bo + 16 + l]) >> j) & 1) << 4
            p += q * int8_of(x[xo + 4 + 32 * j + l])
        isum += sc * p
        msum += mn * (_bsum(x, xo, 2 * j) + _bsum(x, xo, 2 * j + 1))
    d = yd * read_f16(w, bo)
    dmin = -yd * read_f16(w, bo + 2)
    return d * np.float32(isum) + dmin * np.float32(msum)


@device
def _float_elem(w, bo, x, xo, ggml_type):
    if ggml_type == GGML_TYPE_F32:
        return f32_from_bits(read_u32(w, bo)) * f32_from_bits(read_u32(x, xo))
    if ggml_type == GGML_TYPE_F16:
        return read_f16(w, bo) * read_f16(x, xo)
    return (f32_from_bits(np.int64(read_u16(w, bo)) << 16)
            * f32_from_bits(np.int64(read_u16(x, xo)) << 16))


@cuda.jit
def matmul_q(w, ggml_type, n_rows, n_cols, xq, n_tokens, out):
    """out[t * n_rows + r] = W row r . activation row t; block size a power of two <= 128."""
    partial = cuda.shared.array(THREADS_PER_BLOCK, np.float32)
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    qk, wb, xb = _layout(ggml_type)
    nb = n_cols // qk
    for item in range(cuda.blockIdx.x, n_rows * n_tokens, cuda.gridDim.x):
        r = item % n_rows
        t = item // n_rows
        acc = np.float32(0.0)
        for ib in range(tid, nb, nthreads):
            bo = r * nb * wb + ib * wb
            xo = t * nb * xb + ib * xb
            if qk == 32:
                acc += _legacy_block(w, bo, xq, xo, ggml_type)
            elif qk == 256:
                acc += _k_block(w, bo, xq, xo, ggml_type)
            else:
                acc += _float_elem(w, bo, xq, xo, ggml_type)
        partial[tid] = acc
        cuda.syncthreads()
        s = nthreads // 2
        while s > 0:
            if tid < s:
                partial[tid] += partial[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            out[t * n_rows + r] = partial[0]
        cuda.syncthreads()
