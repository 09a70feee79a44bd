"""CPU kernels (@njit, cache=True).

Importing this package first makes Numba keep cache-loaded kernels' IR as bitcode until it is
linked against (kernels/cpu/lazy_ir.py): the parsed IR would cost more memory than the code.
"""

from . import lazy_ir as _lazy_ir

_lazy_ir.install()
