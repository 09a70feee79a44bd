"""BPE merge tables: the compiled interning of merge halves equals the plain-Python rules
(llm_tokenizer_bpe: rule.find(' ', 1) splits a rule; halves that are not tokens get ids after
the tokens in order of first appearance, firsts before seconds; the merged text's id or -1)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from emel.tokenizer import Tokenizer
from emel.tokenizer.bpe import BpeTokenizer


def _reference(tokens: list[bytes], merges: list[bytes]):
    pos = [m.find(b" ", 1) for m in merges]
    firsts = [m[:p] if p >= 0 else b"" for m, p in zip(merges, pos)]
    seconds = [m[p + 1:] if p >= 0 else b"" for m, p in zip(merges, pos)]
    strings = list(tokens)
    ids = {s: i for i, s in enumerate(strings)}
    for s in dict.fromkeys(firsts + seconds):
        if s not in ids:
            ids[s] = len(strings)
            strings.append(s)
    lefts = [ids[f] for f in firsts]
    rights = [ids[s] for s in seconds]
    merged = [ids.get(f + s, -1) for f, s in zip(firsts, seconds)]
    return strings, lefts, rights, merged


def _tables(tokens: list[bytes], merges: list[bytes]):
    md = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "default",
          "tokenizer.ggml.tokens": [t.decode() for t in tokens],
          "tokenizer.ggml.merges": [m.decode() for m in merges]}
    return BpeTokenizer(Tokenizer.from_metadata(md).vocab)._merge_tables()


def _strings(table) -> list[bytes]:
    raw = table.data.tobytes()
    o = table.offsets.tolist()
    return [raw[o[i]:o[i + 1]] for i in range(len(o) - 1)]


@pytest.mark.parametrize("seed", range(4))
def test_merge_tables_equal_the_plain_rules(seed: int) -> None:
    rng = random.Random(seed)
    alpha = [b"a", b"b", b"c", b"ab", b"bc", b"abc", b"x", b"zz", b"q"]
    for _ in range(60):
        tokens = [b"a", b"b", b"c"] + rng.sample([b"ab", b"bc", b"abc", b"ca", b"cab"],
                                                 rng.randint(0, 5))
        merges = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.15:  # rules without a space after byte 0
                merges.append(rng.choice([b"nospace", b" lead", b"", b"x"]))
            else:
                merges.append(rng.choice(alpha) + b" " + rng.choice(alpha + [b"a b"]))
        table, n_ids, slot_keys, slot_rank, merged = _tables(tokens, merges)
        strings, lefts, rights, ref_merged = _reference(tokens, merges)
        assert _strings(table) == strings and int(n_ids) == len(strings)
        assert merged.tolist() == ref_merged
        # every (left, right) pair finds its first rule's rank
        mask = slot_keys.size - 1
        for rank, (l, r) in enumerate(zip(lefts, rights)):
            k = l * len(strings) + r
            j = ((k * 0x9E3779B97F4A7C15) % (1 << 64) >> 20) & mask
            while slot_keys[j] != k:
                j = (j + 1) & mask
            assert slot_rank[j] == min(i for i, (a, b) in enumerate(zip(lefts, rights))
                                       if (a, b) == (l, r))
