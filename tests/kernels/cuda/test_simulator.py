"""kernels/cuda/simulator.py: the fixes to Numba's CUDA simulator that the simulator tests rely on.

Numba's simulator (0.68) creates a block's `cuda.shared.array` with get-then-set on a dict; two
CUDA threads (Python threads) that both find no array get different arrays, and a shared-memory
reduction then reads uninitialised memory. That race made tests/test_context_cuda.py flaky (rare,
~1 launch in thousands, logits off by up to ~1.4x max |logit|). Here the race window is forced
open deterministically: both threads are held inside the dictionary lookup until both have
looked, then each creates its array.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

_CODE = r"""
import threading
import numpy as np
from numba.cuda.simulator import kernelapi
numba_array = kernelapi.FakeCUDAShared.array  # Numba's own, before kernels.cuda patches it
from kernels.cuda import simulator
from numba import cuda

class Gate(dict):
    # dict.get holds each of the first two callers until both have looked
    def __init__(self):
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=20)
        self.n = 0
    def get(self, key, default=None):
        r = dict.get(self, key, default)
        self.n += 1
        if self.n <= 2:
            self.barrier.wait()
        return r

def same_array(array_fn):
    shared = kernelapi.FakeCUDAShared(0)
    shared._allocations = Gate()
    got = [None, None]
    def thread(i):
        got[i] = array_fn(shared, 8, np.float32)  # one call site for both threads
    ts = [threading.Thread(target=thread, args=(i,)) for i in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
    return got[0] is got[1]

@cuda.jit
def block_sum(out):
    sh = cuda.shared.array(4, np.float32)
    sh[cuda.threadIdx.x] = cuda.threadIdx.x + 1
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        out[0] = sh[0] + sh[1] + sh[2] + sh[3]

o = np.zeros(1, np.float32)
block_sum[1, 4](o)
print("numba", same_array(numba_array))
print("patched", same_array(kernelapi.FakeCUDAShared.array))
print("installed", kernelapi.FakeCUDAShared.array is simulator._shared_array)
print("kernel", float(o[0]))
"""


def test_simulator_shared_array_is_one_array_per_block_under_a_forced_race():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _CODE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert out["installed"] == "True"
    assert out["patched"] == "True", "threads of one block got different shared arrays"
    assert out["kernel"] == "10.0"  # the allocation still works inside a simulated kernel
    # Numba's own allocation in the same forced interleaving: the race, i.e. the gate works (if a
    # Numba release fixes the race, this fails: then kernels/cuda/simulator.install can go)
    assert out["numba"] == "False", "Numba's FakeCUDAShared.array no longer races"
