"""Graph allocator parity with ggml-alloc.c.

Every scenario of llama.cpp's tests/test-alloc.cpp is rebuilt here with emel.alloc, and each
tensor's (chunk, offset) and each buffer's chunk sizes are compared exactly with what the real
ggml-alloc produced for the same graph: parity_fixtures/alloc/alloc_scenarios.json, recorded by
compiling and running llama.cpp's own test-alloc.cpp (see make_fixtures.py there). The original
test's own assertions (total bytes allocated, no overlap of live tensors, max buffer size) are
ported too.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from emel.alloc import (
    SIZE_MAX,
    INPLACE_OPS,
    BufferType,
    Graph,
    GraphAllocator,
    Op,
    Tensor,
    build_forward,
    plan_report,
    view,
)
from emel.arena import Arena, TensorRef
from emel.errors import AllocationError

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "parity_fixtures" / "alloc" / "alloc_scenarios.json"


def _recorded(name: str, index: int = 0) -> dict:
    data = json.loads(FIXTURE.read_text())
    return [s for s in data["scenarios"] if s["test"] == name][index]


# --- ggml-like graph builders (shapes as ggml computes them) -------------------------------------


class Ctx:
    """Creates tensors in order and names them x0, x1, ... like test-alloc.cpp's assign_names."""

    def __init__(self, prefix: str = "x") -> None:
        self.prefix = prefix
        self.tensors: list[Tensor] = []

    def _new(self, t: Tensor) -> Tensor:
        t.name = f"{self.prefix}{len(self.tensors)}"
        self.tensors.append(t)
        return t

    def input(self, nbytes: int) -> Tensor:
        return self._new(Tensor("", (nbytes // 4,), "float32", is_input=True))

    def op(self, op: Op, shape, *srcs: Tensor) -> Tensor:
        return self._new(Tensor("", tuple(shape), "float32", op, tuple(srcs)))

    def add(self, a, b):
        return self.op(Op.ADD, a.shape, a, b)

    def mul(self, a, b):
        return self.op(Op.MUL, a.shape, a, b)

    def scale(self, a):
        return self.op(Op.SCALE, a.shape, a)

    def pad(self, a, p0):
        return self.op(Op.PAD, (a.shape[0] + p0,) + tuple(a.shape[1:]), a)

    def mean(self, a):
        return self.op(Op.MEAN, (1,) + tuple(a.shape[1:]), a)

    def concat0(self, a, b):
        return self.op(Op.CONCAT, (a.shape[0] + b.shape[0],) + tuple(a.shape[1:]), a, b)

    def view(self, parent, shape, offset=0, strides=None, op=Op.VIEW):
        return self._new(view("", parent, shape, offset, strides, op))


def allocate(ctx_out: Tensor, buft: BufferType, galloc: GraphAllocator | None = None):
    ctx_out.is_output = True
    graph = build_forward(ctx_out)
    galloc = galloc or GraphAllocator(buft)
    return galloc, graph, galloc.alloc_graph(graph)


# --- checks ported from test-alloc.cpp -----------------------------------------------------------


def _root(t: Tensor) -> Tensor:
    return t.view_src if t.view_src is not None else t


def _can_reuse_memory(graph: Graph, current_i: int, current: Tensor, other: Tensor) -> bool:
    if other.is_output:
        return False
    for t in graph.nodes[current_i:]:
        for s in t.srcs:
            if t is current and t.op in INPLACE_OPS:
                continue
            if s is other or s.view_src is other:
                return False
    return True


def check_no_overlap(graph: Graph, plan) -> None:
    def span(t):
        b, c, o = plan.places[t.name]
        return (b, c), o, o + t.nbytes

    for i, t in enumerate(graph.nodes):
        for o in graph.nodes[:i]:
            if _root(t) is _root(o):
                continue
            (bt, t0, t1), (bo, o0, o1) = span(t), span(o)
            if bt == bo and t1 > o0 and o1 > t0:
                assert _can_reuse_memory(graph, i, t, o), f"{t.name} overlaps live {o.name}"


def check_max_size(tensors: list[Tensor], plan, max_size: int) -> None:
    for t in tensors:
        if t.external:
            continue
        _, _, off = plan.places[t.name]
        assert off + t.nbytes <= max_size, t.name


def check_matches_ggml(plan, galloc: GraphAllocator, tensors: list[Tensor], rec: dict,
                       max_sizes: list[int], external_chunks: dict[int, int] | None = None) -> None:
    """Each placed tensor has ggml's chunk and offset; each buffer has ggml's chunk sizes."""
    external_chunks = external_chunks or {}
    for t in tensors:
        want_max, want_chunk, want_off, want_nbytes = rec["tensors"][t.name]
        assert t.nbytes == want_nbytes, t.name
        if t.external:
            continue
        b, c, o = plan.places[t.name]
        assert max_sizes[b] == want_max, t.name
        assert (c + external_chunks.get(b, 0), o) == (want_chunk, want_off), t.name
    for b, max_size in enumerate(max_sizes):
        want = rec["buffers"].get(str(max_size), [])
        got = list(galloc.buffers[b] or [])
        assert got == want[external_chunks.get(b, 0):], f"buffer {b}"


# --- scenarios (same names as test-alloc.cpp) -----------------------------------------------------


def test_max_size_too_many_tensors():
    c = Ctx()
    x0, x1, x2 = c.input(8), c.input(8), c.input(8)
    x3 = c.mul(x0, x1)
    x4 = c.add(x1, x2)
    x5 = c.add(x3, x0)
    x6 = c.add(x4, x5)
    galloc, graph, plan = allocate(x6, BufferType(8, 16))
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, 16)
    assert sum(galloc.buffers[0]) <= 16 + 16
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_max_size_too_many_tensors"), [16])


def test_max_size_tensor_too_large():
    c = Ctx()
    x0, x1 = c.input(16), c.input(8)
    x2 = c.concat0(x0, x1)
    galloc, graph, plan = allocate(x2, BufferType(8, 32))
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, 32)
    assert sum(galloc.buffers[0]) <= 32 + 24
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_max_size_tensor_too_large"), [32])


def test_tensor_larger_than_max_size():
    c = Ctx()
    x0 = c.input(24)
    x1 = c.scale(x0)
    galloc, graph, plan = allocate(x1, BufferType(8, 16))
    check_no_overlap(graph, plan)
    assert sum(galloc.buffers[0]) == 24
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_tensor_larger_than_max_size"), [16])


def test_not_enough_chunks():
    c = Ctx()
    xs = [c.input(8) for _ in range(17)]
    acc = xs[0]
    for i in range(16):
        acc = c.add(acc, xs[i + 1])
    galloc, graph, plan = allocate(acc, BufferType(8, 8))
    check_no_overlap(graph, plan)
    assert sum(galloc.buffers[0]) > 16 * 8
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_not_enough_chunks"), [8])


def test_fill_leftover_space():
    c = Ctx()
    x0 = c.input(8)
    x1 = c.pad(x0, 2)
    x2 = c.mean(x1)
    galloc, graph, plan = allocate(x2, BufferType(8, 16))
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, 16)
    assert sum(galloc.buffers[0]) <= 12 + 16
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_fill_leftover_space"), [16])


def test_view_inplace():
    c = Ctx()
    x0 = c.input(16)
    x1 = c.view(x0, (2, 2), op=Op.RESHAPE)
    x2 = c.view(x1, (2, 2), strides=(8, 4), op=Op.PERMUTE)
    x3 = c.view(x2, (2,), offset=4)
    x4 = c.input(8)
    x5 = c.add(x3, x4)
    galloc, graph, plan = allocate(x5, BufferType(8, 32))
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, 32)
    assert sum(galloc.buffers[0]) <= 24
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_view_inplace"), [32])


def test_reuse_and_free():
    c = Ctx()
    x0, x1, x2 = c.input(24), c.input(8), c.input(8)
    x3 = c.add(x1, x2)
    x4 = c.pad(x0, 2)
    x5 = c.scale(x4)
    x6 = c.add(x4, x5)
    x7 = c.view(x6, (2,), offset=8)
    x8 = c.add(x3, x7)
    galloc, graph, plan = allocate(x8, BufferType(8, 40))
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, 40)
    assert sum(galloc.buffers[0]) <= 40 + 32 + 32
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_reuse_and_free"), [40])


@pytest.mark.parametrize("max_size,index", [(32, 0), (SIZE_MAX, 1)])
def test_merge_free_block(max_size, index):
    c = Ctx()
    x0, x1, x2 = c.input(16), c.input(16), c.input(16)
    x3 = c.mean(x0)
    x4 = c.mean(x1)
    x5 = c.pad(x2, 2)
    x6 = c.add(x3, x4)
    x7 = c.pad(x6, 5)
    x8 = c.add(x5, x7)
    galloc, graph, plan = allocate(x8, BufferType(8, max_size))
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, max_size)
    assert sum(galloc.buffers[0]) <= 32 + 32 + 24
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_merge_free_block", index), [max_size])


def test_prefer_already_allocated_memory():
    c = Ctx()
    x0 = c.input(24)
    x1 = c.mean(x0)
    x2 = c.mean(x1)
    galloc, graph, plan = allocate(x2, BufferType(4, 32))
    check_no_overlap(graph, plan)
    assert sum(galloc.buffers[0]) <= 28
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_prefer_already_allocated_memory"), [32])


def test_multiple_buffer_types():
    ca, cb, c = Ctx("a"), Ctx("b"), Ctx("x")
    a = [ca.input(16), ca.input(16)]
    b = [cb.input(24), cb.input(4)]
    for t in a + b:  # allocated in their own buffers (ggml_backend_alloc_ctx_tensors_from_buft)
        t.external = True
    x0 = c.input(16)
    x1 = c.mul(x0, a[0])
    x2 = c.pad(x1, 2)
    x3 = c.mul(x2, b[0])
    x4 = c.mean(x3)
    x5 = c.add(x4, b[1])
    x6 = c.pad(x5, 3)
    x7 = c.add(x6, a[1])
    x8 = c.scale(x7)
    x8.is_output = True
    graph = build_forward(x8)
    assert len(graph.leafs) == 5 and len(graph.nodes) == 8
    leaf_of = {"a0": 0, "a1": 0, "b0": 1, "b1": 1, "x0": 0}
    node_of = {"x1": 0, "x2": 0, "x3": 1, "x4": 1, "x5": 1, "x6": 1, "x7": 0, "x8": 0}
    bufts = [BufferType(8, 32), BufferType(8, SIZE_MAX)]
    galloc = GraphAllocator(bufts)
    galloc.reserve(graph, [node_of[n.name] for n in graph.nodes], [leaf_of[t.name] for t in graph.leafs])
    plan = galloc.alloc_graph(graph)
    check_no_overlap(graph, plan)
    check_max_size(c.tensors, plan, 32 + 32)  # only the buffer-0 tensors are bounded by 32
    assert 32 + sum(galloc.buffers[0]) <= 32 + 32 + 24
    assert 28 + sum(galloc.buffers[1]) <= 32 + 24
    check_matches_ggml(plan, galloc, c.tensors + a + b, _recorded("test_multiple_buffer_types"),
                       [32, SIZE_MAX], external_chunks={0: 1, 1: 1})


def test_buffer_size_zero():
    x0 = Tensor("leaf_0", (4,), is_input=True)
    x1 = Tensor("node_0", (4,), op=Op.SCALE, srcs=(x0,), is_output=True)
    graph = build_forward(x1)
    galloc = GraphAllocator([BufferType(8, SIZE_MAX), BufferType(8, SIZE_MAX)])
    galloc.reserve(graph, [0], [0])
    plan = galloc.alloc_graph(graph)
    assert galloc.buffer_size(0) == 16 and galloc.buffer_size(1) == 0
    rec = _recorded("test_buffer_size_zero")
    assert galloc.buffers[0] == rec["buffers"][str(SIZE_MAX)] and not galloc.buffers[1]
    for t in (x0, x1):
        assert plan.places[t.name] == (0,) + tuple(rec["tensors"][t.name][1:3])


def test_reallocation():
    buft = BufferType(4, 32)
    c = Ctx()
    x0, x1 = c.input(24), c.input(16)
    x2 = c.view(x0, (4,), 0)
    x3 = c.add(x2, x1)
    galloc, graph, plan = allocate(x3, buft)
    assert sum(galloc.buffers[0]) == 40
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_reallocation", 0), [32])

    c = Ctx()
    y0, y1 = c.input(20), c.input(20)
    y2 = c.add(y0, y1)
    n_reallocs = galloc.n_reallocs
    galloc, graph, plan = allocate(y2, buft, galloc)
    assert sum(galloc.buffers[0]) == 40
    assert galloc.n_reallocs == n_reallocs + 1  # one chunk grew from 16 to 20 bytes
    check_matches_ggml(plan, galloc, c.tensors, _recorded("test_reallocation", 1), [32])


# --- emel-specific behaviour ------------------------------------------------------------------------


def _layer_graph(n_tokens: int) -> tuple[Graph, Tensor]:
    """A tiny attention-free layer: norm -> matmul -> silu -> mul -> matmul -> residual add."""
    w1 = Tensor("w1", (8, 16), external=True)
    w2 = Tensor("w2", (16, 8), external=True)
    x = Tensor("inp", (8, n_tokens), is_input=True)
    h = Tensor("norm", (8, n_tokens), op=Op.RMS_NORM, srcs=(x,))
    u = Tensor("up", (16, n_tokens), op=Op.MUL_MAT, srcs=(w1, h))
    a = Tensor("act", (16, n_tokens), op=Op.UNARY, srcs=(u,))
    g = Tensor("gate", (16, n_tokens), op=Op.MUL, srcs=(a, u))
    d = Tensor("down", (8, n_tokens), op=Op.MUL_MAT, srcs=(w2, g))
    out = Tensor("out", (8, n_tokens), op=Op.ADD, srcs=(d, x), is_output=True)
    return build_forward(out), out


def test_same_shape_graph_reuses_the_reserved_plan():
    galloc = GraphAllocator(BufferType(32))
    worst, _ = _layer_graph(64)
    galloc.reserve(worst)
    size = galloc.buffer_size(0)
    for n in (1, 7, 64):
        g, _ = _layer_graph(n)
        assert not galloc.needs_realloc(g)
        plan = galloc.alloc_graph(g)
        assert galloc.buffer_size(0) == size and galloc.n_reallocs == 1
        assert plan.refs["out"].offset == galloc.alloc_graph(worst).refs["out"].offset
    arena = galloc.get_arena(0)
    galloc.alloc_graph(_layer_graph(3)[0])
    assert galloc.get_arena(0) is arena and arena.nbytes == size
    bigger, _ = _layer_graph(65)
    assert galloc.needs_realloc(bigger)
    galloc.alloc_graph(bigger)
    assert galloc.n_reallocs == 2 and galloc.buffer_size(0) > size
    assert galloc.get_arena(0) is not arena and galloc.get_arena(0).nbytes == galloc.buffer_size(0)


def test_plan_report_and_arena_views_do_not_overlap_live_tensors():
    galloc = GraphAllocator(BufferType(32))
    g, out = _layer_graph(16)
    plan = galloc.alloc_graph(g)
    rep = plan_report(plan)
    # placed tensors: inp, norm, down, out (f32 8x16) and up, act, gate (f32 16x16)
    assert rep["sum_tensor_bytes"] == 4 * (4 * 8 * 16 + 3 * 16 * 16)
    assert rep["peak_live_bytes"] <= rep["arena_bytes"] < rep["sum_tensor_bytes"]
    arena = galloc.make_arena(0)
    assert arena.nbytes == rep["arena_bytes"] and arena.buffer.ctypes.data % 64 == 0
    v = arena.view(plan.refs["out"])
    assert v.shape == (16, 8) and v.dtype == np.float32
    check_no_overlap(g, plan)
    # `up` has two consumers (act, gate), so the in-place activation cannot take its block
    assert plan.places["act"] != plan.places["up"]
    # the residual add runs in place on `down`, whose only consumer it is
    assert plan.places["out"] == plan.places["down"]


def test_arena_view_out_of_range_raises():
    arena = Arena(64)
    with pytest.raises(AllocationError):
        arena.view(TensorRef(np.float32, (17,), 0, 68))
    with pytest.raises(AllocationError):
        arena.view(TensorRef(np.float32, (4,), 2, 16))
    with pytest.raises(AllocationError):
        arena.view(TensorRef(np.float32, (8,), 0, 16))
    assert arena.view(TensorRef(np.float32, (4, 4), 0, 64)).shape == (4, 4)


def test_multi_buffer_graph_that_outgrows_its_plan_needs_reserve():
    galloc = GraphAllocator([BufferType(32), BufferType(32)])
    g, _ = _layer_graph(4)
    with pytest.raises(AllocationError):
        galloc.alloc_graph(g)
    with pytest.raises(AllocationError):
        galloc.reserve(g, [0] * (len(g.nodes) + 1), None)
