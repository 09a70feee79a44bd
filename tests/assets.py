"""Test assets fetched by the project's own code into the emel cache (never committed).

- `llama_cpp_dir()`: llama.cpp's source tree from the llama-cpp-python sdist (its `models/`
  folder has the `ggml-vocab-*.gguf` tokenizer vocabularies with `.inp`/`.out` expectations).
- `model_path(name)`: a catalog model, fetched if missing.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from emel import catalog

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"


def llama_cpp_dir() -> Path:
    """vendor/llama.cpp of the llama-cpp-python sdist, downloaded and unpacked once."""
    root = catalog.cache_dir() / "llama-cpp-python-sdist"
    marker = root / ".complete"
    tree = root / "llama.cpp"
    if marker.is_file():
        return tree
    sdist = catalog.pip_download(LLAMA_CPP_PYTHON, root / "dl", binary=False)
    tmp = root / "unpack.tmp"
    with tarfile.open(sdist) as tf:
        prefix = tf.getnames()[0].split("/")[0] + "/vendor/llama.cpp/"
        keep = ("models/", "tests/", "src/", "common/", "ggml/include/", "grammars/")
        members = [m for m in tf.getmembers()
                   if m.name.startswith(prefix) and m.name[len(prefix):].startswith(keep)
                   and (m.isfile() or m.isdir())]
        tf.extractall(tmp, members=members, filter="data")
    src = tmp / prefix.rstrip("/")
    if tree.exists():
        import shutil
        shutil.rmtree(tree)
    os.replace(src, tree)
    sdist.unlink()
    marker.write_text(LLAMA_CPP_PYTHON + "\n")
    return tree


def vocab_dir() -> Path:
    return llama_cpp_dir() / "models"


def model_path(name: str) -> Path:
    return catalog.fetch(name)
