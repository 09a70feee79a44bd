"""Record llama.cpp's tokenizer behaviour for emel's parity tests.

Run with the reference interpreter (llama-cpp-python 0.3.36 built from source):

    ~/.cache/emel-ref/venv/bin/python parity_fixtures/tokenizer/make_fixtures.py

For every vocabulary (llama.cpp's ggml-vocab-*.gguf, the two catalog models, and the small RWKV
and PLaMo-2 vocabularies built by make_vocabs.py) it tokenizes seeded random strings (mixed
scripts, emoji and ZWJ sequences, whitespace runs, digits, special-token look-alikes, bad UTF-8)
with llama_tokenize (plain, and add_special + parse_special), detokenizes them with
llama_detokenize, and records special ids, EOG tokens, non-normal attributes and pieces.
Writes fuzz/<vocab>.json.gz and bench.json (llama.cpp's MB/s and token hashes on the 1 MB texts
of emel/bench/tokenize.py).
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import llama_cpp as L

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import importlib.util  # noqa: E402

# emel/bench/tokenize.py by path: importing the emel package would need numba here
_spec = importlib.util.spec_from_file_location("emel_bench_tokenize",
                                               REPO_ROOT / "emel" / "bench" / "tokenize.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SEED = 20261130
N_STRINGS = 256
VOCAB_DIR = Path.home() / ".cache/emel/llama-cpp-python-sdist/llama.cpp/models"
MODELS = Path.home() / ".cache/emel/models"

LOOKALIKES = ["<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<s>", "</s>",
              "<unk>", "<pad>", "<mask>", "[CLS]", "[SEP]", "[MASK]", "<|endoftext|>",
              "<|eot_id|>", "<|begin_of_text|>", "<0x41>", "<|im_start", "im_end|>", "<start_of",
              "<bos>", "<eos>", "\u2581", "\u2581\u2581", "<|user|>", "<|assistant|>", "<|end|>",
              "<dna>ACGTTGCAacgtn</dna>", "<dna>GATTACA", "</dna>"]
WORDS = ["Hello", "world", "the", "quick", "brown", "fox", "don't", "I'm", "we'll", "THEY'RE",
         "you've", "it's", "naïve", "café", "Äpfel", "straße", "e\u0301", "co-operate", "C++",
         "x=1;", "def f(a, b):", "return a+b", "https://example.com/a?b=c", "foo_bar", "$100",
         "3.14159", "1,000,000", "2026-11-30", "\u00bd", "\u2160", "\u0663\u0664"]
BAD_BYTES = [b"\xff", b"\xc3", b"\x80\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00",
             b"a\x00b", b"\xf0\x9f\x98", b"\xfe\xfe"]


def random_strings(rng: random.Random, specials: list[str]) -> list[bytes]:
    out: list[bytes] = []
    pieces = bench._SCRIPTS + bench._EMOJI + bench._PUNCT
    for i in range(N_STRINGS):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.25:
                parts.append(rng.choice(WORDS))
            elif r < 0.45:
                alphabet = rng.choice(bench._SCRIPTS)
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))))
            elif r < 0.55:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
            elif r < 0.65:
                parts.append(rng.choice(bench._EMOJI))
            elif r < 0.75:
                parts.append(rng.choice(LOOKALIKES))
            elif r < 0.82 and specials:
                parts.append(rng.choice(specials))
            elif r < 0.92:
                parts.append(rng.choice(bench._SPACE) * rng.randint(1, 3))
            else:
                parts.append(rng.choice(pieces))
            if rng.random() < 0.4:
                parts.append(" ")
        s = "".join(parts).encode("utf-8")
        if i % 16 == 15:
            b = bytearray(s)
            b[rng.randint(0, len(b)):0] = rng.choice(BAD_BYTES)
            s = bytes(b)
        out.append(s)
    # random bytes; leads F4-F7 are left out: they can decode past U+10FFFF, where llama.cpp aborts
    alphabet = [b for b in range(256) if not 0xF4 <= b <= 0xF7]
    out += [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(24)]
    out += [b"", b" ", b"\n", b"  \n\t ", b"\x00", "\ud800".encode("utf-8", "surrogatepass"),
            b"a" * 3000, (" ".join(WORDS) + " ") .encode() * 8]
    return out


_QUIET = L.llama_log_callback(lambda level, text, data: None)  # kept alive for llama.cpp


class Vocab:
    def __init__(self, path: Path):
        params = L.llama_model_default_params()
        params.vocab_only = True
        self.model = L.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n = L.llama_vocab_n_tokens(self.vocab)

    def tokenize(self, text: bytes, add_special: bool, parse_special: bool) -> list[int]:
        n_max = len(text) + 16
        buf = (L.llama_token * n_max)()
        n = L.llama_tokenize(self.vocab, text, len(text), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (L.llama_token * n_max)()
            n = L.llama_tokenize(self.vocab, text, len(text), buf, n_max, add_special, parse_special)
        return list(buf[:n])

    def detokenize(self, ids: list[int], remove_special: bool, unparse_special: bool) -> bytes:
        arr = (L.llama_token * max(1, len(ids)))(*ids)
        size = 64 + 8 * len(ids)
        buf = ctypes.create_string_buffer(size)
        n = L.llama_detokenize(self.vocab, arr, len(ids), buf, size, remove_special, unparse_special)
        if n < 0:
            size = -n
            buf = ctypes.create_string_buffer(size)
            n = L.llama_detokenize(self.vocab, arr, len(ids), buf, size, remove_special,
                                   unparse_special)
        return buf.raw[:n]

    def piece(self, token: int, special: bool, lstrip: int = 0) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(self.vocab, token, buf, 256, lstrip, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, -n, lstrip, special)
        return buf.raw[:n]

    def info(self) -> dict:
        v = self.vocab
        ids = {name: getattr(L, f"llama_vocab_{name}")(v) for name in
               ("bos", "eos", "eot", "sep", "nl", "pad", "mask", "fim_pre", "fim_suf", "fim_mid",
                "fim_pad", "fim_rep", "fim_sep")}
        flags = {name: bool(getattr(L, f"llama_vocab_get_add_{name}")(v)) for name in ("bos", "eos", "sep")}
        eog = [t for t in range(self.n) if L.llama_vocab_is_eog(v, t)]
        attrs = [[t, a] for t in range(self.n) if (a := int(L.llama_vocab_get_attr(v, t))) != 4]
        return {"n_tokens": self.n, "special_ids": ids, "add": flags, "eog": eog, "attrs": attrs}

    def close(self) -> None:
        L.llama_model_free(self.model)


def text_field(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": b.hex()}


def record(name: str, path: Path, rng: random.Random) -> dict:
    v = Vocab(path)
    info = v.info()
    special_texts = []
    for t, a in info["attrs"]:
        if a & (8 | 16):
            p = v.piece(t, True)
            try:
                special_texts.append(p.decode("utf-8"))
            except UnicodeDecodeError:
                pass
    rng_s = random.Random(rng.random())
    specials = rng_s.sample(special_texts, min(12, len(special_texts)))
    strings = random_strings(rng, specials)
    if "test-mini" in name:  # runs of overlapping user-defined tokens
        strings += ["".join(rng.choice("xyz xy") for _ in range(rng.randint(3, 40))).encode()
                    for _ in range(60)]
    cases = []
    for s in strings:
        ids = v.tokenize(s, False, False)
        ids_sp = v.tokenize(s, True, True)
        cases.append({
            "text": text_field(s),
            "ids": ids,
            "ids_sp": ids_sp,
            "detok": text_field(v.detokenize(ids, False, False)),
            "detok_sp": text_field(v.detokenize(ids_sp, True, True)),
            "detok_sp_keep": text_field(v.detokenize(ids_sp, False, False)),
        })
    sample = sorted(rng.sample(range(v.n), min(400, v.n)))
    sample += [t for t, _ in info["attrs"][:100]]
    pieces = [[t, text_field(v.piece(t, False)), text_field(v.piece(t, True)),
               text_field(v.piece(t, True, 1))] for t in sample]
    v.close()
    return {"llama_cpp": L.__version__, "vocab": name, "seed": SEED, **info,
            "pieces": pieces, "cases": cases}


def vocab_paths() -> dict[str, Path]:
    paths = {p.name: p for p in sorted(VOCAB_DIR.glob("ggml-vocab-*.gguf"))}
    paths["smollm2-135m"] = next(MODELS.glob("SmolLM2-135M*.gguf"))
    paths["gemma3-270m"] = next(MODELS.glob("gemma-3-270m*.gguf"))
    for p in sorted(HERE.glob("ggml-vocab-*.gguf")):
        paths[p.name] = p
    return paths


PRE_BASE = "ggml-vocab-gpt-2.gguf"
SPM_PRE_BASE = "ggml-vocab-gemma-4.gguf"
N_PRE_STRINGS = 40
PRE_EXTRA = [b"I'M HERE, YOU'RE there; we'LL see 'S", b"12345678901 2 34 567 8901",
             b"\r\n\r\n  \n\t x\r\ny", "漢字かなカナ한국어 ㄱㄴ ㄅㄆ".encode(),
             "e\u0301 n\u0303 \u0915\u093f\u0924\u093e\u092c".encode(), b"<sentinel:12>IMGIMGABZ  \t",
             "HelloWorld ABCdef aBc \u00c9cole CamelCaseWord".encode(), b"x = a+b*(c-d)/e; // ok!!",
             "\uff21\uff22 \u3001\u3002\u2026 \u060c".encode()]


def pre_names() -> list[str]:
    src = (Path(L.__file__).parent / "../vendor/llama.cpp/src/llama-vocab.cpp")
    if not src.is_file():
        src = Path.home() / ".cache/emel-ref/llama_cpp_python-0.3.36/vendor/llama.cpp/src/llama-vocab.cpp"
    text = src.read_text(encoding="utf-8")
    load = text[text.index("void llama_vocab::impl::load("):]
    load = load[:load.index("unknown pre-tokenizer type")]
    import re
    names = []
    for n in re.findall(r'tokenizer_pre == "([^"]+)"', load):
        if n not in names:
            names.append(n)
    return names


def _replace_str(base: bytes, key: str, old: bytes, new: bytes) -> bytes:
    """GGUF bytes with one string value replaced (valid for a vocabulary file: no tensors)."""
    k = key.encode()
    head = len(k).to_bytes(8, "little") + k + (8).to_bytes(4, "little")
    i = base.index(head + len(old).to_bytes(8, "little") + old)
    j = i + len(head) + 8 + len(old)
    return base[:i] + head + len(new).to_bytes(8, "little") + new + base[j:]


def with_pre(base: bytes, old: bytes, new: str) -> bytes:
    """ggml-vocab-gpt-2.gguf with tokenizer.ggml.pre rewritten."""
    return _replace_str(base, "tokenizer.ggml.pre", old, new.encode())


def with_spm_bpe_pre(base: bytes, new: str) -> bytes:
    """ggml-vocab-gemma-4.gguf as a `gpt2` model with a tokenizer.ggml.pre key appended (its
    key-value section ends the file, so a key-value pair can be appended and counted)."""
    data = _replace_str(base, "tokenizer.ggml.model", b"gemma4", b"gpt2")
    k = b"tokenizer.ggml.pre"
    v = new.encode()
    kv = len(k).to_bytes(8, "little") + k + (8).to_bytes(4, "little") + len(v).to_bytes(8, "little") + v
    n_kv = int.from_bytes(data[16:24], "little") + 1
    return data[:16] + n_kv.to_bytes(8, "little") + data[24:] + kv


def record_pretokenizers() -> dict:
    import tempfile

    base = (VOCAB_DIR / PRE_BASE).read_bytes()
    spm_base = (VOCAB_DIR / SPM_PRE_BASE).read_bytes()
    out = {"llama_cpp": L.__version__, "base": PRE_BASE, "seed": SEED, "pre": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in pre_names():
            if name == "whitespace":
                # raw-UTF-8 "whitespace" on a gpt2 model asserts in find_bpe_rank on any word
                # with a space (the `whitespace` tokenizer model is what uses it)
                continue
            path = Path(tmp) / f"pre-{name}.gguf"
            spm_style = name in ("gemma4", "granite-embed-multi-311m", "sarvam-moe")
            if spm_style:  # SPM-style BPE needs U+2581 tokens: gemma-4's vocabulary as gpt2
                path.write_bytes(with_spm_bpe_pre(spm_base, name))
            else:
                path.write_bytes(with_pre(base, b"gpt-2", name))
            v = Vocab(path)
            rng = random.Random(f"{SEED}:pre:{name}")
            strings = PRE_EXTRA + random_strings(rng, [])[:N_PRE_STRINGS]
            cases = []
            for s in strings:
                ids = v.tokenize(s, False, False)
                ids_sp = v.tokenize(s, True, True)
                cases.append({"text": text_field(s), "ids": ids, "ids_sp": ids_sp,
                              "detok": text_field(v.detokenize(ids, False, False))})
            out["pre"][name] = {"base": SPM_PRE_BASE if spm_style else PRE_BASE,
                                "model": "gpt2", "add": {k: bool(getattr(L, f"llama_vocab_get_add_{k}")(v.vocab))
                                        for k in ("bos", "eos", "sep")},
                                "bos": L.llama_vocab_bos(v.vocab), "cases": cases}
            v.close()
    return out


def bench_reference(paths: dict[str, Path]) -> dict:
    texts = {"english": bench.english_text().encode(), "mixed": bench.mixed_text().encode()}
    out = {}
    for family, spec in bench.FAMILIES.items():
        kind, name = spec.split(":", 1)
        key = {"catalog": name}.get(kind, name)
        path = paths.get(key)
        if path is None:
            continue
        v = Vocab(path)
        out[family] = {}
        for tname, text in texts.items():
            best = float("inf")
            ids = []
            for _ in range(3):
                t = time.perf_counter()
                ids = v.tokenize(text, False, False)
                best = min(best, time.perf_counter() - t)
            out[family][tname] = {
                "mb_per_s": len(text) / 1e6 / best, "n_tokens": len(ids),
                "sha1": hashlib.sha1(",".join(map(str, ids)).encode()).hexdigest()}
        v.close()
    return out


def main(argv: list[str]) -> int:
    L.llama_backend_init()
    L.llama_log_set(_QUIET, ctypes.c_void_p(0))
    paths = vocab_paths()
    only = set(argv)
    (HERE / "fuzz").mkdir(exist_ok=True)
    for name, path in paths.items():
        if only and name not in only and "fuzz" not in only:
            continue
        rng = random.Random(f"{SEED}:{name}")
        data = record(name, path, rng)
        out = HERE / "fuzz" / f"{name.removesuffix('.gguf')}.json.gz"
        with gzip.open(out, "wt", compresslevel=9) as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{name}: {len(data['cases'])} cases -> {out.name} ({out.stat().st_size} bytes)")
    if not only or "pre" in only:
        data = record_pretokenizers()
        out = HERE / "fuzz_pre.json.gz"
        with gzip.open(out, "wt", compresslevel=9) as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{len(data['pre'])} pre-tokenizers -> {out.name} ({out.stat().st_size} bytes)")
    if not only or "bench" in only:
        ref = bench_reference(paths)
        ref["_meta"] = {"llama_cpp": L.__version__, "note": "best of 3, single call, add_special=False",
                        "text_sha1": {"english": hashlib.sha1(bench.english_text().encode()).hexdigest(),
                                      "mixed": hashlib.sha1(bench.mixed_text().encode()).hexdigest()}}
        (HERE / "bench.json").write_text(json.dumps(ref, indent=1))
        print("bench.json written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
