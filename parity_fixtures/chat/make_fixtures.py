"""Record chat template renderings for both catalog models into chat.json.

Run with llama-cpp-python 0.3.36 (built from source):
    ~/.cache/emel-ref/venv/bin/python parity_fixtures/chat/make_fixtures.py
For each model: the GGUF's `tokenizer.chat_template` (or, when the model has none, llama.cpp's
ChatML default from common/chat.cpp, as llama.cpp's tools use) rendered by llama-cpp-python's
Jinja2ChatFormatter with the model's bos/eos text, and, for reference, llama.cpp's C++
`llama_chat_apply_template` (built-in template detection, not jinja).
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import llama_cpp as L
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

HERE = Path(__file__).resolve().parent
MODELS = {
    "smollm2-135m": Path.home() / ".cache/emel/models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": Path.home() / ".cache/emel/models/gemma-3-270m-q4_k_m.gguf",
}
# common/chat.cpp CHATML_TEMPLATE_SRC
CHATML = (
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
     {"role": "user", "content": "Tell me a joke about ünïcödé and 日本語 🙂."}],
    [{"role": "user", "content": "  leading and trailing spaces \n\n"}],
    [{"role": "system", "content": "A"}, {"role": "user", "content": "B"},
     {"role": "assistant", "content": "C"}],
]
_QUIET = L.llama_log_callback(lambda *a: None)


def token_text(vocab, tok: int) -> str:
    return L.llama_vocab_get_text(vocab, tok).decode("utf-8") if tok != -1 else ""


def builtin(template: str, conv, add_ass: bool) -> str | None:
    msgs = (L.llama_chat_message * len(conv))(
        *[L.llama_chat_message(m["role"].encode(), m["content"].encode()) for m in conv])
    buf = ctypes.create_string_buffer(1 << 16)
    n = L.llama_chat_apply_template(template.encode(), msgs, len(conv), add_ass, buf, len(buf))
    return None if n < 0 else buf.raw[:n].decode("utf-8")


def main():
    L.llama_log_set(_QUIET, ctypes.c_void_p(0))
    L.llama_backend_init()
    out = dict(source="llama-cpp-python 0.3.36 Jinja2ChatFormatter; llama.cpp llama_chat_apply_template",
               script="parity_fixtures/chat/make_fixtures.py", models={})
    for name, path in MODELS.items():
        mp = L.llama_model_default_params()
        mp.vocab_only = True
        model = L.llama_model_load_from_file(str(path).encode(), mp)
        vocab = L.llama_model_get_vocab(model)
        tmpl = L.llama_model_chat_template(model, None)
        template = tmpl.decode("utf-8") if tmpl else None
        bos, eos = token_text(vocab, L.llama_vocab_bos(vocab)), token_text(vocab, L.llama_vocab_eos(vocab))
        source = template if template else CHATML
        renders = []
        for conv in CONVERSATIONS:
            for add_gen in (True, False):
                fmt = Jinja2ChatFormatter(template=source, eos_token=eos, bos_token=bos,
                                          add_generation_prompt=add_gen)
                renders.append(dict(messages=conv, add_generation_prompt=add_gen,
                                    jinja=fmt(messages=conv).prompt,
                                    builtin=builtin(template or "chatml", conv, add_gen)))
        out["models"][name] = dict(file=path.name, has_template=template is not None,
                                   bos_token=bos, eos_token=eos, renders=renders)
        L.llama_model_free(model)
    (HERE / "chat.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print("written", {k: len(v["renders"]) for k, v in out["models"].items()})


if __name__ == "__main__":
    main()
