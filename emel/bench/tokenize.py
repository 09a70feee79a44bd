"""Tokenizer throughput: MB/s on 1 MB of English and 1 MB of mixed-script text per family.

`python -m emel.bench --tokenize` prints emel's MB/s beside llama.cpp's, measured on the same
texts by parity_fixtures/tokenizer/make_fixtures.py and stored in its benchmark JSON. The texts
are built here, deterministically, so both sides tokenize identical bytes.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

N_BYTES = 1 << 20
FIXTURES = Path(__file__).resolve().parents[2] / "parity_fixtures" / "tokenizer"

# family -> vocabulary: a catalog model name or a llama.cpp test vocabulary file
FAMILIES = {
    "bpe-smollm (SmolLM2)": "catalog:smollm2-135m",
    "spm (Gemma-3)": "catalog:gemma3-270m",
    "bpe-llama3": "vocab:ggml-vocab-llama-bpe.gguf",
    "bpe-qwen2": "vocab:ggml-vocab-qwen2.gguf",
    "bpe-gemma4": "vocab:ggml-vocab-gemma-4.gguf",
    "wpm (bert)": "vocab:ggml-vocab-bert-bge.gguf",
    "ugm (t5)": "vocab:ggml-vocab-nomic-bert-moe.gguf",
    "rwkv": "fixture:ggml-vocab-rwkv-world.gguf",
    "plamo2": "fixture:ggml-vocab-plamo2-mini.gguf",
}

_SCRIPTS = [
    "abcdefghijklmnopqrstuvwxyz",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "αβγδεζηθικλμνξοπρστυφχψω",
    "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生",
    "あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコ",
    "가나다라마바사아자차카타파하한국어입니다",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौं",
    "กขคงจฉชซญดตถทนบปผพฟภมยรลวศสหอฮะาิีึืุู่้",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœšž",
]
_EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "❤️", "🤖", "🧑🏿‍💻", "✨"]
_PUNCT = [".", ",", "!", "?", ";", ":", "'s", "'re", " - ", "(", ")", "\"", "...", "—", "«", "»"]
_SPACE = [" ", " ", " ", "  ", "\n", "\n\n", "\t", "   ", "\r\n", "\u3000", "\u00a0"]


def english_text(n_bytes: int = N_BYTES) -> str:
    """English prose: Python's own documentation topics, repeated to n_bytes (cut at a char)."""
    from pydoc_data.topics import topics

    base = "\n\n".join(topics[k] for k in sorted(topics))
    text = base
    while len(text.encode("utf-8")) < n_bytes:
        text += "\n\n" + base
    return text.encode("utf-8")[:n_bytes].decode("utf-8", "ignore")


def mixed_text(n_bytes: int = N_BYTES, seed: int = 20261130) -> str:
    """Words from ten scripts, digits, emoji and punctuation, seeded, to n_bytes."""
    rng = random.Random(seed)
    parts = []
    size = 0
    while size < n_bytes:
        r = rng.random()
        if r < 0.70:
            alphabet = rng.choice(_SCRIPTS)
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))
        elif r < 0.80:
            word = str(rng.randint(0, 10 ** rng.randint(1, 9)))
        elif r < 0.86:
            word = rng.choice(_EMOJI)
        else:
            word = rng.choice(_PUNCT)
        word += rng.choice(_SPACE)
        parts.append(word)
        size += len(word.encode("utf-8"))
    return "".join(parts).encode("utf-8")[:n_bytes].decode("utf-8", "ignore")


def load_reference() -> dict:
    path = FIXTURES / "bench.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _vocab_path(spec: str) -> Path | None:
    kind, name = spec.split(":", 1)
    if kind == "catalog":
        from emel import catalog

        return catalog.fetch(name)
    if kind == "vocab":
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
        import assets

        return assets.vocab_dir() / name
    path = FIXTURES / name
    return path if path.is_file() else None


def main(argv: list[str]) -> int:
    from emel.tokenizer import Tokenizer

    ref = load_reference()
    texts = {"english": english_text(), "mixed": mixed_text()}
    print(f"{'family':24s} {'load s':>7s} {'text':8s} {'emel MB/s':>10s} {'llama.cpp MB/s':>15s} "
          f"{'tokens':>8s} {'same ids':>8s}")
    for family, spec in FAMILIES.items():
        path = _vocab_path(spec)
        if path is None:
            print(f"{family:24s} (vocabulary not found)")
            continue
        t0 = time.perf_counter()
        tok = Tokenizer.from_gguf(path)
        tok.tokenize("warm up: numba compiles on the first call 123 😀")
        t_load = time.perf_counter() - t0
        for name, text in texts.items():
            best = float("inf")
            ids = []
            for _ in range(3):
                t = time.perf_counter()
                ids = tok.tokenize(text, add_special=False, parse_special=False)
                best = min(best, time.perf_counter() - t)
            mb = len(text.encode("utf-8")) / 1e6
            r = ref.get(family, {}).get(name, {})
            ref_mbs = f"{r['mb_per_s']:.2f}" if r else "-"
            same = "-" if not r else ("yes" if r.get("sha1") == sha1_ids(ids) else "NO")
            print(f"{family:24s} {t_load:7.2f} {name:8s} {mb / best:10.2f} {ref_mbs:>15s} "
                  f"{len(ids):8d} {same:>8s}")
    return 0


def sha1_ids(ids: list[int]) -> str:
    import hashlib

    return hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()

