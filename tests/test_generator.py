"""The generation loop: stop conditions, streaming on UTF-8 boundaries, stop strings, context
shift, several sequences; and, on SmolLM2, llama.cpp's greedy and seeded continuations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emel import KVCacheFullError
from emel import sampling as S
from emel.context import Batch
from emel.generator import GenerationParams, Generator, _complete_utf8_prefix, _TextStream

V = 16  # fake vocabulary: token t has piece PIECES[t]
PIECES = [b"<s>", b"</s>", b"a", b"b", b" ", b"\xc3", b"\xa9", b"STOP", b"x", b"\xe2\x82",
          b"\xac", b"S", b"T", b"O", b"P", b"!"]


class FakeVocab:
    bos = 0
    eos = 1
    eog_ids = frozenset({1})


class FakeTokenizer:
    vocab = FakeVocab()

    def token_to_piece(self, token, special=False):
        return PIECES[token] if special or token > 1 else b""  # 0, 1 are control tokens


class FakeContext:
    """Next token = script[seq][pos] (the position after the last decoded one)."""

    def __init__(self, scripts, n_ctx=64, n_batch=4, n_seq_max=4):
        self.scripts, self.n_ctx, self.n_batch, self.n_seq_max = scripts, n_ctx, n_batch, n_seq_max
        self.cells: dict[int, dict[int, int]] = {}  # seq -> pos -> token
        self.decoded: list[Batch] = []
        self._rows = {}

    def memory_seq_rm(self, seq, p0, p1):
        cells = self.cells.setdefault(seq, {})
        for p in list(cells):
            if (p0 < 0 or p >= p0) and (p1 < 0 or p < p1):
                del cells[p]
        return True

    def decode(self, batch: Batch):
        assert len(batch.token) <= self.n_batch
        self.decoded.append(batch)
        self._rows = {}
        for i, (t, p, s, out) in enumerate(zip(batch.token, batch.pos, batch.seq_id, batch.logits)):
            cells = self.cells.setdefault(s, {})
            assert p not in cells, f"position {p} of seq {s} is already in the cache"
            cells[p] = t
            if out:
                script = self.scripts[s]
                nxt = script[min(len(cells), len(script) - 1)]
                logits = np.zeros(V, np.float32)
                logits[nxt] = 10.0
                self._rows[i] = logits

    def get_logits_ith(self, i):
        return self._rows[i]


def greedy():
    return S.SamplerChain([S.greedy()])


def run(ctx, prompts, params, n_chains=None):
    gen = Generator(ctx, FakeTokenizer())
    chains = [greedy() for _ in prompts]
    return list(gen.generate_many(prompts, chains, params))


def test_stops_on_end_of_generation_without_emitting_it():
    ctx = FakeContext({0: [0, 2, 2, 3, 1, 2]})
    ev = run(ctx, [[0, 2]], GenerationParams(max_tokens=50))
    assert "".join(e.text for e in ev) == "ab"
    assert ev[-1].finish_reason == "stop" and ev[-1].token == 1


def test_stops_after_max_tokens():
    ctx = FakeContext({0: [0] + [2] * 40})
    ev = run(ctx, [[0]], GenerationParams(max_tokens=5))
    assert [e.token for e in ev] == [2] * 5 and ev[-1].finish_reason == "length"


def test_prompt_is_prefilled_in_n_batch_chunks():
    ctx = FakeContext({0: [2] * 20}, n_batch=4)
    run(ctx, [[0, 2, 3, 2, 3, 2, 3, 2, 3, 2]], GenerationParams(max_tokens=1))
    assert [len(b.token) for b in ctx.decoded] == [4, 4, 2]
    assert ctx.decoded[2].logits == [False, True]


def test_multibyte_characters_are_streamed_whole():
    # é is split over tokens 5,6 and € over 9,10
    ctx = FakeContext({0: [0, 0, 5, 6, 2, 9, 10, 1]})
    ev = run(ctx, [[0]], GenerationParams(max_tokens=20))
    texts = [e.text for e in ev]
    assert texts == ["", "", "é", "a", "", "€", ""]
    assert "".join(texts) == "éa€"


def test_stop_string_is_held_back_then_cut():
    # "a" "S" "T" "O" "P" "!" with stop "STOP": nothing of S,T,O is shown before the verdict
    ctx = FakeContext({0: [0, 0, 2, 11, 12, 13, 14, 15, 1]})
    ev = run(ctx, [[0]], GenerationParams(max_tokens=20, stop=["STOP"]))
    assert [e.text for e in ev] == ["", "a", "", "", "", ""]
    assert ev[-1].finish_reason == "stop"


def test_text_that_only_looked_like_a_stop_string_is_released():
    ctx = FakeContext({0: [0, 0, 11, 12, 2, 1]})
    ev = run(ctx, [[0]], GenerationParams(max_tokens=20, stop=["STOP"]))
    assert [e.text for e in ev] == ["", "", "", "STa", ""]


def test_full_context_without_shift_raises():
    ctx = FakeContext({0: [2] * 100}, n_ctx=8)
    with pytest.raises(KVCacheFullError, match="context shift"):
        run(ctx, [[0, 2, 3]], GenerationParams(max_tokens=50))


def test_context_shift_keeps_n_keep_and_discards_half_the_rest():
    ctx = FakeContext({0: [2] * 100}, n_ctx=8, n_batch=8)
    ev = run(ctx, [[0, 3, 3]], GenerationParams(max_tokens=12, context_shift=True))
    assert len(ev) == 12
    cells = ctx.cells[0]
    assert cells[0] == 0  # the BOS token (n_keep = 1) never moves
    assert max(cells) < 8 and sorted(cells) == list(range(len(cells)))


def test_prompt_longer_than_context_raises():
    with pytest.raises(KVCacheFullError):
        run(FakeContext({0: [2]}, n_ctx=4), [[0, 2, 2, 2, 2]], GenerationParams())


def test_several_prompts_run_in_their_own_sequences():
    ctx = FakeContext({0: [0, 0, 2, 2, 1], 1: [0, 0, 0, 3, 3, 3, 1]})
    ev = run(ctx, [[0], [0, 2]], GenerationParams(max_tokens=10))
    out = {0: "", 1: ""}
    for e in ev:
        out[e.index] += e.text
    assert out == {0: "aa", 1: "bbb"}
    # after prefill, each step decodes one token per live sequence in one batch
    step = ctx.decoded[1]
    assert sorted(step.seq_id) == [0, 1] and len(step.token) == 2


def test_utf8_prefix_cut():
    assert _complete_utf8_prefix(b"ab\xc3") == 2
    assert _complete_utf8_prefix(b"ab\xc3\xa9") == 4
    assert _complete_utf8_prefix(b"\xe2\x82") == 0
    assert _complete_utf8_prefix(b"\xf0\x9f\x99\x82") == 4
    assert _complete_utf8_prefix(b"\x80\x80") == 2  # stray continuation bytes pass through


# -- real model: llama.cpp's continuations ------------------------------------------------------

@pytest.fixture(scope="module")
def gen_fixture(fixtures_dir):
    return json.loads((fixtures_dir / "generate" / "generate.json").read_text())


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    import emel.api
    return emel.api.load(smollm2_path, n_ctx=512, n_batch=512)


@pytest.mark.slow
def test_seeded_default_chain_equals_llama_cpp(smollm2, gen_fixture):
    """Default chain (top-k 40, top-p 0.95, min-p 0.05, temp 0.8, dist) with seeds: the tokens
    llama.cpp sampled, on the first seeded fixture of each prompt (16 tokens each)."""
    recs = gen_fixture["models"]["smollm2-135m"]["seeded"][::3]
    matched = total = 0
    for rec in recs:
        gen = Generator(smollm2.ctx, smollm2.tokenizer)
        chain = smollm2.sampler(temperature=rec["temperature"], seed=rec["seed"])
        toks = [e.token for e in gen.generate(rec["prompt_tokens"], chain,
                                              GenerationParams(max_tokens=16))]
        want = rec["tokens"][:16]
        assert toks == want, rec["prompt"]
        matched += sum(a == b for a, b in zip(toks, want))
        total += len(want)
    assert matched == total


@pytest.mark.slow
def test_two_prompts_in_parallel_give_llama_cpps_greedy_tokens(smollm2_path, gen_fixture):
    import emel.api
    m = emel.api.load(smollm2_path, n_ctx=128, n_batch=128, n_parallel=2)
    recs = gen_fixture["models"]["smollm2-135m"]["greedy"][:2]
    gen = Generator(m.ctx, m.tokenizer)
    chains = [m.sampler(temperature=0.0, seed=1) for _ in recs]
    got = {0: [], 1: []}
    for e in gen.generate_many([r["prompt_tokens"] for r in recs], chains,
                               GenerationParams(max_tokens=8)):
        got[e.index].append(e.token)
    assert got == {i: r["tokens"][:8] for i, r in enumerate(recs)}
