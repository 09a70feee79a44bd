"""Record gguf-py GGUFReader's view of the real GGUF files as digests (gguf_py_digest.json).

GGUFReader needs 1-25 s per vocabulary file (about 2 minutes for all), too slow for every test
run, so tests/gguf/test_reader_parity.py compares emel.gguf.read against this record (and against
GGUFReader directly on the small files). Regenerate with:

    python parity_fixtures/gguf/make_digest.py
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import gguf
from gguf import GGUFReader

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "gguf"))

import assets  # noqa: E402
from _digest import digest_gguf_py  # noqa: E402

OUT = Path(__file__).with_name("gguf_py_digest.json")


def file_id(path: Path) -> dict:
    """Size and sha256 of the first MiB, to notice a different file under the same name."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    return {"size": path.stat().st_size, "sha256_first_mib": hashlib.sha256(head).hexdigest()}


def main() -> None:
    files = {"model:smollm2-135m": assets.model_path("smollm2-135m"),
             "model:gemma3-270m": assets.model_path("gemma3-270m")}
    for p in sorted(assets.vocab_dir().glob("ggml-vocab-*.gguf")):
        files["vocab:" + p.name] = p
    out = {"generator": "gguf-py GGUFReader", "gguf_version": gguf.__version__
           if hasattr(gguf, "__version__") else _gguf_version(), "files": {}}
    for label, path in files.items():
        t0 = time.perf_counter()
        d = digest_gguf_py(GGUFReader(path))
        d.update(file_id(path))
        out["files"][label] = d
        print(f"{label}: {len(d['kv'])} keys, {len(d['tensors'])} tensors, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")


def _gguf_version() -> str:
    from importlib.metadata import version
    return version("gguf")


if __name__ == "__main__":
    main()
