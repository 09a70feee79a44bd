"""GEGLU and SwiGLU, 16 values per step (llama.cpp ggml_vec_geglu_f32 / ggml_vec_swiglu_f32).

ggml (GGML_GELU_FP16) computes gelu_tanh(x) * g per value as: 0 for x <= -10, x * g for x >= 10,
otherwise table[fp16(x)] * g, where fp16() rounds to nearest, ties to even (F16C vcvtps2ph on
x86) and table holds gelu of every F16 value rounded to F16 (kernels.cpu.ops.gelu_f16_table).
`geglu_f32` here does exactly that (kernels.cpu.ops.geglu_f32 is the scalar specification, with a
software F16 rounding): the rounding is LLVM `fptrunc <16 x float> to <16 x half>`, the lookups
16 scalar loads, the two limits selects. The only possible difference from the scalar kernel is the
payload of a NaN input's rounded bits, and every NaN pattern of the table maps to NaN.

    geglu_f32(x, g, out, n, gelu_table): out[i] = geglu(x[i], g[i]) for i < n
        x, g, out: float32[>= n]; gelu_table: float32[65536] (the caller checks the sizes)

SwiGLU follows ggml_vec_swiglu_f32 (AVX-512 build): silu(x) * g with silu(x) = x / (1 + e) where
e = ggml_v_expf(-x) on blocks of 16 and expf on the tail. `swiglu_f32` has the arguments and the
bits of kernels.cpu.ops.swiglu_f32 (its scalar specification); the 16-lane blocks use
kernels.cpu.attention_simd's vector ggml_v_expf (ops.v_expf's operations, branches as selects).

Intrinsics inline into their callers: bump GLU_VERSION when the IR changes.
"""

from __future__ import annotations

import llvmlite.ir as ir
from numba import njit, types
from numba.extending import intrinsic

from kernels.cpu.attention_simd import _v_expf
from kernels.cpu.ops import geglu_f32 as _geglu_scalar
from kernels.cpu.ops import swiglu_f32 as _swiglu_scalar

GLU_VERSION = 3

_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_V16F = ir.VectorType(_F32, 16)
_V16H = ir.VectorType(ir.HalfType(), 16)
_V16I16 = ir.VectorType(ir.IntType(16), 16)
_V16I32 = ir.VectorType(_I32, 16)


@intrinsic
def _geglu16(typingctx, x, g, out, i, table):
    """out[i:i+16] = geglu(x[i:i+16], g[i:i+16]) with ggml's table (see the module docstring)."""
    sig = types.void(x, g, out, i, table)

    def codegen(context, b, signature, args):
        arr = [context.make_array(signature.args[k])(context, b, args[k]).data for k in (0, 1, 2, 4)]
        xp, gp, op, tp = arr
        ix = context.cast(b, args[3], signature.args[3], types.int64)

        def vptr(p):
            return b.bitcast(b.gep(p, [ix], inbounds=True), _V16F.as_pointer())

        vx = b.load(vptr(xp), align=4)
        vg = b.load(vptr(gp), align=4)
        bits = b.zext(b.bitcast(b.fptrunc(vx, _V16H), _V16I16), _V16I32)
        t = ir.Constant(_V16F, None)
        for k in range(16):  # 16 scalar loads: cheaper than vgatherdps on Zen 4, portable
            ik = b.extract_element(bits, ir.Constant(_I32, k))
            t = b.insert_element(t, b.load(b.gep(tp, [ik], inbounds=True)), ir.Constant(_I32, k))
        lo = b.fcmp_ordered("<=", vx, ir.Constant(_V16F, [-10.0] * 16))
        hi = b.fcmp_ordered(">=", vx, ir.Constant(_V16F, [10.0] * 16))
        mid = b.select(lo, ir.Constant(_V16F, [0.0] * 16), b.fmul(t, vg))
        r = b.select(hi, b.fmul(vx, vg), mid)
        b.store(r, vptr(op), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def geglu_f32(x, g, out, n, gelu_table):
    """out = gelu_tanh(x) * g through ggml's F16 table, 16 values per step (module docstring)."""
    n16 = n - n % 16
    for i in range(0, n16, 16):
        _geglu16(x, g, out, i, gelu_table)
    if n16 < n:
        _geglu_scalar(x[n16:n], g[n16:n], out[n16:n], n - n16, gelu_table)


@intrinsic
def _swiglu16(typingctx, x, xo, g, go, out, oo):
    """out[oo:oo+16] = x / (1 + v_expf(-x)) * g over x[xo:xo+16], g[go:go+16]."""
    sig = types.void(x, xo, g, go, out, oo)

    def codegen(context, b, signature, args):
        def vptr(k_arr, k_off):
            p = context.make_array(signature.args[k_arr])(context, b, args[k_arr]).data
            i = context.cast(b, args[k_off], signature.args[k_off], types.int64)
            return b.bitcast(b.gep(p, [i], inbounds=True), _V16F.as_pointer())

        vx = b.load(vptr(0, 1), align=4)
        vg = b.load(vptr(2, 3), align=4)
        one = ir.Constant(_V16F, [1.0] * 16)
        silu = b.fdiv(vx, b.fadd(one, _v_expf(b, b.fneg(vx))))
        b.store(b.fmul(silu, vg), vptr(4, 5), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def swiglu_f32(x, g, out, n_rows, n_cols, x_stride, g_stride):
    """out[r] = silu(x[r]) * g[r] (ggml_vec_swiglu_f32), rows of x and g at r * x_stride and
    r * g_stride: kernels.cpu.ops.swiglu_f32's arguments and bits, 16 values per step."""
    n16 = n_cols & ~15
    for r in range(n_rows):
        xb = r * x_stride
        gb = r * g_stride
        ob = r * n_cols
        for c in range(0, n16, 16):
            _swiglu16(x, xb + c, g, gb + c, out, ob + c)
        if n16 < n_cols:  # the tail as ops.swiglu_f32 does it (expf, fewer than 16 values)
            _swiglu_scalar(x[xb + n16:], g[gb + n16:], out[ob + n16:ob + n_cols], 1, n_cols - n16,
                           0, 0)
