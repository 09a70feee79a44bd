"""Device selection: which backend runs the decoder graph ("cpu" or "cuda").

`import emel` never imports numba.cuda; it is imported here only when "cuda" (or "auto") is asked
for, through kernels/cuda/runtime.py. With NUMBA_ENABLE_CUDASIM=1 set before Numba starts, "cuda"
runs on Numba's CUDA simulator (tests only: it is very slow).
"""

from __future__ import annotations

from .errors import UnsupportedError

DEVICES = ("cpu", "cuda")


def resolve_device(name: str | None = "cpu") -> str:
    """The backend for a device name: "cpu", "cuda" (also "gpu", "cuda:0") or "auto".

    "auto" picks "cuda" when it is usable, else "cpu". Raises UnsupportedError for an unknown
    name, or for "cuda" when numba.cuda or a GPU (and the simulator) is missing.
    """
    key = "cpu" if name is None else str(name).strip().lower()
    if key == "auto":
        ok, _ = cuda_status()
        return "cuda" if ok else "cpu"
    if key in ("gpu", "cuda:0"):
        key = "cuda"
    if key not in DEVICES:
        raise UnsupportedError(f"device {name!r} is not supported (expected one of "
                               f"{', '.join(DEVICES)} or 'auto')")
    if key == "cuda":
        ok, reason = cuda_status()
        if not ok:
            raise UnsupportedError(f"device 'cuda' is not available: {reason}")
    return key


def cuda_status() -> tuple[bool, str]:
    """(usable, reason) for the CUDA backend; never raises."""
    try:
        from kernels.cuda import runtime  # noqa: PLC0415 - imports numba.cuda
    except ImportError as e:
        return False, f"numba.cuda cannot be imported ({e}); install the 'cuda' extra (numba-cuda)"
    return runtime.status()
