"""One-token decode through kernels.cpu.step (one compiled call per layer) gives the same bits as
the eager graph (whose logits tests/models/test_tiny_models.py and test_real_models.py prove
bit-identical to llama.cpp's), on tiny random llama and gemma3 models with quantized weights."""

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from emel.context import Context, ContextParams
from emel.loader import load_model_file

from .tiny import tiny_models


@pytest.mark.parametrize("arch,qtype", [("llama", T.Q8_0), ("gemma3", T.Q8_0), ("llama", T.Q4_1)])
def test_compiled_decode_step_matches_the_eager_graph(arch, qtype, tmp_path, monkeypatch):
    seed, _ = tiny_models.MODELS[arch]
    monkeypatch.setitem(tiny_models.MODELS, arch, (seed, qtype))
    mf = load_model_file(tiny_models.write(arch, tmp_path / f"tiny-{arch}.gguf"))
    prompt = tiny_models.tokens(arch, 9)
    rows = {}
    for fused in (True, False):
        ctx = Context(mf, ContextParams(n_ctx=512))
        ctx.weights._fused = None if fused else False  # None: decided from the weight types
        ctx.decode(prompt)
        got = []
        for t in (5, 17, 3, 40, 11):
            ctx.decode([t])
            got.append(ctx.get_logits_ith(-1).copy())
        rows[fused] = np.stack(got)
        assert ctx.weights._fused is fused  # the compiled step really ran (or really did not)
    assert np.array_equal(rows[True].view(np.uint32), rows[False].view(np.uint32))
