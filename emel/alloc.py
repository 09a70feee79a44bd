"""Graph allocator: places every intermediate tensor of a compute graph in an arena.

Follows llama.cpp ggml/src/ggml-alloc.c (ggml_gallocr over ggml_dyn_tallocr) in behaviour:
- leafs are placed first, then graph inputs (flag is_input), then nodes in execution order;
- a tensor's block returns to the free list when its last consumer (children and views counted
  in graph order) has run; graph outputs are never freed or reused;
- an op that can run in place (ggml_op_can_inplace) takes over its parent's block when the parent
  is owned by the allocator, is not an output, has the same layout and has no other consumer;
- free blocks are kept sorted by offset, best-fit (smallest block that fits, the last block of a
  chunk only as a fallback), adjacent free blocks are merged, sizes are padded to the alignment;
- a buffer is split into chunks of at most `max_size` bytes (at most 16 chunks, the last one
  unbounded), as ggml's vbuffer;
- `reserve` plans a worst-case graph; `alloc_graph` reuses that plan for any graph with the same
  number of nodes and leafs whose tensors are no larger (ggml_gallocr_needs_realloc).

A graph is plain dataclasses: `Tensor` (name, shape, dtype, op, srcs, view_src, flags) and `Graph`
(leafs, nodes), built in ggml's order by `build_forward(outputs)`. Tensors with `external=True`
(weights, KV cache) have their own storage and are never placed.

Differences on purpose: there is no GGML_ALLOCATOR_DEBUG, and failures raise AllocationError
instead of aborting (ggml aborts when it runs out of free-block slots).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .arena import Arena, TensorRef
from .errors import AllocationError

MAX_FREE_BLOCKS = 256  # free blocks per chunk (ggml-alloc.c MAX_FREE_BLOCKS)
VBUFFER_MAX_CHUNKS = 16  # chunks per buffer (GGML_VBUFFER_MAX_CHUNKS)
SIZE_MAX = 2**64 - 1
_UNBOUNDED = SIZE_MAX // 2  # ggml clamps max sizes to SIZE_MAX/2 to avoid overflows


class Op(enum.Enum):
    """Graph operations (ggml_op names). Only whether an op may run in place matters here."""

    NONE = "NONE"
    ADD = "ADD"
    ADD1 = "ADD1"
    ADD_ID = "ADD_ID"
    SUB = "SUB"
    MUL = "MUL"
    DIV = "DIV"
    SQR = "SQR"
    SQRT = "SQRT"
    LOG = "LOG"
    SCALE = "SCALE"
    FILL = "FILL"
    CLAMP = "CLAMP"
    UNARY = "UNARY"  # silu, gelu, tanh ... (GGML_OP_UNARY)
    GLU = "GLU"  # swiglu, geglu (GGML_OP_GLU)
    ROPE = "ROPE"
    RMS_NORM = "RMS_NORM"
    NORM = "NORM"
    SOFT_MAX = "SOFT_MAX"
    DIAG_MASK_INF = "DIAG_MASK_INF"
    DIAG_MASK_ZERO = "DIAG_MASK_ZERO"
    MUL_MAT = "MUL_MAT"
    GET_ROWS = "GET_ROWS"
    SET_ROWS = "SET_ROWS"
    CPY = "CPY"
    CONT = "CONT"
    CONCAT = "CONCAT"
    PAD = "PAD"
    MEAN = "MEAN"
    SUM_ROWS = "SUM_ROWS"
    FLASH_ATTN_EXT = "FLASH_ATTN_EXT"
    VIEW = "VIEW"
    RESHAPE = "RESHAPE"
    PERMUTE = "PERMUTE"
    TRANSPOSE = "TRANSPOSE"


# ggml_op_can_inplace: ops whose backend kernels do not use restrict pointers
INPLACE_OPS = frozenset(
    {
        Op.FILL, Op.SCALE, Op.DIAG_MASK_ZERO, Op.DIAG_MASK_INF, Op.ADD, Op.ADD_ID, Op.ADD1,
        Op.SUB, Op.MUL, Op.DIV, Op.SQR, Op.SQRT, Op.LOG, Op.UNARY, Op.ROPE, Op.RMS_NORM,
        Op.CLAMP, Op.SOFT_MAX,
    }
)
VIEW_OPS = frozenset({Op.VIEW, Op.RESHAPE, Op.PERMUTE, Op.TRANSPOSE})


@dataclass(eq=False)
class Tensor:
    """One tensor of a graph. Identity (not value) equality, like a ggml_tensor pointer."""

    name: str
    shape: tuple[int, ...]  # ggml order: ne0 (fastest varying), ne1, ...
    dtype: str = "float32"  # numpy dtype name of the elements
    op: Op = Op.NONE  # NONE = leaf (a constant or an input), else computed by a node
    srcs: tuple["Tensor", ...] = ()  # operands, in ggml's src order
    view_src: "Tensor | None" = None  # root tensor whose memory this view aliases (never a view)
    view_offs: int = 0  # byte offset of the view inside view_src
    strides: tuple[int, ...] | None = None  # ggml nb (bytes, ne order); None = contiguous
    inplace: bool | None = None  # may reuse a parent's block; None = Op default (INPLACE_OPS)
    is_input: bool = False  # GGML_TENSOR_FLAG_INPUT: placed before the nodes run
    is_output: bool = False  # GGML_TENSOR_FLAG_OUTPUT: never freed, never reused
    external: bool = False  # storage outside this allocator (weights, KV cache): never placed
    nbytes_override: int | None = None  # for block-quantized dtypes; else from shape and dtype

    @property
    def nb(self) -> tuple[int, ...]:
        """Byte strides in ggml order (ggml_tensor.nb)."""
        if self.strides is not None:
            return tuple(self.strides)
        out, acc = [], np.dtype(self.dtype).itemsize
        for n in self.shape:
            out.append(acc)
            acc *= n
        return tuple(out)

    @property
    def nbytes(self) -> int:
        """Bytes spanned (ggml_nbytes): element size + sum((ne[i]-1) * nb[i])."""
        if self.nbytes_override is not None:
            return self.nbytes_override
        if any(n <= 0 for n in self.shape):
            return 0
        return np.dtype(self.dtype).itemsize + sum((n - 1) * s for n, s in zip(self.shape, self.nb))

    @property
    def is_view(self) -> bool:
        return self.view_src is not None

    @property
    def can_inplace(self) -> bool:
        return self.op in INPLACE_OPS if self.inplace is None else self.inplace

    def same_layout(self, other: "Tensor") -> bool:
        """ggml_are_same_layout: same type, ne and nb."""
        return (
            np.dtype(self.dtype) == np.dtype(other.dtype)
            and tuple(self.shape) == tuple(other.shape)
            and self.nb == other.nb
            and self.nbytes == other.nbytes
        )


def view(name: str, parent: Tensor, shape: tuple[int, ...], offset: int = 0,
         strides: tuple[int, ...] | None = None, op: Op = Op.VIEW, dtype: str | None = None) -> Tensor:
    """A view of `parent` (ggml_view_*, ggml_reshape_*, ggml_permute); view_src is the root."""
    root, offs = parent, offset
    if parent.view_src is not None:
        root, offs = parent.view_src, parent.view_offs + offset
    return Tensor(name, tuple(shape), dtype or parent.dtype, op, (parent,), root, offs, strides)


@dataclass
class Graph:
    """Leafs (op NONE) and nodes in execution order, as ggml_cgraph."""

    leafs: list[Tensor] = field(default_factory=list)
    nodes: list[Tensor] = field(default_factory=list)


def build_forward(*outputs: Tensor, graph: Graph | None = None) -> Graph:
    """ggml_build_forward_expand: depth-first over srcs (left to right); marks nothing."""
    g = graph if graph is not None else Graph()
    visited = {id(t) for t in g.leafs} | {id(t) for t in g.nodes}
    stack: list[tuple[Tensor, int]] = []
    for out in outputs:
        if id(out) in visited:
            continue
        visited.add(id(out))
        stack.append((out, 0))
        while stack:
            t, i = stack.pop()
            if i < len(t.srcs):
                stack.append((t, i + 1))
                s = t.srcs[i]
                if id(s) not in visited:
                    visited.add(id(s))
                    stack.append((s, 0))
                continue
            (g.leafs if t.op is Op.NONE else g.nodes).append(t)
    return g


# --- dynamic tensor allocator (ggml_dyn_tallocr) -------------------------------------------------


class _Chunk:
    __slots__ = ("free_blocks", "max_size")

    def __init__(self, size: int) -> None:
        self.free_blocks: list[list[int]] = [[0, size]]  # [offset, size], sorted by offset
        self.max_size = 0  # high-water mark of this chunk


class DynAllocator:
    """ggml_dyn_tallocr: best-fit free-list allocator over up to 16 chunks of `max_size`."""

    def __init__(self, alignment: int, max_size: int = SIZE_MAX) -> None:
        if alignment <= 0 or alignment & (alignment - 1):
            raise AllocationError(f"alignment must be a power of two, got {alignment}")
        self.alignment = alignment
        self.max_chunk_size = min(max_size, _UNBOUNDED)
        self.chunks: list[_Chunk] = []
        self.live_bytes = 0  # bytes currently handed out (for plan_report)
        self.peak_live_bytes = 0

    def reset(self) -> None:
        self.chunks = []
        self.live_bytes = 0
        self.peak_live_bytes = 0

    def _pad(self, size: int) -> int:
        return (size + self.alignment - 1) // self.alignment * self.alignment

    def _new_chunk(self, min_size: int) -> int:
        if len(self.chunks) >= VBUFFER_MAX_CHUNKS:
            return -1
        size = max(min_size, self.max_chunk_size)
        if len(self.chunks) == VBUFFER_MAX_CHUNKS - 1:
            size = _UNBOUNDED  # the last chunk is virtually unbounded
        self.chunks.append(_Chunk(size))
        return len(self.chunks) - 1

    def alloc(self, size: int) -> tuple[int, int]:
        """Allocate `size` bytes (padded to the alignment); returns (chunk, offset)."""
        size = self._pad(size)
        best_chunk = best_block = -1
        # best fit among all blocks except the last one of each chunk
        for c, chunk in enumerate(self.chunks):
            best_size = SIZE_MAX
            for i in range(len(chunk.free_blocks) - 1):
                bsize = chunk.free_blocks[i][1]
                if size <= bsize <= best_size:
                    best_chunk, best_block, best_size = c, i, bsize
        if best_block == -1:
            # the last block of a chunk: prefer memory the chunk already has (reuse >= 0, smallest)
            # over growing it (reuse < 0, least growth)
            best_reuse = -(2**63)
            for c, chunk in enumerate(self.chunks):
                if chunk.free_blocks:
                    block = chunk.free_blocks[-1]
                    reuse = chunk.max_size - block[0] - size
                    better_reuse = best_reuse < 0 and reuse > best_reuse
                    better_fit = reuse >= 0 and reuse < best_reuse
                    if block[1] >= size and (better_reuse or better_fit):
                        best_chunk, best_block, best_reuse = c, len(chunk.free_blocks) - 1, reuse
        if best_block == -1:
            best_chunk = self._new_chunk(size)
            best_block = 0
        if best_chunk == -1:  # unreachable: the last chunk is unbounded
            raise AllocationError(f"graph allocation: no space for {size} bytes")
        chunk = self.chunks[best_chunk]
        block = chunk.free_blocks[best_block]
        offset = block[0]
        block[0] += size
        block[1] -= size
        if block[1] == 0:
            del chunk.free_blocks[best_block]
        chunk.max_size = max(chunk.max_size, offset + size)
        self.live_bytes += size
        self.peak_live_bytes = max(self.peak_live_bytes, self.live_bytes)
        return best_chunk, offset

    def free_bytes(self, chunk_id: int, offset: int, size: int) -> None:
        """Return a block, merging it with the free blocks it touches."""
        size = self._pad(size)
        self.live_bytes -= size
        blocks = self.chunks[chunk_id].free_blocks
        for i, block in enumerate(blocks):
            if block[0] + block[1] == offset:  # freed block starts where this one ends
                block[1] += size
                if i < len(blocks) - 1 and block[0] + block[1] == blocks[i + 1][0]:
                    block[1] += blocks[i + 1][1]
                    del blocks[i + 1]
                return
            if offset + size == block[0]:  # freed block ends where this one starts
                block[0] = offset
                block[1] += size
                if i > 0 and blocks[i - 1][0] + blocks[i - 1][1] == block[0]:
                    blocks[i - 1][1] += block[1]
                    del blocks[i]
                return
        if len(blocks) >= MAX_FREE_BLOCKS:
            raise AllocationError(f"graph allocation: more than {MAX_FREE_BLOCKS} free blocks")
        pos = 0
        while pos < len(blocks) and blocks[pos][0] < offset:
            pos += 1
        blocks.insert(pos, [offset, size])

    def chunk_max_size(self, chunk_id: int) -> int:
        return self.chunks[chunk_id].max_size if chunk_id < len(self.chunks) else 0


# --- graph allocator (ggml_gallocr) --------------------------------------------------------------


@dataclass(frozen=True)
class BufferType:
    """A backend buffer type: alignment and the largest single buffer it can allocate."""

    alignment: int = 32  # bytes; the CPU backend's TENSOR_ALIGNMENT
    max_size: int = SIZE_MAX  # bytes per chunk


@dataclass
class _HashNode:
    n_children: int = 0
    n_views: int = 0
    buffer_id: int = 0
    chunk: int = 0
    offset: int = 0
    allocated: bool = False


@dataclass(frozen=True)
class Placement:
    """A planned address (tensor_alloc): buffer_id -1 = external or view, not placed."""

    buffer_id: int
    chunk: int
    offset: int  # bytes within the chunk
    size_max: int  # bytes reserved; 0 for external tensors and views


_INVALID = Placement(-1, -1, -1, 0)


@dataclass
class Plan:
    """Result of `GraphAllocator.alloc_graph`: where each tensor of the graph lives."""

    chunk_sizes: list[list[int]]  # [buffer_id][chunk] bytes; chunk c starts at sum(sizes[:c])
    refs: dict[str, TensorRef]  # tensor name -> its place in its buffer's arena (views included)
    places: dict[str, tuple[int, int, int]]  # tensor name -> (buffer_id, chunk, offset in chunk)
    buffer_ids: dict[str, int]  # tensor name -> buffer id
    sum_tensor_bytes: int  # bytes of all placed (non-view, non-external) tensors
    peak_live_bytes: list[int]  # [buffer_id] max bytes simultaneously live while planning

    @property
    def buffer_sizes(self) -> list[int]:
        return [sum(c) for c in self.chunk_sizes]


def plan_report(plan: Plan) -> dict[str, int]:
    """Arena bytes, sum of intermediate tensor bytes and peak live bytes of a plan."""
    return {
        "arena_bytes": sum(plan.buffer_sizes),
        "sum_tensor_bytes": plan.sum_tensor_bytes,
        "peak_live_bytes": sum(plan.peak_live_bytes),
    }


class GraphAllocator:
    """ggml_gallocr: plans graphs into one arena per buffer type and reuses the plan."""

    def __init__(self, buffer_types: list[BufferType] | BufferType | None = None) -> None:
        if buffer_types is None:
            buffer_types = [BufferType()]
        elif isinstance(buffer_types, BufferType):
            buffer_types = [buffer_types]
        self.bufts = list(buffer_types)
        # a buffer type used twice shares one allocator and one buffer
        self._tallocs: list[DynAllocator] = []
        for i, bt in enumerate(self.bufts):
            shared = next((self._tallocs[j] for j in range(i) if self.bufts[j] is bt), None)
            self._tallocs.append(shared or DynAllocator(bt.alignment, bt.max_size))
        # current buffers: chunk sizes per buffer id, None = not allocated
        self.buffers: list[list[int] | None] = [None] * len(self.bufts)
        self.n_reallocs = 0  # how many times buffers were (re)allocated
        self._hash: dict[int, _HashNode] = {}
        self._node_allocs: list[tuple[Placement, list[Placement]]] = []
        self._leaf_allocs: list[Placement] = []
        self._peak: list[int] = [0] * len(self.bufts)
        self._arenas: dict[int, Arena] = {}

    # -- public API -------------------------------------------------------------------------

    def reserve(self, graph: Graph, node_buffer_ids: list[int] | None = None,
                leaf_buffer_ids: list[int] | None = None) -> None:
        """Plan `graph` (the worst case) and grow the buffers to fit it (ggml_gallocr_reserve_n)."""
        self._check_ids(graph, node_buffer_ids, leaf_buffer_ids)
        for t in self._talloc_unique():
            t.reset()
        self._alloc_graph_impl(graph, node_buffer_ids, leaf_buffer_ids)
        self._node_allocs = []
        for node in graph.nodes:
            dst = self._placement(node)
            srcs = [self._placement(s) for s in node.srcs]
            self._node_allocs.append((dst, srcs))
        self._leaf_allocs = [self._placement(leaf) for leaf in graph.leafs]
        self._peak = [t.peak_live_bytes for t in self._tallocs]
        for i in range(len(self.bufts)):
            j = next((j for j in range(i) if self._tallocs[j] is self._tallocs[i]), None)
            if j is not None:
                self.buffers[i] = self.buffers[j]
                continue
            talloc = self._tallocs[i]
            cur = self.buffers[i]
            new = [talloc.chunk_max_size(c) for c in range(len(talloc.chunks))]
            realloc = cur is None or any(
                n > (cur[c] if c < len(cur) else 0) for c, n in enumerate(new)
            )
            if realloc:
                self.buffers[i] = new
                self.n_reallocs += 1

    def needs_realloc(self, graph: Graph) -> bool:
        """True unless the reserved plan fits `graph` (same node/leaf counts, no larger tensors)."""
        if len(self._node_allocs) != len(graph.nodes) or len(self._leaf_allocs) != len(graph.leafs):
            return True
        for node, (dst, srcs) in zip(graph.nodes, self._node_allocs):
            if not self._fits(node, dst):
                return True
            if len(srcs) != len(node.srcs):
                return True
            for s, pl in zip(node.srcs, srcs):
                if not self._fits(s, pl):
                    return True
        return False

    def alloc_graph(self, graph: Graph) -> Plan:
        """Place `graph` with the reserved plan, reserving again first when it does not fit."""
        if self.needs_realloc(graph):
            if len(self.bufts) != 1:
                raise AllocationError(
                    "cannot reallocate a multi-buffer graph automatically: call reserve() first"
                )
            self.reserve(graph)
        placed: dict[int, tuple[Tensor, Placement]] = {}
        for leaf, pl in zip(graph.leafs, self._leaf_allocs):
            placed.setdefault(id(leaf), (leaf, pl))
        for node, (dst, srcs) in zip(graph.nodes, self._node_allocs):
            for s, pl in zip(node.srcs, srcs):
                placed.setdefault(id(s), (s, pl))
            placed.setdefault(id(node), (node, dst))
        bases = [self._chunk_bases(i) for i in range(len(self.bufts))]
        refs: dict[str, TensorRef] = {}
        places: dict[str, tuple[int, int, int]] = {}
        ids: dict[str, int] = {}
        total = 0
        roots = {}
        for t, pl in placed.values():
            if t.view_src is None and not t.external:
                refs[t.name] = self._ref(t, bases[pl.buffer_id][pl.chunk] + pl.offset, 0)
                ids[t.name] = pl.buffer_id
                roots[id(t)] = (pl.buffer_id, bases[pl.buffer_id][pl.chunk] + pl.offset)
                places[t.name] = (pl.buffer_id, pl.chunk, pl.offset)
                total += t.nbytes
        for t, _ in placed.values():
            if t.view_src is not None and id(t.view_src) in roots:
                b, off = roots[id(t.view_src)]
                refs[t.name] = self._ref(t, off, t.view_offs)
                ids[t.name] = b
                rb, rc, ro = places[t.view_src.name]
                places[t.name] = (rb, rc, ro + t.view_offs)
        return Plan(
            chunk_sizes=[list(b or []) for b in self.buffers],
            refs=refs,
            places=places,
            buffer_ids=ids,
            sum_tensor_bytes=total,
            peak_live_bytes=list(self._peak),
        )

    def buffer_size(self, buffer_id: int) -> int:
        """Bytes of a buffer (0 if shared with an earlier buffer id or not allocated)."""
        if not 0 <= buffer_id < len(self.bufts):
            raise AllocationError(f"buffer id {buffer_id} out of range [0, {len(self.bufts)})")
        if self.buffers[buffer_id] is None:
            return 0
        if any(self._tallocs[j] is self._tallocs[buffer_id] for j in range(buffer_id)):
            return 0
        return sum(self.buffers[buffer_id])

    def make_arena(self, buffer_id: int = 0) -> Arena:
        """A new Arena sized for buffer `buffer_id` (all its chunks laid end to end)."""
        return Arena(sum(self.buffers[buffer_id] or []), max(64, self.bufts[buffer_id].alignment))

    def get_arena(self, buffer_id: int = 0) -> Arena:
        """The arena of buffer `buffer_id`, replaced only when a reserve grew the buffer.

        The decode loop calls this after alloc_graph; with a reserved worst case it returns the
        same Arena every time, so nothing is allocated per ubatch.
        """
        size = sum(self.buffers[buffer_id] or [])
        arena = self._arenas.get(buffer_id)
        if arena is None or arena.nbytes != size:
            arena = self._arenas[buffer_id] = self.make_arena(buffer_id)
        return arena

    # -- planning (ggml_gallocr_alloc_graph_impl) -------------------------------------------

    def _talloc_unique(self) -> list[DynAllocator]:
        out: list[DynAllocator] = []
        for t in self._tallocs:
            if all(t is not u for u in out):
                out.append(t)
        return out

    def _check_ids(self, graph: Graph, node_ids, leaf_ids) -> None:
        for ids, n, what in ((node_ids, len(graph.nodes), "node"), (leaf_ids, len(graph.leafs), "leaf")):
            if ids is None:
                continue
            if len(ids) != n:
                raise AllocationError(f"{len(ids)} {what} buffer ids given for {n} {what}s")
            for b in ids:
                if not 0 <= b < len(self.bufts):
                    raise AllocationError(f"{what} buffer id {b} out of range [0, {len(self.bufts)})")

    def _hn(self, t: Tensor) -> _HashNode:
        hn = self._hash.get(id(t))
        if hn is None:
            hn = self._hash[id(t)] = _HashNode()
        return hn

    def _is_own(self, t: Tensor) -> bool:
        return self._hn(t).allocated

    def _is_allocated(self, t: Tensor) -> bool:
        return t.external or self._is_own(t)

    def _free_extra_space(self, node: Tensor, parent: Tensor) -> None:
        hn, p_hn = self._hn(node), self._hn(parent)
        if parent.nbytes < node.nbytes:
            raise AllocationError(f"in-place node {node.name} is larger than its parent {parent.name}")
        p_alloc = self._tallocs[p_hn.buffer_id]
        parent_size = p_alloc._pad(parent.nbytes)
        node_size = p_alloc._pad(node.nbytes)
        if parent_size > node_size:
            p_alloc.free_bytes(p_hn.chunk, p_hn.offset + node_size, parent_size - node_size)
        del hn

    def _allocate_node(self, node: Tensor, buffer_id: int) -> None:
        hn = self._hn(node)
        if self._is_allocated(node) or node.is_view:
            return
        hn.allocated = True
        if node.can_inplace:
            for parent in node.srcs:
                if not self._is_own(parent):
                    continue  # external data (or a view): cannot reuse
                if parent.is_output or (parent.view_src is not None and parent.view_src.is_output):
                    continue
                if not node.same_layout(parent):
                    continue
                p_hn = self._hn(parent)
                if p_hn.n_children == 1 and p_hn.n_views == 0:
                    if parent.is_view:
                        # as in ggml; unreachable because views are never owned
                        vs = parent.view_src
                        vs_hn = self._hn(vs)
                        if vs_hn.n_views == 1 and vs_hn.n_children == 0 and parent.view_offs == 0:
                            hn.buffer_id, hn.chunk, hn.offset = p_hn.buffer_id, p_hn.chunk, p_hn.offset
                            p_hn.allocated = False
                            vs_hn.allocated = False
                            self._free_extra_space(node, vs)
                            return
                    else:
                        hn.buffer_id, hn.chunk, hn.offset = p_hn.buffer_id, p_hn.chunk, p_hn.offset
                        p_hn.allocated = False  # the parent's block now belongs to the node
                        self._free_extra_space(node, parent)
                        return
        hn.buffer_id = buffer_id
        hn.chunk, hn.offset = self._tallocs[buffer_id].alloc(node.nbytes)

    def _free_node(self, node: Tensor) -> None:
        if node.is_output:
            return  # graph outputs are never freed
        hn = self._hn(node)
        self._tallocs[hn.buffer_id].free_bytes(hn.chunk, hn.offset, node.nbytes)
        hn.allocated = False

    def _alloc_graph_impl(self, graph: Graph, node_ids, leaf_ids) -> None:
        self._hash = {}
        for i, leaf in enumerate(graph.leafs):
            self._allocate_node(leaf, leaf_ids[i] if leaf_ids else 0)
        # count children and views; place graph inputs before anything else
        for i, node in enumerate(graph.nodes):
            bid = node_ids[i] if node_ids else 0
            if node.is_view and node.op is not Op.NONE:
                self._hn(node.view_src).n_views += 1
            if node.is_input:
                self._allocate_node(node, bid)
            for src in node.srcs:
                self._hn(src).n_children += 1
                if src.is_input:
                    self._allocate_node(src, bid)
        for i, node in enumerate(graph.nodes):
            bid = node_ids[i] if node_ids else 0
            for parent in node.srcs:
                self._allocate_node(parent, bid)
            self._allocate_node(node, bid)
            for parent in node.srcs:
                p_hn = self._hn(parent)
                p_hn.n_children -= 1
                if p_hn.n_children == 0 and p_hn.n_views == 0:
                    if parent.is_view:
                        vs = parent.view_src
                        vs_hn = self._hn(vs)
                        vs_hn.n_views -= 1
                        if vs_hn.n_views == 0 and vs_hn.n_children == 0 and vs_hn.allocated:
                            self._free_node(vs)
                    elif p_hn.allocated:
                        self._free_node(parent)

    def _placement(self, t: Tensor) -> Placement:
        if t.view_src is not None or t.external:
            return _INVALID
        hn = self._hn(t)
        return Placement(hn.buffer_id, hn.chunk, hn.offset, t.nbytes)

    @staticmethod
    def _fits(t: Tensor, pl: Placement) -> bool:
        if t.view_src is None and not t.external:
            if pl.buffer_id < 0:
                return False
            return pl.size_max >= t.nbytes
        return True

    def _chunk_bases(self, buffer_id: int) -> list[int]:
        sizes = self.buffers[buffer_id] or []
        return [sum(sizes[:c]) for c in range(len(sizes))]

    @staticmethod
    def _ref(t: Tensor, base: int, offs: int) -> TensorRef:
        shape = tuple(reversed(t.shape))
        strides = None if t.strides is None else tuple(reversed(t.strides))
        return TensorRef(np.dtype(t.dtype), shape, base + offs, t.nbytes, strides)
