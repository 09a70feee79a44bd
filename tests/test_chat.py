"""Chat templates: llama.cpp/llama-cpp-python's rendering of both models, and the sandbox."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest

from emel import TemplateError
from emel import gguf as emel_gguf
from emel.chat import CHATML_TEMPLATE, ChatTemplate


@pytest.fixture(scope="module")
def chat_fixture(fixtures_dir):
    return json.loads((fixtures_dir / "chat" / "chat.json").read_text())


@pytest.mark.parametrize("model,path_fixture", [("smollm2-135m", "smollm2_path"),
                                                ("gemma3-270m", "gemma3_path")])
def test_model_templates_render_as_llama_cpp(model, path_fixture, chat_fixture, request):
    rec = chat_fixture["models"][model]
    meta = emel_gguf.read(request.getfixturevalue(path_fixture)).metadata
    source = meta.get("tokenizer.chat_template")
    assert (source is not None) == rec["has_template"]
    tmpl = ChatTemplate(source, rec["bos_token"], rec["eos_token"])
    for r in rec["renders"]:
        got = tmpl.render(r["messages"], add_generation_prompt=r["add_generation_prompt"])
        assert got == r["jinja"], r["messages"]


def test_missing_template_falls_back_to_llama_cpps_chatml():
    assert ChatTemplate(None).source == CHATML_TEMPLATE
    out = ChatTemplate(None).render([{"role": "user", "content": "x"}])
    assert out == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"


ATTACKS = [
    "{{ messages.__class__ }}",
    "{{ raise_exception.__globals__ }}",
    "{{ messages['__class__'] }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ messages|attr('__class__') }}",
    "{{ messages|attr('_' ~ '_class__') }}",
    "{% for m in messages %}{{ m.pop('role') }}{% endfor %}",
    "{{ messages.append(1) }}",
    "{{ strftime_now.__code__ }}",
    "{{ self._TemplateReference__context }}",
]


@pytest.mark.parametrize("src", ATTACKS)
def test_template_reaching_python_internals_is_refused(src):
    with pytest.raises(TemplateError):
        ChatTemplate(src).render([{"role": "user", "content": "hi"}])


def test_gguf_with_hostile_template_is_refused(tmp_path):
    path = tmp_path / "hostile.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_chat_template("{{ cycler.__init__.__globals__.os.system('echo pwned') }}")
    w.add_tensor("dummy", np.zeros(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    src = emel_gguf.read(path).metadata["tokenizer.chat_template"]
    with pytest.raises(TemplateError, match="__globals__"):
        ChatTemplate(src)


@pytest.mark.parametrize("src,match", [
    ("{% if %}", "syntax"),
    ("{{ raise_exception('no system role') }}", "no system role"),
    ("{% for i in range(10**9) %}{% endfor %}", "render"),
    ("{{ 1 / 0 }}", "ZeroDivision"),
])
def test_broken_templates_raise_template_error(src, match):
    with pytest.raises(TemplateError, match=match):
        ChatTemplate(src).render([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("messages", ["hi", [1], [{"content": "x"}], [{"role": "user", "content": 3}]])
def test_bad_messages_raise_template_error(messages):
    with pytest.raises(TemplateError):
        ChatTemplate(None).render(messages)


def test_globals_bos_eos_tojson_and_generation_tag():
    src = ("{{ bos_token }}{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}"
           "{% endfor %}{{ messages[0] | tojson }}{{ eos_token }}"
           "{% if add_generation_prompt %}>{% endif %}{{ strftime_now('%Y')|length }}")
    out = ChatTemplate(src, "<s>", "</s>").render([{"role": "user", "content": "é"}])
    assert out == '<s>é{"role": "user", "content": "é"}</s>>4'
