"""Graph allocator on a llama-style decoder graph: arena bytes vs the sum of intermediates.

  python -m emel.bench.alloc [--model GGUF] [--n-ubatch 512] [--n-kv 4096]

Builds the graph llama.cpp builds for one ubatch of a llama model (flash-attention path:
embeddings, per layer norm, Q/K/V, RoPE, K/V stored into the cache, attention, output projection,
residual, SwiGLU FFN, residual; output norm and logits), plans it with emel.alloc and prints
plan_report: the arena size, the sum of all intermediate tensors and the peak live bytes, plus
the planning time. Weights and the KV cache are external (not in the arena).
"""

from __future__ import annotations

import argparse
import time

from emel.alloc import BufferType, GraphAllocator, Op, Tensor, build_forward, plan_report, view


def llama_graph(n_layer: int, n_embd: int, n_head: int, n_head_kv: int, n_ff: int, n_vocab: int,
                n_tokens: int, n_kv: int, n_outputs: int = 1):
    """The tensors of one llama ubatch (ggml shapes, ne order)."""
    hd = n_embd // n_head
    gqa = hd * n_head_kv

    def w(name, *shape):
        return Tensor(name, shape, external=True)

    tok = Tensor("inp_tokens", (n_tokens,), "int32", is_input=True)
    pos = Tensor("inp_pos", (n_tokens,), "int32", is_input=True)
    mask = Tensor("kq_mask", (n_kv, n_tokens), "float16", is_input=True)
    k_idxs = Tensor("k_idxs", (n_tokens,), "int64", is_input=True)
    v_idxs = Tensor("v_idxs", (n_tokens,), "int64", is_input=True)
    out_ids = Tensor("inp_out_ids", (n_outputs,), "int32", is_input=True)
    x = Tensor("inp_embd", (n_embd, n_tokens), op=Op.GET_ROWS, srcs=(w("token_embd", n_embd, n_vocab), tok))
    for il in range(n_layer):
        def t(name, shape, op, *srcs):
            return Tensor(f"{name}-{il}", shape, op=op, srcs=srcs)

        cur = t("norm", (n_embd, n_tokens), Op.RMS_NORM, x)
        cur = t("attn_norm", (n_embd, n_tokens), Op.MUL, cur, w(f"blk.{il}.attn_norm", n_embd))
        q = t("Qcur", (n_embd, n_tokens), Op.MUL_MAT, w(f"blk.{il}.attn_q", n_embd, n_embd), cur)
        k = t("Kcur", (gqa, n_tokens), Op.MUL_MAT, w(f"blk.{il}.attn_k", n_embd, gqa), cur)
        v = t("Vcur", (gqa, n_tokens), Op.MUL_MAT, w(f"blk.{il}.attn_v", n_embd, gqa), cur)
        q = view(f"Qcur3-{il}", q, (hd, n_head, n_tokens), op=Op.RESHAPE)
        k = view(f"Kcur3-{il}", k, (hd, n_head_kv, n_tokens), op=Op.RESHAPE)
        q = t("Qrope", (hd, n_head, n_tokens), Op.ROPE, q, pos)
        k = t("Krope", (hd, n_head_kv, n_tokens), Op.ROPE, k, pos)
        k_cache = Tensor(f"cache_k_l{il}", (gqa, n_kv), "float16", external=True)
        v_cache = Tensor(f"cache_v_l{il}", (gqa, n_kv), "float16", external=True)
        k_set = Tensor(f"k_set-{il}", (gqa, n_kv), "float16", Op.SET_ROWS, (k_cache, k, k_idxs),
                       view_src=k_cache)
        v_set = Tensor(f"v_set-{il}", (gqa, n_kv), "float16", Op.SET_ROWS, (v_cache, v, v_idxs),
                       view_src=v_cache)
        kq = t("fattn", (hd, n_head, n_tokens), Op.FLASH_ATTN_EXT, q, k_set, v_set, mask)
        cur = view(f"kqv_out-{il}", kq, (n_embd, n_tokens), op=Op.RESHAPE)
        cur = t("attn_out", (n_embd, n_tokens), Op.MUL_MAT, w(f"blk.{il}.attn_output", n_embd, n_embd), cur)
        if il == n_layer - 1:
            cur = t("out_rows", (n_embd, n_outputs), Op.GET_ROWS, cur, out_ids)
            x = t("inp_rows", (n_embd, n_outputs), Op.GET_ROWS, x, out_ids)
        rows = cur.shape[1]
        ffn_inp = t("ffn_inp", (n_embd, rows), Op.ADD, cur, x)
        cur = t("ffn_norm", (n_embd, rows), Op.RMS_NORM, ffn_inp)
        cur = t("ffn_norm_w", (n_embd, rows), Op.MUL, cur, w(f"blk.{il}.ffn_norm", n_embd))
        gate = t("ffn_gate", (n_ff, rows), Op.MUL_MAT, w(f"blk.{il}.ffn_gate", n_embd, n_ff), cur)
        up = t("ffn_up", (n_ff, rows), Op.MUL_MAT, w(f"blk.{il}.ffn_up", n_embd, n_ff), cur)
        par = t("ffn_swiglu", (n_ff, rows), Op.GLU, gate, up)
        cur = t("ffn_down", (n_embd, rows), Op.MUL_MAT, w(f"blk.{il}.ffn_down", n_ff, n_embd), par)
        x = t("l_out", (n_embd, rows), Op.ADD, cur, ffn_inp)
    cur = Tensor("result_norm", (n_embd, n_outputs), op=Op.RMS_NORM, srcs=(x,))
    cur = Tensor("result_norm_w", (n_embd, n_outputs), op=Op.MUL, srcs=(cur, w("output_norm", n_embd)))
    logits = Tensor("result_output", (n_vocab, n_outputs), op=Op.MUL_MAT,
                    srcs=(w("output", n_embd, n_vocab), cur), is_output=True)
    return build_forward(logits)


def _hparams(path: str | None) -> dict:
    if path is None:  # SmolLM2-135M
        return dict(n_layer=30, n_embd=576, n_head=9, n_head_kv=3, n_ff=1536, n_vocab=49152)
    from emel.gguf import read

    md = read(path).metadata
    arch = md["general.architecture"]
    n_head = int(md[f"{arch}.attention.head_count"])
    return dict(n_layer=int(md[f"{arch}.block_count"]), n_embd=int(md[f"{arch}.embedding_length"]),
                n_head=n_head, n_head_kv=int(md.get(f"{arch}.attention.head_count_kv", n_head)),
                n_ff=int(md[f"{arch}.feed_forward_length"]), n_vocab=len(md["tokenizer.ggml.tokens"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emel.bench.alloc")
    ap.add_argument("--alloc", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help="GGUF file (default: SmolLM2-135M shapes)")
    ap.add_argument("--n-ubatch", type=int, default=512)
    ap.add_argument("--n-kv", type=int, default=4096)
    args = ap.parse_args(argv)
    hp = _hparams(args.model)
    galloc = GraphAllocator(BufferType(alignment=32))
    t0 = time.perf_counter()
    graph = llama_graph(**hp, n_tokens=args.n_ubatch, n_kv=args.n_kv, n_outputs=args.n_ubatch)
    t1 = time.perf_counter()
    galloc.reserve(graph)
    t2 = time.perf_counter()
    rep = plan_report(galloc.alloc_graph(graph))
    galloc.alloc_graph(llama_graph(**hp, n_tokens=1, n_kv=args.n_kv, n_outputs=1))  # reuses the plan
    mib = 1024 * 1024
    print(f"hparams: {hp}, n_ubatch={args.n_ubatch}, n_kv={args.n_kv}")
    print(f"graph: {len(graph.nodes)} nodes, {len(graph.leafs)} leafs (build {1e3 * (t1 - t0):.1f} ms, "
          f"reserve {1e3 * (t2 - t1):.1f} ms)")
    print(f"arena {rep['arena_bytes'] / mib:.2f} MiB, sum of intermediates "
          f"{rep['sum_tensor_bytes'] / mib:.2f} MiB, peak live "
          f"{rep['peak_live_bytes'] / mib:.2f} MiB; buffer allocations after a 1-token graph: "
          f"{galloc.n_reallocs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
