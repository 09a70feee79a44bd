"""CudaContext against the CPU Context on tiny random-weight models (parity_fixtures/logits/tiny_models.py).

Run by tests/test_context_cuda.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (or `--gpu` on a
real GPU). For each architecture: a prompt of several tokens (all logits), a single-token decode step over
the cache, then a batch holding a second sequence; prints one JSON line per step with the
largest logit difference relative to the largest |logit|. Each architecture runs twice: with the
CUDA matmul ("matmul": "cuda", the real thing) and with the CPU context's own matmul results
copied to the device ("matmul": "host"), which isolates everything but the matmul.

Every device -> host transfer during a decode is recorded (`_D2H`): explicit copies, element
reads of a device array, NumPy conversions and the write-back of NumPy arrays passed to kernels
(simulator), or every driver device_to_host call (GPU). The row's "d2h" lists them, a copy out
of the context's logits buffer as "logits"; for the CUDA matmul the test requires that every one
is "logits" and that they add up to the output rows' logits (one copy per ubatch).
"""

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "parity_fixtures" / "logits"))


def run(arch: str, tmp: Path, n_prompt: int, two_sequences: bool = True,
        matmul: str = "cuda") -> list[dict]:
    """arch: a tiny_models architecture, or "phi3+q8_0": phi3 with Q8_0 weights instead of F32
    (its fused qkv and gate_up matrices through the quantized row ranges)."""
    import tiny_models
    from gguf import GGMLQuantizationType

    from emel import context_cuda
    from emel.context import Batch, Context, ContextParams
    from emel.context_cuda import CudaContext

    label = arch
    models = dict(tiny_models.MODELS)
    if arch == "phi3+q8_0":
        arch = "phi3"
        tiny_models.MODELS["phi3"] = (models["phi3"][0], GGMLQuantizationType.Q8_0)
    try:
        path = tiny_models.write(arch, tmp / f"{label}.gguf")
    finally:
        tiny_models.MODELS.update(models)
    toks = tiny_models.tokens(arch, n_prompt + 3)
    params = ContextParams(n_ctx=256, n_batch=64, n_ubatch=64, n_seq_max=2)
    cpu = Context(path, params)
    gpu = CudaContext(path, params, weights=cpu.weights)
    if matmul == "host":
        gpu.dev.linear = _host_matmul.__get__(gpu.dev, context_cuda._DeviceModel)
    steps = [
        # prompt: llamafile-order (sgemm) attention; decode: ggml_vec_dot_f16 order
        ("prompt", Batch(token=toks[:n_prompt], logits=[True] * n_prompt)),
        ("decode", Batch(token=[toks[n_prompt]])),
        # a second sequence in one batch with a token of the first: per-sequence gather/scatter
        ("two sequences", Batch(token=[toks[0], toks[n_prompt + 1]], pos=[0, n_prompt + 1],
                                seq_id=[1, 0], logits=[True, True])),
    ][:3 if two_sequences else 2]
    rows = []
    for name, batch in steps:
        cpu.decode(batch)
        _D2H.log.clear()
        _D2H.logits = gpu.logits_buf
        _D2H.on = True
        gpu.decode(batch)
        _D2H.on = False
        d2h = list(_D2H.log)
        a, b = cpu.get_logits(), gpu.get_logits()
        rel = float(np.abs(a - b).max() / np.abs(a).max())
        same_argmax = bool((a.argmax(axis=1) == b.argmax(axis=1)).all())
        rows.append({"arch": label, "step": name, "matmul": matmul, "shape": list(a.shape), "rel": rel,
                     "same_argmax": same_argmax, "d2h": d2h, "logits_bytes": int(a.size * 4),
                     "ith": bool(np.array_equal(gpu.get_logits_ith(-1), b[-1]))})
    return rows


def _fast_simulator() -> None:
    """A short GIL switch interval: each syncthreads() waits for the simulator's polling thread,
    which otherwise holds the GIL for the default 5 ms. (Device functions of kernels/cuda are
    plain Python under the simulator, and its shared-array allocation is made thread-safe:
    kernels/cuda/simulator.py.)"""
    sys.setswitchinterval(1e-5)


class _D2H:
    """Device -> host transfers while `on` (see the module docstring): [kind, bytes] in `log`."""

    on = False
    log: list = []
    logits = None  # the CudaContext's logits buffer: copies from it are recorded as "logits"

    @classmethod
    def record(cls, kind: str, nbytes: int) -> None:
        if cls.on and threading.current_thread() is threading.main_thread():
            cls.log.append([kind, int(nbytes)])

    @classmethod
    def install(cls, gpu: bool) -> None:
        if gpu:
            from numba.cuda.cudadrv import driver

            d2h = driver.device_to_host

            def device_to_host(dst, src, size, *args, **kwargs):
                if cls.on:
                    inside = False
                    if cls.logits is not None:
                        lo, p = driver.device_pointer(cls.logits), driver.device_pointer(src)
                        inside = lo <= p and p + size <= lo + cls.logits.nbytes
                    cls.record("logits" if inside else "device_to_host", size)
                return d2h(dst, src, size, *args, **kwargs)

            driver.device_to_host = device_to_host
            return
        from numba.cuda.simulator import kernel
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        copy_to_host, getitem, call = (FakeCUDAArray.copy_to_host, FakeCUDAArray.__getitem__,
                                       kernel.FakeCUDAKernel.__call__)

        def copy(self, ary=None, stream=0):
            if cls.on:
                inside = cls.logits is not None and np.shares_memory(self._ary, cls.logits._ary)
                cls.record("logits" if inside else "copy_to_host", self.nbytes)
            return copy_to_host(self, ary, stream)

        main = threading.main_thread().ident

        def item(self, idx):  # also every element read inside a kernel: keep it cheap
            r = getitem(self, idx)
            if cls.on and threading.get_ident() == main and not isinstance(r, FakeCUDAArray):
                cls.record("element read", np.asarray(r).nbytes)
            return r

        def as_array(self, dtype=None, copy=None):
            cls.record("numpy conversion", self.nbytes)
            return np.asarray(self._ary, dtype=dtype)

        def launch(self, *args):
            for a in args:  # a NumPy array argument is copied back after the launch
                if isinstance(a, np.ndarray) and a.ndim > 0:
                    cls.record(f"kernel argument ({self.fn.__name__})", a.nbytes)
            return call(self, *args)

        FakeCUDAArray.copy_to_host = copy
        FakeCUDAArray.__getitem__ = item
        FakeCUDAArray.__array__ = as_array
        kernel.FakeCUDAKernel.__call__ = launch


def _host_matmul(self, A, lin, x, n_tokens: int, out=None, bias=None, rows=None, xq=None):
    """_DeviceModel.linear through the CPU context's own Linear (copied back to the device): with
    it, the device graph and the CPU context share the matmul results, so any other difference
    (an op, the KV cells, a mask, a position, a gather/scatter) shows up unamplified."""
    r0, r1 = rows if rows is not None else (0, lin.n_rows)
    if out is None:
        out = A.take(n_tokens * (r1 - r0))
    xh = x[:n_tokens * lin.n_cols].copy_to_host().reshape(n_tokens, lin.n_cols)
    y = np.ascontiguousarray(lin(xh)[:, r0:r1], dtype=np.float32).reshape(-1)
    out[:y.size].copy_to_device(y)
    if bias is not None:
        self.add_rows(out, bias, out, n_tokens, r1 - r0)
    return out


def main(argv: list[str]) -> int:
    gpu = "--gpu" in argv
    if not gpu:
        assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run with NUMBA_ENABLE_CUDASIM=1"
        _fast_simulator()
    _D2H.install(gpu)
    archs = [a for a in argv if not a.startswith("--")] or ["llama", "gemma3", "qwen2", "qwen3",
                                                              "phi3", "phi3+q8_0"]
    with tempfile.TemporaryDirectory() as d:
        for arch in archs:
            # the batch plumbing (two sequences) once per graph function; qwen2/3 share llama's
            full = gpu or arch in ("llama", "gemma3")
            # the host-matmul rows once under the simulator: llama (the CUDA matmul of the tiny
            # models' weight types is bit-equal with the CPU's, so these only isolate the rest)
            for matmul in ("cuda", "host") if gpu or arch == "llama" else ("cuda",):
                for row in run(arch, Path(d), 12 if gpu else 3, two_sequences=full, matmul=matmul):
                    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
