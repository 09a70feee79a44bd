"""Helpers shared by the tokenizer parity tests: fixture loading and case comparison."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import assets

from emel.tokenizer import Tokenizer

FUZZ = Path(__file__).resolve().parents[2] / "parity_fixtures" / "tokenizer" / "fuzz"
FIXTURE_DIR = FUZZ.parent


def fixture_names() -> list[str]:
    return sorted(p.name.removesuffix(".json.gz") for p in FUZZ.glob("*.json.gz"))


def load_fixture(name: str) -> dict:
    with gzip.open(FUZZ / f"{name}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def vocab_path(name: str) -> Path:
    if name in ("smollm2-135m", "gemma3-270m"):
        return assets.model_path(name)
    local = FIXTURE_DIR / f"{name}.gguf"
    if local.is_file():
        return local
    return assets.vocab_dir() / f"{name}.gguf"


@functools.cache
def tokenizer(name: str) -> Tokenizer:
    return Tokenizer.from_gguf(vocab_path(name))


def as_bytes(field) -> bytes:
    if isinstance(field, dict):
        return bytes.fromhex(field["hex"])
    return field.encode("utf-8")


def compare(tok: Tokenizer, data: dict) -> dict[str, list]:
    """Every mismatch between emel and the recorded llama.cpp results, by kind."""
    bad: dict[str, list] = {k: [] for k in ("ids", "ids_sp", "detok", "detok_sp", "detok_sp_keep",
                                             "pieces", "info")}
    for case in data["cases"]:
        text = as_bytes(case["text"])
        ids = tok.tokenize(text, add_special=False, parse_special=False)
        if ids != case["ids"]:
            bad["ids"].append((text[:80], case["ids"][:12], ids[:12]))
        ids_sp = tok.tokenize(text, add_special=True, parse_special=True)
        if ids_sp != case["ids_sp"]:
            bad["ids_sp"].append((text[:80], case["ids_sp"][:12], ids_sp[:12]))
        for key, src, rm, un in (("detok", case["ids"], False, False),
                                 ("detok_sp", case["ids_sp"], True, True),
                                 ("detok_sp_keep", case["ids_sp"], False, False)):
            got = tok.detokenize_bytes(src, remove_special=rm, unparse_special=un)
            if got != as_bytes(case[key]):
                bad[key].append((text[:80], as_bytes(case[key])[:80], got[:80]))
    for t, plain, spec, spec_lstrip in data["pieces"]:
        got = (tok.token_to_piece(t, special=False), tok.token_to_piece(t, special=True),
               tok.token_to_piece(t, special=True, lstrip=1))
        if got != (as_bytes(plain), as_bytes(spec), as_bytes(spec_lstrip)):
            bad["pieces"].append((t, plain, spec, got))
    v = tok.vocab
    if v.n_tokens != data["n_tokens"]:
        bad["info"].append(("n_tokens", data["n_tokens"], v.n_tokens))
    for name, want in data["special_ids"].items():
        got = tok.nl if name == "nl" else getattr(v, name)
        if got != want:
            bad["info"].append((name, want, got))
    for name, want in data["add"].items():
        if getattr(v, f"add_{name}") != want:
            bad["info"].append((f"add_{name}", want, getattr(v, f"add_{name}")))
    if sorted(v.eog_ids) != data["eog"]:
        bad["info"].append(("eog", data["eog"], sorted(v.eog_ids)))
    attrs = [[t, int(a)] for t, a in enumerate(v.attrs.tolist()) if a != 4]
    if attrs != data["attrs"]:
        diff = [x for x in attrs if x not in data["attrs"]][:5], [x for x in data["attrs"] if x not in attrs][:5]
        bad["info"].append(("attrs", diff))
    return bad
