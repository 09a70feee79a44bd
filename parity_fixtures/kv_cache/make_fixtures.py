"""Record llama.cpp's KV cache sequence ranges through decodes and sequence operations.

Runs llama.cpp (llama-cpp-python 0.3.36 low-level API, ~/.cache/emel-ref/venv) on CPU and, after
every step of each scenario, records llama_decode's return code (0 ok, -1 invalid, 1 no KV slot)
and llama_memory_seq_pos_min/max of every sequence. Scenarios:
- gemma3_swa: Gemma-3-270M (interleaved SWA, n_swa=512), n_ctx=1024, n_ubatch=64, one sequence:
  the SWA cache (768 cells) wraps around and reuses masked cells, raising seq_pos_min;
- gemma3_swa_full: the same model with swa_full and two sequences: seq_cp, seq_add (K-shift),
  seq_div, seq_keep, seq_rm between decodes;
- smollm2_streams: SmolLM2-135M, three sequences in separate streams (kv_unified=false):
  equal splits, cross-stream seq_cp, seq_rm, a batch that cannot fit;
- *_random: seeded random decodes (llama.cpp fills in positions; shared and mixed sequences)
  and seq_rm / seq_cp / seq_keep / seq_add / seq_div, on a unified cache, one stream per
  sequence, and Gemma-3's iSWA cache (no shifts: its SWA cache cannot K-shift).
Writes kv_scenarios.json. Regenerate: ~/.cache/emel-ref/venv/bin/python parity_fixtures/kv_cache/make_fixtures.py
"""

import ctypes
import json
import pathlib
import sys

import llama_cpp as L

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "batch"))
from make_fixtures import make_batch  # noqa: E402

MODELS = pathlib.Path.home() / ".cache/emel/models"
OUT = pathlib.Path(__file__).with_name("kv_scenarios.json")


def T(n, start=1):
    return [(start + i) % 1000 for i in range(n)]


def seq_batch(seq, start, n):
    return {"decode": {"token": T(n, start), "pos": list(range(start, start + n)), "seq_id": [[seq]] * n}}


SCENARIOS = {
    "gemma3_swa": dict(
        model="gemma-3-270m-q4_k_m.gguf", n_ctx=1024, n_batch=64, n_ubatch=64, n_seq_max=1,
        kv_unified=True, swa_full=False,
        steps=[seq_batch(0, 64 * i, 64) for i in range(16)]
        + [{"rm": [0, 1000, -1]}, seq_batch(0, 1000, 24), {"decode": {"token": T(8)}},
           {"rm": [0, -1, -1]}, seq_batch(0, 0, 40)],
    ),
    "gemma3_swa_full": dict(
        model="gemma-3-270m-q4_k_m.gguf", n_ctx=256, n_batch=64, n_ubatch=32, n_seq_max=2,
        kv_unified=True, swa_full=True,
        steps=[seq_batch(0, 0, 40), {"cp": [0, 1, -1, -1]}, seq_batch(1, 40, 10),
               {"add": [0, 10, -1, -5]}, seq_batch(0, 35, 4), {"div": [1, 20, 45, 2]},
               {"rm": [0, 30, -1]}, seq_batch(0, 30, 3), {"keep": 1}, seq_batch(1, 50, 5),
               {"rm": [-1, 0, 10]}, seq_batch(1, 55, 2)],
    ),
    "smollm2_streams": dict(
        model="SmolLM2-135M-Instruct.Q4_1.gguf", n_ctx=768, n_batch=64, n_ubatch=16, n_seq_max=3,
        kv_unified=False, swa_full=False,
        steps=[{"decode": {"token": T(12), "pos": [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3],
                           "seq_id": [[0], [1], [2]] * 4}},
               seq_batch(0, 4, 30), {"cp": [0, 2, -1, -1]}, seq_batch(2, 34, 5),
               {"rm": [1, 2, -1]}, seq_batch(1, 2, 20), {"keep": 0}, seq_batch(0, 34, 60),
               seq_batch(0, 94, 64), seq_batch(0, 158, 64), seq_batch(0, 222, 40),
               seq_batch(0, 262, 2), {"rm": [-1, 100, 200]}, seq_batch(1, 0, 3)],
    ),
}


def random_steps(seed, n_steps, n_seq, max_tokens, shifts=True):
    """Seeded random decodes (positions filled in by llama.cpp) and sequence operations."""
    import random

    rng = random.Random(seed)
    steps = []
    for _ in range(n_steps):
        r = rng.random()
        seqs = list(range(n_seq))
        if r < 0.45:
            n = rng.randint(1, max_tokens)
            s = rng.choice(seqs)
            steps.append({"decode": {"token": T(n, rng.randint(1, 900)), "seq_id": [[s]] * n}})
        elif r < 0.55:
            n = rng.randint(1, max_tokens // 2)
            a, b = rng.sample(seqs, 2) if n_seq > 1 else (0, 0)
            steps.append({"decode": {"token": T(n), "seq_id": [[a, b] if a != b else [a]] * n}})
        elif r < 0.65:
            k = rng.randint(1, max_tokens // 2)
            sids = [[rng.choice(seqs)] for _ in range(k)]
            steps.append({"decode": {"token": T(k), "seq_id": sids}})
        elif r < 0.75:
            p0 = rng.randint(-1, 150)
            steps.append({"rm": [rng.choice(seqs + [-1]), p0, rng.choice([-1, p0 + rng.randint(0, 60)])]})
        elif r < 0.82:
            a, b = rng.choice(seqs), rng.choice(seqs)
            steps.append({"cp": [a, b, -1, -1]})
        elif r < 0.86:
            steps.append({"keep": rng.choice(seqs)})
        elif shifts and r < 0.95:
            p0 = rng.randint(-1, 100)
            steps.append({"add": [rng.choice(seqs), p0, rng.choice([-1, p0 + rng.randint(1, 50)]),
                                  rng.randint(-30, 30)]})
        elif shifts:
            p0 = rng.randint(-1, 100)
            steps.append({"div": [rng.choice(seqs), p0, -1, rng.randint(2, 3)]})
    return steps


SCENARIOS.update({
    "smollm2_random": dict(
        model="SmolLM2-135M-Instruct.Q4_1.gguf", n_ctx=256, n_batch=64, n_ubatch=16, n_seq_max=3,
        kv_unified=True, swa_full=False, steps=random_steps(1, 160, 3, 40)),
    "smollm2_random_streams": dict(
        model="SmolLM2-135M-Instruct.Q4_1.gguf", n_ctx=768, n_batch=64, n_ubatch=16, n_seq_max=3,
        kv_unified=False, swa_full=False, steps=random_steps(2, 120, 3, 40)),
    "gemma3_random": dict(
        model="gemma-3-270m-q4_k_m.gguf", n_ctx=1024, n_batch=128, n_ubatch=64, n_seq_max=2,
        kv_unified=True, swa_full=False, steps=random_steps(3, 80, 2, 128, shifts=False)),
})


def main() -> None:
    L.llama_backend_init()
    out = {"llama_cpp": "llama-cpp-python 0.3.36 (vendored llama.cpp), CPU", "scenarios": {}}
    for name, sc in SCENARIOS.items():
        model = L.llama_model_load_from_file(str(MODELS / sc["model"]).encode(), L.llama_model_default_params())
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = sc["n_ctx"], sc["n_batch"], sc["n_ubatch"], sc["n_seq_max"]
        cp.kv_unified, cp.swa_full = sc["kv_unified"], sc["swa_full"]
        cp.n_threads = cp.n_threads_batch = 2
        ctx = L.llama_init_from_model(model, cp)
        mem = L.llama_get_memory(ctx)
        records = []
        for step in sc["steps"]:
            ret = None
            if "decode" in step:
                d = step["decode"]
                b, keep = make_batch(d["token"], d.get("pos"), d.get("seq_id"), d.get("logits"))
                ret = int(L.llama_decode(ctx, b))
            elif "rm" in step:
                ret = int(L.llama_memory_seq_rm(mem, *step["rm"]))
            elif "cp" in step:
                L.llama_memory_seq_cp(mem, *step["cp"])
            elif "keep" in step:
                L.llama_memory_seq_keep(mem, step["keep"])
            elif "add" in step:
                L.llama_memory_seq_add(mem, *step["add"])
            elif "div" in step:
                L.llama_memory_seq_div(mem, *step["div"])
            ranges = [[L.llama_memory_seq_pos_min(mem, s), L.llama_memory_seq_pos_max(mem, s)]
                      for s in range(sc["n_seq_max"])]
            records.append({"step": step, "ret": ret, "ranges": ranges})
            print(name, list(step)[0], ret, ranges, flush=True)
        L.llama_free(ctx)
        L.llama_model_free(model)
        out["scenarios"][name] = {k: v for k, v in sc.items() if k != "steps"} | {"records": records}
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
