"""Helpers to run llama.cpp (llama-cpp-python, low-level API) and capture its outputs.

Used only by the fixture scripts of parity_fixtures/logits (run with the reference venv,
~/.cache/emel-ref/venv/bin/python); never imported by emel or by the tests.
"""

from __future__ import annotations

import ctypes

import numpy as np
import llama_cpp as L

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1


class GGMLTensor(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def tensor_to_numpy(t: GGMLTensor) -> np.ndarray | None:
    """Copy a contiguous F32/F16 CPU tensor (numpy shape = ne reversed)."""
    if t.type not in (GGML_TYPE_F32, GGML_TYPE_F16) or not t.data:
        return None
    dt = np.float32 if t.type == GGML_TYPE_F32 else np.float16
    ne = [int(t.ne[i]) for i in range(4)]
    nb = [int(t.nb[i]) for i in range(4)]
    n = ne[0] * ne[1] * ne[2] * ne[3]
    span = sum((ne[i] - 1) * nb[i] for i in range(4)) + nb[0]
    buf = (ctypes.c_char * span).from_address(t.data)
    raw = np.frombuffer(bytes(buf), dtype=np.uint8)
    arr = np.lib.stride_tricks.as_strided(raw.view(dt) if span % np.dtype(dt).itemsize == 0 else
                                          np.frombuffer(bytes(buf) + b"\0" * 8, dtype=dt),
                                          shape=ne[::-1], strides=nb[::-1])
    return np.array(arr, dtype=np.float32).reshape(ne[::-1]) if n else None


class Model:
    """A llama.cpp model + context with the low-level API (flash attention off, F16 KV)."""

    def __init__(self, path: str, n_ctx: int = 2048, n_batch: int = 512, n_ubatch: int = 512,
                 n_threads: int = 2, n_seq_max: int = 1, capture: set[str] | None = None) -> None:
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_ubatch
        cp.n_seq_max = n_seq_max
        cp.n_threads = n_threads
        cp.n_threads_batch = n_threads
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.no_perf = True
        self.captured: dict[str, list[np.ndarray]] = {}
        self._capture = capture
        if capture is not None:
            def cb(tp, ask, user):
                t = ctypes.cast(tp, ctypes.POINTER(GGMLTensor)).contents
                name = t.name.decode(errors="replace")
                base = name.split("-")[0]
                if ask:
                    return base in capture or name in capture
                arr = tensor_to_numpy(t)
                if arr is not None:
                    self.captured.setdefault(name, []).append(arr)
                return True
            self._cb = L.ggml_backend_sched_eval_callback(cb)
            cp.cb_eval = self._cb
        self.ctx = L.llama_init_from_model(self.model, cp)
        self.cparams = dict(n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch, n_threads=n_threads,
                            n_seq_max=n_seq_max, flash_attn=False, type_k="f16", type_v="f16")

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        b = text.encode()
        buf = (L.llama_token * (len(b) + 16))()
        n = L.llama_tokenize(self.vocab, b, len(b), buf, len(buf), add_special, parse_special)
        assert n >= 0
        return list(buf[:n])

    def clear(self) -> None:
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def decode(self, tokens, pos, seq_ids, outputs) -> np.ndarray:
        """One llama_decode; returns float32[n_outputs, n_vocab] in batch order."""
        n = len(tokens)
        batch = L.llama_batch_init(n, 0, 1)
        for i in range(n):
            batch.token[i] = tokens[i]
            batch.pos[i] = pos[i]
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq_ids[i]
            batch.logits[i] = bool(outputs[i])
        batch.n_tokens = n
        rc = L.llama_decode(self.ctx, batch)
        L.llama_batch_free(batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        rows = []
        for i in range(n):
            if outputs[i]:
                p = L.llama_get_logits_ith(self.ctx, i)
                rows.append(np.ctypeslib.as_array(p, shape=(self.n_vocab,)).copy())
        return np.array(rows, dtype=np.float32)

    def logits_all(self, tokens) -> np.ndarray:
        """Logits of every position of `tokens` (one sequence, fresh cache), n_batch at a time."""
        self.clear()
        out = []
        step = self.cparams["n_batch"]
        for s in range(0, len(tokens), step):
            chunk = tokens[s:s + step]
            out.append(self.decode(chunk, list(range(s, s + len(chunk))), [0] * len(chunk),
                                   [1] * len(chunk)))
        return np.concatenate(out)

    def greedy(self, tokens, n_predict: int) -> list[int]:
        """Greedy continuation (argmax, first max wins like llama_sampler_greedy); the prompt goes
        in n_batch chunks, only its last token an output."""
        self.clear()
        step = self.cparams["n_batch"]
        n = len(tokens)
        for s in range(0, n, step):
            chunk = tokens[s:s + step]
            last = s + len(chunk) == n
            lg = self.decode(chunk, list(range(s, s + len(chunk))), [0] * len(chunk),
                             [0] * (len(chunk) - 1) + [1 if last else 0])
        out = []
        p = len(tokens)
        for _ in range(n_predict):
            t = int(np.argmax(lg[-1]))
            out.append(t)
            lg = self.decode([t], [p], [0], [1])
            p += 1
        return out

    def close(self) -> None:
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)
