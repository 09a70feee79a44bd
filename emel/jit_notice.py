"""Tell the user when Numba compiles kernels (a cold cache), so a first run is not a silent wait.

Numba raises its "numba:compile" event only when a kernel is not in its cache. The first run of a
model compiles its kernels (2-3 minutes on 2 cores) and later processes load them in under a
second; llama.cpp has no such step, so `python -m emel.run` says what is happening on stderr.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

MESSAGE = ("emel: compiling kernels into Numba's cache (first run only: 2-3 minutes on 2 cores; "
           "later runs load them in about a second) ...\n")


class CompileNotice:
    """Counts top-level Numba compiles and their seconds; writes MESSAGE before the first one."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write
        self.count = 0  # top-level compiles (a kernel's callees compile inside it)
        self.seconds = 0.0
        self._depth = 0
        self._t0 = 0.0

    def on_start(self, event) -> None:
        if self._depth == 0:
            if self.count == 0:
                self.write(MESSAGE)
            self._t0 = time.perf_counter()
        self._depth += 1

    def on_end(self, event) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.count += 1
            self.seconds += time.perf_counter() - self._t0

    def summary(self) -> str:
        """One line for the end of a run, or "" when nothing was compiled."""
        if not self.count:
            return ""
        return (f"emel: compiled {self.count} kernels in {self.seconds:.0f} s; "
                "later runs load them from the cache")


@contextlib.contextmanager
def announce_compiles(write: Callable[[str], object]) -> Iterator[CompileNotice]:
    """Within the block, every Numba compile (cache miss) is counted and the first announced."""
    from numba.core import event

    notice = CompileNotice(write)

    class _Listener(event.Listener):
        def on_start(self, ev) -> None:
            notice.on_start(ev)

        def on_end(self, ev) -> None:
            notice.on_end(ev)

    with event.install_listener("numba:compile", _Listener()):
        yield notice
