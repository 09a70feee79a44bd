"""Whether the CUDA kernels can run here: a GPU and driver, or Numba's CUDA simulator.

Imported by emel/device.py, so that `numba.cuda` stays inside kernels/cuda.
"""

from numba import config, cuda


def simulator() -> bool:
    """True when Numba runs CUDA kernels on its simulator (NUMBA_ENABLE_CUDASIM=1, read by Numba
    when it starts); kernels then run as Python on the CPU, slowly, for tests."""
    return bool(config.ENABLE_CUDASIM)


def status() -> tuple[bool, str]:
    """(usable, reason): usable when the simulator is on or a CUDA GPU and driver are present."""
    if simulator():
        return True, "Numba CUDA simulator"
    try:
        if not cuda.is_available():
            return False, "numba.cuda found no usable NVIDIA GPU or CUDA driver"
        dev = cuda.get_current_device()
    except cuda.CudaSupportError as e:  # driver present but broken
        return False, f"CUDA driver error: {e}"
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return True, f"{name} (compute capability {dev.compute_capability[0]}.{dev.compute_capability[1]})"


def to_device(a):
    """A device copy of the host array a (numba.cuda.to_device)."""
    return cuda.to_device(a)


def device_array(n: int, dtype):
    """An uninitialised 1-D device array of n values."""
    return cuda.device_array(int(n), dtype=dtype)
