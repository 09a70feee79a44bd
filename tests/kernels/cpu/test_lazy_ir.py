"""kernels/cpu/lazy_ir.py: cached kernels load without their parsed IR, and still link."""

import json
import os
import subprocess
import sys
import textwrap

import llvmlite.binding as ll
import numpy as np
from numba import njit

from kernels.cpu import lazy_ir


@njit(cache=False)
def _callee(x):
    return np.float32(x) * np.float32(0.5) + np.float32(1.0)


@njit(cache=False)
def _caller(a):
    s = np.float32(0.0)
    for i in range(a.shape[0]):
        s += _callee(a[i])
    return s


def _object_and_bitcode(dispatcher):
    library = dispatcher.overloads[dispatcher.signatures[0]].library
    name, kind, (obj, bitcode) = library.serialize_using_object_code()
    assert kind == "object"
    return bytes(obj), bitcode


def test_elf_symbols_are_the_ir_defined_names_less_private_ones():
    _caller(np.arange(4, dtype=np.float32))
    obj, bitcode = _object_and_bitcode(_caller)
    mod = ll.parse_bitcode(bitcode)
    ir_names = {gv.name for group in (mod.functions, mod.global_variables) for gv in group
                if not gv.is_declaration and gv.linkage != ll.Linkage.private}
    elf_names = lazy_ir.elf_defined_symbols(obj)
    assert elf_names == ir_names
    assert any("_caller" in n for n in elf_names)


def test_elf_reader_rejects_what_is_not_an_elf64_object():
    assert lazy_ir.elf_defined_symbols(b"") is None
    assert lazy_ir.elf_defined_symbols(b"\x7fELF" + b"\x01" * 60) is None  # ELF32
    assert lazy_ir.elf_defined_symbols(b"MZ" + b"\0" * 100) is None


def test_importing_kernels_cpu_installs_the_patch():
    assert lazy_ir.install() is lazy_ir.installed()
    assert lazy_ir.installed() or os.environ.get("EMEL_NUMBA_EAGER_IR", "") not in ("", "0")


_MODULE = '''
from numba import njit

@njit(cache=True)
def g(x):
    return x * 2 + 1
'''

_PROBE = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import kernels.cpu  # installs the patch (unless EMEL_NUMBA_EAGER_IR=1)
from kernels.cpu import lazy_ir
from numba import njit
import cachedmod
out = {"installed": lazy_ir.installed(), "g": cachedmod.g(20)}
lib = cachedmod.g.overloads[cachedmod.g.signatures[0]].library
out["hits"] = sum(cachedmod.g.stats.cache_hits.values())
out["ir_parsed_at_load"] = lib._shared_module is not None

@njit
def h(x):
    return cachedmod.g(x) + 100

out["h"] = h(20)
out["ir_parsed_after_link"] = lib._shared_module is not None
print(json.dumps(out))
'''


def _run_probe(tmp_path, env_extra):
    env = dict(os.environ, **env_extra)
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "cache")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE)
    p = subprocess.run([sys.executable, str(probe), str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_cache_loaded_kernel_runs_and_links_with_its_ir_parsed_on_demand(tmp_path):
    (tmp_path / "cachedmod.py").write_text(textwrap.dedent(_MODULE))
    first = _run_probe(tmp_path, {"EMEL_NUMBA_EAGER_IR": "0"})  # compiles g, writes the cache
    assert first["hits"] == 0 and first["g"] == 41 and first["h"] == 141
    lazy = _run_probe(tmp_path, {"EMEL_NUMBA_EAGER_IR": "0"})
    assert lazy["installed"] and lazy["hits"] == 1
    assert lazy["g"] == 41 and lazy["h"] == 141
    assert not lazy["ir_parsed_at_load"] and lazy["ir_parsed_after_link"]
    eager = _run_probe(tmp_path, {"EMEL_NUMBA_EAGER_IR": "1"})
    assert not eager["installed"] and eager["hits"] == 1
    assert eager["g"] == 41 and eager["h"] == 141 and eager["ir_parsed_at_load"]
