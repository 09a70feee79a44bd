"""Record llama.cpp's activation quantization and quantized dot products for kernels.cpu.matmul tests.

Calls the CPU backend of llama-cpp-python's bundled ggml through ctypes: `quantize_row_q8_0`,
`quantize_row_q8_1`, `quantize_row_q8_K` (the vec_dot_type `from_float` functions) and
`ggml_vec_dot_<type>_<vec_dot_type>` (what ggml_compute_forward_mul_mat calls per row and column
when the weight is not repacked). Weights are random blocks: random bytes with sane f16 scales.

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


def _weights(rng, qk, block_bytes, scale_offsets):
    n_blocks = N_ROWS * N_COLS // qk
    w = rng.integers(0, 256, n_blocks * block_bytes, dtype=np.uint8).reshape(n_blocks, block_bytes)
    for off in scale_offsets:
        d = (rng.standard_normal(n_blocks) * 0.02).astype(np.float16).view(np.uint8).reshape(-1, 2)
        w[:, off:off + 2] = d
    return w.reshape(-1)


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
    meta = {
        "llama_cpp_python": version, "seed": SEED, "n_cols": N_COLS, "n_rows": N_ROWS,
        "n_tokens": n_tokens, "types": {k: v[0] for k, v in TYPES.items()},
        "cpu": {f: bool(getattr(cpu, f"ggml_cpu_has_{f}")()) for f in ("avx2", "avx512", "avx512_vnni")},
        "functions": "quantize_row_q8_{0,1,K}, ggml_vec_dot_<type>_<vec_dot_type>",
    }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(HERE, "vec_dot.npz"), **arrays)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
