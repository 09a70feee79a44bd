"""Threading defaults for Numba's parallel kernels (see plans/perf.md, section 3).

libgomp (Numba's 'omp' threading layer) reads its environment once, when the first parallel
kernel loads it, so `apply_defaults()` must run before any parallel kernel is called (at
`import emel` time). Explicit user settings always win: a variable already in the environment is
never changed.

Measured on the 2-core machine (SmolLM2 decode, 2 threads): OMP_WAIT_POLICY=ACTIVE or libgomp's
default 300k-iteration spin collapse to ~1 tok/s when another process holds the second core;
PASSIVE never collapses but halves decode speed on a quiet machine (~50 vs ~100 tok/s: a decode
step is ~240 short parallel calls and waking a sleeping peer costs tens of us each); a bounded
spin (GOMP_SPINCOUNT=20000, tens of us) keeps the quiet-machine speed and gives the core back
soon under load. The 'workqueue' layer costs ~51 us per parallel call against omp's ~9 us.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from collections.abc import MutableMapping

SPINCOUNT = "20000"


def omp_available() -> bool:
    """Whether Numba's OpenMP threading layer is installed (checked without importing numba, so
    that `import emel` stays light and NUMBA_THREADING_LAYER is set before numba reads it)."""
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.submodule_search_locations:
        return False
    ufunc = Path(next(iter(spec.submodule_search_locations))) / "np" / "ufunc"
    return any(ufunc.glob("omppool*"))


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set emel's threading defaults in `environ` (os.environ by default) where the user set
    nothing; returns the variables it set."""
    env = os.environ if environ is None else environ
    set_now: dict[str, str] = {}
    if "NUMBA_THREADING_LAYER" not in env and omp_available():
        set_now["NUMBA_THREADING_LAYER"] = "omp"
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        set_now["GOMP_SPINCOUNT"] = SPINCOUNT
    env.update(set_now)
    return set_now
