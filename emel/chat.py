"""Chat templates: a GGUF's `tokenizer.chat_template` rendered in a jinja2 sandbox.

Follows common/chat.cpp (common_chat_templates_init: the model's template, else llama.cpp's ChatML
default; bos/eos tokens as their text) and HF transformers / llama-cpp-python's
Jinja2ChatFormatter for the jinja environment (trim_blocks, lstrip_blocks, loopcontrols, the
`{% generation %}` tag ignored, `tojson` as json.dumps without ASCII escaping) and its globals:
`messages`, `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`, `strftime_now`,
`tools`.

Templates are untrusted input. They render in `ImmutableSandboxedEnvironment` (no attribute
escapes, no mutation of passed-in objects, no file or process access); a template that names a
private or dunder attribute (`__class__`, `__globals__`, `_x`) is refused when it is loaded, and
anything the sandbox stops at render time raises `TemplateError`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateError

# common/chat.cpp CHATML_TEMPLATE_SRC: used when the model carries no template
CHATML_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}"
)
MAX_TEMPLATE_CHARS = 1 << 20
MAX_OUTPUT_CHARS = 1 << 24


class _IgnoreGenerationTags(jinja2.ext.Extension):
    """HF's `{% generation %}...{% endgeneration %}` marks assistant spans; it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, raising at once where jinja2 would hand back an Undefined."""

    def unsafe_undefined(self, obj: Any, attribute: str):
        raise jinja2.exceptions.SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


class ChatTemplate:
    """A parsed, checked chat template; `render(messages)` gives the prompt text."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = ""):
        if source is None or source == "" or source == "chatml":
            source = CHATML_TEMPLATE
        if not isinstance(source, str):
            raise TemplateError(f"chat template must be a string, got {type(source).__name__}")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(f"chat template is {len(source)} characters, more than the "
                                f"{MAX_TEMPLATE_CHARS} allowed")
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        env = _Sandbox(
            loader=None, trim_blocks=True, lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        env.filters["tojson"] = _tojson
        try:
            ast = env.parse(source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"chat template syntax error at line {e.lineno}: {e.message}") from None
        _refuse_private_names(ast)
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as e:
            raise TemplateError(f"chat template does not compile: {e}") from None

    def render(self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True,
               tools: Iterable[Mapping[str, Any]] | None = None, **extra: Any) -> str:
        """The prompt for `messages` (dicts with `role` and `content`)."""
        msgs = _check_messages(messages)
        ctx = dict(extra)
        ctx.update(messages=msgs, add_generation_prompt=bool(add_generation_prompt),
                   bos_token=self.bos_token, eos_token=self.eos_token,
                   raise_exception=_raise_exception, strftime_now=_strftime_now)
        if tools is not None:
            ctx["tools"] = list(tools)
        try:
            out = self._template.render(**ctx)
        except TemplateError:
            raise
        except jinja2.exceptions.SecurityError as e:
            raise TemplateError(f"chat template refused by the sandbox: {e}") from None
        except jinja2.TemplateError as e:
            raise TemplateError(f"chat template failed to render: {e}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
                ZeroDivisionError, RecursionError) as e:
            raise TemplateError(f"chat template failed to render: {type(e).__name__}: {e}") from None
        if len(out) > MAX_OUTPUT_CHARS:
            raise TemplateError(f"chat template produced {len(out)} characters, more than the "
                                f"{MAX_OUTPUT_CHARS} allowed")
        return out


def _refuse_private_names(ast: nodes.Template) -> None:
    """Refuse templates that reach for private/dunder attributes, by name or by constant key."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Getattr):
            name, bad = node.attr, node.attr.startswith("_")  # the sandbox blocks these anyway
        elif isinstance(node, nodes.Getitem):
            if not (isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
                continue
            name = node.arg.value
            bad = name.startswith("__")
        else:
            name, bad = node.name, node.name.startswith("__")
        if bad:
            raise TemplateError(f"chat template (line {node.lineno}) refers to {name!r}: private "
                                "and dunder names are not allowed in chat templates")


def _check_messages(messages) -> list[dict]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TemplateError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TemplateError(f"messages[{i}] must be a dict, got {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise TemplateError(f"messages[{i}] needs a non-empty string 'role'")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise TemplateError(f"messages[{i}]['content'] must be a string, a list of parts or "
                                f"None, got {type(content).__name__}")
        out.append(dict(m))
    return out


def _raise_exception(message: str):
    raise TemplateError(f"chat template raised: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)
