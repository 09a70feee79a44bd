"""String arrays: the compiled length walk plus single-decode fast path gives exactly the file's
strings, for any bytes (invalid UTF-8 comes back through 'surrogateescape')."""

from __future__ import annotations

import struct

from gguf.constants import GGUFValueType as T
from hypothesis import given, settings
from hypothesis import strategies as st

from emel.gguf import read_buffer

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
