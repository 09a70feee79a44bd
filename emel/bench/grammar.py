"""`python -m emel.bench --grammar`: the grammar sampler's cost per token on a real vocabulary.

Builds the grammar sampler for the built-in JSON grammar (llama.cpp grammars/json.gbnf) over
SmolLM2's 49152-token vocabulary (pieces from emel's tokenizer, `token_to_piece(id, special=True)`),
tokenizes a realistic JSON document with emel's tokenizer, then for every token applies the sampler
to the full vocabulary and accepts the token. Reports milliseconds per token
for apply (cold: first visit of a grammar state; warm: the same document again) and accept.

Options: --model NAME_OR_PATH (default smollm2-135m), --repeat N (default 3).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

DOC = ('{"id": 1042, "name": "Zoë Müller", "email": "zoe@example.com", "active": true, '
       '"score": 87.25, "tags": ["admin", "beta-tester", "東京"], '
       '"address": {"street": "12 Rue de la Paix", "city": "Paris", "zip": "75002", '
       '"geo": {"lat": 48.8686, "lng": 2.3314}}, '
       '"orders": [{"sku": "A-100", "qty": 2, "price": 19.99}, '
       '{"sku": "B-7", "qty": 1, "price": 250.0, "note": "gift \\"wrap\\" 🎁"}], '
       '"last_login": null}')


def vocab_pieces(vocab) -> list[bytes]:
    """token_to_piece(id, special=True) for every token of an emel Vocab (BPE and SPM).

    Follows llama_vocab::impl::token_to_piece: control / user-defined / unknown tokens keep their
    text, normal BPE tokens map GPT-2 byte characters back to bytes, SPM tokens turn U+2581 into a
    space and <0xXX> byte tokens into the byte.
    """
    from emel.tokenizer.unicode import CPT_TO_BYTE
    from emel.tokenizer.vocab import TokenAttr, VocabType

    out = []
    special = TokenAttr.CONTROL | TokenAttr.UNKNOWN | TokenAttr.USER_DEFINED
    for tid, text in enumerate(vocab.tokens):
        attr = int(vocab.attrs[tid])
        if attr & special:
            out.append(text)
        elif vocab.type == VocabType.BPE and attr & TokenAttr.NORMAL:
            out.append(bytes(CPT_TO_BYTE.get(ord(ch), 0) for ch in text.decode("utf-8")))
        elif vocab.type in (VocabType.SPM, VocabType.UGM, VocabType.WPM) and attr & TokenAttr.NORMAL:
            out.append(text.replace("\u2581".encode(), b" "))
        elif attr & TokenAttr.BYTE:
            out.append(bytes([int(text[3:5], 16)]))
        else:
            out.append(b"")
    return out


def load_vocab(model: str):
    """(pieces, eog ids) of a catalog model or GGUF path."""
    from pathlib import Path

    import emel.gguf as G
    from emel import catalog
    from emel.tokenizer.vocab import Vocab

    path = Path(model) if Path(model).is_file() else catalog.fetch(model)
    vocab = Vocab.from_metadata(G.read(path).metadata)
    return vocab_pieces(vocab), sorted(vocab.eog_ids)


def main(argv: list[str]) -> int:
    from emel.grammar import JSON_GRAMMAR
    from emel.grammar.sampler import GrammarSampler, GrammarVocab
    from emel.sampling.token_data import TokenDataArray

    ap = argparse.ArgumentParser(prog="python -m emel.bench --grammar")
    ap.add_argument("--grammar", action="store_true")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from pathlib import Path

    import emel.gguf as G
    from emel import catalog
    from emel.tokenizer import Tokenizer

    t0 = time.perf_counter()
    path = Path(args.model) if Path(args.model).is_file() else catalog.fetch(args.model)
    tok = Tokenizer.from_metadata(G.read(path).metadata)
    pieces = [tok.token_to_piece(t, special=True) for t in range(tok.n_tokens)]
    eog = sorted(tok.vocab.eog_ids)
    t1 = time.perf_counter()
    gv = GrammarVocab(pieces, eog)
    t2 = time.perf_counter()
    tokens = tok.tokenize(DOC, add_special=False, parse_special=False)
    print(f"vocab: {len(pieces)} tokens, read {t1 - t0:.2f} s, decoded + trie {t2 - t1:.2f} s "
          f"({gv.n_nodes} trie nodes)")
    print(f"document: {len(DOC.encode())} bytes, {len(tokens)} tokens, JSON grammar")
    logits = np.zeros(len(pieces), np.float32)
    warm = GrammarSampler(JSON_GRAMMAR, "root", gv)  # compile the kernel outside the timing
    warm.apply(TokenDataArray.from_logits(logits))
    rows = []
    for rep in range(args.repeat):
        s = GrammarSampler(JSON_GRAMMAR, "root", gv) if rep == 0 else s
        s.reset()
        t_apply, t_accept, n_allowed = [], [], []
        for tok in tokens:
            cur = TokenDataArray.from_logits(logits)
            a = time.perf_counter()
            s.apply(cur)
            b = time.perf_counter()
            allowed = int(np.isfinite(cur.logits).sum())
            if not np.isfinite(cur.logits[tok]):
                raise SystemExit(f"grammar rejected token {tok} {pieces[tok]!r}")
            s.accept(tok)
            c = time.perf_counter()
            t_apply.append(b - a)
            t_accept.append(c - b)
            n_allowed.append(allowed)
        label = "cold (new states)" if rep == 0 else f"warm (pass {rep + 1})"
        rows.append((label, 1e3 * np.mean(t_apply), 1e3 * np.median(t_apply),
                     1e3 * np.max(t_apply), 1e3 * np.mean(t_accept), np.mean(n_allowed)))
    print(f"{'pass':<20} {'apply ms/tok':>12} {'median':>8} {'max':>8} {'accept ms':>10} "
          f"{'allowed/step':>13}")
    for r in rows:
        print(f"{r[0]:<20} {r[1]:>12.3f} {r[2]:>8.3f} {r[3]:>8.3f} {r[4]:>10.3f} {r[5]:>13.0f}")
    total = rows[0][1] + rows[0][4]
    print(f"grammar cost per token (cold, apply + accept): {total:.3f} ms; "
          f"states: {len(s._tables.g.state_stacks)}")
    return 0
