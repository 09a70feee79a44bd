"""Hostile-input worker: hypothesis mutates and truncates GGUF headers and parses them.

Run as a subprocess by test_fuzz.py so that a crash (segfault, abort), a hang or a runaway
allocation fails that test instead of taking down pytest. Exits 0 when every parse either
succeeded or raised GGUFError; any other exception propagates (exit 1, with hypothesis' minimal
failing example on stderr). Usage: _fuzz_worker.py SEED_FILE... --examples N
"""

from __future__ import annotations

import resource
import struct
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emel import GGUFError
from emel.gguf import read_buffer

MAX_MEMORY = 3 << 30  # a multi-GB allocation fails here with MemoryError, which fails the test
INTERESTING = [0, 1, 2, 3, 7, 8, 9, 12, 13, 31, 32, 63, 64, 255, 256, 2**16 - 1, 2**31 - 1,
               2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]


def main(argv: list[str]) -> int:
    n_examples = int(argv[argv.index("--examples") + 1])
    seeds = [open(p, "rb").read(64 * 1024) for p in argv if p.endswith(".gguf")]
    resource.setrlimit(resource.RLIMIT_AS, (MAX_MEMORY, MAX_MEMORY))
    counts = {"ok": 0, "GGUFError": 0}

    @st.composite
    def hostile(draw):
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 6))):
            near_header = draw(st.booleans())
            pos = draw(st.integers(0, min(len(data), 600 if near_header else len(data)) - 1))
            kind = draw(st.sampled_from(["byte", "u32", "u64"]))
            if kind == "byte":
                data[pos] = draw(st.integers(0, 255))
                continue
            size, fmt = (4, "<I") if kind == "u32" else (8, "<Q")
            value = draw(st.sampled_from(INTERESTING) | st.integers(0, 2**(8 * size) - 1))
            value &= 2**(8 * size) - 1
            if pos + size <= len(data):
                data[pos:pos + size] = struct.pack(fmt, value)
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
        return bytes(data)

    @settings(max_examples=n_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(hostile())
    def parse_never_crashes(data: bytes) -> None:
        try:
            gf = read_buffer(data)
        except GGUFError:
            counts["GGUFError"] += 1
            return
        for name in gf.tensors:
            assert gf.tensor_data(name).nbytes == gf.tensors[name].nbytes
            gf.tensor_array(name)
        counts["ok"] += 1

    parse_never_crashes()
    print(f"parsed {counts['ok']}, GGUFError {counts['GGUFError']}")
    return 0


if __name__ == "__main__":
    np.seterr(all="raise")
    sys.exit(main(sys.argv[1:]))
