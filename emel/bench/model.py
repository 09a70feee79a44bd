"""Prefill and decode speed like llama-bench: `python -m emel.bench -m MODEL [-m MODEL2 ...]
[-p 512] [-n 128] [-t 2[,1]] [-r 5] [--json] [--vs-llama-cpp] [--llama-cpp-python PATH]
[--device cpu|cuda] [--omp-wait-policy passive|active] [--no-latency | --latency-only]
[--write-plans]`.

Follows llama.cpp tools/llama-bench/llama-bench.cpp (test_prompt, test_gen and the run loop):
one context with n_batch 2048 and n_ubatch 512; `ppN` clears the KV cache and decodes N prompt
tokens (a BOS, then random ids) in batches of n_batch with only the last token an output; `tgN`
clears the cache and decodes N tokens one at a time, each an output (a BOS, then random ids); a
warm-up (a full ppN, a 1-token tg) runs before the timed runs.

Differences on purpose: medians with min and max instead of mean and stddev (the machine is
shared, a median resists a neighbour's burst); the same token ids on every run and for both
engines (llama-bench draws new ones per run; the cost does not depend on the ids); one context
of n_ctx = N_prompt + N_gen for both tests; with `--vs-llama-cpp` llama.cpp (llama-cpp-python's
low-level API, in a worker process) runs the same tokens, and emel and llama.cpp runs alternate so
both see the same machine load.

Also reported: the first-token latency of a new process (import, load, tokenize, prefill of 16
tokens, greedy first token) with an empty Numba cache ("cold") and with the normal one ("warm"),
its peak RSS against model file + F16 KV cache + 200 MB, Numba's threading layer and the load
average at the start and end.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

N_LATENCY_PROMPT = 16  # prompt tokens of the first-token latency run
RSS_SLACK_BYTES = 200 * 2**20  # peak RSS budget: model file + F16 KV cache + this
DEFAULT_LLAMA_CPP_PYTHON = Path("~/.cache/emel-ref/venv/bin/python").expanduser()
PLANS_PATH = Path(__file__).resolve().parents[2] / "plans" / "benchmarks.md"
_DATA_TAG = "emel-bench-data"
_LATENCY_TEXT = ("The quick brown fox jumps over the lazy dog while the five boxing wizards jump "
                 "quickly, and a large language model answers questions about the weather.")


class Runner(Protocol):
    """One engine under test: each call clears the KV cache, then times the decode."""

    name: str

    def set_threads(self, n_threads: int) -> None: ...
    def pp(self, tokens: np.ndarray, n_batch: int) -> float: ...  # seconds
    def tg(self, tokens: np.ndarray) -> float: ...  # seconds


@dataclass
class TestResult:
    """The timed runs of one test (pp512, tg128) on one engine."""

    model: str
    test: str  # "pp512" or "tg128"
    engine: str  # "emel" or "llama.cpp"
    threads: int
    n_tokens: int
    samples_s: list[float] = field(default_factory=list)

    def tok_s(self) -> tuple[float, float, float]:
        """(median, min, max) tokens per second over the runs."""
        rates = [self.n_tokens / s for s in self.samples_s]
        return statistics.median(rates), min(rates), max(rates)


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(list(sys.argv[1:] if argv is None else argv))
    log = (lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.omp_wait_policy:  # read by the OpenMP runtime when Numba first starts its threads
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    machine = machine_info()
    machine["loadavg_start"] = _loadavg()
    results: list[TestResult] = []
    latencies: list[dict] = []
    extras: dict[str, dict] = {}
    from ..errors import EmelError
    for name in args.model:
        try:
            res, lat, extra = bench_model(name, args, log)
        except EmelError as e:
            log(f"{name}: {type(e).__name__}: {e}")
            return 1
        results += res
        extras[name] = extra
        if lat:
            latencies.append(lat)
    machine["loadavg_end"] = _loadavg()
    busy = max(machine["loadavg_start"][0], machine["loadavg_end"][0])
    if busy > machine["nproc"]:
        log(f"WARNING: load average {busy} on {machine['nproc']} cores: other processes share "
            "the cores, absolute tok/s are low and noisy; compare the side-by-side ratios")
    if args.json:
        for line in json_lines(results, latencies, machine, extras):
            print(json.dumps(line), flush=True)
    else:
        print(format_table(results, latencies, machine, extras))
    if args.write_plans:
        write_plans(args.plans_path, results, latencies, machine, extras)
        log(f"wrote {args.plans_path}")
    return 0


def _parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m emel.bench -m MODEL",
                                 description="prefill / decode tok/s like llama-bench")
    ap.add_argument("-m", "--model", action="append", required=True,
                    help="catalog name or GGUF path; repeat or comma-separate for several")
    ap.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens (ppN), 0: skip")
    ap.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens (tgN), 0: skip")
    ap.add_argument("-t", "--threads", default="2",
                    help="threads, or a comma-separated list (each test runs at each count)")
    ap.add_argument("-r", "--repetitions", type=int, default=5)
    ap.add_argument("-b", "--batch-size", type=int, default=2048, help="n_batch (llama-bench: 2048)")
    ap.add_argument("-ub", "--ubatch-size", type=int, default=512, help="n_ubatch (llama-bench: 512)")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the random prompt token ids")
    ap.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    ap.add_argument("--vs-llama-cpp", action="store_true",
                    help="run llama.cpp (llama-cpp-python) on the same tokens, alternating runs")
    ap.add_argument("--llama-cpp-python", type=Path, default=None,
                    help="python with llama_cpp for the llama.cpp worker (default: this python "
                         f"if it has llama_cpp, else {DEFAULT_LLAMA_CPP_PYTHON})")
    ap.add_argument("--llama-cpp-flash-attn", choices=("off", "auto", "both"), default="both",
                    help="llama.cpp's attention: off (llama-cpp-python's Llama default and the "
                         "non-flash path whose numbers emel reproduces), auto (llama.cpp's own "
                         "default: flash attention where supported), or both side by side "
                         "(ratios against each; the first is off)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--omp-wait-policy", choices=("passive", "active"), default=None,
                    help="set OMP_WAIT_POLICY for both engines (OpenMP threads that spin while "
                         "waiting collapse when other processes share the cores)")
    ap.add_argument("--no-latency", action="store_true",
                    help="skip the new-process first-token latency and peak RSS runs")
    ap.add_argument("--latency-only", action="store_true",
                    help="only the first-token latency and peak RSS runs (n_ctx still -p + -n)")
    ap.add_argument("--write-plans", action="store_true", help=f"update {PLANS_PATH}")
    ap.add_argument("--plans-path", type=Path, default=PLANS_PATH, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.model = [m for spec in args.model for m in spec.split(",") if m]
    try:
        args.threads = [int(t) for t in str(args.threads).split(",") if t]
    except ValueError:
        ap.error(f"-t {args.threads!r}: expected integers separated by commas")
    for flag in ("n_prompt", "n_gen"):
        if getattr(args, flag) < 0:
            ap.error(f"--{flag.replace('_', '-')} must be >= 0")
    if args.latency_only and args.no_latency:
        ap.error("--latency-only and --no-latency exclude each other")
    if args.n_prompt == 0 and args.n_gen == 0 and not args.latency_only:
        ap.error("nothing to run: -p and -n are both 0")
    if min(args.threads or [0]) < 1 or min(args.repetitions, args.batch_size, args.ubatch_size) < 1:
        ap.error("-t, -r, -b and -ub must be >= 1")
    return args


# -- one model ----------------------------------------------------------------------------------


def bench_model(name: str, args: argparse.Namespace, log: Callable[[str], None]):
    """Throughput tests (and latency unless --no-latency) of one model: (results, latency, extra)."""
    from .. import catalog
    path = catalog.resolve(name)
    label = _label(name, path)
    n_ctx = args.n_prompt + args.n_gen
    threads = args.threads
    log(f"[{label}] loading emel (n_ctx {n_ctx}, threads {threads}, {args.device})")
    emel_runner = EmelRunner(path, n_ctx, args.batch_size, args.ubatch_size, threads[0],
                             args.device)
    runners: list[Runner] = [emel_runner]
    extra: dict[str, Any] = {"path": str(path), "file_bytes": path.stat().st_size,
                             "emel_load_s": emel_runner.load_s, "n_ctx": emel_runner.n_ctx}
    llamas: list[LlamaCppRunner] = []
    if args.vs_llama_cpp and not args.latency_only:
        python = llama_cpp_python(args.llama_cpp_python)
        for name_fa, fa in _llama_cpp_configs(args.llama_cpp_flash_attn):
            log(f"[{label}] starting the {name_fa} worker ({python}, flash_attn_type {fa})")
            llama = LlamaCppRunner(python, path, n_ctx, args.batch_size, args.ubatch_size,
                                   threads[0], args.device, flash_attn_type=fa, name=name_fa)
            llamas.append(llama)
            if llama.info["n_vocab"] != emel_runner.n_vocab:
                raise SystemExit(f"{label}: llama.cpp has n_vocab {llama.info['n_vocab']}, "
                                 f"emel {emel_runner.n_vocab}")
            extra[_ENGINE_KEYS[name_fa]] = llama.info
            runners.append(llama)
    rng = np.random.default_rng(args.seed)
    results: list[TestResult] = []
    try:
        for kind, n in (("pp", args.n_prompt), ("tg", args.n_gen)):
            if n == 0 or args.latency_only:
                continue
            tokens = rng.integers(0, emel_runner.n_vocab, size=n).astype(np.int32)
            if emel_runner.bos >= 0:
                tokens[0] = emel_runner.bos
            for t in threads:
                for r in runners:
                    r.set_threads(t)
                log(f"[{label}] {kind}{n}, {t} threads: warm-up, then {args.repetitions} runs "
                    "per engine")
                results += run_test(runners, label, kind, tokens, args.batch_size,
                                    args.repetitions, t, log)
    finally:
        for llama in llamas:
            llama.close()
    extra["threading_layer"] = emel_runner.threading_layer()
    extra["kv_bytes_f16"] = emel_runner.kv_bytes_f16
    extra["kv_bytes_per_cell"] = emel_runner.kv_bytes_per_cell
    extra["emel_kv_bytes"] = emel_runner.kv_bytes_actual
    del emel_runner, runners
    latency = None
    if not args.no_latency:
        log(f"[{label}] first-token latency of a new process (cold: empty Numba cache)")
        latency = measure_latency(path, label, n_ctx, threads[0], args.device, extra,
                                  llama_python=llama_cpp_python(args.llama_cpp_python)
                                  if args.vs_llama_cpp else None)
    return results, latency, extra


def run_test(runners: Sequence[Runner], model: str, kind: str, tokens: np.ndarray, n_batch: int,
             reps: int, threads: int, log: Callable[[str], None] = lambda m: None
             ) -> list[TestResult]:
    """Warm up each runner, then `reps` timed runs per runner, alternating which goes first."""
    test = f"{kind}{len(tokens)}"
    out = [TestResult(model, test, r.name, threads, len(tokens)) for r in runners]
    for r in runners:  # llama-bench's warm-up: a full prompt run, a 1-token generation
        r.pp(tokens, n_batch) if kind == "pp" else r.tg(tokens[:1])
    for i in range(reps):
        order = list(range(len(runners)))
        if i % 2:
            order.reverse()
        for j in order:
            r = runners[j]
            s = r.pp(tokens, n_batch) if kind == "pp" else r.tg(tokens)
            out[j].samples_s.append(s)
            log(f"  {r.name:9s} {test} run {i + 1}/{reps}: {len(tokens) / s:8.2f} tok/s")
    return out


# -- emel ---------------------------------------------------------------------------------------


class EmelRunner:
    """emel through the user path (`emel.load`) timing its context's decode with a batch."""

    name = "emel"

    def __init__(self, path: Path, n_ctx: int, n_batch: int, n_ubatch: int, threads: int,
                 device: str) -> None:
        from ..api import load  # emel.load, once emel/__init__.py exports it
        from ..context import Batch
        self._batch = Batch
        t0 = time.perf_counter()
        self.model = load(str(path), n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch,
                               n_threads=threads, device=device)
        self.load_s = time.perf_counter() - t0
        self.ctx = self.model.ctx
        self.n_vocab = int(self.model.n_vocab)
        bos = getattr(self.model.vocab, "bos", None)
        self.bos = int(bos) if bos is not None and getattr(self.model.vocab, "add_bos", False) else -1
        self.n_ctx = int(self.ctx.n_ctx)
        hp = self.ctx.hp
        # llama.cpp's default cache: F16 K and V for every layer and cell
        self.kv_bytes_per_cell = int(hp.n_layer * (hp.n_embd_k_gqa + hp.n_embd_v_gqa) * 2)
        self.kv_bytes_f16 = self.kv_bytes_per_cell * self.n_ctx
        self.kv_bytes_actual = int(self.model.telemetry.data.kv_bytes)

    def set_threads(self, n_threads: int) -> None:
        import numba
        if n_threads > numba.config.NUMBA_NUM_THREADS:
            raise SystemExit(f"-t {n_threads}: Numba has at most {numba.config.NUMBA_NUM_THREADS} "
                             "threads here (NUMBA_NUM_THREADS)")
        numba.set_num_threads(n_threads)

    def pp(self, tokens: np.ndarray, n_batch: int) -> float:
        self.ctx.memory_clear()
        t0 = time.perf_counter()
        for start in range(0, len(tokens), n_batch):
            self.ctx.decode(self._batch(token=tokens[start:start + n_batch]))
        return time.perf_counter() - t0

    def tg(self, tokens: np.ndarray) -> float:
        self.ctx.memory_clear()
        batch, ctx = self._batch, self.ctx
        t0 = time.perf_counter()
        for i in range(len(tokens)):
            ctx.decode(batch(token=tokens[i:i + 1]))
        return time.perf_counter() - t0

    @staticmethod
    def threading_layer() -> str:
        import numba
        try:
            return numba.threading_layer()
        except ValueError:  # raised until a parallel kernel has run
            return "none (no parallel kernel ran)"


# -- llama.cpp ----------------------------------------------------------------------------------


def llama_cpp_python(explicit: Path | None) -> str:
    """The python that runs the llama.cpp worker: explicit, this one if it has llama_cpp, or the
    reference venv's."""
    import importlib.util
    if explicit is not None:
        py = Path(explicit).expanduser()
        if not py.exists():
            raise SystemExit(f"--llama-cpp-python {py}: no such file")
        return str(py)
    if importlib.util.find_spec("llama_cpp") is not None:
        return sys.executable
    if DEFAULT_LLAMA_CPP_PYTHON.exists():
        return str(DEFAULT_LLAMA_CPP_PYTHON)
    raise SystemExit("--vs-llama-cpp: llama_cpp is not importable here and "
                     f"{DEFAULT_LLAMA_CPP_PYTHON} does not exist; pass --llama-cpp-python PATH")


# llama_flash_attn_type: LLAMA_FLASH_ATTN_TYPE_AUTO = -1, _DISABLED = 0
FLASH_ATTN_OFF, FLASH_ATTN_AUTO = 0, -1
# engine name -> the key of its figures in the JSON lines / plans ("llama_cpp_tok_s", ...)
_ENGINE_KEYS = {"llama.cpp": "llama_cpp", "llama.cpp-fa": "llama_cpp_fa"}


def _llama_cpp_configs(choice: str) -> list[tuple[str, int]]:
    """(engine name, flash_attn_type) of the llama.cpp workers to run; the first is the one
    `ratio` compares against."""
    if choice == "off":
        return [("llama.cpp", FLASH_ATTN_OFF)]
    if choice == "auto":
        return [("llama.cpp", FLASH_ATTN_AUTO)]
    return [("llama.cpp", FLASH_ATTN_OFF), ("llama.cpp-fa", FLASH_ATTN_AUTO)]


class LlamaCppRunner:
    """llama.cpp in a worker process (llama-cpp-python's low-level API): one JSON line per run."""

    def __init__(self, python: str, path: Path, n_ctx: int, n_batch: int, n_ubatch: int,
                 threads: int, device: str, flash_attn_type: int = FLASH_ATTN_OFF,
                 name: str = "llama.cpp") -> None:
        self.name = name
        cfg = {"model": str(path), "n_ctx": n_ctx, "n_batch": n_batch, "n_ubatch": n_ubatch,
               "threads": threads, "n_gpu_layers": 999 if device == "cuda" else 0,
               "flash_attn_type": flash_attn_type}
        self.proc = subprocess.Popen([python, "-c", WORKER_SRC, json.dumps(cfg)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._reply()

    def pp(self, tokens: np.ndarray, n_batch: int) -> float:
        return self._call({"op": "pp", "tokens": tokens.tolist(), "n_batch": n_batch})["s"]

    def set_threads(self, n_threads: int) -> None:
        self._call({"op": "threads", "n": n_threads})

    def tg(self, tokens: np.ndarray) -> float:
        return self._call({"op": "tg", "tokens": tokens.tolist()})["s"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit(f"llama.cpp worker exited ({self.proc.returncode}): "
                             f"{self.proc.stderr.read()[-2000:]}")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"llama.cpp worker: {reply['error']}")
        return reply


# The worker runs under a python that has llama_cpp and may lack emel and numba: stdlib only.
WORKER_SRC = r'''
import ctypes, json, resource, sys, time
t_start = time.time()
import llama_cpp as L
cfg = json.loads(sys.argv[1])
_log = L.llama_log_callback(lambda level, text, user: None)  # silence llama.cpp's stderr log
L.llama_log_set(_log, ctypes.c_void_p())
L.llama_backend_init()
t0 = time.perf_counter()
mp = L.llama_model_default_params()
mp.n_gpu_layers = cfg["n_gpu_layers"]
model = L.llama_model_load_from_file(cfg["model"].encode(), mp)
if not model:
    print(json.dumps({"error": "llama_model_load_from_file failed: " + cfg["model"]}), flush=True)
    sys.exit(1)
cp = L.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch = cfg["n_ctx"], cfg["n_batch"], cfg["n_ubatch"]
cp.n_threads = cp.n_threads_batch = cfg["threads"]
cp.flash_attn_type = cfg.get("flash_attn_type", 0)
cp.no_perf = True
ctx = L.llama_init_from_model(model, cp)
if not ctx:
    print(json.dumps({"error": "llama_init_from_model failed"}), flush=True)
    sys.exit(1)
mem = L.llama_get_memory(ctx)
vocab = L.llama_model_get_vocab(model)
load_s = time.perf_counter() - t0


def decode(tokens):
    arr = (L.llama_token * len(tokens))(*tokens)
    rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(tokens)))
    if rc != 0:
        raise RuntimeError("llama_decode returned %d" % rc)


def first_token(tokens):
    decode(tokens)
    L.llama_synchronize(ctx)
    import numpy as np
    logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1),
                                   shape=(L.llama_vocab_n_tokens(vocab),))
    return int(np.argmax(logits))


def _peak_rss_kb():
    # VmHWM: this process image's peak RSS; ru_maxrss would carry the spawning parent's peak
    # over fork + exec (Linux keeps the larger of the old and new image's high-water marks)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if cfg.get("first_token"):  # one-shot latency mode: tokenize, prefill, greedy token, exit
    text = cfg["first_token"]["text"].encode()
    buf = (L.llama_token * 4096)()
    n = L.llama_tokenize(vocab, text, len(text), buf, 4096, True, True)
    tok = first_token(list(buf[:min(n, cfg["first_token"]["n_prompt"])]))
    t_first = time.time()
    print(json.dumps({"t_start": t_start, "t_first": t_first, "load_s": load_s, "token": tok,
                      "maxrss_kb": _peak_rss_kb()}), flush=True)
    sys.exit(0)

info = {"n_vocab": L.llama_vocab_n_tokens(vocab), "load_s": load_s,
        "version": getattr(L, "__version__", "?"), "flash_attn_type": int(cp.flash_attn_type),
        "gpu_offload": bool(L.llama_supports_gpu_offload()),
        "system_info": L.llama_print_system_info().decode(errors="replace").strip()}
print(json.dumps(info), flush=True)
for line in sys.stdin:
    msg = json.loads(line)
    if msg["op"] == "quit":
        break
    if msg["op"] == "threads":
        L.llama_set_n_threads(ctx, msg["n"], msg["n"])
        print(json.dumps({"ok": True}), flush=True)
        continue
    try:
        L.llama_memory_clear(mem, False)
        toks = msg["tokens"]
        t0 = time.perf_counter()
        if msg["op"] == "pp":
            nb = msg["n_batch"]
            for i in range(0, len(toks), nb):
                decode(toks[i:i + nb])
            L.llama_synchronize(ctx)
        else:
            for t in toks:
                decode([t])
                L.llama_synchronize(ctx)
        print(json.dumps({"s": time.perf_counter() - t0}), flush=True)
    except RuntimeError as e:
        print(json.dumps({"error": str(e)}), flush=True)
L.llama_free(ctx)
L.llama_model_free(model)
'''


# -- first-token latency and peak RSS of a new process ------------------------------------------

_EMEL_FIRST_TOKEN_SRC = r'''
import json, resource, sys, time
t_start = time.time()
cfg = json.loads(sys.argv[1])


def _peak_rss_kb():
    # VmHWM: this process image's peak RSS; ru_maxrss would carry the spawning parent's peak
    # over fork + exec (Linux keeps the larger of the old and new image's high-water marks)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kb():
    # VmRSS now and VmHWM so far, to tell at which step the peak was reached
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line[:5]] = int(line.split()[1])
    except OSError:
        pass
    return out


stages = {}
import numpy as np
from emel.api import load
from emel.context import Batch
t_import = time.time()
stages["import"] = _rss_kb()
m = load(cfg["model"], n_ctx=cfg["n_ctx"], n_threads=cfg["threads"], device=cfg["device"])
t_load = time.time()
stages["load"] = _rss_kb()
toks = m.tokenize(cfg["text"])[:cfg["n_prompt"]]
m.ctx.decode(Batch(token=np.asarray(toks, dtype=np.int32)))
tok = int(np.argmax(m.ctx.get_logits_ith(-1)))
t_first = time.time()
stages["first_token"] = _rss_kb()
m.ctx.decode(Batch(token=np.asarray([tok], dtype=np.int32)))
tok2 = int(np.argmax(m.ctx.get_logits_ith(-1)))
t_second = time.time()
stages["second_token"] = _rss_kb()
print(json.dumps({"t_start": t_start, "t_import": t_import, "t_load": t_load, "t_first": t_first,
                  "t_second": t_second, "tokens": [tok, tok2], "n_prompt": len(toks),
                  "maxrss_kb": _peak_rss_kb(), "rss_stages_kb": stages}))
'''


def measure_latency(path: Path, label: str, n_ctx: int, threads: int, device: str,
                    extra: dict, llama_python: str | None = None) -> dict:
    """Cold (empty NUMBA_CACHE_DIR) and warm (normal cache, after two runs) first-token latency
    of a new emel process, its peak RSS, and llama.cpp's in a new process when given its python."""
    n_ctx = max(n_ctx, 2 * N_LATENCY_PROMPT)
    cfg = {"model": str(path), "n_ctx": n_ctx, "threads": threads, "device": device,
           "text": _LATENCY_TEXT, "n_prompt": N_LATENCY_PROMPT}
    with tempfile.TemporaryDirectory(prefix="emel-numba-cold-") as cache:
        cold = _spawn([sys.executable, "-c", _EMEL_FIRST_TOKEN_SRC, json.dumps(cfg)],
                      {"NUMBA_CACHE_DIR": cache})
    for _ in range(2):  # fill the normal cache, then measure
        _spawn([sys.executable, "-c", _EMEL_FIRST_TOKEN_SRC, json.dumps(cfg)], {})
    warm = _spawn([sys.executable, "-c", _EMEL_FIRST_TOKEN_SRC, json.dumps(cfg)], {})
    kv_bytes = extra["kv_bytes_per_cell"] * (-(-n_ctx // 256) * 256)  # n_ctx padded as llama.cpp
    budget = extra["file_bytes"] + kv_bytes + RSS_SLACK_BYTES
    out = {"model": label, "test": f"first_token_p{cfg['n_prompt']}", "threads": threads,
           "cold_s": cold["first_s"], "warm_s": warm["first_s"],
           "cold_second_token_s": cold["second_s"], "warm_second_token_s": warm["second_s"],
           "warm_import_s": warm["import_s"], "warm_load_s": warm["load_s"],
           "cold_peak_rss_bytes": cold["rss_bytes"], "peak_rss_bytes": warm["rss_bytes"],
           "rss_stages_bytes": warm.get("rss_stages_bytes", {}),
           "rss_budget_bytes": budget, "rss_within_budget": warm["rss_bytes"] <= budget,
           "file_bytes": extra["file_bytes"], "kv_bytes_f16": kv_bytes, "n_ctx": n_ctx,
           "tokens_agree_cold_warm": cold["tokens"] == warm["tokens"]}
    if llama_python is not None:
        lc = dict(cfg, n_batch=2048, n_ubatch=512, n_gpu_layers=999 if device == "cuda" else 0,
                  flash_attn_type=FLASH_ATTN_OFF,
                  first_token={"text": _LATENCY_TEXT, "n_prompt": N_LATENCY_PROMPT})
        ref = _spawn([llama_python, "-c", WORKER_SRC, json.dumps(lc)], {})
        out["llama_cpp_s"] = ref["first_s"]
        out["llama_cpp_peak_rss_bytes"] = ref["rss_bytes"]
        out["first_token_agrees_with_llama_cpp"] = ref["token"] == warm["tokens"][0]
    return out


def _spawn(cmd: list[str], env_extra: dict[str, str]) -> dict:
    """Run a first-token script in a new process; times are from just before the spawn."""
    env = dict(os.environ, **env_extra)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    t_spawn = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"first-token process failed ({proc.returncode}): {proc.stderr[-3000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {"first_s": r["t_first"] - t_spawn, "rss_bytes": int(r["maxrss_kb"]) * 1024}
    if "t_second" in r:
        out.update(second_s=r["t_second"] - r["t_first"], import_s=r["t_import"] - t_spawn,
                   load_s=r["t_load"] - r["t_import"], tokens=r["tokens"],
                   rss_stages_bytes={k: {f: v * 1024 for f, v in d.items()}
                                     for k, d in r.get("rss_stages_kb", {}).items()})
    else:
        out["token"] = r["token"]
    return out


# -- machine ------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Date, git commit, cores and CPU model of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        if m:
            cpu = m.group(1).strip()
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        commit = (commit + "+dirty" if dirty else commit) or "unknown"
    except OSError:
        commit = "unknown"
    n_cpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit, "nproc": n_cpu, "cpu": cpu, "python": platform.python_version(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            # Numba imports SciPy's BLAS bindings when SciPy is installed (~29 MiB of peak RSS
            # that `pip install emel` alone does not bring)
            "scipy_installed": importlib.util.find_spec("scipy") is not None,
            "python_prefix": sys.prefix}


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _label(name: str, path: Path) -> str:
    from .. import catalog
    return name if name in catalog.CATALOG else path.name


# -- output -------------------------------------------------------------------------------------


def _pairs(results: Sequence[TestResult]):
    """(emel result, llama.cpp result or None) per model and test, in run order."""
    return [(r, refs.get("llama.cpp")) for r, refs in _refs(results)]


def _refs(results: Sequence[TestResult]):
    """(emel result, {llama.cpp engine name: its result}) per model and test, in run order."""
    by_key: dict = {}
    for r in results:
        if r.engine != "emel":
            by_key.setdefault((r.model, r.test, r.threads), {})[r.engine] = r
    return [(r, by_key.get((r.model, r.test, r.threads), {})) for r in results if r.engine == "emel"]


def json_lines(results, latencies, machine, extras) -> list[dict]:
    """One dict per model and test (emel's numbers, llama.cpp's and the ratio beside), then one
    per latency run."""
    lines = []
    for r, refs in _refs(results):
        med, lo, hi = r.tok_s()
        ex = extras.get(r.model, {})
        d = {"model": r.model, "test": r.test, "threads": r.threads, "tok_s": med,
             "tok_s_min": lo, "tok_s_max": hi, "n_runs": len(r.samples_s),
             "samples_ns": [int(s * 1e9) for s in r.samples_s], "engine": "emel",
             "threading_layer": ex.get("threading_layer"),
             "n_ctx": ex.get("n_ctx"), "commit": machine["commit"], "date": machine["date"],
             "nproc": machine["nproc"], "cpu": machine["cpu"],
             "omp_wait_policy": machine.get("omp_wait_policy"),
             "loadavg_start": machine["loadavg_start"], "loadavg_end": machine["loadavg_end"]}
        if "llama_cpp" in ex:
            d.update(llama_cpp_version=ex["llama_cpp"]["version"],
                     llama_cpp_system_info=ex["llama_cpp"]["system_info"])
        for engine, ref in refs.items():
            k = _ENGINE_KEYS.get(engine, engine)
            rmed, rlo, rhi = ref.tok_s()
            d.update({f"{k}_tok_s": rmed, f"{k}_tok_s_min": rlo, f"{k}_tok_s_max": rhi,
                      f"{k}_samples_ns": [int(s * 1e9) for s in ref.samples_s],
                      f"{k}_flash_attn_type": ex.get(k, {}).get("flash_attn_type"),
                      "ratio" if k == "llama_cpp" else f"ratio_{k[len('llama_cpp_'):]}": med / rmed})
        lines.append(d)
    for lat in latencies:
        lines.append(dict(lat, commit=machine["commit"], date=machine["date"]))
    return lines


def format_table(results, latencies, machine, extras) -> str:
    """llama-bench's markdown table with llama.cpp's figure and the ratio beside emel's."""
    rows = [f"machine: {machine['nproc']} cores, {machine['cpu']}; commit {machine['commit']}; "
            f"{machine['date']}; load average {machine['loadavg_start']} -> "
            f"{machine['loadavg_end']}; OMP_WAIT_POLICY {machine.get('omp_wait_policy')}"]
    for name, ex in extras.items():
        rows.append(f"{name}: Numba threading layer {ex.get('threading_layer')}, "
                    f"n_ctx {ex.get('n_ctx')}, "
                    f"emel load {ex.get('emel_load_s', 0):.2f} s"
                    + "".join(f"; {e} {ex[k]['version']} (flash_attn_type "
                              f"{ex[k]['flash_attn_type']})" for e, k in _ENGINE_KEYS.items()
                              if k in ex))
    fa = any("llama.cpp-fa" in refs for _, refs in _refs(results))
    if results:
        rows += ["", "| model | test | threads | emel tok/s (min - max) | llama.cpp tok/s "
                 "(min - max) | emel / llama.cpp |"
                 + (" llama.cpp flash-attn auto tok/s | emel / that |" if fa else ""),
                 "|---|---|---:|---:|---:|---:|" + ("---:|---:|" if fa else "")]
    for r, refs in _refs(results):
        med, lo, hi = r.tok_s()
        row = f"| {r.model} | {r.test} | {r.threads} | {med:.2f} ({lo:.2f} - {hi:.2f}) |"
        for engine in ("llama.cpp", "llama.cpp-fa") if fa else ("llama.cpp",):
            ref = refs.get(engine)
            cell = "-" if ref is None else "%.2f (%.2f - %.2f)" % ref.tok_s()
            ratio = "-" if ref is None else f"{med / ref.tok_s()[0]:.3f}"
            row += f" {cell} | {ratio} |"
        rows.append(row)
    for lat in latencies:
        rows += ["", _latency_line(lat)]
    return "\n".join(rows)


def _latency_line(lat: dict) -> str:
    mib = 2**20
    s = (f"{lat['model']}: first token of a new process ({lat['test']}): cold {lat['cold_s']:.2f} s "
         f"(empty Numba cache), warm {lat['warm_s']:.2f} s (import {lat['warm_import_s']:.2f} s, "
         f"load {lat['warm_load_s']:.2f} s)")
    if "llama_cpp_s" in lat:
        s += (f", llama.cpp {lat['llama_cpp_s']:.2f} s (same first token: "
              f"{'yes' if lat['first_token_agrees_with_llama_cpp'] else 'NO'})")
    s += (f"; peak RSS {lat['peak_rss_bytes'] / mib:.0f} MiB (cold {lat['cold_peak_rss_bytes'] / mib:.0f}"
          f" MiB) vs budget {lat['rss_budget_bytes'] / mib:.0f} MiB = file "
          f"{lat['file_bytes'] / mib:.0f} + F16 KV {lat['kv_bytes_f16'] / mib:.0f} + 200: "
          + ("within" if lat["rss_within_budget"] else "OVER"))
    if "llama_cpp_peak_rss_bytes" in lat:
        s += f" (llama.cpp {lat['llama_cpp_peak_rss_bytes'] / mib:.0f} MiB)"
    stages = lat.get("rss_stages_bytes") or {}
    if stages:  # RSS after each step (VmHWM so far in brackets where it is higher)
        s += "; RSS after " + ", ".join(
            f"{k.replace('_', ' ')} {d.get('VmRSS', 0) / mib:.0f}"
            + (f" [{d['VmHWM'] / mib:.0f}]" if d.get("VmHWM", 0) > d.get("VmRSS", 0) else "")
            for k, d in stages.items()) + " MiB"
    return s


def write_plans(path: Path, results, latencies, machine, extras) -> None:
    """Merge this run's rows into plans/benchmarks.md (rows of other models and tests stay)."""
    data = read_plans_data(path)
    for d in json_lines(results, [], machine, extras):
        for k in [k for k in d if k.endswith("samples_ns")]:
            d.pop(k)
        data["throughput"][f"{d['model']}|{d['test']}|{d['threads']}|{d['omp_wait_policy']}"] = d
    for lat in latencies:
        data["latency"][lat["model"]] = dict(lat, commit=machine["commit"], date=machine["date"])
    data["machine"] = machine
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_plans(data))
    os.replace(tmp, path)


def read_plans_data(path: Path) -> dict:
    """The JSON record kept at the end of plans/benchmarks.md (empty if there is none)."""
    data: dict = {"throughput": {}, "latency": {}, "machine": {}}
    if path.is_file():
        m = re.search(r"<!-- " + _DATA_TAG + r"\n(.*?)\n-->", path.read_text(), re.S)
        if m:
            data.update(json.loads(m.group(1)))
    return data


def render_plans(data: dict) -> str:
    mc = data["machine"]
    out = ["# Benchmarks", "",
           "Written by `python -m emel.bench -m MODEL --vs-llama-cpp --write-plans` "
           "(emel/bench/model.py); regenerate, never edit by hand. Each row keeps the date and "
           "commit of the run that measured it. tok/s are medians of r runs after a warm-up "
           "(min - max beside); emel and llama.cpp (llama-cpp-python, same tokens, same threads) "
           "run alternately in the same invocation, so a ratio compares runs under the same "
           "machine load. The machine is shared: absolute figures are noisy, ratios less so. "
           "`llama.cpp` runs with flash attention off: llama-cpp-python's `Llama` default and the "
           "attention whose numbers emel reproduces bit for bit; `llama.cpp flash-attn auto` is "
           "llama.cpp's own context default (a flash-attention kernel with other numerics). "
           "For scale, llama.cpp (llama-cpp-python 0.3.36, 2 threads) on this machine when quiet: "
           "SmolLM2-135M pp512 221 tok/s, tg128 77 tok/s; Gemma-3-270M pp512 375, tg128 38.", "",
           f"Last run: {mc.get('date')}, commit {mc.get('commit')}, {mc.get('nproc')} cores "
           f"({mc.get('cpu')}), load average {mc.get('loadavg_start')} at start, "
           f"{mc.get('loadavg_end')} at end; SciPy installed: {mc.get('scipy_installed')} "
           f"(python {mc.get('python_prefix')}).", "",
           "## Throughput (like llama-bench: ppN prefill, tgN decode)", "",
           "| model | test | threads | emel tok/s (min - max) | llama.cpp tok/s (min - max) | "
           "emel / llama.cpp | llama.cpp flash-attn auto tok/s | emel / that | Numba layer | "
           "OMP_WAIT_POLICY | load avg start / end | date | commit |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|"]
    rows = sorted(data["throughput"].values(),
                  key=lambda d: (d["model"], d["test"], -d["threads"], str(d.get("omp_wait_policy"))))
    for d in rows:
        cells = ""
        for k, rk in (("llama_cpp", "ratio"), ("llama_cpp_fa", "ratio_fa")):
            ref = ratio = "-"
            if f"{k}_tok_s" in d:
                ref = (f"{d[f'{k}_tok_s']:.2f} ({d[f'{k}_tok_s_min']:.2f} - "
                       f"{d[f'{k}_tok_s_max']:.2f})")
                ratio = f"{d[rk]:.3f}"
            cells += f" {ref} | {ratio} |"
        out.append(f"| {d['model']} | {d['test']} | {d['threads']} | {d['tok_s']:.2f} "
                   f"({d['tok_s_min']:.2f} - {d['tok_s_max']:.2f}) |{cells} "
                   f"{d.get('threading_layer')} | {d.get('omp_wait_policy')} | "
                   f"{d.get('loadavg_start', ['?'])[0]} / "
                   f"{d.get('loadavg_end', ['?'])[0]} | {d['date']} | {d['commit']} |")
    if data["latency"]:
        out += ["", "## First-token latency of a new process, peak RSS", "",
                f"A new `python -c` process: import, load, tokenize, prefill of "
                f"{N_LATENCY_PROMPT} tokens, greedy first token. Cold: empty NUMBA_CACHE_DIR "
                "(every kernel compiles); warm: the normal cache, after two runs. Peak RSS is the "
                "warm process's VmHWM (its own image; ru_maxrss would include the spawning parent's "
                "peak); budget = model file + F16 KV cache + 200 MiB.", ""]
        for lat in data["latency"].values():
            out.append(f"- {_latency_line(lat)} ({lat['date']}, {lat['commit']})")
    out += ["", f"<!-- {_DATA_TAG}", json.dumps(data, indent=1, sort_keys=True), "-->", ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
