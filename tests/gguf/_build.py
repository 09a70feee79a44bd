"""Raw GGUF bytes for tests: build headers field by field, including malformed ones."""

from __future__ import annotations

import struct

from gguf.constants import GGUFValueType as T

U32, U64, I64 = "<I", "<Q", "<q"


def s(b: bytes | str) -> bytes:
    """A GGUF string: u64 length, then the bytes."""
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(U64, len(b)) + b


def kv(key: bytes | str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack(U32, vtype) + payload


def kv_u32(key: str, v: int) -> bytes:
    return kv(key, T.UINT32, struct.pack(U32, v))


def kv_str(key: str, v: bytes | str) -> bytes:
    return kv(key, T.STRING, s(v))


def ti(name: bytes | str, dims: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    """One tensor-table entry (dims in ggml order)."""
    return (s(name) + struct.pack(U32, len(dims))
            + b"".join(struct.pack(I64, d) for d in dims)
            + struct.pack(U32, ggml_type) + struct.pack(U64, offset))


def gguf_file(kvs: list[bytes] = (), tis: list[bytes] = (), data: bytes = b"", version: int = 3,
              n_kv: int | None = None, n_tensors: int | None = None, alignment: int = 32,
              magic: bytes = b"GGUF") -> bytes:
    """Header, key-value pairs, tensor table, padding to `alignment`, then `data`."""
    head = (magic + struct.pack(U32, version)
            + struct.pack(I64, len(tis) if n_tensors is None else n_tensors)
            + struct.pack(I64, len(kvs) if n_kv is None else n_kv)
            + b"".join(kvs) + b"".join(tis))
    pad = -len(head) % alignment if tis else 0
    return head + b"\0" * pad + data
