"""Perplexity of both default models on text.txt, computed through llama.cpp (llama-cpp-python).

Run with the reference venv (llama-cpp-python built from source):
    ~/.cache/emel-ref/venv/bin/python parity_fixtures/perplexity/make_fixtures.py

The procedure is llama-perplexity's (tools/perplexity/perplexity.cpp, perplexity()): tokenize the
whole text with add_special, cut it into chunks of n_ctx tokens, put BOS first in each chunk when
the vocabulary adds BOS, evaluate each chunk in a fresh context and score the second half of it:
the negative log-likelihood of token j+1 under the logits of position j for j in
[n_ctx/2, n_ctx - 1). Log-softmax as llama.cpp's (max, sum of expf in double).
The same procedure over emel's logits is in tests/test_perplexity.py.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import llama_cpp

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "emel" / "models"
MODELS = {
    "smollm2-135m": CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": CACHE / "gemma-3-270m-q4_k_m.gguf",
}
N_CTX = 512


def chunk_nll(logits: np.ndarray, tokens: list[int], first: int) -> tuple[float, int]:
    """Sum of -log p(tokens[j+1] | logits[j]) for j in [first, len(tokens) - 1)."""
    nll = 0.0
    for j in range(first, len(tokens) - 1):
        row = logits[j].astype(np.float32)
        mx = float(row.max())
        sum_exp = float(np.exp((row - np.float32(mx)).astype(np.float32), dtype=np.float32)
                        .astype(np.float64).sum())
        nll -= float(row[tokens[j + 1]]) - mx - math.log(sum_exp)
    return nll, len(tokens) - 1 - first


def main() -> int:
    text = (HERE / "text.txt").read_text()
    out = {"llama_cpp_python": llama_cpp.__version__, "n_ctx": N_CTX, "models": {}}
    for name, path in MODELS.items():
        llm = llama_cpp.Llama(str(path), n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX,
                              logits_all=True, n_threads=2, verbose=False)
        add_bos = llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model))
        bos = llm.token_bos()
        tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
        n_chunk = len(tokens) // N_CTX
        chunks = []
        total, count = 0.0, 0
        for i in range(n_chunk):
            toks = list(tokens[i * N_CTX:(i + 1) * N_CTX])
            if add_bos:
                toks[0] = bos
            llm.reset()
            llm._ctx.kv_cache_clear()  # reset() keeps the cache; llama-perplexity clears it per chunk
            llm.eval(toks)
            logits = np.array(llm.scores[:N_CTX], dtype=np.float32)
            nll, n = chunk_nll(logits, toks, N_CTX // 2)
            chunks.append({"nll": nll, "n": n})
            total += nll
            count += n
        out["models"][name] = {
            "model": path.name, "n_tokens": len(tokens), "tokens": tokens, "add_bos": bool(add_bos),
            "chunks": chunks, "ppl": math.exp(total / count),
        }
        print(name, "ppl", out["models"][name]["ppl"], "chunks", n_chunk, file=sys.stderr)
        del llm
    (HERE / "perplexity.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
