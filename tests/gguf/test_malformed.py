"""Malformed GGUF files raise GGUFError with a message naming the problem (gguf.cpp's checks)."""

from __future__ import annotations

import struct

import pytest
from gguf.constants import GGMLQuantizationType as Q
from gguf.constants import GGUFValueType as T

from emel import GGUFError
from emel.gguf import read, read_buffer

from _build import gguf_file, kv, kv_str, kv_u32, s, ti

F32_4 = ti("t", (4,), Q.F32, 0)
DATA_16 = bytes(16)


def _nested(depth: int) -> bytes:
    payload = struct.pack("<IQ", T.INT32, 1) + struct.pack("<i", 7)
    for _ in range(depth - 1):
        payload = struct.pack("<IQ", T.ARRAY, 1) + payload
    return kv("deep", T.ARRAY, payload)


CASES = [
    # (case id, file bytes, message pattern)
    ("empty file", b"", "bad magic"),
    ("bad magic", gguf_file(magic=b"GGML"), "bad magic"),
    ("truncated header", gguf_file()[:12], "truncated"),
    ("version 1", gguf_file(version=1), "unsupported GGUF version 1"),
    ("version 4", gguf_file(version=4), "unsupported GGUF version 4"),
    ("version 0", gguf_file(version=0), "unsupported GGUF version 0"),
    ("big-endian", gguf_file(version=3 << 24), "big-endian"),
    ("kv count beyond file", gguf_file(n_kv=1 << 40), "key-value count"),
    ("negative kv count", gguf_file(n_kv=-1), "key-value count"),
    ("tensor count beyond file", gguf_file(n_tensors=1 << 50), "tensor count"),
    ("negative tensor count", gguf_file(n_tensors=-5), "tensor count"),
    ("key length beyond file", gguf_file([struct.pack("<Q", 1000) + bytes(16)]), "truncated"),
    ("key length over 1 GiB", gguf_file([struct.pack("<Q", (1 << 30) + 1) + bytes(16)]), "exceeds the maximum"),
    ("string value beyond file",
     gguf_file([kv("k", T.STRING, struct.pack("<Q", 1 << 20) + b"x")]), "truncated"),
    ("array count beyond file",
     gguf_file([kv("k", T.ARRAY, struct.pack("<IQ", T.UINT64, 1 << 61))]), "do not fit"),
    ("string array count beyond file",
     gguf_file([kv("k", T.ARRAY, struct.pack("<IQ", T.STRING, 1 << 60))]), "do not fit"),
    ("string in array runs past end",
     gguf_file([kv("k", T.ARRAY, struct.pack("<IQ", T.STRING, 2) + s("a")
                   + struct.pack("<Q", 1000) + b"xy")]), "truncated"),
    ("nested array count beyond file",
     gguf_file([kv("k", T.ARRAY, struct.pack("<IQ", T.ARRAY, 1 << 59))]), "do not fit"),
    ("arrays nested too deep", gguf_file([_nested(20)]), "nested deeper"),
    ("truncated scalar", gguf_file([kv("k", T.UINT64, b"\1\2")])[:-1] + b"\2", "truncated"),
    ("invalid UTF-8 key", gguf_file([kv_u32("ok", 1), kv(b"bad\xff\xfe", T.UINT8, b"\1")]),
     "not valid UTF-8"),
    ("empty key", gguf_file([kv("", T.UINT8, b"\1")]), "empty"),
    ("duplicate key", gguf_file([kv_u32("a.b", 1), kv_u32("a.b", 2)]), "duplicate key 'a.b'"),
    ("unknown value type", gguf_file([kv("k", 13, b"\0" * 8)]), "unknown value type 13"),
    ("unknown array item type", gguf_file([kv("k", T.ARRAY, struct.pack("<IQ", 99, 1))]),
     "unknown value type 99"),
    ("alignment not u32", gguf_file([kv("general.alignment", T.UINT64, struct.pack("<Q", 32))]),
     "must be UINT32"),
    ("alignment not power of two", gguf_file([kv_u32("general.alignment", 48)]), "power of two"),
    ("alignment zero", gguf_file([kv_u32("general.alignment", 0)]), "power of two"),
    ("invalid UTF-8 tensor name", gguf_file(tis=[ti(b"w\xc3(", (4,), Q.F32, 0)], data=DATA_16),
     "not valid UTF-8"),
    ("tensor name too long", gguf_file(tis=[ti("x" * 64, (4,), Q.F32, 0)], data=DATA_16),
     "too long"),
    ("duplicate tensor name", gguf_file(tis=[F32_4, ti("t", (4,), Q.F32, 32)], data=bytes(48)),
     "duplicate tensor name 't'"),
    ("too many dimensions", gguf_file(tis=[ti("t", (1, 1, 1, 1, 4), Q.F32, 0)], data=DATA_16),
     "5 dimensions"),
    ("negative dimension", gguf_file(tis=[ti("t", (4, -1), Q.F32, 0)], data=DATA_16), "negative"),
    ("shape product overflows", gguf_file(tis=[ti("t", (1 << 32, 1 << 32), Q.F32, 0)]),
     "2\\^63-1"),
    ("unknown tensor type", gguf_file(tis=[ti("t", (4,), 99, 0)], data=DATA_16),
     "unknown ggml type 99"),
    ("removed tensor type Q4_2", gguf_file(tis=[ti("t", (32,), 4, 0)], data=bytes(32)),
     "unknown ggml type 4"),
    ("row not a block multiple", gguf_file(tis=[ti("t", (17, 2), Q.Q4_0, 0)], data=bytes(64)),
     "block size 32"),
    ("tensor data out of bounds", gguf_file(tis=[ti("t", (64,), Q.F32, 0)], data=DATA_16),
     "past the end of the file"),
    ("tensor offset far out of bounds", gguf_file(tis=[ti("t", (4,), Q.F32, 1 << 40)]),
     "offset|past the end"),
    ("misaligned tensor offset", gguf_file(tis=[ti("t", (4,), Q.F32, 4)], data=bytes(64)),
     "not a multiple of the alignment"),
    ("tensor offsets out of order",
     gguf_file(tis=[ti("a", (4,), Q.F32, 32), ti("b", (4,), Q.F32, 0)], data=bytes(64)),
     "expected 0"),
    ("tensor table truncated",
     gguf_file(tis=[F32_4, ti("u", (4,), Q.F32, 32)], alignment=1)[:-10], "truncated"),
]


@pytest.mark.parametrize("data,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_file_raises_gguf_error(data: bytes, pattern: str) -> None:
    with pytest.raises(GGUFError, match=pattern):
        read_buffer(data)


def test_well_formed_builder_output_parses() -> None:
    """The builder itself is right: the same shapes, well formed, parse."""
    gf = read_buffer(gguf_file([kv_u32("a", 1), kv_str("b", "x"), _nested(3)],
                               [F32_4, ti("u", (32, 2), Q.Q4_0, 32)], bytes(32 + 36)))
    assert gf.metadata["a"] == 1 and gf.metadata["b"] == "x"
    assert gf.metadata["deep"][0][0].tolist() == [7]
    assert [t.shape for t in gf.tensors.values()] == [(4,), (32, 2)]


def test_every_truncation_of_a_file_raises_gguf_error() -> None:
    data = gguf_file([kv_u32("general.alignment", 32), kv_str("s", "hello"),
                      kv("arr", T.ARRAY, struct.pack("<IQ", T.STRING, 2) + s("ab") + s("c"))],
                     [F32_4, ti("q", (32,), Q.Q8_0, 32)], bytes(32 + 34))
    gf = read_buffer(data)
    end = gf.data_offset + 32 + 34
    assert end == len(data)
    for n in range(end):
        with pytest.raises(GGUFError):
            read_buffer(data[:n])


def test_missing_file_raises_gguf_error(tmp_path) -> None:
    with pytest.raises(GGUFError, match="cannot open"):
        read(tmp_path / "nope.gguf")


def test_plain_read_fallback_reports_the_same_errors(tmp_path) -> None:
    p = tmp_path / "bad.gguf"
    p.write_bytes(gguf_file(tis=[ti("t", (64,), Q.F32, 0)], data=DATA_16))
    for use_mmap in (True, False):
        with pytest.raises(GGUFError, match="past the end of the file"):
            read(p, use_mmap=use_mmap)
