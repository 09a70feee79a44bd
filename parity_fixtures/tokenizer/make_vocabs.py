"""Build the small GGUF vocabularies llama.cpp's sdist lacks: RWKV world and a PLaMo-2-style one.

    python parity_fixtures/tokenizer/make_vocabs.py

- ggml-vocab-rwkv-world.gguf: the RWKV "world" vocabulary (rwkv_vocab_v20230424.txt from the
  `rwkv` PyPI package, fetched with `pip download --no-deps rwkv==0.8.32`), written the way
  llama.cpp's converter writes it (conversion/base.py `_set_vocab_rwkv_world`).
- ggml-vocab-plamo2-mini.gguf: a PLaMo-2-style vocabulary built here: the PLaMo control tokens,
  the 256 `<0xXX>` byte tokens and ~6000 frequent substrings of the benchmark corpora scored by
  log frequency, written as llama.cpp's converter writes PLaMo-2 (`_set_vocab_plamo`).
- ggml-vocab-hybriddna-mini.gguf: gpt-2's byte tokens and first 1500 merges, `<dna>` tags and
  the 4096 DNA 6-mers with their U+E000 marker (tokenizer model `hybriddna`).
- ggml-vocab-test-mini.gguf: llama.cpp's `test` tokenizer model (hash ids) over 300 tokens.
Both use architecture `llama` so that a vocab-only load needs no other hyper-parameters.
"""

from __future__ import annotations

import ast
import collections
import math
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import gguf

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parents[1]))

import importlib.util  # noqa: E402

# emel/bench/tokenize.py by path: importing the emel package would need numba here
_spec = importlib.util.spec_from_file_location("emel_bench_tokenize",
                                               REPO_ROOT / "emel" / "bench" / "tokenize.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

RWKV_PACKAGE = "rwkv==0.8.32"


def _writer(path: Path, n_vocab: int) -> gguf.GGUFWriter:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(path.stem)
    w.add_block_count(1)
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    return w


def rwkv_world() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                        RWKV_PACKAGE], check=True)
        wheel = next(Path(tmp).glob("rwkv-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            lines = z.read("rwkv/rwkv_vocab_v20230424.txt").decode("utf-8").splitlines()
    tokens = [b"<s>"]
    types = [gguf.TokenType.CONTROL]
    for line in lines:
        parts = line.split(" ")
        token, token_len = ast.literal_eval(" ".join(parts[1:-1])), int(parts[-1])
        token = token.encode("utf-8") if isinstance(token, str) else token
        assert len(token) == token_len
        tokens.append(repr(token)[2:-1].encode("utf-8"))
        types.append(gguf.TokenType.NORMAL)
    for i in range(len(tokens), 65536):
        tokens.append(f"[PAD{i}]".encode())
        types.append(gguf.TokenType.UNUSED)
    path = HERE / "ggml-vocab-rwkv-world.gguf"
    w = _writer(path, len(tokens))
    w.add_tokenizer_model("rwkv")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_eot_token_id(261)
    _close(w, path)


def plamo2_mini() -> None:
    corpus = bench.english_text(200_000) + bench.mixed_text(200_000, seed=7)
    counts: collections.Counter = collections.Counter()
    for word in corpus.split(" "):
        word = " " + word
        for i in range(len(word)):
            for j in range(i + 1, min(len(word), i + 8) + 1):
                counts[word[i:j]] += 1
    chars = sorted({c for c in corpus})
    pieces = [p for p, _ in counts.most_common(20000) if len(p) > 1][:6000]
    total = sum(counts.values())
    tokens = [b"<|plamo:unk|>", b"<|plamo:bos|>", b"<|plamo:eos|>", b"<|plamo:pad|>",
              b"<|plamo:op|>", b"</s>"]
    scores = [0.0] * 6
    types = [gguf.TokenType.UNKNOWN] + [gguf.TokenType.CONTROL] * 4 + [gguf.TokenType.NORMAL]
    for b in range(256):
        tokens.append(b"<0x%02X>" % b)
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)
    seen = set(tokens)
    for p in chars + pieces:
        t = p.encode("utf-8")
        if t in seen:
            continue
        seen.add(t)
        tokens.append(t)
        scores.append(math.log(counts.get(p, 1) / total) * (1.0 if len(p) > 1 else 1.3))
        types.append(gguf.TokenType.NORMAL)
    path = HERE / "ggml-vocab-plamo2-mini.gguf"
    w = _writer(path, len(tokens))
    w.add_tokenizer_model("plamo2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(3)
    w.add_unk_token_id(0)
    w.add_eot_token_id(4)
    w.add_add_space_prefix(False)
    _close(w, path)


def hybriddna_mini(gpt2_vocab: Path) -> None:
    """A byte-level BPE (gpt-2's bytes and first 1500 merges) plus <dna> tags and 4096 6-mers."""
    r = gguf.GGUFReader(str(gpt2_vocab))
    merges_field = r.fields["tokenizer.ggml.merges"]
    merges = [bytes(merges_field.parts[i]) for i in merges_field.data[:1500]]
    byte_chars = []
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = 0
    for b in range(256):
        if b in keep:
            byte_chars.append(chr(b))
        else:
            byte_chars.append(chr(256 + extra))
            extra += 1
    tokens = [c.encode() for c in byte_chars]
    seen = set(tokens)
    for m in merges:
        first, second = m.split(b" ", 1)
        if first + second not in seen:
            seen.add(first + second)
            tokens.append(first + second)
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for special in (b"<|endoftext|>", b"<dna>", b"</dna>", b"<oov>"):
        tokens.append(special)
        types.append(gguf.TokenType.CONTROL)
    marker = "\ue000".encode()
    for i in range(4 ** 6):
        kmer = "".join("ACGT"[(i >> (2 * k)) & 3] for k in range(6)).encode()
        tokens.append(kmer + marker)
        types.append(gguf.TokenType.NORMAL)
    path = HERE / "ggml-vocab-hybriddna-mini.gguf"
    w = _writer(path, len(tokens))
    w.add_tokenizer_model("hybriddna")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    eot = tokens.index(b"<|endoftext|>")
    w.add_bos_token_id(eot)
    w.add_eos_token_id(eot)
    _close(w, path)


def test_mini() -> None:
    """llama.cpp's `test` vocabulary type: ids are hashes of 5-byte chunks. Its user-defined
    tokens over "xyz" overlap each other, so partitioning depends on the special-token order."""
    import itertools

    tokens = [b"<s>", b"</s>"] + [b"t%d" % i for i in range(262)]
    types = [gguf.TokenType.CONTROL] * 2 + [gguf.TokenType.NORMAL] * 262
    for k in (3, 2):
        for combo in itertools.product(b"xyz", repeat=k):
            tokens.append(bytes(combo))
            types.append(gguf.TokenType.USER_DEFINED)
    path = HERE / "ggml-vocab-test-mini.gguf"
    w = _writer(path, len(tokens))
    w.add_tokenizer_model("test")
    w.add_token_list(tokens)
    w.add_token_types(types)
    _close(w, path)


def _close(w: gguf.GGUFWriter, path: Path) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    rwkv_world()
    plamo2_mini()
    hybriddna_mini(Path.home() / ".cache/emel/llama-cpp-python-sdist/llama.cpp/models/ggml-vocab-gpt-2.gguf")
    test_mini()
