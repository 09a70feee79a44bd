"""GGUF reader: metadata, tensor table and zero-copy tensor data from a memory map.

Follows llama.cpp ggml/src/gguf.cpp (`gguf_init_from_file_impl`) in what it accepts and rejects,
and src/llama-model-loader.cpp for split models (`NAME-0000k-of-0000N.gguf`, opened through the
first split). Every count and length is bounded by the bytes left in the file before anything is
allocated, so a hostile file raises `GGUFError` instead of crashing or exhausting memory.

Differs from llama.cpp on purpose:
- arrays of arrays are read (as lists), as gguf-py reads them; llama.cpp rejects them.
- string values that are not valid UTF-8 decode with 'surrogateescape' (`s.encode("utf-8",
  "surrogateescape")` gives the file's bytes back); keys and tensor names must be valid UTF-8.
- big-endian files are rejected (llama.cpp reports them as an impossible version too).

Speed: gguf-py's GGUFReader builds numpy views element by element (~10-20 s for Gemma-3's
262k-token vocabulary). Here numeric arrays are single `np.frombuffer` copies, and a string array
is one compiled walk over its length prefixes (gguf/_scan.py), then one decode of all its strings
joined by a byte none of them contains, split back apart.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GGUFError, ModelError
from ._scan import join_strings, pack_strings, scan_strings
from .strings import StringArray
from .types import (
    BLOCK_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_VERSION,
    SCALAR_DTYPES,
    SUPPORTED_VERSIONS,
    GGMLType,
    GGUFValueType,
)

GGUF_MAGIC_BYTES = b"GGUF"
GGML_MAX_NAME = 64  # tensor names must be shorter (ggml.h GGML_MAX_NAME)
GGML_MAX_DIMS = 4
GGUF_MAX_STRING_LENGTH = 1 << 30  # gguf.cpp limits
GGUF_MAX_ARRAY_ELEMENTS = 1 << 30
MAX_ARRAY_NESTING = 8  # arrays of arrays; deeper nesting is rejected
INT64_MAX = (1 << 63) - 1

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIqq")  # magic, version, n_tensors, n_kv
_SCALAR_STRUCTS = {t: struct.Struct("<" + c) for t, c in [
    (GGUFValueType.UINT8, "B"), (GGUFValueType.INT8, "b"), (GGUFValueType.UINT16, "H"),
    (GGUFValueType.INT16, "h"), (GGUFValueType.UINT32, "I"), (GGUFValueType.INT32, "i"),
    (GGUFValueType.FLOAT32, "f"), (GGUFValueType.BOOL, "B"), (GGUFValueType.UINT64, "Q"),
    (GGUFValueType.INT64, "q"), (GGUFValueType.FLOAT64, "d")]}
_VALUE_TYPES = {int(t): t for t in GGUFValueType}
_GGML_TYPES = {int(t): t for t in GGMLType if t in BLOCK_SIZES}
_TENSOR_INFO_MIN = 8 + 4 + 4 + 8  # empty name, n_dims, type, offset
_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One entry of the tensor table."""

    name: str
    shape: tuple[int, ...]  # ggml order: ne0 (row length), ne1, ...
    ggml_type: GGMLType
    offset: int  # bytes from the start of the data section of its file
    nbytes: int
    split: int = 0  # index of the file (split) that holds the data

    @property
    def n_elements(self) -> int:
        n = 1
        for ne in self.shape:
            n *= ne
        return n


@dataclass(eq=False)
class GGUFSplit:
    """One file of a (possibly split) model: its bytes and where its data section starts."""

    path: Path | None
    data: np.ndarray = field(repr=False)  # uint8[file size], a memory map or a plain read
    data_offset: int  # bytes from the start of the file to the data section


@dataclass(eq=False)
class GGUFFile:
    """A parsed GGUF model: metadata and tensor table of all its splits, and their data."""

    path: Path | None
    version: int
    metadata: dict[str, Any]
    value_types: dict[str, tuple[GGUFValueType, ...]]  # key -> (type,) or (ARRAY, item type)
    tensors: dict[str, TensorInfo]  # in file order, splits one after another
    alignment: int
    data_offset: int  # of the first split
    splits: list[GGUFSplit] = field(repr=False)

    def tensor_data(self, name: str) -> np.ndarray:
        """The raw bytes of tensor `name`: a read-only uint8 view, zero-copy from the map."""
        info = self._info(name)
        split = self.splits[info.split]
        start = split.data_offset + info.offset
        if start + info.nbytes > split.data.shape[0]:
            raise GGUFError(f"{split.path}: the file was closed")
        return split.data[start:start + info.nbytes]

    def tensor_array(self, name: str) -> np.ndarray:
        """Tensor `name` as a numpy view in numpy order (ne reversed): typed for F32, F16, F64
        and integer types, uint16 for BF16, uint8 rows of blocks for quantized types."""
        info = self._info(name)
        raw = self.tensor_data(name)
        np_shape = tuple(reversed(info.shape))
        dtype = _PLAIN_DTYPES.get(info.ggml_type)
        if dtype is not None:
            return raw.view(dtype).reshape(np_shape)
        n_rows = info.n_elements // info.shape[0] if info.shape and info.shape[0] else 0
        row = info.nbytes // n_rows if n_rows else 0
        return raw.reshape(np_shape[:-1] + (row,))

    def file_offset(self, name: str) -> int:
        """Absolute byte offset of tensor `name` in the file that holds it."""
        info = self._info(name)
        return self.splits[info.split].data_offset + info.offset

    @property
    def n_bytes(self) -> int:
        """Total bytes of tensor data over all splits."""
        return sum(t.nbytes for t in self.tensors.values())

    def close(self) -> None:
        """Drop the references to the file data (the map closes when no view remains)."""
        for split in self.splits:
            split.data = np.empty(0, np.uint8)

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelError(f"{self.path}: no tensor named {name!r}") from None


_PLAIN_DTYPES = {
    GGMLType.F32: np.dtype("<f4"), GGMLType.F16: np.dtype("<f2"), GGMLType.F64: np.dtype("<f8"),
    GGMLType.I8: np.dtype("<i1"), GGMLType.I16: np.dtype("<i2"), GGMLType.I32: np.dtype("<i4"),
    GGMLType.I64: np.dtype("<i8"), GGMLType.BF16: np.dtype("<u2"),
}


def read(path: str | os.PathLike, use_mmap: bool = True, lazy_strings: bool = False) -> GGUFFile:
    """Parse the GGUF file at `path` (the first file of a split model reads all its splits).

    `use_mmap=False` reads the files into memory instead of mapping them. `lazy_strings=True`
    gives top-level arrays of strings as `StringArray` (bytes, decoded on access) instead of
    `list[str]`: what the model loader uses, so a large vocabulary costs its bytes only.
    """
    path = Path(path)
    first = _parse(_load_bytes(path, use_mmap), path, lazy_strings=lazy_strings)
    n_split = _split_count(first)
    if n_split <= 1:
        return first
    return _join_splits(first, path, n_split, use_mmap)


def read_buffer(data: bytes | bytearray | memoryview | np.ndarray, name: str = "<buffer>",
                lazy_strings: bool = False) -> GGUFFile:
    """Parse a GGUF file held in memory (no split handling); `lazy_strings` as in `read`."""
    arr = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise TypeError("read_buffer needs bytes or a 1-D uint8 array")
    return _parse(arr, None, name, lazy_strings=lazy_strings)


def _load_bytes(path: Path, use_mmap: bool) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return np.empty(0, np.uint8)
            if use_mmap:
                try:
                    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    return np.frombuffer(mm, np.uint8)
                except OSError:  # a file system without mmap: read it instead, as llama.cpp does
                    pass
            data = np.empty(size, np.uint8)
            if f.readinto(memoryview(data)) != size:
                raise GGUFError(f"{path}: file shrank while reading it")
            data.flags.writeable = False
            return data
    except OSError as e:
        raise GGUFError(f"{path}: cannot open GGUF file: {e}") from e


class _Cursor:
    """Bounds-checked little-endian reads from a uint8 array."""

    __slots__ = ("arr", "buf", "size", "pos", "where")

    def __init__(self, arr: np.ndarray, where: str):
        arr = arr.view()
        arr.flags.writeable = False  # one signature for the scan kernels
        self.arr = arr
        self.buf = memoryview(arr)
        self.size = arr.shape[0]
        self.pos = 0
        self.where = where

    def fail(self, msg: str) -> GGUFError:
        return GGUFError(f"{self.where}: {msg}")

    def need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.fail(f"truncated file: {what} needs {n} bytes at offset {self.pos}, "
                            f"only {self.size - self.pos} left (file is {self.size} bytes)")

    def u32(self, what: str) -> int:
        self.need(4, what)
        v = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def u64(self, what: str) -> int:
        self.need(8, what)
        v = _U64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def raw_string(self, what: str) -> bytes:
        n = self.u64(f"length of {what}")
        if n > GGUF_MAX_STRING_LENGTH:
            raise self.fail(f"{what} at offset {self.pos - 8}: length {n} exceeds the maximum "
                            f"{GGUF_MAX_STRING_LENGTH}")
        self.need(n, what)
        b = self.buf[self.pos:self.pos + n].tobytes()
        self.pos += n
        return b

    def name(self, what: str) -> str:
        start = self.pos
        b = self.raw_string(what)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"{what} at offset {start} is not valid UTF-8: {b[:64]!r}") from e


def _parse(arr: np.ndarray, path: Path | None, where: str | None = None,
           lazy_strings: bool = False) -> GGUFFile:
    cur = _Cursor(arr, where or str(path))
    if cur.size < 4 or cur.buf[:4].tobytes() != GGUF_MAGIC_BYTES:
        got = cur.buf[:4].tobytes()
        raise cur.fail(f"bad magic {got!r}, expected b'GGUF' (not a GGUF file)")
    cur.need(_HEADER.size, "header (magic, version, tensor count, key-value count)")
    _, version, n_tensors, n_kv = _HEADER.unpack_from(cur.buf, 0)
    cur.pos = _HEADER.size
    if version & 0xFFFF == 0 and version != 0:
        raise cur.fail(f"GGUF version {version:#x} looks byte-swapped: big-endian GGUF files "
                       "are not supported")
    if version not in SUPPORTED_VERSIONS:
        raise cur.fail(f"unsupported GGUF version {version}, expected one of "
                       f"{SUPPORTED_VERSIONS} (v{GGUF_VERSION} is current)")
    remain = cur.size - cur.pos
    if not 0 <= n_kv <= remain // 12:  # a key-value pair takes at least 8 + 4 bytes
        raise cur.fail(f"key-value count {n_kv} does not fit in the {remain} bytes left")
    if not 0 <= n_tensors <= remain // _TENSOR_INFO_MIN:
        raise cur.fail(f"tensor count {n_tensors} does not fit in the {remain} bytes left")

    metadata: dict[str, Any] = {}
    value_types: dict[str, tuple[GGUFValueType, ...]] = {}
    for i in range(n_kv):
        key = cur.name(f"key of key-value pair {i}")
        if not key:
            raise cur.fail(f"key of key-value pair {i} is empty")
        if key in metadata:
            raise cur.fail(f"duplicate key {key!r} (key-value pair {i})")
        vtype = _value_type(cur, cur.u32(f"type of {key!r}"), key)
        metadata[key], value_types[key] = _read_value(cur, vtype, key, 0, lazy_strings)

    alignment = GGUF_DEFAULT_ALIGNMENT
    if "general.alignment" in metadata:
        if value_types["general.alignment"] != (GGUFValueType.UINT32,):
            raise cur.fail(f"general.alignment must be UINT32, not "
                           f"{'/'.join(t.name for t in value_types['general.alignment'])}")
        alignment = metadata["general.alignment"]
        if alignment == 0 or alignment & (alignment - 1):
            raise cur.fail(f"general.alignment {alignment} is not a power of two")

    infos = [_read_tensor_info(cur, i) for i in range(n_tensors)]
    data_offset = -(-cur.pos // alignment) * alignment
    if n_tensors and data_offset > cur.size:
        raise cur.fail(f"truncated file: data section would start at byte {data_offset}, "
                       f"past the end of the file ({cur.size} bytes)")

    tensors: dict[str, TensorInfo] = {}
    expected = 0
    for name, shape, ggml_type, offset, nbytes in infos:
        if name in tensors:
            raise cur.fail(f"duplicate tensor name {name!r}")
        if offset % alignment:
            raise cur.fail(f"tensor {name}: data offset {offset} is not a multiple of the "
                           f"alignment {alignment}")
        if offset != expected:  # gguf.cpp: tensors are stored in order, each padded
            raise cur.fail(f"tensor {name}: data offset {offset}, expected {expected} (tensor "
                           "data must follow the table order, each padded to the alignment)")
        end = data_offset + offset + nbytes
        if end > cur.size:
            raise cur.fail(f"tensor {name}: data ends at byte {end}, past the end of the file "
                           f"({cur.size} bytes)")
        expected = offset + -(-nbytes // alignment) * alignment
        tensors[name] = TensorInfo(name, shape, ggml_type, offset, nbytes)

    return GGUFFile(path=path, version=version, metadata=metadata, value_types=value_types,
                    tensors=tensors, alignment=alignment, data_offset=data_offset,
                    splits=[GGUFSplit(path, arr, data_offset)])


def _value_type(cur: _Cursor, raw: int, key: str) -> GGUFValueType:
    vtype = _VALUE_TYPES.get(raw)
    if vtype is None:
        raise cur.fail(f"key {key!r}: unknown value type {raw}")
    return vtype


def _read_value(cur: _Cursor, vtype: GGUFValueType, key: str, depth: int,
                lazy_strings: bool = False) -> tuple[Any, tuple]:
    if vtype == GGUFValueType.STRING:
        b = cur.raw_string(f"string value of {key!r}")
        return b.decode("utf-8", "surrogateescape"), (vtype,)
    st = _SCALAR_STRUCTS.get(vtype)
    if st is not None:
        cur.need(st.size, f"value of {key!r}")
        v = st.unpack_from(cur.buf, cur.pos)[0]
        cur.pos += st.size
        return (v != 0 if vtype == GGUFValueType.BOOL else v), (vtype,)
    return _read_array(cur, key, depth, lazy_strings)


def _read_array(cur: _Cursor, key: str, depth: int, lazy_strings: bool = False) -> tuple[Any, tuple]:
    if depth >= MAX_ARRAY_NESTING:
        raise cur.fail(f"key {key!r}: arrays nested deeper than {MAX_ARRAY_NESTING} levels")
    itype = _value_type(cur, cur.u32(f"item type of array {key!r}"), key)
    n = cur.u64(f"length of array {key!r}")
    remain = cur.size - cur.pos
    dtype = SCALAR_DTYPES.get(itype)
    min_item = dtype.itemsize if dtype is not None else (8 if itype == GGUFValueType.STRING else 12)
    if n > GGUF_MAX_ARRAY_ELEMENTS or n * min_item > remain:
        raise cur.fail(f"array {key!r} at offset {cur.pos - 12}: {n} items of "
                       f"{itype.name} do not fit in the {remain} bytes left")
    types = (GGUFValueType.ARRAY, itype)
    if dtype is not None:
        values = np.frombuffer(cur.arr, dtype, n, cur.pos).copy()
        cur.pos += n * dtype.itemsize
        if itype == GGUFValueType.BOOL:
            values = values != 0
        return values, types
    if itype == GGUFValueType.STRING:
        return _read_string_array(cur, n, key, lazy_strings), types
    items = []
    for _ in range(n):  # arrays of arrays
        value, _t = _read_array(cur, key, depth + 1)
        items.append(value)
    return items, types


def _read_string_array(cur: _Cursor, n: int, key: str, lazy: bool = False) -> list[str] | StringArray:
    """Walk `n` length-prefixed strings, then decode them all at once (or keep their bytes)."""
    base = cur.pos
    starts = np.empty(n, np.int64)  # n * 8 <= bytes left, checked by the caller
    present = np.zeros(256, np.bool_)
    end = scan_strings(cur.arr, base, n, starts, present)
    if end < 0:
        raise cur.fail(f"truncated file: string {-end - 1} of array {key!r} runs past the end "
                       f"of the file ({cur.size} bytes) or is longer than {GGUF_MAX_STRING_LENGTH}")
    cur.pos = end
    if lazy:
        offsets = np.empty(n + 1, np.int64)
        data = np.empty(end - base - 8 * n, np.uint8)
        if n:
            pack_strings(cur.arr, starts, n, end, data, offsets)
        else:
            offsets[0] = 0
        return StringArray(data, offsets)
    if n == 0:
        return []
    free = np.flatnonzero(~present[:128])
    if free.size:
        # Join the strings with an ASCII byte none of them contains. ASCII never occurs inside a
        # UTF-8 sequence, so the strict decode succeeds exactly when every string is valid.
        sep = int(free[0])
        out = np.empty(end - base - 7 * n - 1, np.uint8)
        join_strings(cur.arr, starts, n, end, sep, out)
        try:
            return str(memoryview(out), "utf-8").split(chr(sep))
        except UnicodeDecodeError:
            pass
    bounds = starts.tolist() + [end]
    return [cur.buf[bounds[i] + 8:bounds[i + 1]].tobytes().decode("utf-8", "surrogateescape")
            for i in range(n)]


def _read_tensor_info(cur: _Cursor, i: int) -> tuple:
    name = cur.name(f"name of tensor {i}")
    if len(name.encode("utf-8")) >= GGML_MAX_NAME:
        raise cur.fail(f"tensor {i} name {name[:80]!r} is too long: "
                       f"{len(name.encode('utf-8'))} bytes, the limit is {GGML_MAX_NAME - 1}")
    n_dims = cur.u32(f"dimension count of tensor {name}")
    if n_dims > GGML_MAX_DIMS:
        raise cur.fail(f"tensor {name}: {n_dims} dimensions, at most {GGML_MAX_DIMS} allowed")
    cur.need(8 * n_dims, f"shape of tensor {name}")
    shape = struct.unpack_from(f"<{n_dims}q", cur.buf, cur.pos)
    cur.pos += 8 * n_dims
    n_elements = 1
    for ne in shape:
        if ne < 0:
            raise cur.fail(f"tensor {name}: negative dimension in shape {shape}")
        n_elements *= ne
    if n_elements > INT64_MAX:
        raise cur.fail(f"tensor {name}: shape {shape} has more than 2^63-1 elements")
    raw_type = cur.u32(f"type of tensor {name}")
    ggml_type = _GGML_TYPES.get(raw_type)
    if ggml_type is None:
        raise cur.fail(f"tensor {name}: unknown ggml type {raw_type}")
    blck, type_size = BLOCK_SIZES[ggml_type]
    ne0 = shape[0] if shape else 1
    if ne0 % blck:
        raise cur.fail(f"tensor {name}: row of {ne0} elements is not a multiple of the "
                       f"{ggml_type.name} block size {blck}")
    offset = cur.u64(f"data offset of tensor {name}")
    return name, tuple(shape), ggml_type, offset, n_elements // blck * type_size


def _split_count(gf: GGUFFile) -> int:
    n = gf.metadata.get("split.count", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise GGUFError(f"{gf.path}: split.count must be a non-negative integer, not {n!r}")
    return n


def _join_splits(first: GGUFFile, path: Path, n_split: int, use_mmap: bool) -> GGUFFile:
    """Read splits 2..n next to the first one and merge their tensor tables (llama.cpp's
    llama_model_loader: metadata comes from the first split)."""
    no = first.metadata.get("split.no", 0)
    if no != 0:
        raise GGUFError(f"{path}: this is split {no} of {n_split}; a split model must be "
                        "opened through its first split")
    m = _SPLIT_RE.match(path.name)
    if m is None or int(m["no"]) != 1 or int(m["count"]) != n_split:
        raise GGUFError(f"{path}: split.count is {n_split} but the file name does not end in "
                        f"-00001-of-{n_split:05d}.gguf")
    tensors = dict(first.tensors)
    splits = list(first.splits)
    for idx in range(1, n_split):
        shard_path = path.with_name(f"{m['prefix']}-{idx + 1:05d}-of-{n_split:05d}.gguf")
        shard = _parse(_load_bytes(shard_path, use_mmap), shard_path)
        if shard.metadata.get("split.no") != idx:
            raise GGUFError(f"{shard_path}: split.no is {shard.metadata.get('split.no')!r}, "
                            f"expected {idx}")
        for name, info in shard.tensors.items():
            if name in tensors:
                raise GGUFError(f"{shard_path}: tensor {name!r} is duplicated across splits")
            tensors[name] = TensorInfo(name, info.shape, info.ggml_type, info.offset,
                                       info.nbytes, idx)
        splits.extend(shard.splits)
    expected = first.metadata.get("split.tensors.count")
    if expected != len(tensors):
        raise GGUFError(f"{path}: split.tensors.count is {expected!r} but the {n_split} splits "
                        f"hold {len(tensors)} tensors")
    return GGUFFile(path=path, version=first.version, metadata=first.metadata,
                    value_types=first.value_types, tensors=tensors, alignment=first.alignment,
                    data_offset=first.data_offset, splits=splits)
