"""The decoder context on an NVIDIA GPU: the CPU Context with the graph, arena and KV cache on the device.

`CudaContext` has the interface of emel.context.Context (decode, get_logits_ith, get_logits,
get_embeddings_ith, memory_*): it reuses that class for batch validation, ubatch splitting, output
bookkeeping and the KV cells (positions, slots, masks), and replaces the per-ubatch graph with a
device twin of the arch's `build_graph` (emel/models/<arch>.py) built from kernels/cuda/ops.py and
kernels/cuda/matmul.py. Weights, the K/V storage (F16 values held as float32, like the CPU store)
and the activations (a bump arena of float32, reset per layer, plus the residual stream) live on
the device; logits (and embeddings when asked for) come back to the host.

Supported architectures: llama, qwen2, qwen3 (one graph), gemma3 and phi3. Others raise
UnsupportedError.
Only logits (and embeddings when asked for) cross to the host: the matmul activation is converted
to the weight's vec_dot_type on the device (kernels/cuda/q8.py, bit-equal to the CPU's
kernels.cpu.matmul.quantize_act), into one reserved byte buffer.
Every matmul follows the CPU's float order, bit for bit: Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, Q4_K/Q5_K/
Q6_K and BF16 (kernels.cuda.matmul.matmul_q_lanes / matmul_q_k_lanes / matmul_bf16_lanes, the
CPU's row-dot kinds; Q6_K batches of >= 8 tokens: kernels.cuda.ops.matmul_q6_k_tiled) and
F32/F16 (kernels.cuda.ops.matmul_float_ggml, the weight held as float32 on the device like the
CPU's Linear._float). The logits equal the CPU context's on the tiny test models (gemma3: ~6e-8
of max |logit|, from tanh/libm evaluated in double, kernels/cuda/ops.py).
This follows the CPU's kernel choices (kernels.cpu.vec_dot_rows.llama_cpp_kinds, the Q6_K tiled
batch size of emel.models.linear): a CPU change there needs its twin here.
Importing this module imports numba.cuda (through kernels/cuda); `emel.device.resolve_device("cuda")` says whether it can run.
"""

from __future__ import annotations

import numpy as np

from kernels.cpu import ops as cpu_ops
from kernels.cpu.quants_base import row_nbytes
from kernels.cuda import matmul as gpu_matmul
from kernels.cuda import ops as G
from kernels.cuda import quants as gpu_quants
from kernels.cuda import runtime, tuning
from kernels.cuda.runtime import device_array, to_device

from .context import Context, ContextParams
from .device import resolve_device
from .errors import UnsupportedError
from .models import common as C

_GGML_TYPE_F32 = 0
_GGML_TYPE_F16 = 1
_GGML_TYPE_Q6_K = 14


class CudaContext(Context):
    """A decoding context whose graph runs on the GPU (or Numba's CUDA simulator, for tests)."""

    def __init__(self, model_file, params: ContextParams | None = None, weights=None,
                 launch: tuning.Tuning | None = None) -> None:
        resolve_device("cuda")  # UnsupportedError without numba.cuda / a GPU
        super().__init__(model_file, params, weights)
        arch = self.hp.arch
        if arch not in _GRAPHS:
            raise UnsupportedError(f"device 'cuda': architecture {arch!r} is not supported yet "
                                   f"(supported: {', '.join(sorted(_GRAPHS))})")
        self.launch = launch or (tuning.SIMULATOR if runtime.simulator() else tuning.DEFAULT)
        self.dev = _DeviceModel(self.weights, self.hp, self.launch)
        self.dev.reserve_act(self.n_ubatch)
        self.kv = _DeviceKV(self.kv, self.hp, self.launch)
        self.arena = _Arena(_arena_floats(self.hp, self.n_ubatch, self.kv.size))
        self.resid = device_array(self.n_ubatch * self.hp.n_embd, np.float32)
        self.logits_buf = device_array(self.n_ubatch * self.hp.n_vocab, np.float32)
        graph = _GRAPHS[arch]
        ctx = self

        class _Arch:  # what Context.decode calls per ubatch
            @staticmethod
            def build_graph(hp, w, ub, kv, out_ids, want_logits=True):
                return graph(ctx, ub, out_ids, want_logits)

        self.arch = _Arch


# ---------------------------------------------------------------------------------------------
# The graphs (device twins of emel/models/<arch>.py build_graph)


def _llama_graph(ctx: CudaContext, ub, out_ids: np.ndarray, want_logits: bool):
    """emel.models.llama / qwen2 / qwen3 build_graph on the device: the llama layout, plus the
    q/k/v and output biases of qwen2 and the per-head Q/K RMS norms of qwen3 when present."""
    hp, w, d, kv, A = ctx.hp, ctx.weights, ctx.dev, ctx.kv, ctx.arena
    n = len(ub.token)
    hd, eps, n_embd = hp.n_embd_head_k, hp.f_norm_rms_eps, hp.n_embd
    kq_scale = hp.f_attention_scale or 1.0 / np.sqrt(np.float32(hd))
    rope_freqs = getattr(w, "rope_freqs", None)
    inpL = ctx.resid
    d.embed(w.tok_embd, ub.token, inpL)
    pos = to_device(np.ascontiguousarray(ub.pos, dtype=np.int32))
    for il, L in enumerate(w.layers):
        A.reset()
        rp = kv.rope_params(il, rope_freqs) if rope_freqs is not None else kv.rope_params(il)
        cur = d.rms_norm(A, inpL, L.attn_norm, n, n_embd, eps)
        q = d.linear(A, L.wq, cur, n, bias=getattr(L, "wq_b", None))
        k = d.linear(A, L.wk, cur, n, bias=getattr(L, "wk_b", None))
        v = d.linear(A, L.wv, cur, n, bias=getattr(L, "wv_b", None))
        if getattr(L, "attn_q_norm", None) is not None:  # qwen3
            q = d.rms_norm(A, q, L.attn_q_norm, n * hp.n_head, hd, eps)
            k = d.rms_norm(A, k, L.attn_k_norm, n * hp.n_head_kv, hd, eps)
        d.rope(A, q, pos, n, hp.n_head, hd, rp)
        d.rope(A, k, pos, n, hp.n_head_kv, hd, rp)
        cur = kv.attend(A, il, q, k, v, n, kq_scale, 0.0)
        cur = d.linear(A, L.wo, cur, n, bias=getattr(L, "wo_b", None))
        inpSA = inpL
        if il == hp.n_layer - 1:
            cur, inpSA = d.rows(A, cur, out_ids, n_embd), d.rows(A, inpSA, out_ids, n_embd)
            n = len(out_ids)
        ffn_inp = d.add(A, cur, inpSA, n * n_embd)
        cur = d.rms_norm(A, ffn_inp, L.ffn_norm, n, n_embd, eps)
        cur = d.swiglu(A, d.linear(A, L.ffn_gate, cur, n), d.linear(A, L.ffn_up, cur, n), n, hp.n_ff)
        cur = d.linear(A, L.ffn_down, cur, n)
        d.add(None, cur, ffn_inp, n * n_embd, out=inpL)
    A.reset()
    embd = d.rms_norm(A, inpL, w.output_norm, n, n_embd, eps)
    return _outputs(ctx, embd, n, w.output, want_logits, 0.0, getattr(w, "output_b", None))


def _gemma3_graph(ctx: CudaContext, ub, out_ids: np.ndarray, want_logits: bool):
    """emel.models.gemma3.build_graph on the device."""
    hp, w, d, kv, A = ctx.hp, ctx.weights, ctx.dev, ctx.kv, ctx.arena
    n = len(ub.token)
    hd, eps, n_embd = hp.n_embd_head_k, hp.f_norm_rms_eps, hp.n_embd
    inpL = ctx.resid
    d.embed(w.tok_embd, ub.token, inpL)
    d.scale(inpL, np.sqrt(np.float32(n_embd)), inpL, n * n_embd)
    pos = to_device(np.ascontiguousarray(ub.pos, dtype=np.int32))
    for il, L in enumerate(w.layers):
        A.reset()
        rp = kv.rope_params(il)
        cur = d.rms_norm(A, inpL, L.attn_norm, n, n_embd, eps)
        q = d.rms_norm(A, d.linear(A, L.wq, cur, n), L.attn_q_norm, n * hp.n_head, hd, eps)
        k = d.rms_norm(A, d.linear(A, L.wk, cur, n), L.attn_k_norm, n * hp.n_head_kv, hd, eps)
        v = d.linear(A, L.wv, cur, n)
        d.rope(A, q, pos, n, hp.n_head, hd, rp)
        d.rope(A, k, pos, n, hp.n_head_kv, hd, rp)
        d.scale(q, np.float32(hp.f_attention_scale), q, n * hp.n_head * hd)
        cur = d.linear(A, L.wo, kv.attend(A, il, q, k, v, n, 1.0, 0.0), n)
        sa_in = inpL
        if il == hp.n_layer - 1:
            cur, sa_in = d.rows(A, cur, out_ids, n_embd), d.rows(A, inpL, out_ids, n_embd)
            n = len(out_ids)
        cur = d.rms_norm(A, cur, L.attn_post_norm, n, n_embd, eps)
        sa_out = d.add(A, cur, sa_in, n * n_embd)
        cur = d.rms_norm(A, sa_out, L.ffn_norm, n, n_embd, eps)
        cur = d.geglu(A, d.linear(A, L.ffn_gate, cur, n), d.linear(A, L.ffn_up, cur, n), n * hp.n_ff)
        cur = d.rms_norm(A, d.linear(A, L.ffn_down, cur, n), L.ffn_post_norm, n, n_embd, eps)
        d.add(None, cur, sa_out, n * n_embd, out=inpL)
    A.reset()
    embd = d.rms_norm(A, inpL, w.output_norm, n, n_embd, eps)
    return _outputs(ctx, embd, n, w.output, want_logits, hp.f_final_logit_softcapping)


def _phi3_graph(ctx: CudaContext, ub, out_ids: np.ndarray, want_logits: bool):
    """emel.models.phi3.build_graph on the device: the fused qkv and gate_up matrices are run as
    row ranges of one weight over one converted activation (each output row as in the fused
    product), the gate/up halves read in place with a row stride of 2 * n_ff."""
    hp, w, d, kv, A = ctx.hp, ctx.weights, ctx.dev, ctx.kv, ctx.arena
    n = len(ub.token)
    hd, eps, n_embd, n_ff = hp.n_embd_head_k, hp.f_norm_rms_eps, hp.n_embd, hp.n_ff
    gqa = hp.n_embd_k_gqa
    q_scale = np.float32(1.0) / np.sqrt(np.float32(hd))
    inpL = ctx.resid
    d.embed(w.tok_embd, ub.token, inpL)
    pos = to_device(np.ascontiguousarray(ub.pos, dtype=np.int32))
    for il, L in enumerate(w.layers):
        A.reset()
        rp = kv.rope_params(il)
        cur = d.rms_norm(A, inpL, L.attn_norm, n, n_embd, eps)
        if L.wqkv is not None:
            xq = d.quantize(L.wqkv, cur, n)
            q = d.linear(A, L.wqkv, cur, n, rows=(0, n_embd), xq=xq)
            k = d.linear(A, L.wqkv, cur, n, rows=(n_embd, n_embd + gqa), xq=xq)
            v = d.linear(A, L.wqkv, cur, n, rows=(n_embd + gqa, n_embd + 2 * gqa), xq=xq)
        else:
            q, k, v = d.linear(A, L.wq, cur, n), d.linear(A, L.wk, cur, n), d.linear(A, L.wv, cur, n)
        d.rope(A, q, pos, n, hp.n_head, hd, rp)
        d.rope(A, k, pos, n, hp.n_head_kv, hd, rp)
        d.scale(q, q_scale, q, n * hp.n_head * hd)
        cur = d.linear(A, L.wo, kv.attend(A, il, q, k, v, n, 1.0, 0.0), n)
        residual = inpL
        if il == hp.n_layer - 1:
            cur, residual = d.rows(A, cur, out_ids, n_embd), d.rows(A, residual, out_ids, n_embd)
            n = len(out_ids)
        residual = d.add(A, cur, residual, n * n_embd)
        cur = d.rms_norm(A, residual, L.ffn_norm, n, n_embd, eps)
        up = d.linear(A, L.ffn_up, cur, n)
        cur = d.linear(A, L.ffn_down, d.swiglu(A, up, up[n_ff:], n, n_ff, stride=2 * n_ff), n)
        d.add(None, residual, cur, n * n_embd, out=inpL)
    A.reset()
    embd = d.rms_norm(A, inpL, w.output_norm, n, n_embd, eps)
    return _outputs(ctx, embd, n, w.output, want_logits, 0.0)


_GRAPHS = {"llama": _llama_graph, "qwen2": _llama_graph, "qwen3": _llama_graph,
           "gemma3": _gemma3_graph, "phi3": _phi3_graph}


def _outputs(ctx: CudaContext, embd, n_out: int, output, want_logits: bool, cap: float,
             bias: np.ndarray | None = None):
    """The only device -> host copies of a ubatch: logits rows (and embeddings when asked for)."""
    hp = ctx.hp
    embd_h = embd[:n_out * hp.n_embd].copy_to_host().reshape(n_out, hp.n_embd) \
        if ctx.params.embeddings else None
    if not want_logits or n_out == 0:
        return embd_h, np.zeros((n_out, hp.n_vocab), np.float32)
    logits = ctx.logits_buf[:n_out * hp.n_vocab]
    ctx.dev.linear(None, output, embd, n_out, out=logits, bias=bias)
    if cap:
        ctx.dev.softcap(logits, cap, n_out * hp.n_vocab)
    return embd_h, logits.copy_to_host().reshape(n_out, hp.n_vocab)


# ---------------------------------------------------------------------------------------------
# Device memory: arena, weights, KV storage


def _arena_floats(hp: C.HParams, n_ubatch: int, kv_size: int) -> int:
    """Worst-case float32 values the arena holds within one layer (every allocation of a layer
    stays live until the next reset), for a full ubatch attending over the whole cache."""
    n_q = hp.n_head * max(hp.n_embd_head_k, hp.n_embd_head_v)
    per_token = (10 * hp.n_embd + 8 * n_q + 6 * max(hp.n_embd_k_gqa, hp.n_embd_v_gqa)
                 + 4 * hp.n_ff + 2 * max(hp.n_embd_head_k, hp.n_rot) + hp.n_head * kv_size)
    return n_ubatch * per_token + 64 * 64  # + the 64-float alignment of up to 64 views


class _Arena:
    """A float32 device buffer handed out front to back; reset() frees everything at once."""

    def __init__(self, n_floats: int) -> None:
        self.buf = device_array(n_floats, np.float32)
        self.top = 0
        self.peak = 0

    def reset(self) -> None:
        self.top = 0

    def take(self, n: int):
        n = max(int(n), 1)
        start = -(-self.top // 64) * 64  # 256-byte aligned views
        end = start + n
        if end > self.buf.size:
            from .errors import AllocationError
            raise AllocationError(f"CUDA arena: {end} floats needed, {self.buf.size} reserved")
        self.top = end
        self.peak = max(self.peak, end)
        return self.buf[start:end]


class _DeviceModel:
    """The weights on the device, and the op launchers the graphs call."""

    def __init__(self, weights, hp: C.HParams, launch: tuning.Tuning) -> None:
        self.hp = hp
        self.t = launch
        self._mats: dict[int, object] = {}
        self._vecs: dict[int, object] = {}
        self._act_bytes_per_token = 0  # the largest activation row of any Linear, converted
        self.xq = None  # uint8 device buffer of converted activations (reserve_act)
        self.xs = None  # float32 device buffer of F16-rounded activations (reserve_act)
        self._f16_cols = 0  # the widest F16 Linear
        self._w32: dict[int, object] = {}  # F32/F16 weights as float32, made on first use
        self.gelu_table = to_device(cpu_ops.gelu_f16_table())
        self.f16_table = to_device(cpu_ops.f16_table())
        # the batch size from which the CPU Linear takes the tiled Q6_K order (None: never)
        from .models import linear as cpu_linear
        self.tiled_min_rows = getattr(cpu_linear, "_TILED_MIN_ROWS", None)
        self._upload(weights)

    def _upload(self, obj) -> None:
        """Copy every Linear and float32 vector reachable from the weights dataclasses."""
        from .models.linear import Linear

        items = obj if isinstance(obj, list) else list(vars(obj).values())
        for v in items:
            if isinstance(v, Linear):
                if int(v.ggml_type) not in gpu_matmul.CUDA_TYPES:
                    raise UnsupportedError(f"device 'cuda': tensor {v.name} has type "
                                           f"{v.ggml_type.name}, which the CUDA matmul lacks")
                if id(v) not in self._mats:
                    self._mats[id(v)] = to_device(np.ascontiguousarray(v.data).view(np.uint8).reshape(-1))
                self._act_bytes_per_token = max(self._act_bytes_per_token,
                                                gpu_matmul.act_nbytes(int(v.ggml_type), 1, v.n_cols))
                if int(v.ggml_type) == _GGML_TYPE_F16:
                    self._f16_cols = max(self._f16_cols, v.n_cols)
            elif isinstance(v, np.ndarray) and v.dtype == np.float32:
                self._vecs[id(v)] = to_device(np.ascontiguousarray(v).reshape(-1))
            elif isinstance(v, list) or hasattr(v, "__dataclass_fields__"):
                self._upload(v)

    def vec(self, a: np.ndarray):
        d = self._vecs.get(id(a))
        if d is None:
            d = self._vecs[id(a)] = to_device(np.ascontiguousarray(a, dtype=np.float32))
        return d

    # -- ops --------------------------------------------------------------------------------

    def embed(self, tok_embd, tokens: np.ndarray, out) -> None:
        """ggml_get_rows on the (possibly quantized) embedding table: one row dequantized per token."""
        kernel = gpu_quants.KERNELS[int(tok_embd.ggml_type)]
        row_bytes = row_nbytes(int(tok_embd.ggml_type), tok_embd.n_cols)
        table = self._mats[id(tok_embd)]
        n_cols = tok_embd.n_cols
        tpb = self.t.elementwise_threads
        blocks = max(1, min(self.t.max_blocks, -(-n_cols // tpb)))
        for i, tok in enumerate(np.asarray(tokens, dtype=np.int64)):
            kernel[blocks, tpb](table, int(tok) * row_bytes, n_cols, out, i * n_cols)

    def reserve_act(self, n_tokens: int) -> None:
        """The device buffers for n_tokens activation rows of the widest Linear: converted to its
        vec_dot_type (xq), or rounded to F16 as float32 for an F16 weight (xs)."""
        self.xq = device_array(max(1, n_tokens * self._act_bytes_per_token), np.uint8)
        self.xs = device_array(max(1, n_tokens * self._f16_cols), np.float32)

    def quantize(self, lin, x, n_tokens: int):
        """x (n_tokens rows of lin.n_cols) in lin's vec_dot_type, in the reserved buffer (valid
        until the next call), on the device; None for F32/F16 weights, whose matmul reads x."""
        if int(lin.ggml_type) in (_GGML_TYPE_F32, _GGML_TYPE_F16):
            return None
        return gpu_matmul.quantize_act(x, int(lin.ggml_type), n_tokens, lin.n_cols, self.xq,
                                       threads_per_block=self.t.elementwise_threads,
                                       max_blocks=self.t.max_blocks)

    def linear(self, A, lin, x, n_tokens: int, out=None, bias: np.ndarray | None = None,
               rows: tuple[int, int] | None = None, xq=None):
        """out = W @ x (+ bias, broadcast over rows), all on the device. rows=(r0, r1): only
        weight rows r0..r1-1 (a part of a fused matrix; each output row is computed as in the
        full product). xq: x already converted by quantize() for a weight of the same type."""
        r0, r1 = rows if rows is not None else (0, lin.n_rows)
        n_rows = r1 - r0
        if out is None:
            out = A.take(n_tokens * n_rows)
        t = int(lin.ggml_type)
        if t in (_GGML_TYPE_F32, _GGML_TYPE_F16):
            self._float(lin, x, n_tokens, out, r0, r1)
            if bias is not None:
                self.add_rows(out, bias, out, n_tokens, n_rows)
            return out
        if xq is None:
            xq = self.quantize(lin, x, n_tokens)
        w = self._mats[id(lin)]
        if rows is not None:
            w = w[r0 * lin.row_nbytes:r1 * lin.row_nbytes]
        if t == _GGML_TYPE_Q6_K and self.tiled_min_rows and n_tokens >= self.tiled_min_rows:
            # emel.models.linear follows llama.cpp's tiled K-quant matmul for such batches
            G.launch_matmul_q6_k_tiled(w, n_rows, lin.n_cols, xq, n_tokens, out, self.f16_table,
                                       threads=self.t.elementwise_threads,
                                       max_blocks=self.t.max_blocks)
        else:
            gpu_matmul.launch_matmul_q(w, t, n_rows, lin.n_cols, xq, n_tokens, out,
                                       threads_per_block=self.t.matmul_threads,
                                       max_blocks=self.t.max_blocks,
                                       lanes_threads=self.t.matmul_lanes_threads,
                                       kind_rows=lin.n_rows)
        if bias is not None:
            self.add_rows(out, bias, out, n_tokens, n_rows)
        return out

    def _float(self, lin, x, n_tokens: int, out, r0: int, r1: int) -> None:
        """F32/F16 weights as emel.models.linear.Linear._float: ggml-cpu's float order
        (tinyBLAS for batches with n_rows % 4 == 0 and n_cols % 16 == 0, of the whole matrix, else
        ggml_vec_dot_f16), bit-equal with the CPU; the weight as float32, made on first use."""
        w32 = self._w32.get(id(lin))
        if w32 is None:
            w32 = self._w32[id(lin)] = gpu_quants.dequantize(
                self._mats[id(lin)], int(lin.ggml_type), lin.n_rows * lin.n_cols,
                threads_per_block=self.t.elementwise_threads, max_blocks=self.t.max_blocks)
        sgemm = n_tokens >= 2 and lin.n_rows % 4 == 0 and lin.n_cols % 16 == 0
        f16 = int(lin.ggml_type) == _GGML_TYPE_F16
        G.launch_matmul_float_ggml(w32[r0 * lin.n_cols:r1 * lin.n_cols], r1 - r0, lin.n_cols, x,
                                   n_tokens, out, sgemm, f16, self.xs if f16 else x,
                                   threads=self.t.elementwise_threads, max_blocks=self.t.max_blocks)

    def rms_norm(self, A, x, w, n_rows: int, n_cols: int, eps: float):
        out = A.take(n_rows * n_cols)
        wd = self.vec(w) if w is not None else out
        G.launch_rms_norm_f32(x, wd, out, n_rows, n_cols, eps, w is not None,
                              threads=self.t.row_threads, max_blocks=self.t.max_blocks)
        return out

    def rope(self, A, x, pos, n_tokens: int, n_head: int, head_dim: int, rp: C.RopeParams) -> None:
        cache = A.take(n_tokens * head_dim)
        ff = rp.freq_factors
        G.launch_rope_f32(x, pos, n_tokens, n_head, head_dim, rp.n_rot, rp.neox, rp.freq_base,
                          rp.freq_scale, rp.ext_factor, rp.attn_factor, rp.corr0, rp.corr1,
                          self.vec(ff) if ff is not None else cache, ff is not None, cache,
                          threads=self.t.row_threads, max_blocks=self.t.max_blocks)

    def add(self, A, a, b, n: int, out=None):
        out = A.take(n) if out is None else out
        G.launch_add_f32(a, b, out, n, threads=self.t.elementwise_threads, max_blocks=self.t.max_blocks)
        return out

    def add_rows(self, x, b: np.ndarray, out, n_rows: int, n_cols: int) -> None:
        G.launch_add_rows_f32(x, self.vec(b), out, n_rows, n_cols, threads=self.t.row_threads,
                              max_blocks=self.t.max_blocks)

    def scale(self, x, s, out, n: int) -> None:
        G.launch_scale_f32(x, s, out, n, threads=self.t.elementwise_threads,
                           max_blocks=self.t.max_blocks)

    def softcap(self, x, cap: float, n: int) -> None:
        G.launch_tanh_softcap_f32(x, x, n, cap, threads=self.t.elementwise_threads,
                                  max_blocks=self.t.max_blocks)

    def swiglu(self, A, gate, up, n_rows: int, n_cols: int, stride: int | None = None):
        """silu(gate) * up per row; stride: the row stride of gate and up (default n_cols)."""
        out = A.take(n_rows * n_cols)
        stride = n_cols if stride is None else stride
        G.launch_swiglu_f32(gate, up, out, n_rows, n_cols, stride, stride,
                            threads=self.t.row_threads, max_blocks=self.t.max_blocks)
        return out

    def geglu(self, A, gate, up, n: int):
        out = A.take(n)
        G.launch_geglu_f32(gate, up, out, n, self.gelu_table, threads=self.t.elementwise_threads,
                           max_blocks=self.t.max_blocks)
        return out

    def rows(self, A, x, ids: np.ndarray, n_cols: int):
        """x[ids] (ids: host int array, checked by the caller)."""
        out = A.take(len(ids) * n_cols)
        if len(ids):
            G.launch_get_rows_f32(x, to_device(np.asarray(ids, np.int32)), out, len(ids),
                                  n_cols, threads=self.t.row_threads, max_blocks=self.t.max_blocks)
        return out


class _DeviceKV:
    """K/V storage on the device over the CPU context's KV cache cells (positions, slots, masks).

    Wraps the emel.graph_memory.GraphMemory of the CPU context: its cell bookkeeping (begin,
    blocks, mask, seq_* through the KV cache) is reused as is; its host K/V rows are left unused.
    Layer il holds float32[n_stream * size * n_embd_{k,v}_gqa] (size of the layer's cache): one
    row per cell, F16-rounded values (set_rows_f16). K-shift (seq_add/seq_div) rotates the
    device K through the host with the CPU context's arithmetic.
    """

    def __init__(self, host, hp: C.HParams, launch: tuning.Tuning) -> None:
        self.host = host
        self.hp = hp
        self.t = launch
        n_cells = [host.n_stream * host.blocks_cache(il).size for il in range(hp.n_layer)]
        self.k = [to_device(np.zeros(n * hp.n_embd_k_gqa, np.float32)) for n in n_cells]
        self.v = [to_device(np.zeros(n * hp.n_embd_v_gqa, np.float32)) for n in n_cells]
        self._masks: dict[tuple[int, int], object] = {}
        self._groups: dict[int, list[tuple[object, object, int, np.ndarray, int, int]]] = {}

    def __getattr__(self, name):  # cells, positions, rope parameters: the host store's
        return getattr(self.host, name)

    def k_shift(self, il: int, k, shift) -> None:
        """GraphMemory.k_shift on the device K of layer il (through the host: a rare operation)."""
        hp = self.hp
        rows = self.k[il].copy_to_host().reshape(shift.shape[0], hp.n_head_kv, hp.n_embd_head_k)
        C.rope(rows, np.ascontiguousarray(shift, dtype=np.int32),
               self.host.rope_params(il, self.host.freq_factors), self.host.scratch)
        self.k[il] = to_device(rows.astype(np.float16).astype(np.float32).reshape(-1))

    def begin(self, ub, sinfos) -> None:
        self.host.begin(ub, sinfos)
        self._masks = {}
        self._groups = {}
        n = ub.n_tokens
        for il in range(self.hp.n_layer):
            key = id(self.host.blocks_cache(il))
            if key in self._groups:
                continue
            groups = []
            for b, (s, rows, slots, cache) in enumerate(self.host.blocks(il)):
                idx = np.arange(n)[rows]
                d_idx = None if len(idx) == n else to_device(np.asarray(idx, np.int32))
                cells = to_device((s * cache.size + slots).astype(np.int32))
                groups.append((d_idx, cells, s, idx, b, cache.size))
            self._groups[key] = groups

    def _mask(self, il: int, b: int, idx: np.ndarray):
        key = (id(self.host.blocks_cache(il)), b)
        m, n_kv = self.host.mask(il)
        if key not in self._masks:
            self._masks[key] = to_device(np.ascontiguousarray(m[idx], np.float32).reshape(-1))
        return self._masks[key], n_kv

    def attend(self, A, il: int, q, k, v, n_tokens: int, kq_scale: float, softcap: float):
        """Store k, v (rounded to F16) in the ubatch cells of layer il, then attend with q."""
        hp, t = self.hp, self.t
        nk, nv = hp.n_embd_k_gqa, hp.n_embd_v_gqa
        nq, no = hp.n_head * hp.n_embd_head_k, hp.n_head * hp.n_embd_head_v
        row = dict(threads=t.row_threads, max_blocks=t.max_blocks)
        out = A.take(n_tokens * no)
        for d_idx, cells, s, idx, b, size in self._groups[id(self.host.blocks_cache(il))]:
            n_g = len(idx)
            kg, vg, qg, og = k, v, q, out
            if d_idx is not None:  # this sequence's tokens, gathered
                kg, vg, qg, og = A.take(n_g * nk), A.take(n_g * nv), A.take(n_g * nq), A.take(n_g * no)
                G.launch_get_rows_f32(k, d_idx, kg, n_g, nk, **row)
                G.launch_get_rows_f32(v, d_idx, vg, n_g, nv, **row)
                G.launch_get_rows_f32(q, d_idx, qg, n_g, nq, **row)
            G.launch_set_rows_f16(kg, cells, self.k[il], n_g, nk, **row)
            G.launch_set_rows_f16(vg, cells, self.v[il], n_g, nv, **row)
            mask, n_kv = self._mask(il, b, idx)
            kc = self.k[il][s * size * nk:(s * size + n_kv) * nk]
            vc = self.v[il][s * size * nv:(s * size + n_kv) * nv]
            # the CPU's choice between llamafile's sgemm and ggml_vec_dot_f16 (emel.models.common.attention)
            sgemm_kq = n_g >= 2 and n_kv % 4 == 0 and hp.n_embd_head_k % 16 == 0
            sgemm_kqv = n_g >= 2 and hp.n_embd_head_v % 4 == 0 and n_kv % 16 == 0
            scores = A.take(n_g * hp.n_head * n_kv)
            q16 = A.take(n_g * nq)
            G.launch_attention_f16kv(qg, kc, vc, mask, og, n_g, hp.n_head, hp.n_head_kv,
                                     hp.n_embd_head_k, hp.n_embd_head_v, n_kv, kq_scale, softcap,
                                     sgemm_kq, sgemm_kqv, scores, q16, q16,
                                     threads=t.attn_threads, max_blocks=t.max_blocks)
            if d_idx is not None:
                G.launch_set_rows_f32(og, d_idx, out, n_g, no, **row)
        return out
