"""String arrays: the compiled length walk plus single-decode fast path gives exactly the file's
strings, for any bytes (invalid UTF-8 comes back through 'surrogateescape')."""

from __future__ import annotations

import struct

import pytest
from gguf.constants import GGUFValueType as T
from hypothesis import given, settings
from hypothesis import strategies as st

from emel.gguf import read_buffer
from emel.gguf.strings import StringArray

from _build import gguf_file, kv, s


def _strings_file(items: list[bytes]) -> bytes:
    arr = struct.pack("<IQ", T.STRING, len(items)) + b"".join(s(b) for b in items)
    return gguf_file([kv("before", T.UINT8, b"\7"), kv("arr", T.ARRAY, arr),
                      kv("scalar", T.STRING, s(items[0] if items else b"")),
                      kv("after", T.UINT8, b"\x09")])


def _read_back(items: list[bytes]) -> list[bytes]:
    gf = read_buffer(_strings_file(items))
    assert gf.metadata["before"] == 7 and gf.metadata["after"] == 9
    assert gf.metadata["scalar"].encode("utf-8", "surrogateescape") == (items[0] if items else b"")
    return [x.encode("utf-8", "surrogateescape") for x in gf.metadata["arr"]]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=12) | st.text(max_size=6).map(str.encode), max_size=40))
def test_any_string_array_reads_back(items: list[bytes]) -> None:
    assert _read_back(items) == items


def test_valid_strings_decode_as_str() -> None:
    items = ["", "a", "héllo", "世界", "\n\t", "🤖", "<0xFF>", "a\x00b"]
    gf = read_buffer(_strings_file([x.encode() for x in items]))
    assert gf.metadata["arr"] == items


def test_every_ascii_byte_used_falls_back_to_per_string_decode() -> None:
    items = [bytes([i]) for i in range(128)] + ["ü".encode(), b"\xff\xfe"]
    assert _read_back(items) == items


def test_invalid_utf8_value_keeps_its_bytes() -> None:
    items = [b"ok", b"\xe4\xb8", b"\x80abc", "é".encode()]
    gf = read_buffer(_strings_file(items))
    assert gf.metadata["arr"][0] == "ok" and gf.metadata["arr"][3] == "é"
    assert _read_back(items) == items


# -- lazy string arrays (what the model loader reads): the same strings, kept as bytes ------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=12) | st.text(max_size=6).map(str.encode), max_size=40))
def test_lazy_string_array_equals_the_list_read(items: list[bytes]) -> None:
    data = _strings_file(items)
    eager = read_buffer(data).metadata["arr"]
    lazy = read_buffer(data, lazy_strings=True).metadata["arr"]
    assert isinstance(lazy, StringArray) and len(lazy) == len(items)
    assert lazy == eager and eager == lazy and lazy.tolist() == eager and list(lazy) == eager
    assert lazy.to_bytes() == items
    assert [lazy[i] for i in range(-len(items), len(items))] == eager + eager
    assert lazy[1:7:2] == eager[1:7:2]


def test_lazy_string_array_index_out_of_range_raises_index_error() -> None:
    lazy = read_buffer(_strings_file([b"a", b"b"]), lazy_strings=True).metadata["arr"]
    for i in (2, -3, 100):
        with pytest.raises(IndexError):
            lazy[i]
    assert lazy != ["a"] and lazy != ["a", "c"] and lazy == ["a", "b"]


def test_lazy_strings_leave_scalars_and_nested_arrays_alone() -> None:
    inner = struct.pack("<IQ", T.STRING, 2) + s(b"x") + s(b"yz")
    nested = struct.pack("<IQ", T.ARRAY, 2) + inner + inner
    gf = read_buffer(gguf_file([kv("n", T.ARRAY, nested), kv("k", T.STRING, s(b"v"))]),
                     lazy_strings=True)
    assert gf.metadata["n"] == [["x", "yz"], ["x", "yz"]] and isinstance(gf.metadata["n"], list)
    assert gf.metadata["k"] == "v"


def test_loader_reads_vocabulary_lazily_and_tokenizes_the_same(smollm2_path) -> None:
    from emel.loader import load_model_file
    from emel.tokenizer import Tokenizer
    from emel.gguf import read
    mf = load_model_file(smollm2_path, vocab_only=True)
    tokens = mf.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, StringArray) and len(tokens) == 49152
    eager = read(smollm2_path).metadata
    assert tokens == eager["tokenizer.ggml.tokens"]
    text = "Grüße, world!\n\n  12345 日本語 <|im_start|>"
    assert (Tokenizer.from_metadata(mf.metadata).tokenize(text)
            == Tokenizer.from_metadata(eager).tokenize(text))
