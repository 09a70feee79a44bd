"""Record llama.cpp's completions (greedy and seeded) for the generator / CLI / API tests.

Run with llama-cpp-python 0.3.36 (built from source):
    ~/.cache/emel-ref/venv/bin/python parity_fixtures/generate/make_fixtures.py
`Llama.create_completion(prompt, max_tokens, temperature, seed, ...)` gives the text; the same
sampling run through `Llama.generate` (what create_completion calls) gives the token ids. Chat
turns use `Llama.create_chat_completion` with the GGUF's template.
"""

from __future__ import annotations

import json
from pathlib import Path

from llama_cpp import Llama, llama_vocab_is_eog

HERE = Path(__file__).resolve().parent
MODELS = {
    "smollm2-135m": Path.home() / ".cache/emel/models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": Path.home() / ".cache/emel/models/gemma-3-270m-q4_k_m.gguf",
}
N_CTX = 512
GREEDY_PROMPTS = ["The capital of France is", "Once upon a time,", "def fibonacci(n):"]
SEEDED_PROMPTS = ["The capital of France is", "My favourite food is", "In 1905, Einstein"]
SEEDS = [42, 1234, 7]
EMBED_TEXT = "hello world"
SAMPLING = dict(top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)  # create_completion defaults


def fresh(llm: Llama) -> None:
    """Forget the previous run: no prompt-prefix reuse, every prompt evaluated as one batch."""
    llm.reset()
    llm._ctx.kv_cache_clear()


def tokens_of(llm: Llama, prompt: str, max_tokens: int, temperature: float, seed: int | None):
    """The completion's token ids, sampled exactly as create_completion samples them."""
    fresh(llm)
    if seed is not None:
        llm.set_seed(seed)
    prompt_tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    out = []
    for tok in llm.generate(prompt_tokens, temp=temperature, reset=True, **SAMPLING):
        if llama_vocab_is_eog(llm._model.vocab, tok):
            break
        out.append(int(tok))
        if len(out) >= max_tokens:
            break
    return prompt_tokens, out


def record(llm: Llama, prompt: str, max_tokens: int, temperature: float, seed: int | None):
    fresh(llm)
    res = llm.create_completion(prompt, max_tokens=max_tokens, temperature=temperature,
                                seed=seed, **SAMPLING)
    prompt_tokens, toks = tokens_of(llm, prompt, max_tokens, temperature, seed)
    text = res["choices"][0]["text"]
    assert llm.detokenize(toks, prev_tokens=prompt_tokens).decode("utf-8", "ignore") == text
    return dict(prompt=prompt, max_tokens=max_tokens, temperature=temperature, seed=seed,
                prompt_tokens=[int(t) for t in prompt_tokens], tokens=toks, text=text,
                finish_reason=res["choices"][0]["finish_reason"], usage=res["usage"])


def main():
    out = dict(source="llama-cpp-python 0.3.36 (llama.cpp built from source), Llama.create_completion",
               script="parity_fixtures/generate/make_fixtures.py", n_ctx=N_CTX,
               sampling=SAMPLING, models={})
    for name, path in MODELS.items():
        llm = Llama(model_path=str(path), n_ctx=N_CTX, n_batch=512, verbose=False, seed=1)
        greedy = [record(llm, p, 32, 0.0, None) for p in GREEDY_PROMPTS]
        seeded = [record(llm, p, 32, 0.8, s) for p in SEEDED_PROMPTS for s in SEEDS]
        fresh(llm)
        chat = llm.create_chat_completion(
            [{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24, temperature=0.0)
        out["models"][name] = dict(file=path.name, greedy=greedy, seeded=seeded,
                                   chat=dict(messages=[{"role": "user", "content":
                                                        "What is the capital of France?"}],
                                             max_tokens=24, temperature=0.0,
                                             content=chat["choices"][0]["message"]["content"],
                                             finish_reason=chat["choices"][0]["finish_reason"],
                                             usage=chat["usage"]))
        del llm
        emb = Llama(model_path=str(path), n_ctx=N_CTX, embedding=True, pooling_type=1,
                    verbose=False)
        out["models"][name]["embed"] = dict(text=EMBED_TEXT, pooling="mean", normalize=False,
                                            vector=[float(x) for x in
                                                    emb.embed(EMBED_TEXT, normalize=False)])
        del emb
    (HERE / "generate.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    for name, m in out["models"].items():
        print(name, repr(m["greedy"][0]["text"]))


if __name__ == "__main__":
    main()
