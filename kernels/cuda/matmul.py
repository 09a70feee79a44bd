"""CUDA twin of kernels.cpu.matmul: out = W @ x for GGML weights, integer block dots on the GPU.

Same names and arguments as the CPU module: `quantize_act(x, ggml_type, n_tokens, n_cols, xq)`
converts device activations to the weight type's vec_dot_type on the device (kernels/cuda/q8.py,
bit-equal to kernels.cpu.matmul.quantize_act); `matmul_q[grid, block](w, ggml_type, n_rows,
n_cols, xq, n_tokens, out)` multiplies (launched by `launch_matmul_q`, which checks sizes); the host
entry point `matmul(w, ggml_type, n_rows, n_cols, x, out)` does both. Arrays may be device arrays
end to end: nothing but what the caller asks for crosses to the host.

Four kernels, chosen by `launch_matmul_q`:
- `matmul_q_lanes` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): bit-equal with the CPU (kernels/cpu/vec_dot.py,
  llama.cpp's ggml_vec_dot_*_q8_* for AVX2; row dots in kernels/cuda/vec_dot.py). One thread per output (row r, token t) keeps the 8
  float lanes of the AVX2 dot: per block, lane l gets the exact integer sum of the products of
  elements 4l..4l+3, scaled by d = d_w * d_x and added with an FMA; then hsum_float_8's order
  ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), plus the serial FMA sum of the Q4_1/Q5_1 min terms.
  (A thread per output is enough parallelism for these models: n_rows * n_tokens threads.)
- `matmul_q_k_lanes` (Q4_K, Q5_K, Q6_K): bit-equal with the CPU too, one thread per output with
  the CPU's row-dot kind (kernels.cpu.vec_dot_rows.llama_cpp_kinds: vec_dot, or for Q4_K with
  n_rows % 8 == 0 llama.cpp's repacked gemv, and gemm for the first n_tokens - n_tokens % 4
  tokens of a batch of more than 3).
- `matmul_bf16_lanes` (BF16): bit-equal with the CPU's vec_dot_bf16_bf16 (32 FMA lanes).
- `matmul_q` (every type; used for F32/F16 and a kind the others lack): one CUDA block
  per output, its threads take the quant blocks of the row in a stride loop, each summing `scale * integer block
  dot` in float32, then a shared-memory tree reduction (pairs at distance blockDim/2, /4, ... 1)
  adds the per-thread sums. The integer block dots are exact, as on the CPU; only the float32
  addition order differs from llama.cpp's AVX2 lanes (difference <= ~1e-6 of sum |terms|).
(F32/F16 weights in the CPU's float order: kernels.cuda.ops.matmul_float_ggml.)
Byte offsets are int64 (a 262k-vocab output matrix nears 2^31 bytes in some types).

Types: F16, BF16, F32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
numba.cuda is imported only inside kernels/cuda.
"""

import numpy as np
from numba import cuda

from kernels.cpu import matmul as cpu_matmul
from kernels.cpu.quants_base import row_nbytes
from kernels.cpu.vec_dot_rows import llama_cpp_kinds
from kernels.cuda import q8
from kernels.cuda import vec_dot as vd
from kernels.cuda.ops_base import fma32, mul_rn
from kernels.cuda.quants_base import f32_from_bits, int8_of, read_f16, read_u16, read_u32
from kernels.cuda.simulator import device

THREADS_PER_BLOCK = 128  # also the shared-memory size: launches may use any power of two <= 128
MAX_BLOCKS = 65535
LANES = 8  # matmul_q_lanes: the 8 float lanes of llama.cpp's AVX2 dot
LANES_THREADS = 128  # matmul_q_lanes: threads per block, one per output
QUANTIZE_THREADS = 128  # quantize_act: one thread per activation block

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
LANE_TYPES = frozenset({GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                        GGML_TYPE_Q8_0})  # matmul_q_lanes: the CPU's float order
# matmul_q_k_lanes: the CPU's row-dot kinds of the K-quants (kernels.cpu.vec_dot_rows)
K_KIND_Q4_K_R8_GEMV = 1012
K_KIND_Q4_K_R8_GEMM = 2012
K_KINDS = frozenset({GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, K_KIND_Q4_K_R8_GEMV,
                     K_KIND_Q4_K_R8_GEMM})
# weight type -> the kernel converting its activation (its vec_dot_type; kernels.cpu.matmul.VEC_DOT_TYPE)
QUANTIZE_KERNELS = {
    GGML_TYPE_Q4_0: q8.quantize_row_q8_0, GGML_TYPE_Q5_0: q8.quantize_row_q8_0,
    GGML_TYPE_Q8_0: q8.quantize_row_q8_0,
    GGML_TYPE_Q4_1: q8.quantize_row_q8_1, GGML_TYPE_Q5_1: q8.quantize_row_q8_1,
    GGML_TYPE_Q4_K: q8.quantize_row_q8_K, GGML_TYPE_Q5_K: q8.quantize_row_q8_K,
    GGML_TYPE_Q6_K: q8.quantize_row_q8_K,
    GGML_TYPE_F16: q8.quantize_row_f16, GGML_TYPE_BF16: q8.quantize_row_bf16,
    GGML_TYPE_F32: q8.quantize_row_f32,
}


def act_nbytes(ggml_type: int, n_tokens: int, n_cols: int) -> int:
    """Bytes of n_tokens activation rows in ggml_type's vec_dot_type (kernels.cpu.matmul.act_nbytes)."""
    return int(cpu_matmul.act_nbytes(int(ggml_type), int(n_tokens), int(n_cols)))


def quantize_act(x, ggml_type: int, n_tokens: int, n_cols: int, xq,
                 threads_per_block: int = QUANTIZE_THREADS, max_blocks: int = MAX_BLOCKS):
    """Convert x: float32[>= n_tokens * n_cols] to ggml_type's vec_dot_type in xq:
    uint8[>= act_nbytes] on the device (the twin of kernels.cpu.matmul.quantize_act). x and xq are
    device arrays (NumPy arrays are copied by Numba, both ways). Raises ValueError."""
    ggml_type = int(ggml_type)
    kernel = QUANTIZE_KERNELS.get(ggml_type)
    if kernel is None:
        raise ValueError(f"CUDA quantize_act: unsupported weight type {ggml_type}")
    n_tokens, n_cols = int(n_tokens), int(n_cols)
    qk = 256 if kernel is q8.quantize_row_q8_K else 32 if ggml_type not in (
        GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16) else 1
    if n_tokens < 0 or n_cols <= 0 or n_cols % qk:
        raise ValueError(f"CUDA quantize_act: n_cols={n_cols} is not a positive multiple of {qk}")
    nbytes = act_nbytes(ggml_type, n_tokens, n_cols)
    if x.dtype != np.float32 or x.ndim != 1 or x.size < n_tokens * n_cols:
        raise ValueError(f"CUDA quantize_act: x must be 1-D float32 with >= {n_tokens * n_cols} values")
    if xq.dtype != np.uint8 or xq.ndim != 1 or xq.size < nbytes:
        raise ValueError(f"CUDA quantize_act: xq must be 1-D uint8 with >= {nbytes} bytes")
    n_units = n_tokens * n_cols // qk
    if n_units:
        tpb = int(threads_per_block)
        blocks = max(1, min(int(max_blocks), -(-n_units // tpb)))
        kernel[blocks, tpb](x, n_tokens, n_cols, xq)
    return xq


def launch_matmul_q(w, ggml_type: int, n_rows: int, n_cols: int, xq, n_tokens: int, out,
                    threads_per_block: int = THREADS_PER_BLOCK, max_blocks: int = MAX_BLOCKS,
                    lanes_threads: int = LANES_THREADS, kind_rows: int | None = None) -> None:
    """Check sizes, then launch on device arrays (w: uint8 weight rows, xq from quantize_act,
    out: float32[>= n_tokens * n_rows]): matmul_q_lanes for LANE_TYPES and matmul_q_k_lanes for
    the K-quants (lanes_threads threads per block; the CPU's float order), else matmul_q
    (threads_per_block). kind_rows: the row count of the whole weight when w is a row range of
    it (the CPU picks a K-quant's row-dot kind by it). Raises ValueError."""
    ggml_type = int(ggml_type)
    if ggml_type not in CUDA_TYPES:
        raise ValueError(f"CUDA matmul: unsupported weight type {ggml_type}")
    tpb = int(threads_per_block)
    if tpb < 1 or tpb > THREADS_PER_BLOCK or tpb & (tpb - 1):
        raise ValueError(f"threads_per_block must be a power of two <= {THREADS_PER_BLOCK}, got {tpb}")
    n_rows, n_cols, n_tokens = int(n_rows), int(n_cols), int(n_tokens)
    if w.dtype != np.uint8 or w.ndim != 1 or w.size != n_rows * row_nbytes(ggml_type, n_cols):
        raise ValueError(f"CUDA matmul: w must be 1-D uint8 of {n_rows} rows of {n_cols} columns")
    if xq.dtype != np.uint8 or xq.ndim != 1 or xq.size < act_nbytes(ggml_type, n_tokens, n_cols):
        raise ValueError("CUDA matmul: xq holds fewer bytes than n_tokens activation rows")
    if out.dtype != np.float32 or out.ndim != 1 or out.size < n_tokens * n_rows:
        raise ValueError(f"CUDA matmul: out must be 1-D float32 with >= {n_tokens * n_rows} values")
    if n_tokens == 0 or n_rows == 0:
        return
    lt = int(lanes_threads)
    if not 1 <= lt <= 1024:
        raise ValueError(f"lanes_threads must be in [1, 1024], got {lt}")
    if ggml_type in LANE_TYPES or ggml_type == GGML_TYPE_BF16:
        grid = max(1, min(int(max_blocks), -(-n_rows * n_tokens // lt)))
        if ggml_type == GGML_TYPE_BF16:
            matmul_bf16_lanes[grid, lt](w, n_rows, n_cols, xq, n_tokens, out)
        else:
            matmul_q_lanes[grid, lt](w, ggml_type, n_rows, n_cols, xq, n_tokens, out)
        return
    if ggml_type in (GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K):
        # kernels.cpu.matmul: kind_g for the first n_tokens - n_tokens % 4 tokens (n_tokens > 3)
        kind_v, kind_g = (int(k) for k in llama_cpp_kinds(ggml_type, int(kind_rows or n_rows)))
        if kind_v in K_KINDS and kind_g in K_KINDS:
            n_gemm = n_tokens - n_tokens % 4 if n_tokens > 3 else 0
            for kind, t0, t1 in ((kind_g, 0, n_gemm), (kind_v, n_gemm, n_tokens)):
                if t1 > t0:
                    grid = max(1, min(int(max_blocks), -(-n_rows * (t1 - t0) // lt)))
                    matmul_q_k_lanes[grid, lt](w, kind, n_rows, n_cols, xq, t0, t1, out)
            return
    grid = max(1, min(int(max_blocks), n_rows * n_tokens))
    matmul_q[grid, tpb](w, ggml_type, n_rows, n_cols, xq, n_tokens, out)


def matmul(w, ggml_type: int, n_rows: int, n_cols: int, x, out,
           threads_per_block: int = THREADS_PER_BLOCK, max_blocks: int = MAX_BLOCKS):
    """out = W @ x on the GPU; arguments as kernels.cpu.matmul.matmul, except that w, x and out
    may each be a device array (x, out: 1-D for one token or 2-D [n_tokens, ...]). The activation
    is converted on the device; a NumPy out is filled from the device, a device out stays there.

    Raises ValueError for a bad type, dtype, layout or size.
    """
    ggml_type = int(ggml_type)
    if ggml_type not in CUDA_TYPES:
        raise ValueError(f"CUDA matmul: unsupported weight type {ggml_type}")
    if isinstance(w, np.ndarray):
        w_size = None
    elif w.dtype != np.uint8 or w.ndim != 1:
        raise ValueError("CUDA matmul: w must be a 1-D uint8 array")
    else:
        w_size = w.size
    # the CPU checks on (host stand-ins of) x and out: shapes and dtypes only
    xs = x if isinstance(x, np.ndarray) else np.empty(x.shape, x.dtype)
    os_ = out if isinstance(out, np.ndarray) else np.empty(out.shape, out.dtype)
    n_tokens = cpu_matmul.check_args(w if w_size is None else None, ggml_type, n_rows, n_cols,
                                     xs, os_, w_size=w_size)
    if n_tokens == 0 or n_rows == 0:
        return out
    d_w = cuda.to_device(w) if isinstance(w, np.ndarray) else w
    d_x = cuda.to_device(x.reshape(-1)) if isinstance(x, np.ndarray) else x.reshape(x.size)
    d_xq = cuda.device_array(act_nbytes(ggml_type, n_tokens, n_cols), np.uint8)
    quantize_act(d_x, ggml_type, n_tokens, n_cols, d_xq, max_blocks=max_blocks)
    d_out = cuda.device_array(n_rows * n_tokens, np.float32) if isinstance(out, np.ndarray) \
        else out.reshape(out.size)
    launch_matmul_q(d_w, ggml_type, n_rows, n_cols, d_xq, n_tokens, d_out,
                    threads_per_block=threads_per_block, max_blocks=max_blocks,
                    lanes_threads=threads_per_block)
    if isinstance(out, np.ndarray):
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
        sc, mn = vd.scale_min_k4(w, bo + 4, j)
        chunk = j // 2
        p = 0
        for l in range(32):
            b = np.int32(w[qs + 32 * chunk + l])
            q = (b & 15) if j % 2 == 0 else (b >> 4)
            if ggml_type == GGML_TYPE_Q5_K:
                q |= ((np.int32(w[bo + 16 + l]) >> j) & 1) << 4
            p += q * int8_of(x[xo + 4 + 32 * j + l])
        isum += sc * p
        msum += mn * (vd.bsum(x, xo, 2 * j) + vd.bsum(x, xo, 2 * j + 1))
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


@cuda.jit(cache=True)
def matmul_q_lanes(w, ggml_type, n_rows, n_cols, xq, n_tokens, out):
    """out[t * n_rows + r] = W row r . activation row t for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, bit-equal
    with the CPU (see the module docstring). One thread per output (t, r) in a grid-stride loop,
    its 8 lane accumulators in local memory."""
    acc = cuda.local.array(LANES, np.float32)
    qk, wb, xb = _layout(ggml_type)
    nb = n_cols // 32
    has_min = ggml_type == GGML_TYPE_Q4_1 or ggml_type == GGML_TYPE_Q5_1
    for item in range(cuda.grid(1), n_rows * n_tokens, cuda.gridsize(1)):
        r = item % n_rows
        t = item // n_rows
        for lane in range(LANES):
            acc[lane] = np.float32(0.0)
        summs = np.float32(0.0)
        for ib in range(nb):
            bo = r * nb * wb + ib * wb
            xo = t * nb * xb + ib * xb
            d = mul_rn(read_f16(w, bo), read_f16(xq, xo))
            for lane in range(LANES):
                acc[lane] = fma32(d, np.float32(vd.lane_isum_32(w, bo, xq, xo, ggml_type, lane)), acc[lane])
            if has_min:
                summs = fma32(read_f16(w, bo + 2), read_f16(xq, xo + 2), summs)
        # hsum_float_8: ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))
        s0 = np.float32(acc[0] + acc[4])
        s1 = np.float32(acc[1] + acc[5])
        s2 = np.float32(acc[2] + acc[6])
        s3 = np.float32(acc[3] + acc[7])
        v = np.float32(np.float32(s0 + s2) + np.float32(s1 + s3))
        if has_min:
            v = np.float32(v + summs)
        out[t * n_rows + r] = v


@cuda.jit(cache=True)
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


# ---------------------------------------------------------------------------------------------
# K-quants and BF16 in the CPU's float order (the row dots of kernels/cuda/vec_dot.py), one
# thread per output. (Q6_K batches of >= 8 tokens in the tiled order: kernels.cuda.ops.matmul_q6_k_tiled.)


@cuda.jit(cache=True)
def matmul_q_k_lanes(w, kind, n_rows, n_cols, xq, t_begin, t_end, out):
    """out[t * n_rows + r] = W row r . activation row t for t in t_begin..t_end-1, bit-equal with
    the CPU's row dot of `kind` (Q4_K / Q5_K / Q6_K vec_dot, K_KIND_Q4_K_R8_GEMV / _GEMM;
    kernels.cpu.vec_dot_rows). One thread per output, its lanes in local memory."""
    acc = cuda.local.array(LANES, np.float32)
    acc_m = cuda.local.array(4, np.float32)
    sc = cuda.local.array(8, np.int32)
    mn = cuda.local.array(8, np.int32)
    nb = n_cols // 256
    wb = 144
    if kind == GGML_TYPE_Q5_K:
        wb = 176
    elif kind == GGML_TYPE_Q6_K:
        wb = 210
    n_t = t_end - t_begin
    for item in range(cuda.grid(1), n_rows * n_t, cuda.gridsize(1)):
        t = t_begin + item // n_rows
        r = item % n_rows
        woff = r * nb * wb
        xoff = t * nb * 292
        if kind == GGML_TYPE_Q4_K or kind == GGML_TYPE_Q5_K:
            v = vd.dot_k45(w, woff, xq, xoff, nb, kind == GGML_TYPE_Q5_K, acc, acc_m, sc, mn)
        elif kind == GGML_TYPE_Q6_K:
            v = vd.vec_dot_q6_k_q8_k(w, woff, xq, xoff, nb, acc)
        else:
            v = vd.q4_k_r8(w, woff, xq, xoff, nb, kind == K_KIND_Q4_K_R8_GEMM, sc, mn)
        out[t * n_rows + r] = v


@cuda.jit(cache=True)
def matmul_bf16_lanes(w, n_rows, n_cols, xq, n_tokens, out):
    """out[t * n_rows + r] = BF16 row r . BF16 activation row t (quantize_row_bf16), bit-equal
    with the CPU's vec_dot_bf16_bf16; one thread per output, its 32 lanes in local memory."""
    acc = cuda.local.array(32, np.float32)
    for item in range(cuda.grid(1), n_rows * n_tokens, cuda.gridsize(1)):
        t = item // n_rows
        r = item - t * n_rows
        out[item] = vd.vec_dot_bf16_bf16(w, r * n_cols * 2, xq, t * n_cols * 2, n_cols, acc)
