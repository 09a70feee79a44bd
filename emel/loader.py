"""Open a model file: the parsed GGUF, its architecture and hparams, its tensors checked.

Follows llama.cpp src/llama-model-loader.cpp (llama_model_loader: metadata from the first split,
`general.architecture` picks the architecture, hparams read once, tensors checked against the
architecture, load progress reported per tensor as `progress(done_bytes, total_bytes)`).
The tensor data stays in the file's memory map (or in memory when `use_mmap=False`); loading
touches every page of it once so the first decode step does not pay for page faults.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import gguf
from .errors import ModelError, UnsupportedError

ProgressFn = Callable[[int, int], Any]

_PAGE = 4096


@dataclass(eq=False)
class ModelFile:
    """A model file opened for inference (or for its vocabulary only)."""

    path: Path
    gguf: gguf.GGUFFile
    arch: str  # general.architecture
    hparams: Any  # the architecture's HParams
    vocab_only: bool = False

    @property
    def metadata(self) -> dict[str, Any]:
        return self.gguf.metadata


def load_model_file(path: str | os.PathLike, vocab_only: bool = False, use_mmap: bool = True,
                    progress: ProgressFn | None = None) -> ModelFile:
    """Parse `path`, read its hparams through the architecture registry and check its tensors.

    `vocab_only` reads metadata only (hparams with `vocab_only=True`, no tensor checks).
    `progress(done_bytes, total_bytes)` is called once before the first tensor and after each.
    """
    path = Path(path)
    gf = gguf.read(path, use_mmap=use_mmap, lazy_strings=True)
    arch = gf.metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ModelError(f"{path}: general.architecture is missing or not a string ({arch!r})")
    module = _arch_module(arch)
    hparams = _load_hparams(module, gf.metadata, vocab_only)
    if not vocab_only:
        check = getattr(module, "check_tensors", None)
        if check is None:
            raise UnsupportedError(f"architecture {arch!r} offers no check_tensors")
        check(gf, hparams)
        _touch_tensors(gf, use_mmap, progress)
    return ModelFile(path=path, gguf=gf, arch=arch, hparams=hparams, vocab_only=vocab_only)


def _arch_module(arch: str):
    """The architecture module from emel.models' registry (imported lazily)."""
    try:
        models = importlib.import_module("emel.models")
    except ImportError as e:
        raise UnsupportedError(f"architecture {arch!r}: no model registry ({e})") from e
    get_arch = getattr(models, "get_arch", None)
    if get_arch is None:
        raise UnsupportedError(f"architecture {arch!r}: emel.models has no get_arch registry")
    try:
        module = get_arch(arch)
    except ModuleNotFoundError as e:  # registered, but its module is not there (yet)
        if not (e.name or "").startswith("emel.models."):
            raise
        raise UnsupportedError(f"architecture {arch!r}: its module is missing ({e})") from e
    if module is None:
        raise UnsupportedError(f"unknown model architecture {arch!r}")
    return module


def _load_hparams(module, metadata: dict[str, Any], vocab_only: bool):
    load = module.load_hparams
    if "vocab_only" in inspect.signature(load).parameters:
        return load(metadata, vocab_only=vocab_only)
    return load(metadata)


def _touch_tensors(gf: gguf.GGUFFile, use_mmap: bool, progress: ProgressFn | None) -> None:
    """Fault in every page of every tensor (one byte per page), reporting progress."""
    total = gf.n_bytes
    done = 0
    if progress is not None:
        progress(0, total)
    for name, info in gf.tensors.items():
        if use_mmap and info.nbytes:
            data = gf.tensor_data(name)
            np.bitwise_or.reduce(data[::_PAGE])
        done += info.nbytes
        if progress is not None:
            progress(done, total)
