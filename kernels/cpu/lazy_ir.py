"""Keep cache-loaded kernels' LLVM IR as bitcode until something links against it.

A kernel loaded from Numba's disk cache arrives as object code plus the bitcode of its whole
optimized module (every callee inlined), which Numba parses at once and keeps: a later compile of
a caller could inline it. emel runs cached kernels and hardly ever compiles against them, and the
parsed IR is about ten times the size of the machine code: matmul_q3 alone holds ~8 MiB, the
first token of SmolLM2 ~17 MiB (plans/perf.md section 8).

`install()` changes two methods of Numba's `CPUCodeLibrary`, process-wide:

- loading: the engine learns the library's defined symbols from the object's ELF symbol table
  (the same names the parsed IR gives, less its private constants), and the bitcode stays bytes;
- `_get_module_for_linking`: parses those bytes on the first link, as Numba would have at load.

Nothing else changes: the machine code run is the cached object, and a compile that links a
cached kernel gets the same module as before. The patch applies only to the Numba internals it
was written against (checked by name); set EMEL_NUMBA_EAGER_IR=1 to leave Numba untouched.
"""

from __future__ import annotations

import os
import struct

_SHT_SYMTAB = 2
_STT_SECTION = 3
_STT_FILE = 4
_SHN_UNDEF = 0


def elf_defined_symbols(obj: bytes) -> set[str] | None:
    """Names of the symbols an ELF64 little-endian object defines; None if it is not one.

    Section and file symbols are left out, as are undefined ones (st_shndx == SHN_UNDEF).
    """
    if len(obj) < 64 or obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        return None
    (e_shoff,) = struct.unpack_from("<Q", obj, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", obj, 0x3A)
    if e_shentsize < 64 or e_shoff + e_shnum * e_shentsize > len(obj):
        return None
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, e_shoff + i * e_shentsize)
                for i in range(e_shnum)]
    names: set[str] = set()
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if kind != _SHT_SYMTAB:
            continue
        if entsize != 24 or offset + size > len(obj) or link >= e_shnum:
            return None
        strtab = sections[link][4]
        for j in range(size // 24):
            st_name, st_info, _other, st_shndx, _value, _size = struct.unpack_from(
                "<IBBHQQ", obj, offset + 24 * j)
            if st_shndx == _SHN_UNDEF or st_name == 0 or (st_info & 0xF) in (_STT_SECTION, _STT_FILE):
                continue
            start = strtab + st_name
            end = obj.find(b"\0", start)
            if end < 0:
                return None
            names.add(obj[start:end].decode("utf-8", "surrogateescape"))
    return names


_installed = False


def installed() -> bool:
    """Whether `install()` patched Numba in this process."""
    return _installed


def install() -> bool:
    """Patch Numba's cache loading (idempotent); False when disabled or Numba does not match."""
    global _installed
    if _installed:
        return True
    if os.environ.get("EMEL_NUMBA_EAGER_IR", "") not in ("", "0"):
        return False
    try:
        import llvmlite.binding as ll
        from numba.core import codegen
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    lib = getattr(codegen, "CPUCodeLibrary", None)
    needed = ("_unserialize", "_get_module_for_linking", "enable_object_caching",
              "_set_compiled_object", "_finalize_final_module")
    if lib is None or not all(hasattr(lib, n) for n in needed):
        return False
    eager_unserialize = lib._unserialize.__func__
    eager_module_for_linking = lib._get_module_for_linking

    def _unserialize(cls, codegen_, state):
        name, kind, data = state
        if kind != "object":
            return eager_unserialize(cls, codegen_, state)
        object_code, shared_bitcode = data
        symbols = elf_defined_symbols(bytes(object_code))
        engine = getattr(codegen_, "_engine", None)
        if symbols is None or not isinstance(getattr(engine, "_defined_symbols", None), set):
            return eager_unserialize(cls, codegen_, state)
        self = codegen_.create_library(name)
        assert isinstance(self, cls)
        self.enable_object_caching()
        self._set_compiled_object(object_code)
        self._emel_bitcode = shared_bitcode
        self._finalize_final_module()
        engine._defined_symbols |= symbols
        return self

    def _get_module_for_linking(self):
        bitcode = getattr(self, "_emel_bitcode", None)
        if bitcode is not None and self._shared_module is None:
            self._shared_module = ll.parse_bitcode(bitcode)
            self._emel_bitcode = None
        return eager_module_for_linking(self)

    lib._unserialize = classmethod(_unserialize)
    lib._get_module_for_linking = _get_module_for_linking
    _installed = True
    return True
