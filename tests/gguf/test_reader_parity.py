"""emel.gguf.read sees what gguf-py's GGUFReader sees in the real files: every key, type and
value, every tensor's name, shape, type, offset and size.

GGUFReader takes 1-30 s per file (about 3 minutes for all of them), so the full set is compared
against parity_fixtures/gguf/gguf_py_digest.json (made by make_digest.py from GGUFReader), and the
digest method itself is checked against a live GGUFReader on the smaller files and on Gemma-3.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from emel.gguf import read

from _digest import digest_emel, digest_gguf_py

DIGEST = Path(__file__).resolve().parents[2] / "parity_fixtures" / "gguf" / "gguf_py_digest.json"
RECORD = json.loads(DIGEST.read_text())["files"]


def _path(label: str, request) -> Path:
    kind, name = label.split(":", 1)
    if kind == "model":
        fixture = {"smollm2-135m": "smollm2_path", "gemma3-270m": "gemma3_path"}[name]
        return request.getfixturevalue(fixture)
    return request.getfixturevalue("vocab_dir") / name


def _file_id(path: Path) -> dict:
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    return {"size": path.stat().st_size, "sha256_first_mib": hashlib.sha256(head).hexdigest()}


def test_digest_covers_every_vocab_file(vocab_dir) -> None:
    on_disk = {"vocab:" + p.name for p in vocab_dir.glob("ggml-vocab-*.gguf")}
    recorded = {k for k in RECORD if k.startswith("vocab:")}
    assert on_disk == recorded and len(on_disk) >= 15


@pytest.mark.parametrize("label", sorted(RECORD))
def test_metadata_and_tensor_table_match_gguf_py(label: str, request) -> None:
    path = _path(label, request)
    want = dict(RECORD[label])
    assert _file_id(path) == {"size": want.pop("size"),
                              "sha256_first_mib": want.pop("sha256_first_mib")}, \
        f"{path} is not the file the digest was made from; rerun make_digest.py"
    got = digest_emel(read(path))
    assert list(got["kv"]) == list(want["kv"])
    for key in want["kv"]:
        assert got["kv"][key] == want["kv"][key], key
    assert got["tensors"] == want["tensors"]
    assert (got["alignment"], got["data_offset"]) == (want["alignment"], want["data_offset"])


@pytest.mark.parametrize("name", ["ggml-vocab-bert-bge.gguf"])
def test_vocab_matches_live_gguf_py_reader(vocab_dir, name: str) -> None:
    path = vocab_dir / name
    assert digest_emel(read(path)) == digest_gguf_py(GGUFReader(path))


def test_smollm2_matches_live_gguf_py_reader(smollm2_path) -> None:
    reader = GGUFReader(smollm2_path)
    gf = read(smollm2_path)
    assert digest_emel(gf) == digest_gguf_py(reader)
    _same_values_and_data(gf, reader)


@pytest.mark.slow
def test_gemma3_matches_live_gguf_py_reader(gemma3_path) -> None:
    reader = GGUFReader(gemma3_path)
    gf = read(gemma3_path)
    assert digest_emel(gf) == digest_gguf_py(reader)
    _same_values_and_data(gf, reader)


def _same_values_and_data(gf, reader) -> None:
    """Values compared as GGUFReader's contents(), and tensor bytes at the same file offsets."""
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        got = gf.metadata[key]
        want = field.contents()
        if isinstance(got, np.ndarray):
            np.testing.assert_array_equal(got, np.array(want, dtype=got.dtype), err_msg=key)
        else:
            assert got == want, key
    for t in reader.tensors:
        assert gf.file_offset(t.name) == t.data_offset
        data = gf.tensor_data(t.name)
        assert data.nbytes == t.n_bytes
        assert np.array_equal(data[:4096], t.data.reshape(-1).view(np.uint8)[:4096]), t.name
