"""Record the KQ masks llama.cpp builds (llama_kv_cache::set_input_kq_mask) for real ubatches.

The mask is an input tensor internal to llama.cpp; it is read back through the graph eval
callback (llama_context_params.cb_eval): for every flash-attention node (llama.cpp's CPU default,
F16 mask of 0 / -inf) the callback copies the node's mask operand (name "attn_inp_kq_mask").
Layer il of ubatch u is the (u * n_layer + il)-th attention node of a scenario. Per ubatch the
masks of the listed layers are stored as zlib + base64 of np.packbits(mask == 0) with their
ggml shape ne = [n_kv, n_tokens / n_stream, 1, n_stream].
Scenarios replay the same steps as make_fixtures.py's style (decode / seq_rm ...).
Writes kv_masks.json. Regenerate: ~/.cache/emel-ref/venv/bin/python parity_fixtures/kv_cache/make_masks.py
"""

import base64
import ctypes
import json
import pathlib
import sys
import zlib

import numpy as np
import llama_cpp as L

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "batch"))
from make_fixtures import make_batch  # noqa: E402

MODELS = pathlib.Path.home() / ".cache/emel/models"
OUT = pathlib.Path(__file__).with_name("kv_masks.json")


class GGMLTensor(ctypes.Structure):
    pass


GGMLTensor._fields_ = [
    ("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
    ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
    ("flags", ctypes.c_int32), ("src", ctypes.POINTER(GGMLTensor) * 10),
    ("view_src", ctypes.POINTER(GGMLTensor)), ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * 64), ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8),
]


def T(n, start=1):
    return [(start + i) % 1000 for i in range(n)]


def seq_batch(seq, start, n):
    return {"decode": {"token": T(n, start), "pos": list(range(start, start + n)), "seq_id": [[seq]] * n,
                       "logits": [1] * n}}


SCENARIOS = {
    "smollm2_multi_seq": dict(
        model="SmolLM2-135M-Instruct.Q4_1.gguf", n_layer=30, layers=[0], n_ctx=512, n_batch=64,
        n_ubatch=16, n_seq_max=3, kv_unified=True, swa_full=False,
        steps=[{"decode": {"token": T(5), "pos": [0, 1, 2, 3, 4], "seq_id": [[0, 1]] * 5}},
               {"decode": {"token": T(5), "pos": [5, 5, 6, 6, 7], "seq_id": [[0], [1], [0], [1], [0]],
                           "logits": [1] * 5}},
               {"decode": {"token": T(5), "pos": [0, 1, 2, 3, 8], "seq_id": [[2], [2], [2], [2], [0]],
                           "logits": [1] * 5}},
               {"rm": [1, 3, -1]},
               seq_batch(1, 3, 2),
               {"decode": {"token": T(20), "pos": list(range(9, 29)), "seq_id": [[0]] * 20}}],
    ),
    "smollm2_streams": dict(
        model="SmolLM2-135M-Instruct.Q4_1.gguf", n_layer=30, layers=[0], n_ctx=768, n_batch=64,
        n_ubatch=16, n_seq_max=3, kv_unified=False, swa_full=False,
        steps=[{"decode": {"token": T(9), "pos": [0, 0, 0, 1, 1, 1, 2, 2, 2], "seq_id": [[0], [1], [2]] * 3,
                           "logits": [1] * 9}},
               {"decode": {"token": T(4), "pos": [3, 4, 3, 4], "seq_id": [[0], [0], [2], [2]], "logits": [1] * 4}},
               seq_batch(1, 3, 6)],
    ),
    "gemma3_swa": dict(
        model="gemma-3-270m-q4_k_m.gguf", n_layer=18, layers=[0, 5], n_ctx=1024, n_batch=256,
        n_ubatch=64, n_seq_max=2, kv_unified=True, swa_full=False,
        steps=[seq_batch(0, 0, 200), seq_batch(1, 0, 40), seq_batch(0, 200, 256), seq_batch(0, 456, 256),
               {"decode": {"token": T(4), "pos": [712, 40, 713, 41], "seq_id": [[0], [1], [0], [1]],
                           "logits": [1] * 4}},
               seq_batch(0, 714, 100), seq_batch(0, 814, 3)],
    ),
}


def main() -> None:
    L.llama_backend_init()
    out = {"llama_cpp": "llama-cpp-python 0.3.36 (vendored llama.cpp), CPU, flash attention auto",
           "scenarios": {}}
    for name, sc in SCENARIOS.items():
        seen = []  # (attention node index, layer, mask) in compute order

        @L.ggml_backend_sched_eval_callback
        def cb(t, ask, ud):
            node = ctypes.cast(t, ctypes.POINTER(GGMLTensor)).contents
            mask = None
            for k in range(10):
                s = node.src[k]
                if s and s.contents.name.startswith(b"attn_inp_kq_mask"):
                    mask = s.contents
            if mask is None:
                return False
            if ask:
                return True
            idx = len(seen)
            il = idx % sc["n_layer"]
            if il in sc["layers"]:
                ne = list(mask.ne)
                n = ne[0] * ne[1] * ne[2] * ne[3]
                assert mask.type == 1, "expected an F16 mask (flash attention)"
                raw = np.frombuffer(ctypes.string_at(mask.data, n * 2), dtype=np.float16).astype(np.float32)
                assert np.all((raw == 0) | (raw == -np.inf))
                bits = base64.b64encode(zlib.compress(np.packbits(raw == 0).tobytes(), 9)).decode()
                seen.append((idx, il, {"ne": ne, "bits": bits}))
            else:
                seen.append((idx, il, None))
            return True

        model = L.llama_model_load_from_file(str(MODELS / sc["model"]).encode(), L.llama_model_default_params())
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = sc["n_ctx"], sc["n_batch"], sc["n_ubatch"], sc["n_seq_max"]
        cp.kv_unified, cp.swa_full = sc["kv_unified"], sc["swa_full"]
        cp.n_threads = cp.n_threads_batch = 2
        cp.cb_eval = cb
        ctx = L.llama_init_from_model(model, cp)
        mem = L.llama_get_memory(ctx)
        records = []
        for step in sc["steps"]:
            start = len(seen)
            ret = None
            if "decode" in step:
                d = step["decode"]
                b, keep = make_batch(d["token"], d.get("pos"), d.get("seq_id"), d.get("logits"))
                ret = int(L.llama_decode(ctx, b))
                assert ret == 0, (name, step, ret)
            elif "rm" in step:
                ret = int(L.llama_memory_seq_rm(mem, *step["rm"]))
            new = seen[start:]
            assert len(new) % sc["n_layer"] == 0 and (len(new) > 0) == ("decode" in step), (name, step)
            ubatches = []
            for u in range(len(new) // sc["n_layer"]):
                chunk = new[u * sc["n_layer"] : (u + 1) * sc["n_layer"]]
                assert [c[1] for c in chunk] == list(range(sc["n_layer"]))
                ubatches.append({str(il): m for _, il, m in chunk if m is not None})
            records.append({"step": step, "ret": ret, "ubatches": ubatches})
            print(name, list(step)[0], ret, len(ubatches), flush=True)
        L.llama_free(ctx)
        L.llama_model_free(model)
        out["scenarios"][name] = {k: v for k, v in sc.items() if k != "steps"} | {"records": records}
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
