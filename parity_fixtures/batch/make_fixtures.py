"""Record which batches llama_decode accepts, and the cache's sequence ranges after each step.

Runs llama.cpp (llama-cpp-python 0.3.36 low-level API, ~/.cache/emel-ref/venv) on SmolLM2-135M
(CPU, n_ctx=256, n_batch=64, n_ubatch=16, n_seq_max=4, unified KV cache). For each case the
context's memory is cleared, the `setup` steps run (each must succeed), then the test batch is
decoded and llama_decode's return code recorded (0 ok, -1 invalid input, 1 no KV slot), together
with llama_memory_seq_pos_min/max of every sequence afterwards.
Writes decode_validation.json. Regenerate: ~/.cache/emel-ref/venv/bin/python parity_fixtures/batch/make_fixtures.py
"""

import ctypes
import json
import pathlib

import llama_cpp as L

MODEL = pathlib.Path.home() / ".cache/emel/models/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = pathlib.Path(__file__).with_name("decode_validation.json")
N_CTX, N_BATCH, N_UBATCH, N_SEQ = 256, 64, 16, 4


def make_batch(token, pos=None, seq_id=None, logits=None):
    n = len(token)
    keep = []
    b = L.llama_batch()
    b.n_tokens = n
    arr = (L.llama_token * max(n, 1))(*token)
    keep.append(arr)
    b.token = ctypes.cast(arr, ctypes.POINTER(L.llama_token))
    b.embd = None
    if pos is not None:
        p = (L.llama_pos * n)(*pos)
        keep.append(p)
        b.pos = ctypes.cast(p, ctypes.POINTER(L.llama_pos))
    else:
        b.pos = None
    if seq_id is not None:
        ns = (ctypes.c_int32 * n)(*[len(s) for s in seq_id])
        ptrs = (ctypes.POINTER(L.llama_seq_id) * (n + 1))()
        for i, s in enumerate(seq_id):
            a = (L.llama_seq_id * len(s))(*s)
            keep.append(a)
            ptrs[i] = ctypes.cast(a, ctypes.POINTER(L.llama_seq_id))
        keep += [ns, ptrs]
        b.n_seq_id = ctypes.cast(ns, ctypes.POINTER(ctypes.c_int32))
        b.seq_id = ctypes.cast(ptrs, ctypes.POINTER(ctypes.POINTER(L.llama_seq_id)))
    else:
        b.n_seq_id = None
        b.seq_id = None
    if logits is not None:
        lg = (ctypes.c_int8 * n)(*logits)
        keep.append(lg)
        b.logits = ctypes.cast(lg, ctypes.POINTER(ctypes.c_int8))
    else:
        b.logits = None
    return b, keep


def run_step(ctx, mem, step):
    if "rm" in step:
        return int(L.llama_memory_seq_rm(mem, *step["rm"]))
    b, keep = make_batch(step["token"], step.get("pos"), step.get("seq_id"), step.get("logits"))
    return int(L.llama_decode(ctx, b))


def ranges(mem):
    return [[L.llama_memory_seq_pos_min(mem, s), L.llama_memory_seq_pos_max(mem, s)] for s in range(N_SEQ)]


def T(n, start=1):
    return [(start + i) % 1000 for i in range(n)]


CASES = [
    ("simple", [], {"token": T(3)}),
    ("token too large", [], {"token": [1, 49152]}),
    ("negative token", [], {"token": [-1, 2]}),
    ("seq id too large", [], {"token": T(2), "seq_id": [[0], [4]]}),
    # a negative seq id with pos=NULL corrupts llama.cpp's heap (pos_next[-1] in
    # llama_batch_compat::init), so it is not recorded; emel raises BatchError for it
    ("continue after cache", [{"token": T(6)}], {"token": T(2), "pos": [6, 7]}),
    ("gap after cache", [{"token": T(6)}], {"token": T(1), "pos": [7]}),
    ("overlap with cache", [{"token": T(6)}], {"token": T(1), "pos": [5]}),
    ("restart after seq_rm", [{"token": T(10)}, {"rm": [0, 5, -1]}], {"token": T(2), "pos": [5, 6]}),
    ("wrong restart after seq_rm", [{"token": T(10)}, {"rm": [0, 5, -1]}], {"token": T(2), "pos": [10, 11]}),
    ("gap in batch", [], {"token": T(2), "pos": [0, 2]}),
    ("duplicate positions", [], {"token": T(3), "pos": [0, 0, 1]}),
    ("decreasing", [], {"token": T(3), "pos": [1, 0, 2]}),
    ("start anywhere when empty", [], {"token": T(2), "pos": [40, 41]}),
    ("interleaved sequences", [], {"token": T(6), "pos": [0, 0, 1, 1, 2, 2], "seq_id": [[0], [1], [0], [1], [0], [1]]}),
    ("shared prompt", [], {"token": T(4), "pos": [0, 1, 2, 3], "seq_id": [[0, 1]] * 4}),
    ("coupled in sync", [{"token": T(4), "pos": [0, 1, 2, 3], "seq_id": [[0, 1]] * 4}],
     {"token": T(1), "pos": [4], "seq_id": [[0, 1]]}),
    ("coupled diverged", [{"token": T(4), "pos": [0, 1, 2, 3]},
                          {"token": T(3), "pos": [1, 2, 3], "seq_id": [[1]] * 3}],
     {"token": T(1), "pos": [4], "seq_id": [[0, 1]]}),
    # more than n_batch tokens aborts llama.cpp (GGML_ASSERT in llama_context::decode): not recorded
    ("empty", [], {"token": []}),
    ("fills the cache", [{"token": T(64)}, {"token": T(64)}, {"token": T(64)}], {"token": T(64)}),
    ("cache full", [{"token": T(64)}, {"token": T(64)}, {"token": T(64)}, {"token": T(60)}], {"token": T(8)}),
    ("negative position", [], {"token": T(2), "pos": [-1, 0]}),
]


def main() -> None:
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(str(MODEL).encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = N_CTX, N_BATCH, N_UBATCH, N_SEQ
    cp.kv_unified = True
    cp.n_threads = cp.n_threads_batch = 2
    ctx = L.llama_init_from_model(model, cp)
    mem = L.llama_get_memory(ctx)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    cases = []
    for name, setup, batch in CASES:
        print(name, flush=True)
        L.llama_memory_clear(mem, True)
        for step in setup:
            ret = run_step(ctx, mem, step)
            assert ret == (1 if "rm" in step else 0), (name, step, ret)
        before = ranges(mem)
        ret = run_step(ctx, mem, batch)
        cases.append({"name": name, "setup": setup, "batch": batch, "ret": ret,
                      "ranges_before": before, "ranges_after": ranges(mem)})
        print(f"{name:30s} ret={ret}", flush=True)
    OUT.write_text(json.dumps({
        "llama_cpp": "llama-cpp-python 0.3.36 (vendored llama.cpp), CPU",
        "model": MODEL.name, "n_ctx": N_CTX, "n_batch": N_BATCH, "n_ubatch": N_UBATCH,
        "n_seq_max": N_SEQ, "n_vocab": n_vocab, "kv_unified": True, "cases": cases,
    }, indent=None) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
