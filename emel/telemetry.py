"""Performance counters, as llama.cpp's llama_perf_context / llama_perf_sampler keep them.

Follows src/llama-context.cpp (llama_perf_context: t_load_ms, t_p_eval_ms / n_p_eval,
t_eval_ms / n_eval) and llama_perf_sampler (t_sample_ms / n_sample), plus memory sizes (arena and
KV cache bytes). One `Telemetry` object per model is passed down; nothing here is global.
Records are exported as JSON lines to a file or handed to a callback.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, TextIO


@dataclass
class PerfData:
    """One snapshot of the counters (times in milliseconds)."""

    t_load_ms: float = 0.0  # model load, once
    t_prompt_ms: float = 0.0  # prompt (prefill) decode time
    n_prompt: int = 0  # prompt tokens decoded
    t_gen_ms: float = 0.0  # generation decode time
    n_gen: int = 0  # generated tokens decoded
    t_sample_ms: float = 0.0  # time in the sampler chain
    n_sample: int = 0  # tokens sampled
    arena_bytes: int = 0  # compute arena size
    kv_bytes: int = 0  # KV cache size
    n_reused: int = 0  # KV shifts (context shifts) performed

    @property
    def prompt_tok_s(self) -> float:
        return 1e3 * self.n_prompt / self.t_prompt_ms if self.t_prompt_ms > 0 else 0.0

    @property
    def gen_tok_s(self) -> float:
        return 1e3 * self.n_gen / self.t_gen_ms if self.t_gen_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prompt_tok_s"] = round(self.prompt_tok_s, 3)
        d["gen_tok_s"] = round(self.gen_tok_s, 3)
        return d


@dataclass
class Telemetry:
    """Counters for one model; `timer(kind)` measures a block into t_<kind>_ms."""

    data: PerfData = field(default_factory=PerfData)
    sink: Callable[[dict], None] | None = None  # receives every emitted record

    def add(self, kind: str, seconds: float, n: int = 0) -> None:
        """Add `seconds` to t_<kind>_ms and `n` to n_<kind> (kind: prompt, gen, sample)."""
        if kind not in ("prompt", "gen", "sample"):
            raise ValueError(f"unknown counter {kind!r}")
        setattr(self.data, f"t_{kind}_ms", getattr(self.data, f"t_{kind}_ms") + 1e3 * seconds)
        setattr(self.data, f"n_{kind}", getattr(self.data, f"n_{kind}") + int(n))

    def timer(self, kind: str, n: int = 0) -> "_Timer":
        return _Timer(self, kind, n)

    def snapshot(self) -> PerfData:
        return PerfData(**asdict(self.data))

    def reset(self) -> None:
        """llama_perf_context_reset: clears everything but the load time and memory sizes."""
        d = self.data
        self.data = PerfData(t_load_ms=d.t_load_ms, arena_bytes=d.arena_bytes, kv_bytes=d.kv_bytes)

    def emit(self, event: str = "perf", **extra: Any) -> dict:
        """Build a record (counters + extra fields) and hand it to the sink, if any."""
        rec = {"event": event, "time": time.time(), **self.data.to_dict(), **extra}
        if self.sink is not None:
            self.sink(rec)
        return rec

    def summary(self) -> str:
        """One line like llama.cpp's perf print."""
        d = self.data
        return (f"load {d.t_load_ms:.1f} ms | prompt {d.n_prompt} tokens, {d.t_prompt_ms:.1f} ms "
                f"({d.prompt_tok_s:.2f} tok/s) | generated {d.n_gen} tokens, {d.t_gen_ms:.1f} ms "
                f"({d.gen_tok_s:.2f} tok/s) | sampling {d.t_sample_ms:.1f} ms")


class _Timer:
    def __init__(self, tel: Telemetry, kind: str, n: int):
        self.tel, self.kind, self.n = tel, kind, n

    def __enter__(self) -> "_Timer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.tel.add(self.kind, time.perf_counter() - self.t0, self.n)


def jsonl_sink(path_or_file: str | os.PathLike | TextIO) -> Callable[[dict], None]:
    """A sink appending one JSON object per line to a file path (or an open text file)."""
    if hasattr(path_or_file, "write"):
        f = path_or_file

        def write(rec: dict) -> None:
            f.write(json.dumps(rec) + "\n")
            f.flush()
        return write

    path = os.fspath(path_or_file)

    def append(rec: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
    return append
