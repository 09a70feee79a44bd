"""SmolLM2-135M and Gemma-3-270M against llama.cpp's logits and greedy text (slow, real models).

parity_fixtures/logits/<model>.npz (make_fixtures.py) holds, per prompt, llama.cpp's token ids,
per-position top-20 logits, a few full logit rows and a 64-token greedy continuation, made with
n_ctx=2048, n_batch=n_ubatch=512, F16 KV cache, no flash attention. Prompt 3 is 845 (SmolLM2) /
826 (Gemma-3) tokens: past Gemma-3's 512-token sliding window. Both models give llama.cpp's
logits bit for bit (max |diff| 0) and its greedy continuations.
"""

import numpy as np
import pytest

from emel.context import Batch, Context, ContextParams
from emel.loader import load_model_file

N_CTX, N_BATCH = 2048, 512


def _logits_at(ctx, toks, sel):
    """Logits of the positions `sel` (sorted), the prompt decoded n_batch tokens at a time."""
    ctx.memory_clear()
    want = set(sel.tolist())
    rows = []
    for s in range(0, len(toks), N_BATCH):
        chunk = toks[s:s + N_BATCH]
        flags = [s + j in want for j in range(len(chunk))]
        ctx.decode(Batch(chunk, pos=list(range(s, s + len(chunk))), logits=flags))
        if any(flags):
            rows.append(ctx.get_logits().copy())
    return np.concatenate(rows)


def _greedy(ctx, toks, n):
    ctx.memory_clear()
    for s in range(0, len(toks), N_BATCH):
        chunk = toks[s:s + N_BATCH]
        ctx.decode(Batch(chunk, pos=list(range(s, s + len(chunk)))))
    out = []
    for _ in range(n):
        t = int(np.argmax(ctx.get_logits_ith(-1)))
        out.append(t)
        ctx.decode(Batch([t]))
    return out


def _compare(name, fix, ctx, greedy_prompts, n_greedy=None):
    n_prompts = len([k for k in fix.files if k.endswith("_tokens")])
    report = []
    for i in range(n_prompts):
        toks = fix[f"p{i}_tokens"].tolist()
        # long prompts: every 8th position (and the last), to bound the lm_head work
        step = 8 if len(toks) > 64 else 1
        sel = np.union1d(np.arange(0, len(toks), step), [len(toks) - 1])
        lg = _logits_at(ctx, toks, sel)
        ids, vals = fix[f"p{i}_topk_ids"][sel], fix[f"p{i}_topk_logits"][sel]
        top1 = float(np.mean(lg.argmax(axis=1) == ids[:, 0]))
        mine5 = np.argsort(-lg, axis=1, kind="stable")[:, :5]
        top5 = float(np.mean([set(a) == set(b) for a, b in zip(mine5, ids[:, :5])]))
        diff = float(np.abs(np.take_along_axis(lg, ids, axis=1) - vals).max())
        if f"p{i}_full_logits" in fix.files:
            rows = np.searchsorted(sel, fix[f"p{i}_full_pos"])
            diff = max(diff, float(np.abs(lg[rows] - fix[f"p{i}_full_logits"]).max()))
        line = f"{name} p{i} ({len(toks)} tok, {len(sel)} compared): top1 {top1:.4f} top5 {top5:.4f} max|diff| {diff:.3g}"
        if i in greedy_prompts:
            want = fix[f"p{i}_greedy"].tolist()[:n_greedy]
            got = _greedy(ctx, toks, len(want))
            n_eq = next((j for j, (a, b) in enumerate(zip(got, want)) if a != b), len(want))
            line += f" greedy {n_eq}/{len(want)}"
            report.append((top1, top5, diff, n_eq, len(want), len(sel)))
        else:
            report.append((top1, top5, diff, None, None, len(sel)))
        print(line)
    return report


@pytest.mark.slow
def test_smollm2_matches_llama_cpp(smollm2_path, fixtures_dir):
    fix = np.load(fixtures_dir / "logits" / "smollm2-135m.npz")
    ctx = Context(load_model_file(smollm2_path), ContextParams(n_ctx=N_CTX, n_batch=N_BATCH))
    for top1, top5, diff, n_eq, n, _ in _compare("smollm2", fix, ctx, greedy_prompts={0, 1, 2}):
        assert top1 == 1.0 and top5 == 1.0
        assert diff == 0.0  # every op follows llama.cpp's arithmetic: bit-identical logits
        if n is not None:
            assert n_eq == n


@pytest.mark.slow
def test_gemma3_matches_llama_cpp(gemma3_path, fixtures_dir):
    fix = np.load(fixtures_dir / "logits" / "gemma3-270m.npz")
    ctx = Context(load_model_file(gemma3_path), ContextParams(n_ctx=N_CTX, n_batch=N_BATCH))
    for top1, top5, diff, n_eq, n, _ in _compare("gemma3", fix, ctx, greedy_prompts={0, 2}):
        assert top1 == 1.0 and top5 == 1.0
        assert diff == 0.0  # bit-identical, past the 512-token sliding window too (prompt 3)
        if n is not None:
            assert n_eq == n
