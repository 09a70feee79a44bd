"""The graph allocator on the real models' decode and prefill graphs: arena vs intermediates.

Reports (with -s) the arena size against the sum of all intermediate tensors and the peak of live
bytes, and checks the plan's invariants: the arena holds the peak with little waste, reuse makes
it smaller than the sum, and a 1-token graph reuses the prefill reservation without reallocating.
The graphs are llama-shaped (emel.bench.alloc.llama_graph) with each model's sizes.
"""

from __future__ import annotations

import pytest

from emel.alloc import BufferType, GraphAllocator, plan_report
from emel.bench.alloc import _hparams, llama_graph

MIB = 1024 * 1024


@pytest.mark.parametrize("model", ["smollm2_path", "gemma3_path"])
def test_real_model_graphs_fit_an_arena_far_below_the_sum_of_intermediates(model, request):
    hp = _hparams(str(request.getfixturevalue(model)))
    galloc = GraphAllocator(BufferType(alignment=32))
    prefill = llama_graph(**hp, n_tokens=512, n_kv=4096, n_outputs=512)
    galloc.reserve(prefill)
    reports = {}
    for name, graph in (("prefill", prefill),
                        ("decode", llama_graph(**hp, n_tokens=1, n_kv=4096, n_outputs=1))):
        rep = plan_report(galloc.alloc_graph(graph))
        reports[name] = rep
        print(f"{model} {name}: arena {rep['arena_bytes'] / MIB:.2f} MiB, sum of intermediates "
              f"{rep['sum_tensor_bytes'] / MIB:.2f} MiB, peak live {rep['peak_live_bytes'] / MIB:.2f} MiB")
        assert rep["peak_live_bytes"] <= rep["arena_bytes"]
    pre = reports["prefill"]
    assert pre["arena_bytes"] < pre["sum_tensor_bytes"]
    assert pre["arena_bytes"] <= 1.1 * pre["peak_live_bytes"]  # best fit leaves little waste
    assert galloc.n_reallocs == 1  # the decode graph fit the reserved prefill arena
