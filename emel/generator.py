"""The generation loop: prompt -> prefill in n_batch chunks -> decode one token at a time -> sampler.

Follows tools/completion/completion.cpp and common/sampling.cpp (common_sampler_sample: the chain
runs first; with a grammar, a token the grammar rejects is resampled with the grammar applied
before the chain). Prompt tokens are accepted by the chain (penalties see them), not by the
grammar. Generation stops on any end-of-generation token (not emitted), on a stop string (text
that might still become a stop string is held back), after `max_tokens`, or when the context is
full: with `context_shift` the first `n_keep` tokens stay and half of the rest is discarded, as
llama.cpp's tools do; without it `KVCacheFullError` is raised.

Several prompts run together (`generate_many`), each in its own sequence of one context and one
decode batch per step.

Differences on purpose: when the context offers no `memory_seq_add` (RoPE shift of cached K), a
context shift re-decodes the kept tokens at their new positions instead (same positions and
tokens; llama.cpp rotates the cached keys in place, so the numbers differ slightly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .context import Batch
from .errors import BatchError, KVCacheFullError, SamplerError
from .sampling.chain import SamplerChain
from .sampling.samplers import Sampler
from .sampling.token_data import TokenDataArray
from .telemetry import Telemetry


@dataclass
class GenerationParams:
    """What to generate; defaults follow llama.cpp's completion tool where it has one."""

    max_tokens: int = 128  # n_predict; < 0: until end of generation or a full context
    stop: Sequence[str] = ()  # stop strings (not included in the text)
    context_shift: bool = False  # common_params.ctx_shift (llama.cpp's default: off)
    n_keep: int = -1  # tokens kept by a context shift; -1: only the BOS token when present
    ignore_eog: bool = False  # keep going past end-of-generation tokens


@dataclass
class Event:
    """One step of a generation: a sampled token and the text it releases (may be empty)."""

    index: int  # which prompt (0 for a single prompt)
    token: int  # the sampled token (-1 for a final flush)
    text: str  # text now safe to show
    finish_reason: str | None = None  # "stop" or "length" on the last event of a sequence


@dataclass
class _Seq:
    index: int
    chain: SamplerChain
    grammar: Sampler | None
    tokens: list[int]  # prompt + generated, as in the KV cache order
    n_prompt: int
    n_keep: int
    out: "_TextStream"
    generated: list[int] = field(default_factory=list)
    n_past: int = 0
    done: bool = False
    finish_reason: str | None = None


class Generator:
    """Runs generations on one context with one tokenizer."""

    def __init__(self, ctx, tokenizer, telemetry: Telemetry | None = None):
        self.ctx = ctx
        self.tokenizer = tokenizer
        self.telemetry = telemetry or Telemetry()
        self.n_ctx = int(ctx.n_ctx)
        self.n_batch = int(ctx.n_batch)

    def generate(self, prompt_tokens: Sequence[int], chain: SamplerChain,
                 params: GenerationParams | None = None,
                 grammar: Sampler | None = None) -> Iterator[Event]:
        """Stream the continuation of one prompt (sequence 0)."""
        return self.generate_many([prompt_tokens], [chain], params, [grammar])

    def generate_many(self, prompts: Sequence[Sequence[int]], chains: Sequence[SamplerChain],
                      params: GenerationParams | None = None,
                      grammars: Sequence[Sampler | None] | None = None) -> Iterator[Event]:
        """Stream the continuations of several prompts, prompt i in sequence i."""
        params = params or GenerationParams()
        n = len(prompts)
        if n == 0:
            raise BatchError("no prompts")
        if len(chains) != n:
            raise SamplerError(f"{n} prompts need {n} sampler chains, got {len(chains)}")
        if n > getattr(self.ctx, "n_seq_max", 1):
            raise BatchError(f"{n} prompts need a context with n_seq_max >= {n} "
                             f"(this one has {getattr(self.ctx, 'n_seq_max', 1)})")
        grammars = list(grammars) if grammars is not None else [None] * n
        seqs = []
        for i, (p, ch, g) in enumerate(zip(prompts, chains, grammars)):
            toks = [int(t) for t in p]
            if not toks:
                raise BatchError(f"prompt {i} is empty")
            if len(toks) >= self.n_ctx:
                raise KVCacheFullError(f"prompt {i} has {len(toks)} tokens; the context holds "
                                       f"{self.n_ctx} (load with a larger n_ctx)")
            keep = params.n_keep
            bos = getattr(self.tokenizer.vocab, "bos", -1)
            if keep < 0 or keep > len(toks):
                keep = 1 if toks[0] == bos else 0
            seqs.append(_Seq(i, ch, g, toks, len(toks), keep,
                             _TextStream(self.tokenizer, params.stop)))
        return self._run(seqs, params)

    # -- the loop --------------------------------------------------------------------------------

    def _run(self, seqs: list[_Seq], params: GenerationParams) -> Iterator[Event]:
        for s in seqs:
            self.ctx.memory_seq_rm(s.index, -1, -1)
        logits = self._prefill(seqs)
        eog = getattr(self.tokenizer.vocab, "eog_ids", frozenset())
        while True:
            live = [s for s in seqs if not s.done]
            if not live:
                return
            step_tokens = []
            for s in live:
                tok = self._sample(s, logits[s.index])
                if tok in eog and not params.ignore_eog:
                    s.done, s.finish_reason = True, "stop"
                    yield Event(s.index, tok, s.out.flush(), "stop")
                    continue
                s.generated.append(tok)
                text, hit_stop = s.out.push(tok)
                if hit_stop:
                    s.done, s.finish_reason = True, "stop"
                    yield Event(s.index, tok, text, "stop")
                    continue
                if 0 <= params.max_tokens <= len(s.generated):
                    s.done, s.finish_reason = True, "length"
                    yield Event(s.index, tok, text + s.out.flush(), "length")
                    continue
                yield Event(s.index, tok, text)
                step_tokens.append((s, tok))
            if step_tokens:
                logits = self._decode_step(step_tokens, params)

    def _prefill(self, seqs: list[_Seq]) -> dict[int, np.ndarray]:
        """Decode every prompt in n_batch chunks; accept prompt tokens into each chain."""
        entries = [(s, j) for s in seqs for j in range(s.n_prompt)]
        last = {s.index: None for s in seqs}
        t0 = time.perf_counter()
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start:start + self.n_batch]
            batch = Batch(token=[s.tokens[j] for s, j in chunk], pos=[j for _, j in chunk],
                          seq_id=[s.index for s, _ in chunk],
                          logits=[j == s.n_prompt - 1 for s, j in chunk])
            self.ctx.decode(batch)
            for k, (s, j) in enumerate(chunk):
                if j == s.n_prompt - 1:
                    last[s.index] = np.array(self.ctx.get_logits_ith(k), np.float32)
        self.telemetry.add("prompt", time.perf_counter() - t0, len(entries))
        for s in seqs:
            s.n_past = s.n_prompt
            for t in s.tokens:
                s.chain.accept(t)  # common_sampler_accept(..., accept_grammar=false)
        return last

    def _decode_step(self, step: list[tuple[_Seq, int]], params: GenerationParams):
        for s, _ in step:
            if s.n_past + 1 >= self.n_ctx:
                self._shift(s, params)
        t0 = time.perf_counter()
        self.ctx.decode(Batch(token=[t for _, t in step], pos=[s.n_past for s, _ in step],
                              seq_id=[s.index for s, _ in step], logits=[True] * len(step)))
        self.telemetry.add("gen", time.perf_counter() - t0, len(step))
        out = {}
        for k, (s, t) in enumerate(step):
            s.tokens.append(t)
            s.n_past += 1
            out[s.index] = np.array(self.ctx.get_logits_ith(k), np.float32)
        return out

    def _shift(self, s: _Seq, params: GenerationParams) -> None:
        """completion.cpp's context shift: keep n_keep tokens, drop half of the rest."""
        if not params.context_shift:
            raise KVCacheFullError(
                f"context full: {s.n_past} tokens in a context of {self.n_ctx} and context shift "
                "is off (use a larger n_ctx, fewer max_tokens, or context_shift=True)")
        n_left = s.n_past - s.n_keep
        n_discard = n_left // 2
        if n_discard <= 0:
            raise KVCacheFullError(f"context full and n_keep={s.n_keep} leaves nothing to discard")
        a, b = s.n_keep, s.n_keep + n_discard
        seq_add = getattr(self.ctx, "memory_seq_add", None)
        self.ctx.memory_seq_rm(s.index, a, b)
        del s.tokens[a:b]
        if seq_add is not None:
            seq_add(s.index, b, s.n_past, -n_discard)
        else:
            self.ctx.memory_seq_rm(s.index, a, -1)
            moved = s.tokens[a:]
            for start in range(0, len(moved), self.n_batch):
                part = moved[start:start + self.n_batch]
                self.ctx.decode(Batch(token=part, pos=list(range(a + start, a + start + len(part))),
                                      seq_id=[s.index] * len(part), logits=[False] * (len(part) - 1) + [True]))
        s.n_past -= n_discard
        self.telemetry.data.n_reused += 1

    def _sample(self, s: _Seq, logits: np.ndarray) -> int:
        """common_sampler_sample (grammar_first=false) followed by common_sampler_accept."""
        t0 = time.perf_counter()
        cur = TokenDataArray.from_logits(logits)
        s.chain.apply(cur)
        tok = cur.selected_token()
        g = s.grammar
        if g is not None:
            single = TokenDataArray(np.array([tok], np.int32), np.array([1.0], np.float32))
            g.apply(single)
            if single.logits[0] == -np.inf:
                cur = TokenDataArray.from_logits(logits)
                g.apply(cur)
                s.chain.apply(cur)
                tok = cur.selected_token()
            g.accept(tok)
        s.chain.accept(tok)
        self.telemetry.add("sample", time.perf_counter() - t0, 1)
        return tok


class _TextStream:
    """Turns tokens into text on UTF-8 boundaries, holding back what may become a stop string."""

    def __init__(self, tokenizer, stop: Sequence[str]):
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.pending = b""  # bytes of an unfinished UTF-8 sequence
        self.held = ""  # decoded text not yet released (a stop string may be forming)
        self.text = ""  # everything released so far

    def push(self, token: int) -> tuple[str, bool]:
        """Add a token; return (text now safe to release, whether a stop string was hit)."""
        self.pending += self.tokenizer.token_to_piece(int(token), special=False)
        cut = _complete_utf8_prefix(self.pending)
        self.held += self.pending[:cut].decode("utf-8", errors="ignore")
        self.pending = self.pending[cut:]
        return self._release(final=False)

    def flush(self) -> str:
        self.held += self.pending.decode("utf-8", errors="ignore")
        self.pending = b""
        text, _ = self._release(final=True)
        return text

    def _release(self, final: bool) -> tuple[str, bool]:
        buf = self.held
        hits = [buf.find(s) for s in self.stop]
        hits = [h for h in hits if h >= 0]
        if hits:
            out = buf[:min(hits)]
            self.held = ""
            self.text += out
            return out, True
        keep = 0
        if not final:
            for s in self.stop:
                for k in range(min(len(s) - 1, len(buf)), 0, -1):
                    if buf.endswith(s[:k]):
                        keep = max(keep, k)
                        break
        out = buf[:len(buf) - keep]
        self.held = buf[len(buf) - keep:]
        self.text += out
        return out, False


def _complete_utf8_prefix(b: bytes) -> int:
    """Length of the longest prefix of b that does not end inside a UTF-8 sequence."""
    n = len(b)
    for back in range(1, min(4, n) + 1):
        c = b[n - back]
        if c & 0xC0 == 0x80:
            continue  # continuation byte: look further back for the lead byte
        need = 2 if c & 0xE0 == 0xC0 else 3 if c & 0xF0 == 0xE0 else 4 if c & 0xF8 == 0xF0 else 1
        return n - back if need > back else n
    return n
