"""Files written by gguf-py's GGUFWriter read back exactly: every value type, nested arrays,
every tensor type, GGUF v2, custom alignment and split models."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.constants import GGMLQuantizationType as Q
from gguf.constants import GGUFValueType as T

from emel import GGUFError, ModelError
from emel.gguf import TensorInfo, read

from _digest import digest_emel, digest_gguf_py

SCALARS = [  # key, value, type, expected value read back
    ("u8", 255, T.UINT8, 255), ("i8", -128, T.INT8, -128), ("u16", 65535, T.UINT16, 65535),
    ("i16", -32768, T.INT16, -32768), ("u32", 2**32 - 1, T.UINT32, 2**32 - 1),
    ("i32", -2**31, T.INT32, -2**31), ("u64", 2**64 - 1, T.UINT64, 2**64 - 1),
    ("i64", -2**63, T.INT64, -2**63), ("f32", 0.1, T.FLOAT32, float(np.float32(0.1))),
    ("f64", 0.1, T.FLOAT64, 0.1), ("f64.inf", float("-inf"), T.FLOAT64, float("-inf")),
    ("t", True, T.BOOL, True), ("f", False, T.BOOL, False),
    ("str", "héllo ✓ 世界", T.STRING, "héllo ✓ 世界"), ("str.empty", "", T.STRING, ""),
]
NUM_ARRAYS = [(t, np.dtype(d)) for t, d in [
    (T.UINT8, "u1"), (T.INT8, "i1"), (T.UINT16, "u2"), (T.INT16, "i2"), (T.UINT32, "u4"),
    (T.INT32, "i4"), (T.FLOAT32, "f4"), (T.UINT64, "u8"), (T.INT64, "i8"), (T.FLOAT64, "f8")]]
NESTED = {
    "nested.int": [[1, 2, 3], [4], [5, 6]],
    "nested.str": [["a", "bc"], ["", "✓"]],
    "nested.deep": [[[1.5], [2.5, 3.5]], [[4.5]]],
}


def _write(path, kvs, tensors=(), alignment=None, **writer_kw):
    w = GGUFWriter(path, "test", **writer_kw)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, val, vtype, sub in kvs:
        w.add_key_value(key, val, vtype, sub_type=sub)
    for name, raw, ggml_type in tensors:
        w.add_tensor(name, raw, raw_dtype=ggml_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _every_type_file(path, rng):
    kvs = [(k, v, t, None) for k, v, t, _ in SCALARS]
    for t, dt in NUM_ARRAYS:
        info = np.iinfo(dt) if dt.kind in "iu" else None
        vals = (rng.integers(info.min, info.max, 7, dtype=dt, endpoint=True) if info
                else rng.standard_normal(7).astype(dt))
        kvs.append((f"arr.{t.name}", vals.tolist(), T.ARRAY, t))
    kvs.append(("arr.BOOL", [True, False, True], T.ARRAY, T.BOOL))
    kvs.append(("arr.STRING", ["x", "", "ünï", "<0x0A>", "a b"], T.ARRAY, T.STRING))
    kvs.extend((k, v, T.ARRAY, None) for k, v in NESTED.items())
    tensors = []
    for i, ggml_type in enumerate(GGML_QUANT_SIZES):
        blck, size = GGML_QUANT_SIZES[ggml_type]
        raw = rng.integers(0, 256, (3, 2 * size), dtype=np.uint8)  # 3 rows of 2 blocks
        tensors.append((f"t{i}.{ggml_type.name}", raw, ggml_type))
    _write(path, kvs, tensors)
    return kvs, tensors


@pytest.fixture(scope="module")
def every_type(tmp_path_factory):
    path = tmp_path_factory.mktemp("rt") / "every.gguf"
    kvs, tensors = _every_type_file(path, np.random.default_rng(1234))
    return path, kvs, tensors


@pytest.mark.parametrize("use_mmap", [True, False])
def test_every_value_type_reads_back(every_type, use_mmap) -> None:
    path, kvs, _ = every_type
    gf = read(path, use_mmap=use_mmap)
    assert gf.version == 3
    assert gf.metadata["general.architecture"] == "test"
    for key, _, vtype, want in SCALARS:
        got = gf.metadata[key]
        assert got == want and type(got) is type(want), key
        assert gf.value_types[key] == (vtype,)
    for key, val, _, sub in kvs:
        if not key.startswith("arr."):
            continue
        got = gf.metadata[key]
        assert gf.value_types[key] == (T.ARRAY, sub)
        if sub == T.STRING:
            assert got == val
        else:
            assert isinstance(got, np.ndarray)
            assert got.dtype == (np.bool_ if sub == T.BOOL else np.dtype(NUM_ARRAYS_DT[sub]))
            np.testing.assert_array_equal(got, np.array(val, dtype=got.dtype))


NUM_ARRAYS_DT = {t: dt for t, dt in NUM_ARRAYS}


def test_nested_arrays_read_as_lists(every_type) -> None:
    gf = read(every_type[0])
    ints = gf.metadata["nested.int"]
    assert isinstance(ints, list) and [a.tolist() for a in ints] == NESTED["nested.int"]
    assert all(a.dtype == np.int32 for a in ints)  # GGUFWriter writes Python ints as INT32
    assert gf.metadata["nested.str"] == NESTED["nested.str"]
    deep = gf.metadata["nested.deep"]
    assert [[a.tolist() for a in inner] for inner in deep] == NESTED["nested.deep"]
    assert gf.value_types["nested.deep"] == (T.ARRAY, T.ARRAY)


def test_every_tensor_type_reads_back(every_type) -> None:
    path, _, tensors = every_type
    gf = read(path)
    assert list(gf.tensors) == [name for name, _, _ in tensors]
    for name, raw, ggml_type in tensors:
        info = gf.tensors[name]
        blck, _ = GGML_QUANT_SIZES[ggml_type]
        assert info == TensorInfo(name, (2 * blck, 3), ggml_type, info.offset, raw.nbytes)
        assert info.offset % gf.alignment == 0
        data = gf.tensor_data(name)
        assert data.dtype == np.uint8 and not data.flags.writeable
        np.testing.assert_array_equal(data, raw.reshape(-1))
    assert {t for _, _, t in tensors} == set(Q) - {t for t in Q if t not in GGML_QUANT_SIZES}


def test_synthetic_file_matches_gguf_py_reader(every_type) -> None:
    path = every_type[0]
    assert digest_emel(read(path)) == digest_gguf_py(GGUFReader(path))


def test_tensor_data_is_zero_copy_from_the_map(every_type) -> None:
    gf = read(every_type[0])
    name = next(iter(gf.tensors))
    a, b = gf.tensor_data(name), gf.tensor_data(name)
    assert np.shares_memory(a, b)
    assert np.shares_memory(a, gf.splits[0].data)


def test_tensor_array_views_plain_types(tmp_path) -> None:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    h = np.arange(8, dtype=np.float16).reshape(2, 4)
    _write(tmp_path / "a.gguf", [], [("w", w, None), ("h", h, None)])
    gf = read(tmp_path / "a.gguf")
    assert gf.tensors["w"].shape == (4, 3)  # ggml order
    np.testing.assert_array_equal(gf.tensor_array("w"), w)
    np.testing.assert_array_equal(gf.tensor_array("h"), h)
    with pytest.raises(ModelError, match="no tensor named 'nope'"):
        gf.tensor_data("nope")


def test_custom_alignment_and_gguf_v2(tmp_path) -> None:
    path = tmp_path / "al.gguf"
    _write(path, [("k", 1, T.UINT32, None)],
           [("a", np.ones(3, np.float32), None), ("b", np.ones(5, np.float32), None)], alignment=64)
    gf = read(path)
    assert gf.alignment == 64 and gf.data_offset % 64 == 0
    assert [t.offset for t in gf.tensors.values()] == [0, 64]
    raw = bytearray(path.read_bytes())
    raw[4:8] = (2).to_bytes(4, "little")
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(bytes(raw))
    gf2 = read(v2)
    assert gf2.version == 2 and gf2.tensors == gf.tensors
    np.testing.assert_array_equal(gf2.tensor_array("b"), np.ones(5, np.float32))


def _split_model(tmp_path, n_tensors=5, per_split=2):
    rng = np.random.default_rng(7)
    tensors = [(f"blk.{i}.w", rng.standard_normal((2, 3 + i)).astype(np.float32), None)
               for i in range(n_tensors)]
    _write(tmp_path / "model.gguf", [("k", 42, T.UINT32, None)], tensors,
           split_max_tensors=per_split)
    n = -(-n_tensors // per_split)
    return [tmp_path / f"model-{i + 1:05d}-of-{n:05d}.gguf" for i in range(n)], tensors


def test_split_model_reads_as_one(tmp_path) -> None:
    paths, tensors = _split_model(tmp_path)
    assert all(p.is_file() for p in paths) and len(paths) == 3
    gf = read(paths[0])
    assert gf.metadata["split.count"] == 3 and gf.metadata["k"] == 42
    assert list(gf.tensors) == [name for name, _, _ in tensors]
    assert [t.split for t in gf.tensors.values()] == [0, 0, 1, 1, 2]
    assert [s.path for s in gf.splits] == paths
    for name, arr, _ in tensors:
        np.testing.assert_array_equal(gf.tensor_array(name), arr)
        assert gf.tensors[name].shape == tuple(reversed(arr.shape))
    assert gf.n_bytes == sum(a.nbytes for _, a, _ in tensors)


def test_split_model_errors(tmp_path) -> None:
    paths, _ = _split_model(tmp_path)
    with pytest.raises(GGUFError, match="through its first split"):
        read(paths[1])
    renamed = tmp_path / "renamed.gguf"
    renamed.write_bytes(paths[0].read_bytes())
    with pytest.raises(GGUFError, match="file name does not end in -00001-of-00003.gguf"):
        read(renamed)
    paths[1].replace(tmp_path / "moved.gguf")
    with pytest.raises(GGUFError, match="cannot open"):
        read(paths[0])
    (tmp_path / "moved.gguf").replace(paths[1])
    paths[2].write_bytes(paths[1].read_bytes())  # split 3 claims to be split 2
    with pytest.raises(GGUFError, match="split.no is 1, expected 2"):
        read(paths[0])


def test_split_tensor_count_mismatch(tmp_path) -> None:
    paths, _ = _split_model(tmp_path, n_tensors=4)
    raw = bytearray(paths[0].read_bytes())
    key = b"split.tensors.count"
    at = raw.index(key) + len(key) + 4  # after the key's type
    raw[at:at + 4] = (9).to_bytes(4, "little")
    paths[0].write_bytes(bytes(raw))
    with pytest.raises(GGUFError, match="split.tensors.count is 9 but the 2 splits hold 4"):
        read(paths[0])


def test_duplicate_tensor_across_splits(tmp_path) -> None:
    paths, _ = _split_model(tmp_path, n_tensors=4)
    raw = paths[1].read_bytes().replace(b"blk.2.w", b"blk.0.w")
    paths[1].write_bytes(raw)
    with pytest.raises(GGUFError, match="'blk.0.w' is duplicated across splits"):
        read(paths[0])


def test_closed_file_refuses_tensor_data(every_type) -> None:
    with read(every_type[0]) as gf:
        name = next(iter(gf.tensors))
        assert gf.tensor_data(name).nbytes == gf.tensors[name].nbytes
    with pytest.raises(GGUFError, match="closed"):
        gf.tensor_data(name)
