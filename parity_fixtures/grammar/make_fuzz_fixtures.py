"""Differential fuzz fixture: random GBNF grammars through llama.cpp's grammar sampler on SmolLM2.

For each seeded random grammar (character classes with ranges and negation, literals with escapes
and multi-byte characters, `.`, groups, alternatives, `*` `+` `?` `{m}` `{m,}` `{m,n}`, rule
references, right recursion) and some broken variants, records whether llama_sampler_init_grammar
accepts it; for the accepted ones walks N_STEPS tokens: apply to the whole vocabulary, record the
allowed count and mask hash, pick a random allowed non-eog token (seeded), accept it.

Run with the reference venv:
  ~/.cache/emel-ref/venv/bin/python parity_fixtures/grammar/make_fuzz_fixtures.py
Writes parity_fixtures/grammar/fuzz_smollm2.json.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import llama_cpp as L

HERE = Path(__file__).resolve().parent
MODEL = Path.home() / ".cache/emel/models/SmolLM2-135M-Instruct.Q4_1.gguf"
SEED = 20240611
N_GRAMMARS = 64
N_BROKEN = 32
N_STEPS = 10

_LIT_CHARS = list("abcxyz019 -_:,{}") + ["é", "ü", "東", "京", "🙂", "\\n", "\\t", "\\\\", '\\"',
                                         "\\x41", "\\u00e9", "\\U0001F600", "[", "]"]
_CLASS_ITEMS = ["a-z", "A-Z", "0-9", "_", " ", "\\n", "\\t", "\\x00-\\x1F", "\\\\", '"', "-",
                "à-ÿ", "ぁ-ゟ", "一-鿿", "\\u00e9", "🙂", "\\]", "\\-", ".", "x"]


def _literal(rng):
    return '"' + "".join(rng.choice(_LIT_CHARS) for _ in range(rng.randint(1, 4))) + '"'


def _char_class(rng):
    neg = "^" if rng.random() < 0.3 else ""
    return "[" + neg + "".join(rng.choice(_CLASS_ITEMS) for _ in range(rng.randint(1, 3))) + "]"


def _suffix(rng):
    r = rng.random()
    if r < 0.45:
        return ""
    m = rng.randint(0, 3)
    return rng.choice(["*", "+", "?", f"{{{m}}}", f"{{{m},}}", f"{{{m},{m + rng.randint(0, 3)}}}"])


def _expr(rng, depth, refs):
    r = rng.random()
    if r < 0.3:
        base = _literal(rng)
    elif r < 0.6:
        base = _char_class(rng)
    elif r < 0.67:
        base = "."
    elif r < 0.85 and refs:
        base = rng.choice(refs)
    elif depth < 2:
        base = "(" + _alt(rng, depth + 1, refs) + ")"
    else:
        base = _literal(rng)
    return base + _suffix(rng)


def _seq(rng, depth, refs):
    return " ".join(_expr(rng, depth, refs) for _ in range(rng.randint(1, 3)))


def _alt(rng, depth, refs):
    return " | ".join(_seq(rng, depth, refs) for _ in range(rng.randint(1, 3)))


def random_grammar(rng: random.Random) -> str:
    n = rng.randint(1, 4)
    names = ["root"] + [f"r{i}" for i in range(1, n)]
    lines = []
    for i, name in enumerate(names):
        body = _alt(rng, 0, names[i + 1:])
        if rng.random() < 0.2:  # right recursion
            body = f'{_literal(rng)} {name} | {body}'
        lines.append(f"{name} ::= {body}")
    if rng.random() < 0.3:
        lines.insert(rng.randint(0, len(lines)), "# a comment line")
    return "\n".join(lines) + "\n"


def broken_grammar(rng: random.Random) -> str:
    g = random_grammar(rng)
    kind = rng.randrange(6)
    if kind == 0:
        return g.replace('"', "", 1) if '"' in g else g + 'x ::= "'
    if kind == 1:
        return g.replace("(", "", 1) if "(" in g else g.replace("\n", " )\n", 1)
    if kind == 2:
        return g.rstrip("\n") + " undefined-rule\n"
    if kind == 3:
        return g + 'r9 ::= r9 "a" | "b"\n'  # left recursion (unreachable from root)
    if kind == 4:
        return g.replace("::=", "::", 1)
    return g.replace("]", "", 1) if "]" in g else g + "r8 ::= [a-\n"


def main() -> int:
    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(MODEL).encode(), params)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    is_eog = np.array([L.llama_vocab_is_eog(vocab, t) for t in range(n_vocab)])
    data = (L.llama_token_data * n_vocab)()
    rng = random.Random(SEED)
    cases = []
    for i in range(N_GRAMMARS + N_BROKEN):
        text = random_grammar(rng) if i < N_GRAMMARS else broken_grammar(rng)
        smpl = L.llama_sampler_init_grammar(vocab, text.encode(), b"root")
        case = {"grammar": text, "valid": bool(smpl), "tokens": [], "steps": []}
        if smpl:
            for _ in range(N_STEPS):
                for t in range(n_vocab):
                    data[t].id, data[t].logit, data[t].p = t, 0.0, 0.0
                arr = L.llama_token_data_array(data, n_vocab, -1, False)
                L.llama_sampler_apply(smpl, ctypes.byref(arr))
                mask = np.array([np.isfinite(data[t].logit) for t in range(n_vocab)], np.uint8)
                case["steps"].append({"n_allowed": int(mask.sum()), "sha256": hashlib.sha256(
                    np.packbits(mask).tobytes()).hexdigest()})
                choices = np.flatnonzero(mask & ~is_eog).tolist()
                if not choices:
                    break
                tok = rng.choice(choices)
                case["tokens"].append(tok)
                L.llama_sampler_accept(smpl, tok)
            L.llama_sampler_free(smpl)
        cases.append(case)
    (HERE / "fuzz_smollm2.json").write_text(json.dumps({
        "source": "llama-cpp-python 0.3.36 (llama_sampler_init_grammar, vocab_only model)",
        "model": MODEL.name, "seed": SEED, "n_steps": N_STEPS,
        "mask_hash_format": "sha256 of numpy.packbits(uint8 mask of finite logits)",
        "cases": cases}, ensure_ascii=False, indent=1) + "\n")
    print(sum(c["valid"] for c in cases), "valid of", len(cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
