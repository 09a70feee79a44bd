"""Record llama.cpp's activation quantization and quantized dot products for kernels.cpu.matmul tests.

Calls the CPU backend of llama-cpp-python's bundled ggml through ctypes: `quantize_row_q8_0`,
`quantize_row_q8_1`, `quantize_row_q8_K` (the vec_dot_type `from_float` functions) and
`ggml_vec_dot_<type>_<vec_dot_type>` (what ggml_compute_forward_mul_mat calls per row and column
when the weight is not repacked). Weights are random blocks: random bytes with sane f16 scales.

Also records llama.cpp's repacked Q4_K path, which x86 AVX2 builds use for Q4_K weights with a
multiple of 8 rows (repack.cpp, CPU_REPACK buffer): the weight is interleaved into block_q4_Kx8
(make_block_q4_Kx8, transcribed below), one token goes through ggml_gemv_q4_K_8x8_q8_K with
quantize_row_q8_K activations, groups of 4 tokens through ggml_gemm_q4_K_8x8_q8_K with
ggml_quantize_mat_q8_K_4x8 activations.

usage: ~/.cache/emel-ref/venv/bin/python parity_fixtures/matmul/make_fixtures.py
writes parity_fixtures/matmul/vec_dot.npz
"""

import ctypes
import glob
import json
import os

import numpy as np

SEED = 1234
N_COLS = 512
N_ROWS = 5
HERE = os.path.dirname(os.path.abspath(__file__))

# name: (ggml type id, block elements, block bytes, vec_dot_type, f16 scale field offsets)
TYPES = {
    "Q4_0": (2, 32, 18, "q8_0", (0,)),
    "Q4_1": (3, 32, 20, "q8_1", (0, 2)),
    "Q5_0": (6, 32, 22, "q8_0", (0,)),
    "Q5_1": (7, 32, 24, "q8_1", (0, 2)),
    "Q8_0": (8, 32, 34, "q8_0", (0,)),
    "Q2_K": (10, 256, 84, "q8_K", (80, 82)),
    "Q3_K": (11, 256, 110, "q8_K", (108,)),
    "Q4_K": (12, 256, 144, "q8_K", (0, 2)),
    "Q5_K": (13, 256, 176, "q8_K", (0, 2)),
    "Q6_K": (14, 256, 210, "q8_K", (208,)),
    "IQ2_XXS": (16, 256, 66, "q8_K", (0,)),
    "IQ2_XS": (17, 256, 74, "q8_K", (0,)),
    "IQ3_XXS": (18, 256, 98, "q8_K", (0,)),
    "IQ1_S": (19, 256, 50, "q8_K", (0,)),
    "IQ4_NL": (20, 32, 18, "q8_0", (0,)),
    "IQ3_S": (21, 256, 110, "q8_K", (0,)),
    "IQ2_S": (22, 256, 82, "q8_K", (0,)),
    "IQ4_XS": (23, 256, 136, "q8_K", (0,)),
    "TQ1_0": (34, 256, 54, "q8_K", (52,)),
    "TQ2_0": (35, 256, 66, "q8_K", (64,)),
}
VEC_DOT_BYTES = {"q8_0": (32, 34), "q8_1": (32, 36), "q8_K": (256, 292)}


def _load_ggml():
    import llama_cpp

    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    ctypes.CDLL(glob.glob(os.path.join(libdir, "libggml-base.so"))[0], mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(glob.glob(os.path.join(libdir, "libggml-cpu.so"))[0], mode=ctypes.RTLD_GLOBAL)
    cpu.ggml_cpu_init()
    return cpu, llama_cpp.__version__


def _activations(rng):
    x = np.empty((4, N_COLS), np.float32)
    x[0] = rng.standard_normal(N_COLS)
    x[1] = rng.standard_normal(N_COLS) * np.exp(rng.uniform(-6, 3, N_COLS))
    # ties: a block maximum of 127 makes the Q8_0/Q8_1 multiplier and the Q8_K scale exactly 1,
    # so k + 0.5 lands exactly halfway between two integers
    x[2] = (rng.integers(-126, 126, N_COLS) + 0.5).astype(np.float32)
    x[2, ::32] = np.where(np.arange(N_COLS // 32) % 2 == 0, 127.0, -127.0)
    x[3] = 0.0  # all-zero blocks, then a single nonzero
    x[3, 300] = -3.25
    return x


def _weights(rng, qk, block_bytes, scale_offsets, n_rows=N_ROWS):
    n_blocks = n_rows * N_COLS // qk
    w = rng.integers(0, 256, n_blocks * block_bytes, dtype=np.uint8).reshape(n_blocks, block_bytes)
    for off in scale_offsets:
        d = (rng.standard_normal(n_blocks) * 0.02).astype(np.float16).view(np.uint8).reshape(-1, 2)
        w[:, off:off + 2] = d
    return w.reshape(-1)


def _repack_q4_k_x8(w, n_rows):
    """GGUF Q4_K rows -> block_q4_Kx8 groups (repack_q4_K_to_q4_K_8_bl, interleave 8)."""
    nblocks = N_COLS // 256
    blocks = w.reshape(n_rows, nblocks, 144)
    out = []
    for g in range(n_rows // 8):
        for x in range(nblocks):
            src = blocks[g * 8:(g + 1) * 8, x]
            d, dmin = src[:, 0:2].reshape(-1), src[:, 2:4].reshape(-1)
            sc = src[:, 4:16].astype(np.int64)
            qs = src[:, 16:]
            oq = np.empty(1024, np.uint8)
            for i in range(128):
                oq[i * 8:(i + 1) * 8] = qs[i % 8, (i // 8) * 8:(i // 8) * 8 + 8]
            osc = np.empty(96, np.int64)
            for half in range(2):
                for i in range(4):
                    if half == 0:
                        s6 = sc[:, i] & 63
                        m6 = sc[:, i + 4] & 63
                    else:
                        s6 = ((sc[:, i] & 192) >> 2) | (sc[:, i + 8] & 15)
                        m6 = ((sc[:, i + 4] & 192) >> 2) | ((sc[:, i + 8] & 240) >> 4)
                    o = i * 12 + 48 * half
                    for j in range(4):
                        osc[o + j] = (s6[j] & 63) + ((s6[j + 4] & 48) << 2)
                        osc[o + 4 + j] = (m6[j] & 63) + ((m6[j + 4] & 48) << 2)
                        osc[o + 8 + j] = (s6[j + 4] & 15) + ((m6[j + 4] & 15) << 4)
            out.append(np.concatenate([d, dmin, (osc & 255).astype(np.uint8), oq]))
    return np.concatenate(out)


def _q4_k_repacked(cpu, rng, x, xq_k, arrays):
    n_rows, n_tokens = 16, x.shape[0]
    w = _weights(rng, 256, 144, (0, 2), n_rows)
    wr = _repack_q4_k_x8(w, n_rows)
    xrow = N_COLS // 256 * 292
    out_gemv = np.zeros((n_tokens, n_rows), np.float32)
    for t in range(n_tokens):
        cpu.ggml_gemv_q4_K_8x8_q8_K(ctypes.c_int(N_COLS), out_gemv[t].ctypes.data_as(ctypes.c_void_p),
                                    ctypes.c_size_t(0), wr.ctypes.data_as(ctypes.c_void_p),
                                    ctypes.c_void_p(xq_k.ctypes.data + t * xrow), ctypes.c_int(1), ctypes.c_int(n_rows))
    assert n_tokens == 4
    x4 = np.ascontiguousarray(x)
    xq4 = np.zeros(N_COLS // 256 * (16 + 1024 + 128), np.uint8)
    cpu.ggml_quantize_mat_q8_K_4x8(x4.ctypes.data_as(ctypes.c_void_p), xq4.ctypes.data_as(ctypes.c_void_p),
                                   ctypes.c_int64(N_COLS))
    out_gemm = np.zeros((n_tokens, n_rows), np.float32)
    cpu.ggml_gemm_q4_K_8x8_q8_K(ctypes.c_int(N_COLS), out_gemm.ctypes.data_as(ctypes.c_void_p),
                                ctypes.c_size_t(n_rows), wr.ctypes.data_as(ctypes.c_void_p),
                                xq4.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(4), ctypes.c_int(n_rows))
    arrays["w_Q4_K_r8"] = w
    arrays["out_Q4_K_r8_gemv"] = out_gemv
    arrays["out_Q4_K_r8_gemm"] = out_gemm


def _iq4_nl_odd_blocks(cpu, rng, x, arrays):
    """IQ4_NL rows of 3 blocks (96 values): the AVX2 loop takes blocks in pairs, then a tail."""
    n_cols, n_rows = 96, 5
    xs = np.ascontiguousarray(x[:, :n_cols])
    xq = np.zeros(x.shape[0] * 3 * 34, np.uint8)
    for t in range(x.shape[0]):
        cpu.quantize_row_q8_0(xs[t].ctypes.data_as(ctypes.c_void_p), ctypes.c_void_p(xq.ctypes.data + t * 102),
                              ctypes.c_int64(n_cols))
    w = rng.integers(0, 256, n_rows * 3 * 18, dtype=np.uint8).reshape(-1, 18)
    w[:, 0:2] = (rng.standard_normal(len(w)) * 0.02).astype(np.float16).view(np.uint8).reshape(-1, 2)
    w = w.reshape(-1)
    out = np.zeros((x.shape[0], n_rows), np.float32)
    s = ctypes.c_float()
    for t in range(x.shape[0]):
        for r in range(n_rows):
            cpu.ggml_vec_dot_iq4_nl_q8_0(ctypes.c_int(n_cols), ctypes.byref(s), ctypes.c_size_t(0),
                                         ctypes.c_void_p(w.ctypes.data + r * 54), ctypes.c_size_t(0),
                                         ctypes.c_void_p(xq.ctypes.data + t * 102), ctypes.c_size_t(0),
                                         ctypes.c_int(1))
            out[t, r] = s.value
    arrays["w_IQ4_NL_96"] = w
    arrays["out_IQ4_NL_96"] = out


def _f16_rows(cpu, rng, x, arrays):
    """F16 weights (vec_dot_type F16): x converted by ggml_cpu_fp32_to_fp16, then ggml_vec_dot_f16.
    200 columns: three 64-value SIMD steps and a tail of 8."""
    n_cols, n_rows = 200, 5
    w = (rng.standard_normal((n_rows, n_cols)) * 0.1).astype(np.float16)
    out = np.zeros((x.shape[0], n_rows), np.float32)
    s = ctypes.c_float()
    for t in range(x.shape[0]):
        xs = np.ascontiguousarray(x[t, :n_cols])
        xh = np.zeros(n_cols, np.uint16)
        cpu.ggml_cpu_fp32_to_fp16(xs.ctypes.data_as(ctypes.c_void_p), xh.ctypes.data_as(ctypes.c_void_p),
                                  ctypes.c_int64(n_cols))
        for r in range(n_rows):
            cpu.ggml_vec_dot_f16(ctypes.c_int(n_cols), ctypes.byref(s), ctypes.c_size_t(0),
                                 ctypes.c_void_p(w.ctypes.data + r * n_cols * 2), ctypes.c_size_t(0),
                                 xh.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(0), ctypes.c_int(1))
            out[t, r] = s.value
    arrays["w_F16_200"] = w.view(np.uint8).reshape(-1)
    arrays["out_F16_200"] = out


def main():
    cpu, version = _load_ggml()
    rng = np.random.default_rng(SEED)
    x = _activations(rng)
    n_tokens = x.shape[0]
    arrays = {"x": x}
    fn_q = {name: getattr(cpu, f"quantize_row_{name}") for name in VEC_DOT_BYTES}
    for name, fn in fn_q.items():
        qk, qb = VEC_DOT_BYTES[name]
        xq = np.zeros(n_tokens * N_COLS // qk * qb, np.uint8)
        for t in range(n_tokens):
            row = np.ascontiguousarray(x[t])
            fn(row.ctypes.data_as(ctypes.c_void_p),
               ctypes.c_void_p(xq.ctypes.data + t * (N_COLS // qk) * qb), ctypes.c_int64(N_COLS))
        arrays[f"xq_{name}"] = xq
    for tname, (type_id, qk, nbytes, vdt, scale_offsets) in TYPES.items():
        w = _weights(rng, qk, nbytes, scale_offsets)
        row_bytes = N_COLS // qk * nbytes
        xq = arrays[f"xq_{vdt}"]
        xrow = N_COLS // VEC_DOT_BYTES[vdt][0] * VEC_DOT_BYTES[vdt][1]
        fn = getattr(cpu, f"ggml_vec_dot_{tname.lower().replace('_k', '_K')}_{vdt}")
        out = np.zeros((n_tokens, N_ROWS), np.float32)
        s = ctypes.c_float()
        for t in range(n_tokens):
            for r in range(N_ROWS):
                fn(ctypes.c_int(N_COLS), ctypes.byref(s), ctypes.c_size_t(0),
                   ctypes.c_void_p(w.ctypes.data + r * row_bytes), ctypes.c_size_t(0),
                   ctypes.c_void_p(xq.ctypes.data + t * xrow), ctypes.c_size_t(0), ctypes.c_int(1))
                out[t, r] = s.value
        arrays[f"w_{tname}"] = w
        arrays[f"out_{tname}"] = out
    _q4_k_repacked(cpu, rng, x, arrays["xq_q8_K"], arrays)
    _iq4_nl_odd_blocks(cpu, rng, x, arrays)
    _f16_rows(cpu, rng, x, arrays)
    meta = {
        "llama_cpp_python": version, "seed": SEED, "n_cols": N_COLS, "n_rows": N_ROWS,
        "n_tokens": n_tokens, "types": {k: v[0] for k, v in TYPES.items()},
        "cpu": {f: bool(getattr(cpu, f"ggml_cpu_has_{f}")()) for f in ("avx2", "avx512", "avx512_vnni")},
        "functions": "quantize_row_q8_{0,1,K}, ggml_vec_dot_<type>_<vec_dot_type>, ggml_vec_dot_f16, "
                     "ggml_gemv_q4_K_8x8_q8_K, ggml_gemm_q4_K_8x8_q8_K, ggml_quantize_mat_q8_K_4x8",
    }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(HERE, "vec_dot.npz"), **arrays)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
