"""The Python API: `emel.load(...) -> Model` with tokenize, logits, generate, chat and OpenAI-shaped
completions.

Follows llama-cpp-python 0.3.36's `Llama` for call shapes and defaults (create_completion,
create_chat_completion and their streamed chunks; prompts tokenized with BOS and special tokens
parsed; chat prompts rendered by the GGUF's template and tokenized without adding BOS) and
llama.cpp's common sampling for the sampler chain (see emel.sampling.chain).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from . import catalog
from .errors import BatchError, KVCacheFullError, ModelError, SamplerError, UnsupportedError
from .generator import GenerationParams, Generator
from .sampling import LLAMA_DEFAULT_SEED, SamplerChain, SamplerParams, build_chain
from .telemetry import Telemetry

if TYPE_CHECKING:  # jinja2 (emel.chat) loads on the first chat call, not with every model
    from .chat import ChatTemplate

_SAMPLING_KEYS = {f for f in SamplerParams.__dataclass_fields__}
# llama-cpp-python's argument names for llama.cpp's sampling fields
_ALIASES = {"temperature": "temp", "typical_p": "typ_p", "repeat_penalty": "penalty_repeat",
            "frequency_penalty": "penalty_freq", "presence_penalty": "penalty_present",
            "mirostat_mode": "mirostat", "last_n_tokens": "penalty_last_n"}


def load(name_or_path: str | os.PathLike, n_ctx: int = 4096, n_batch: int = 2048,
         n_ubatch: int = 512, n_threads: int | None = None, device: str = "cpu",
         vocab_only: bool = False, n_parallel: int = 1, progress=None,
         telemetry: Telemetry | None = None) -> "Model":
    """Open a model by catalog name (fetched on first use) or GGUF path.

    n_ctx: context size in tokens (0: the model's training context); n_batch / n_ubatch: logical
    and physical batch sizes; n_threads: Numba threads (None: all); vocab_only: tokenizer and chat
    template only, no weights; n_parallel: sequences that can generate together.
    """
    from .device import resolve_device
    device = resolve_device(device)
    for name, v, lo in (("n_ctx", n_ctx, 0), ("n_batch", n_batch, 1), ("n_ubatch", n_ubatch, 1),
                        ("n_parallel", n_parallel, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise BatchError(f"{name} must be an integer >= {lo}, got {v!r}")
    if n_threads is not None:
        import numba
        if not isinstance(n_threads, int) or n_threads < 1:
            raise BatchError(f"n_threads must be a positive integer, got {n_threads!r}")
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    tel = telemetry or Telemetry()
    t0 = time.perf_counter()
    path = catalog.resolve(name_or_path, progress=progress)
    from .loader import load_model_file
    model_file = load_model_file(path, vocab_only=vocab_only)
    model = Model(model_file, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch,
                  n_parallel=n_parallel, telemetry=tel, device=device)
    tel.data.t_load_ms = 1e3 * (time.perf_counter() - t0)
    return model


class Model:
    """A loaded model: tokenizer, chat template and (unless vocab_only) a decoding context."""

    def __init__(self, model_file, n_ctx: int = 4096, n_batch: int = 2048, n_ubatch: int = 512,
                 n_parallel: int = 1, telemetry: Telemetry | None = None, device: str = "cpu"):
        from .tokenizer import Tokenizer
        self.model_file = model_file
        self.path = str(model_file.path)
        self.metadata = model_file.metadata
        self.tokenizer = Tokenizer.from_metadata(self.metadata)
        self.vocab = self.tokenizer.vocab
        self.n_vocab = self.tokenizer.n_tokens
        self.telemetry = telemetry or Telemetry()
        self.vocab_only = bool(model_file.vocab_only)
        self.device = device
        self.ctx = None
        self._grammar_vocab = None
        self._pieces: list[bytes] | None = None
        self._template: ChatTemplate | None = None
        if not self.vocab_only:
            from .context import Context, ContextParams
            params = ContextParams(n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_ubatch,
                                   n_seq_max=n_parallel)
            if device == "cuda":
                from .context_cuda import CudaContext
                self.ctx = CudaContext(model_file, params)
            else:
                self.ctx = Context(model_file, params)
            self.telemetry.data.kv_bytes = int(self.ctx.kv_bytes)
            self.telemetry.data.arena_bytes = int(self.ctx.arena_bytes)
        self.n_ctx = self.ctx.n_ctx if self.ctx is not None else n_ctx

    # -- tokenizer ----------------------------------------------------------------------------------

    def tokenize(self, text: str | bytes, add_special: bool = True,
                 parse_special: bool = False) -> list[int]:
        return self.tokenizer.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int], remove_special: bool = False,
                   unparse_special: bool = False) -> str:
        return self.tokenizer.detokenize(tokens, remove_special=remove_special,
                                         unparse_special=unparse_special)

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        return self.tokenizer.token_to_piece(token, special=special)

    # -- decoding -----------------------------------------------------------------------------------

    def decode(self, batch) -> None:
        """llama_decode on the model's context (a Batch or a list of tokens for sequence 0)."""
        self._need_ctx().decode(batch)

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """float32[len(tokens), n_vocab]: the logits at every position, in a fresh context."""
        from .context import compute_logits
        ctx = self._need_ctx()
        return compute_logits(self.model_file, list(tokens), weights=ctx.weights)

    def embed(self, text: str) -> np.ndarray:
        """float32[n_embd]: the mean over tokens of the last hidden state (after output norm)."""
        from .context import Batch, Context, ContextParams, PoolingType
        ctx = self._need_ctx()
        toks = self.tokenize(text, add_special=True, parse_special=False)
        if not toks:
            raise BatchError("nothing to embed: the text has no tokens")
        ectx = Context(self.model_file, ContextParams(n_ctx=len(toks), n_batch=len(toks),
                                                      n_ubatch=min(512, len(toks)), embeddings=True,
                                                      pooling_type=PoolingType.MEAN),
                       weights=ctx.weights)
        ectx.decode(Batch(token=toks, logits=[True] * len(toks)))
        return np.array(ectx.get_embeddings_seq(0), np.float32)

    # -- generation ---------------------------------------------------------------------------------

    def sampler(self, **sampling: Any) -> SamplerChain:
        """llama.cpp's common sampler chain with llama-cpp-python-style keyword overrides."""
        params = SamplerParams()
        for key, value in sampling.items():
            field = _ALIASES.get(key, key)
            if field not in _SAMPLING_KEYS:
                raise SamplerError(f"unknown sampling parameter {key!r}")
            if field == "seed" and value is None:
                value = LLAMA_DEFAULT_SEED
            if field == "samplers":
                value = tuple(value)
            setattr(params, field, value)
        tok = self.tokenizer
        return build_chain(params, self.n_vocab, n_ctx=self.n_ctx, eog_tokens=sorted(self.vocab.eog_ids),
                           detokenize=self._dry_piece,
                           tokenize=lambda b: tok.tokenize(b, add_special=False, parse_special=False))

    def _dry_piece(self, token: int) -> bytes:
        """llama_vocab::detokenize({token}, special=true), cached for DRY's breaker search."""
        if self._pieces is None:
            tok = self.tokenizer
            self._pieces = [tok.detokenize_bytes([t], False, True) for t in range(self.n_vocab)]
        return self._pieces[token]

    def generate(self, prompt: str | Sequence[int], max_tokens: int = 128, temperature: float = 0.8,
                 top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 repeat_penalty: float = 1.0, seed: int | None = None,
                 stop: str | Sequence[str] | None = None, stream: bool = False,
                 grammar: str | None = None, context_shift: bool = False,
                 **sampling: Any):
        """The continuation of `prompt` (text, or an iterator of text pieces when streaming)."""
        events = self._events(self._prompt_tokens(prompt), max_tokens, stop, grammar,
                              context_shift, dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                                  min_p=min_p, repeat_penalty=repeat_penalty,
                                                  seed=seed, **sampling))
        if stream:
            return (e.text for e in events if e.text)
        return "".join(e.text for e in events)

    def generate_many(self, prompts: Sequence[str], max_tokens: int = 128, seed: int | None = None,
                      stop: str | Sequence[str] | None = None, **sampling: Any) -> list[str]:
        """Several prompts decoded together, each in its own sequence (needs n_parallel)."""
        ctx = self._need_ctx()
        toks = [self._prompt_tokens(p) for p in prompts]
        chains = [self.sampler(seed=seed, **sampling) for _ in prompts]
        gen = Generator(ctx, self.tokenizer, self.telemetry)
        out = [""] * len(prompts)
        for e in gen.generate_many(toks, chains, self._gen_params(toks, max_tokens, stop, False)):
            out[e.index] += e.text
        return out

    def chat(self, messages: Sequence[Mapping[str, Any]], max_tokens: int = 128,
             stream: bool = False, **sampling: Any):
        """The assistant's reply to `messages`, rendered with the model's chat template."""
        tokens = self._chat_tokens(messages)
        stop = sampling.pop("stop", None)
        stops = _stops(stop) + ([self._template.eos_token] if self._template.eos_token else [])
        events = self._events(tokens, max_tokens, stops, sampling.pop("grammar", None),
                              sampling.pop("context_shift", False), sampling)
        if stream:
            return (e.text for e in events if e.text)
        return "".join(e.text for e in events)

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]],
                            add_generation_prompt: bool = True) -> str:
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt)

    @property
    def chat_template(self) -> ChatTemplate:
        if self._template is None:
            from .chat import ChatTemplate
            tok = self.tokenizer
            piece = lambda t: (tok.token_to_piece(t, special=True).decode("utf-8", "replace")
                               if t is not None and t >= 0 else "")
            self._template = ChatTemplate(self.metadata.get("tokenizer.chat_template"),
                                          piece(self.vocab.bos), piece(self.vocab.eos))
        return self._template

    # -- OpenAI-shaped responses (llama-cpp-python's) ------------------------------------------------

    def create_completion(self, prompt: str | Sequence[int], max_tokens: int | None = 16,
                          temperature: float = 0.8, top_p: float = 0.95, min_p: float = 0.05,
                          stop: str | Sequence[str] | None = None, repeat_penalty: float = 1.0,
                          top_k: int = 40, seed: int | None = None, stream: bool = False,
                          grammar: str | None = None, **sampling: Any):
        tokens = self._prompt_tokens(prompt)
        if max_tokens is None or max_tokens <= 0:
            max_tokens = self.n_ctx - len(tokens)
        events = self._events(tokens, max_tokens, stop, grammar, False,
                              dict(temperature=temperature, top_p=top_p, min_p=min_p,
                                   repeat_penalty=repeat_penalty, top_k=top_k, seed=seed,
                                   **sampling))
        cid, created = f"cmpl-{uuid.uuid4()}", int(time.time())
        if stream:
            return self._completion_chunks(events, cid, created)
        text, finish = "", None
        for e in events:
            text += e.text
            finish = e.finish_reason or finish
        return {"id": cid, "object": "text_completion", "created": created, "model": self.path,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
                "usage": _usage(len(tokens), self._last_n_generated)}

    def create_chat_completion(self, messages: Sequence[Mapping[str, Any]],
                               max_tokens: int | None = None, temperature: float = 0.2,
                               top_p: float = 0.95, top_k: int = 40, min_p: float = 0.05,
                               stop: str | Sequence[str] | None = None, seed: int | None = None,
                               repeat_penalty: float = 1.0, stream: bool = False,
                               grammar: str | None = None, **sampling: Any):
        tokens = self._chat_tokens(messages)
        if max_tokens is None or max_tokens <= 0:
            max_tokens = self.n_ctx - len(tokens)
        stops = _stops(stop) + ([self._template.eos_token] if self._template.eos_token else [])
        events = self._events(tokens, max_tokens, stops, grammar, False,
                              dict(temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                                   seed=seed, repeat_penalty=repeat_penalty, **sampling))
        cid, created = f"chatcmpl-{uuid.uuid4()}", int(time.time())
        if stream:
            return self._chat_chunks(events, cid, created)
        text, finish = "", None
        for e in events:
            text += e.text
            finish = e.finish_reason or finish
        return {"id": cid, "object": "chat.completion", "created": created, "model": self.path,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": finish}],
                "usage": _usage(len(tokens), self._last_n_generated)}

    # -- telemetry ------------------------------------------------------------------------------------

    def perf(self) -> dict[str, Any]:
        """llama_perf_context: load, prompt, generation and sampling counters, memory sizes."""
        return self.telemetry.data.to_dict()

    def perf_reset(self) -> None:
        self.telemetry.reset()

    # -- internals ------------------------------------------------------------------------------------

    def _need_ctx(self):
        if self.ctx is None:
            raise ModelError(f"{self.path} was loaded with vocab_only=True: it cannot decode")
        return self.ctx

    def _prompt_tokens(self, prompt) -> list[int]:
        if isinstance(prompt, (str, bytes)):
            # llama-cpp-python: tokenize(prompt, add_bos=True, special=True)
            toks = self.tokenize(prompt, add_special=True, parse_special=True)
        else:
            toks = [int(t) for t in prompt]
            bad = [t for t in toks if not 0 <= t < self.n_vocab]
            if bad:
                raise BatchError(f"prompt token {bad[0]} is outside the vocabulary (n_vocab {self.n_vocab})")
        if not toks:
            bos = self.vocab.bos
            toks = [bos] if bos is not None and bos >= 0 else []
        if not toks:
            raise BatchError("empty prompt and the vocabulary has no BOS token")
        return toks

    def _chat_tokens(self, messages) -> list[int]:
        text = self.chat_template.render(messages, add_generation_prompt=True)
        return self.tokenize(text, add_special=False, parse_special=True)

    def _gen_params(self, prompts, max_tokens, stop, context_shift) -> GenerationParams:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)):
            raise SamplerError(f"max_tokens must be an integer, got {max_tokens!r}")
        longest = max(len(p) for p in prompts)
        if not context_shift and (max_tokens < 0 or longest + max_tokens > self.n_ctx):
            if longest >= self.n_ctx or max_tokens < 0:
                raise KVCacheFullError(
                    f"prompt of {longest} tokens plus max_tokens={max_tokens} does not fit the "
                    f"context of {self.n_ctx} tokens (load with a larger n_ctx, or pass "
                    "context_shift=True)")
            raise KVCacheFullError(
                f"prompt of {longest} tokens plus max_tokens={max_tokens} exceeds the context of "
                f"{self.n_ctx} tokens (load with a larger n_ctx, lower max_tokens, or pass "
                "context_shift=True)")
        return GenerationParams(max_tokens=int(max_tokens), stop=_stops(stop),
                                context_shift=context_shift)

    def _events(self, tokens, max_tokens, stop, grammar, context_shift, sampling):
        ctx = self._need_ctx()
        params = self._gen_params([tokens], max_tokens, stop, context_shift)
        chain = self.sampler(**sampling)
        gsampler = self._grammar(grammar) if grammar else None
        gen = Generator(ctx, self.tokenizer, self.telemetry)
        events = gen.generate(tokens, chain, params, gsampler)
        self._last_n_generated = 0

        def counted():
            for e in events:
                if e.token >= 0 and not (e.finish_reason == "stop" and e.token in self.vocab.eog_ids):
                    self._last_n_generated += 1
                yield e
        return counted()

    def _grammar(self, grammar):
        from .grammar.sampler import GrammarSampler, GrammarVocab
        if self._grammar_vocab is None:
            tok = self.tokenizer
            pieces = [tok.token_to_piece(t, special=True) for t in range(self.n_vocab)]
            self._grammar_vocab = GrammarVocab(pieces, sorted(self.vocab.eog_ids))
        return GrammarSampler(grammar, "root", self._grammar_vocab)

    def _completion_chunks(self, events, cid, created) -> Iterator[dict]:
        def chunk(text, finish=None):
            return {"id": cid, "object": "text_completion", "created": created,
                    "model": self.path,
                    "choices": [{"text": text, "index": 0, "logprobs": None,
                                 "finish_reason": finish}]}
        for e in events:
            if e.text:
                yield chunk(e.text)
            if e.finish_reason:
                yield chunk("", e.finish_reason)  # llama-cpp-python ends with an empty chunk

    def _chat_chunks(self, events, cid, created) -> Iterator[dict]:
        def chunk(delta, finish=None):
            return {"id": cid, "object": "chat.completion.chunk", "created": created,
                    "model": self.path,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                 "finish_reason": finish}]}
        yield chunk({"role": "assistant"})
        for e in events:
            if e.text:
                yield chunk({"content": e.text})
            if e.finish_reason:
                yield chunk({}, e.finish_reason)

    _last_n_generated = 0


def _stops(stop) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    stops = list(stop)
    if not all(isinstance(s, str) for s in stops):
        raise SamplerError("stop must be a string or a list of strings")
    return stops


def _usage(n_prompt: int, n_gen: int) -> dict[str, int]:
    return {"prompt_tokens": n_prompt, "completion_tokens": n_gen,
            "total_tokens": n_prompt + n_gen}
