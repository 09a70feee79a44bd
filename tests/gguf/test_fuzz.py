"""Hostile GGUF headers (mutated and truncated real and synthetic files) never crash the
interpreter: the parses run in one subprocess that must exit normally, having seen only
successful parses or GGUFError."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGMLQuantizationType as Q
from gguf.constants import GGUFValueType as T

WORKER = Path(__file__).with_name("_fuzz_worker.py")
REPO = Path(__file__).resolve().parents[2]
N_EXAMPLES = 1000


def _synthetic(path: Path) -> Path:
    w = GGUFWriter(path, "llama")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_key_value("tokenizer.ggml.tokens", ["a", "b", "ab", "<s>"], T.ARRAY, T.STRING)
    w.add_key_value("tokenizer.ggml.scores", [0.0, -1.0, -2.0, 0.5], T.ARRAY, T.FLOAT32)
    w.add_key_value("u64s", [1, 2**40], T.ARRAY, T.UINT64)
    w.add_key_value("nested", [[1, 2], [3]], T.ARRAY)
    w.add_tensor("token_embd.weight", np.zeros((4, 34), np.uint8), raw_dtype=Q.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(32, np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((2, 144), np.uint8), raw_dtype=Q.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_hostile_headers_never_crash_the_interpreter(tmp_path, vocab_dir) -> None:
    seeds = [str(_synthetic(tmp_path / "synthetic.gguf")),
             str(vocab_dir / "ggml-vocab-llama-spm.gguf"),
             str(vocab_dir / "ggml-vocab-gpt-2.gguf")]
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(WORKER), *seeds, "--examples", str(N_EXAMPLES)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, (f"worker exited with {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}")
    m = re.search(r"parsed (\d+), GGUFError (\d+)", proc.stdout)
    assert m, proc.stdout
    n_ok, n_err = int(m[1]), int(m[2])
    assert n_ok + n_err >= N_EXAMPLES  # every example ran; both outcomes were exercised
    assert n_ok > 0 and n_err > 0
