"""Record llama.cpp's grammar sampler on SmolLM2's vocabulary: allowed tokens at every step.

For each (grammar, text): tokenize the text with llama.cpp, then for each token apply
llama_sampler_init_grammar to the whole vocabulary (all logits 0), record how many tokens keep a
finite logit and the sha256 of the packed allowed mask, then accept the token. The last record is
after the whole text (end-of-generation allowed or not). Also records the sha256 of every
`token_to_piece(id, special=True)` and the eog ids, so tests can check they feed the same vocab.

Run with the reference venv (llama-cpp-python 0.3.36 built from source):
  ~/.cache/emel-ref/venv/bin/python parity_fixtures/grammar/make_sampler_fixtures.py
Writes parity_fixtures/grammar/sampler_smollm2.json.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import llama_cpp as L

HERE = Path(__file__).resolve().parent
MODEL = Path.home() / ".cache/emel/models"
LLAMA = Path.home() / ".cache/emel-ref/llama_cpp_python-0.3.36/vendor/llama.cpp"


def _schema_grammar(name: str) -> str:
    cases = json.loads((HERE / "schema_cases.json").read_text())["cases"]
    return next(c["grammar"] for c in cases if c["name"] == name)


CASES = [
    ("json.gbnf", (LLAMA / "grammars/json.gbnf").read_text(),
     '{"name": "Zoë 東京 🚀", "age": 42, "tags": ["a", "b\\n"], '
     '"nested": {"x": [1.5, -2e3, true, null], "empty": {}}}'),
    ("json.gbnf", (LLAMA / "grammars/json.gbnf").read_text(),
     '{\n  "id": 7,\n  "items": [\n    {"sku": "A-1", "qty": 3},\n    {"sku": "ünï", "qty": 0}\n  ]\n}'),
    ("schema: required + optional + additional props",
     _schema_grammar("required + optional + additional props"),
     '{"and": 1.5, "also": -2, "alpha": 3e4, "b": 0}'),
    ("japanese.gbnf", (LLAMA / "grammars/japanese.gbnf").read_text(),
     "こんにちは 世界\nカタカナ、テスト"),
    ("arithmetic.gbnf", (LLAMA / "grammars/arithmetic.gbnf").read_text(),
     "x*2+1 = (a +12)\ny = 3\n"),
    ("list.gbnf", (LLAMA / "grammars/list.gbnf").read_text(), "- milk ü\n- eggs 🥚\n"),
]

# token references (<name> is tokenized with parse_special, as llama-grammar.cpp's parse_token)
TOKEN_CASES = [
    ("tokens: <|im_start|> and !<[1]>",
     'root ::= <|im_start|> "assistant\\n" (!<[1]>)+ <|im_start|>',
     "<|im_start|>assistant\nhi there 🙂<|im_start|>"),
]

_JSON_BODY = (LLAMA / "grammars/json.gbnf").read_text().split("\n", 1)[1]
# lazy grammars (llama_sampler_init_grammar_lazy_patterns): name, grammar, text, patterns
LAZY_CASES = [
    ("lazy: pattern with group", 'root ::= "<tool_call>" ws object\n' + _JSON_BODY,
     'Sure, calling it now. <tool_call> {"name": "f", "x": [1, 2]}',
     ["[\\s\\S]*?(<tool_call>)[\\s\\S]*"]),
    ("lazy: anchored pattern", 'root ::= "{" [a-z]* "}"',
     "ok then {abc}", ["^[\\s\\S]*?(\\{)[\\s\\S]*$"]),
]


def main() -> int:
    L.llama_backend_init()
    path = sorted(MODEL.rglob("*SmolLM2*135M*.gguf")) or sorted(MODEL.rglob("*.gguf"))
    path = [p for p in path if "mollm" in p.name.lower()][0]
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(path).encode(), params)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    buf = ctypes.create_string_buffer(1024)
    h = hashlib.sha256()
    for t in range(n_vocab):
        n = L.llama_token_to_piece(vocab, t, buf, 1024, 0, True)
        piece = buf.raw[:n]
        h.update(len(piece).to_bytes(4, "little") + piece)
    eog = [t for t in range(n_vocab) if L.llama_vocab_is_eog(vocab, t)]

    data = (L.llama_token_data * n_vocab)()
    out = []
    all_cases = ([c + ([], False) for c in CASES] + [c + (False,) for c in LAZY_CASES]
                 + [c + ([], True) for c in TOKEN_CASES])
    for name, grammar, text, patterns, parse_special in all_cases:
        raw = text.encode("utf-8")
        toks = (L.llama_token * (len(raw) + 8))()
        n_tok = L.llama_tokenize(vocab, raw, len(raw), toks, len(raw) + 8, False, parse_special)
        tokens = [toks[i] for i in range(n_tok)]
        if patterns:
            arr_p = (ctypes.c_char_p * len(patterns))(*[p.encode() for p in patterns])
            smpl = L.llama_sampler_init_grammar_lazy_patterns(
                vocab, grammar.encode(), b"root", arr_p, len(patterns), None, 0)
        else:
            smpl = L.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        assert smpl, name
        steps = []
        for i in range(n_tok + 1):
            for t in range(n_vocab):
                data[t].id, data[t].logit, data[t].p = t, 0.0, 0.0
            arr = L.llama_token_data_array(data, n_vocab, -1, False)
            L.llama_sampler_apply(smpl, ctypes.byref(arr))
            mask = np.array([np.isfinite(data[t].logit) for t in range(n_vocab)], dtype=np.uint8)
            steps.append({"n_allowed": int(mask.sum()),
                          "sha256": hashlib.sha256(np.packbits(mask).tobytes()).hexdigest(),
                          "allowed_sample": np.flatnonzero(mask)[:16].tolist()})
            if i < n_tok:
                L.llama_sampler_accept(smpl, tokens[i])
        L.llama_sampler_free(smpl)
        out.append({"name": name, "grammar": grammar, "text": text, "tokens": tokens,
                    "trigger_patterns": patterns, "parse_special": parse_special,
                    "steps": steps})
        print(name, n_tok, "tokens", file=sys.stderr)
    (HERE / "sampler_smollm2.json").write_text(json.dumps({
        "source": "llama-cpp-python 0.3.36 (llama_sampler_init_grammar, vocab_only model)",
        "model": path.name, "n_vocab": n_vocab, "eog": eog,
        "pieces_sha256": h.hexdigest(),
        "pieces_hash_format": "sha256 over tokens of (len u32 little-endian + piece bytes), "
                              "token_to_piece(special=True)",
        "mask_hash_format": "sha256 of numpy.packbits(uint8 mask of finite logits)",
        "cases": out}, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
