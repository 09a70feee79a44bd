"""A canonical digest of a GGUF file's metadata and tensor table, computed two ways.

`digest_gguf_py(reader)` reads gguf-py's GGUFReader (the reference); `digest_emel(gguf_file)`
reads emel's GGUFFile. Both hash each value's leaves in the same canonical byte form: numbers as
little-endian bytes of their GGUF type (bools as 0/1 bytes), strings as an 8-byte length plus their
raw bytes; arrays of arrays are flattened, as GGUFReader flattens them. Tensor offsets are relative
to the data section.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from gguf.constants import GGUFValueType

_DTYPES = {
    GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "<u1", GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8",
}


def _hash(types: list[int], leaf_type: int, leaves: list) -> str:
    h = hashlib.sha256(",".join(str(int(t)) for t in types).encode() + b";")
    if leaf_type == GGUFValueType.STRING:
        for b in leaves:
            h.update(struct.pack("<Q", len(b)) + b)
    elif leaves:
        arr = np.concatenate([np.asarray(x).reshape(-1) for x in leaves])
        if leaf_type == GGUFValueType.BOOL:
            arr = (arr.view(np.uint8) if arr.dtype == np.bool_ else arr) != 0
        h.update(arr.astype(_DTYPES[GGUFValueType(leaf_type)]).tobytes())
    return h.hexdigest()


def digest_gguf_py(reader) -> dict:
    """Digest of a gguf.GGUFReader."""
    kv = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        types = [int(t) for t in f.types]
        leaf = types[-1] if types[0] == GGUFValueType.ARRAY else types[0]
        if types == [GGUFValueType.ARRAY] and not f.data:  # empty array: item type unknown
            leaf = int(f.parts[-2][0])
            types = types + [leaf]
        if leaf == GGUFValueType.STRING:
            leaves = [bytes(f.parts[i]) for i in f.data]
        else:
            leaves = [f.parts[i] for i in f.data]
        kv[name] = [types, _hash(types, leaf, leaves)]
    tensors = [[t.name, [int(x) for x in t.shape], int(t.tensor_type),
                int(t.data_offset) - int(reader.data_offset), int(t.n_bytes)]
               for t in reader.tensors]
    return {"alignment": int(reader.alignment), "data_offset": int(reader.data_offset),
            "kv": kv, "tensors": tensors}


def _flatten(value, leaf_type: int, out: list) -> None:
    if isinstance(value, list) and (leaf_type != GGUFValueType.STRING or
                                    any(isinstance(v, list) for v in value)):
        for v in value:
            _flatten(v, leaf_type, out)
    elif isinstance(value, list):
        out.extend(s.encode("utf-8", "surrogateescape") for s in value)
    elif isinstance(value, str):
        out.append(value.encode("utf-8", "surrogateescape"))
    else:
        out.append(np.asarray(value, dtype=None if isinstance(value, np.ndarray)
                              else _DTYPES[GGUFValueType(leaf_type)]))


def digest_emel(gf) -> dict:
    """Digest of an emel.gguf.GGUFFile (single file)."""
    kv = {}
    for name, value in gf.metadata.items():
        types = [int(t) for t in gf.value_types[name]]
        value_leaf = _leaf_type(value, types)
        leaves: list = []
        _flatten(value, value_leaf, leaves)
        kv[name] = [_gguf_py_types(value, types), _hash(_gguf_py_types(value, types),
                                                         value_leaf, leaves)]
    tensors = [[t.name, list(t.shape), int(t.ggml_type), t.offset, t.nbytes]
               for t in gf.tensors.values()]
    return {"alignment": gf.alignment, "data_offset": gf.data_offset, "kv": kv,
            "tensors": tensors}


def _leaf_type(value, types: list[int]) -> int:
    if types[0] != GGUFValueType.ARRAY:
        return types[0]
    if types[1] != GGUFValueType.ARRAY:
        return types[1]
    for v in value:  # arrays of arrays: the first leaf's type, as GGUFReader records it
        if isinstance(v, np.ndarray):
            return _NP_TO_GGUF[(v.dtype.kind, v.dtype.itemsize)]
        if isinstance(v, list) and v and isinstance(v[0], str):
            return GGUFValueType.STRING
        if isinstance(v, list):
            return _leaf_type(v, [GGUFValueType.ARRAY, GGUFValueType.ARRAY])
    return GGUFValueType.ARRAY


def _gguf_py_types(value, types: list[int]) -> list[int]:
    """GGUFReader's `types`: [ARRAY, ARRAY, ..., leaf] down the first element for nested arrays."""
    if types[0] != GGUFValueType.ARRAY or types[1] != GGUFValueType.ARRAY:
        return types
    out = [GGUFValueType.ARRAY]
    v = value
    while isinstance(v, list) and v and not isinstance(v[0], str):
        out.append(GGUFValueType.ARRAY)
        v = v[0]
        if isinstance(v, np.ndarray):
            if v.size:
                out.append(_NP_TO_GGUF[(v.dtype.kind, v.dtype.itemsize)])
            break
    else:
        if isinstance(v, list) and v:
            out.append(GGUFValueType.STRING)
    return [int(t) for t in out]


_NP_TO_GGUF = {
    ("u", 1): GGUFValueType.UINT8, ("i", 1): GGUFValueType.INT8, ("u", 2): GGUFValueType.UINT16,
    ("i", 2): GGUFValueType.INT16, ("u", 4): GGUFValueType.UINT32, ("i", 4): GGUFValueType.INT32,
    ("f", 4): GGUFValueType.FLOAT32, ("b", 1): GGUFValueType.BOOL, ("u", 8): GGUFValueType.UINT64,
    ("i", 8): GGUFValueType.INT64, ("f", 8): GGUFValueType.FLOAT64,
}
