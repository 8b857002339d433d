"""Graph -> kernels: which nodes are realised into buffers, the kernel order, chunks of scalar
code, and the workspace layout by liveness."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.ops import (ACOS, ADD, ASIN, ATAN, ATAN2, CMPEQ, CMPNE, CONST, CONST_ARRAY, COS, COSH,
                      ERF, ERFC, EXP, EXPAND, EXPM1, GATHER, INPUT, IOTA, LOG, LOG1P, PAD, PLACE,
                      POW, RESHAPE, SIN, SINH, TAN, TANH, VIEWS)
from ..ir.uop import SMALL_SIZE, OpKind, UOp, consumers, toposort
from . import blas, loop
from .kernel import (Buffer, Kernel, buffer_nbytes, innermost_reads, nest_shape, over_source,
                     unrolled_seeds)

RECOMPUTE_LIMIT = 8     # a node used twice is realised when recomputing it costs more than this
CHUNK_OPS = 250         # scalar code per noinline function (docs/backend.md, 'Huge scalar graphs')
SMALL_REDUCTION = 8     # reductions over at most this many elements are unrolled in place
SHARED_NODES = 256      # a node used twice is realised when its fused code has more operations
MAX_DEPTH = 96          # deeper expressions are realised: bounds the emitter's recursion
WINDOW = 4              # a node read at offsets this close along a loop is carried, not stored


@dataclass
class Schedule:
    """The kernels in execution order, each realised node's buffer, and the workspace size."""

    inputs: list[UOp]
    outputs: list[UOp]
    kernels: list[Kernel]
    buffers: dict[UOp, Buffer]
    constants: list[UOp]
    work_bytes: int
    elements: int       # elements computed per call, summed over the graph: a work estimate
    gemms: frozenset = frozenset()      # contractions computed by BLAS GEMM calls
    lapack: bool = False    # programs (linear algebra) on large matrices may call LAPACK


def inline_reduction(node: UOp, gemms: frozenset) -> bool:
    """A reduction over a few elements is unrolled into its consumer's code, not given a loop
    (and LLVM's loop passes) of its own; a GEMM never is."""
    return (node.op.kind in (OpKind.REDUCE, OpKind.CONTRACT) and node not in gemms
            and math.prod(node.op.reduction.reduced_shape(node)) <= SMALL_REDUCTION)


def _fusable(node: UOp, gemms: frozenset) -> bool:
    return (node.op.kind in (OpKind.ELEMENTWISE, OpKind.MOVEMENT) or node.op in (CONST, IOTA)
            or inline_reduction(node, gemms))


class _Costs:
    """Per node, the scalar work and the expression depth inlined into a consumer, updated in
    topological order as nodes are realised (a realised node costs its consumers one load)."""

    def __init__(self, gemms: frozenset):
        self.gemms = gemms
        self.cost: dict[UOp, int] = {}
        self.depth: dict[UOp, int] = {}
        self.nodes: dict[UOp, int] = {}     # operations emitted: what LLVM's time scales with
        # instructions emitted per position (free ops such as reshapes and constants not
        # counted): what chunks of small code are sized by
        self.emitted: dict[UOp, int] = {}

    def add(self, node: UOp, realised: set) -> None:
        cost, depth, nodes = node.op.cost, 0, 1
        emitted = 1 if cost or node.op.kind is OpKind.ELEMENTWISE else 0
        for s in node.src:
            if s not in realised and _fusable(s, self.gemms):
                cost += self.cost[s]
                depth = max(depth, self.depth[s])
                nodes += self.nodes[s]
                emitted += self.emitted[s]
        self.cost[node] = min(cost, 1 << 30)
        self.depth[node] = 1 + depth
        self.nodes[node] = min(nodes, 1 << 30)
        self.emitted[node] = min(emitted, 1 << 30)


def _is_flat(root: UOp, realised: set) -> bool:
    """Whether the kernel of `root` reads everything at the root's own flat position, so that one
    counter can run over all elements (a full reduction runs over its source's elements)."""
    if root.op.kind is OpKind.CONTRACT or root.op.kind is OpKind.REDUCE and root.ndim:
        return False
    stack, seen = [root] if root.op.kind is not OpKind.REDUCE else list(root.src), set()
    while stack:
        node = stack.pop()
        if node in seen or node is not root and node in realised or node.op is CONST:
            continue
        seen.add(node)
        if node.op.kind is OpKind.MOVEMENT and node.op is not RESHAPE and not (
                node.op is EXPAND and node.src[0].size == 1) or node.op.kind in (
                "source", "reduce", "contract"):
            return False
        stack.extend(node.src)
    return True


def _read_repeatedly(node: UOp, users: dict, costs: _Costs, outputs: set) -> bool:
    """Whether fusing `node` into its consumers would compute its elements many times over,
    unless it is cheap: through a broadcast (vmapped code: work independent of the batch,
    expanded along it) but into placements that compute every seed at each position, or a
    gather reading most of it (at computed positions, each decoded into the node's axes, where
    computing it in its own nest needs no decoding)."""
    if costs.cost[node] <= RECOMPUTE_LIMIT or node.op in (RESHAPE, EXPAND):
        return False
    stack = list(users[node])
    while stack:
        user = stack.pop()
        if user.op is RESHAPE:
            stack.extend(users[user])
        elif (user.op is EXPAND and user.size >= 2 * node.size
              and not _one_position_per_seed(user, users, outputs)
              or user.op is GATHER and 2 * user.size >= node.size):
            return True
    return False


def _one_position_per_seed(expand: UOp, users: dict, outputs: set) -> bool:
    """Whether `expand` broadcasts along its leading axis only, into elementwise code that
    placements alone consume (none of it an output), each computing all its seeds (that axis)
    at each position of its nest (`unrolled_seeds`): every seed reads the broadcast value at
    that one position, which the nest computes once (a sparse Jacobian's colours: 5 exp per
    point of bratu2d's grid where one is needed, and 16 MB less memory traffic than storing
    them)."""
    source = expand.src[0]
    if source.shape[:1] != (1,) or source.shape[1:] != expand.shape[1:]:
        return False
    stack, seen = [expand], set()
    while stack:
        for user in users[stack.pop()]:
            if user in seen:
                continue
            seen.add(user)
            if user.op is PLACE and unrolled_seeds(user) and user.src[0].shape == expand.shape:
                continue
            if (user.op.kind is not OpKind.ELEMENTWISE or user.shape != expand.shape
                    or user in outputs):
                return False
            stack.append(user)
    return True


_VECTOR_MATH = frozenset({EXP, LOG, SIN, COS, POW, TAN, TANH, SINH, COSH, ASIN, ACOS, ATAN,
                          LOG1P, EXPM1, ATAN2, ERF, ERFC})
"""Ops whose vectorised code calls libmvec and scalar code libm: results may differ in the last
bit between two kernels computing the same node (arithmetic, casts and sqrt do not)."""


def _compared_exactly(order: list[UOp]) -> set[UOp]:
    """The values that float equality tests compare (through views) and that a maths function
    of `_VECTOR_MATH` went into, computed once: computed in two kernels they may differ in the
    last bit (a vectorised loop calls libmvec's sin where a scalar one calls libm's), and an
    exact test must see the values every other kernel sees (the derivative of max(x, y) tests
    max(x, y) == x: recomputed x never equalled the stored max, and the derivative vanished)."""
    inexact: dict[UOp, bool] = {}
    compared = set()
    for node in order:
        inexact[node] = node.op in _VECTOR_MATH or any(inexact[s] for s in node.src)
        if node.op in (CMPEQ, CMPNE) and node.src[0].dtype.is_float:
            for s in node.src:
                while s.op in VIEWS:
                    s = s.src[0]
                if s.src and inexact[s]:
                    compared.add(s)
    return compared


def _realise(order: list[UOp], outputs: list[UOp], users: dict,
             gemms: frozenset) -> tuple[set, _Costs]:
    realised = {n for n in order if n.op.kind in (OpKind.REDUCE, OpKind.CONTRACT) and not
                inline_reduction(n, gemms) or n.op in (INPUT, CONST_ARRAY, PLACE)}
    realised.update(outputs)
    # A loop's results live in buffers, and it reads its sources from buffers (in place
    # through reshapes and slices of leading rows: their own nodes are computed, in nests
    # over their own axes). So does a program (a sequential kernel of its own).
    in_place = [n for n in order if n.op.kind in (OpKind.LOOP, OpKind.PROGRAM)]
    realised.update(in_place)
    realised.update(loop.viewed(s)[0] for n in in_place for s in n.src)
    # GEMM operands are read by BLAS from memory: their underlying nodes get buffers.
    realised.update(blas.operand(s)[0] for n in gemms for s in n.src)
    realised.update(_compared_exactly(order))
    costs, stored = _Costs(gemms), set(outputs)
    for node in order:
        costs.add(node, realised)
        if node in realised or node.op in (CONST, IOTA) or node.size == 0:
            continue
        if costs.depth[node] >= MAX_DEPTH or _read_repeatedly(node, users, costs, stored):
            realised.add(node)
            continue
        if _too_long(node, costs):
            realised.add(node)
            continue
        distinct = set(users[node])
        if len(distinct) < 2:
            continue
        same_place = all(u.op.kind is OpKind.ELEMENTWISE and u.shape == node.shape
                         for u in distinct)
        cost = costs.cost[node]
        # Used in the same place only, it is computed once per position where its users
        # share a nest, but its code is copied where they read it at other positions (one
        # reverses what the other reads): past SHARED_NODES operations it is realised, and
        # kept in registers where its users do share a nest (`_keep_in_nests`).
        if (is_small(node) and cost > 1 or not same_place and cost > RECOMPUTE_LIMIT
                or costs.nodes[node] > SHARED_NODES):
            realised.add(node)
    return realised, costs


def schedule(inputs: list[UOp], outputs: list[UOp], gemm: bool = True) -> Schedule:
    """Split the graph of `outputs` into kernels and lay out the workspace; large contractions
    become BLAS GEMM calls if `gemm`, else loop nests; `gemm` also lets linear algebra on large
    matrices call LAPACK (both are SciPy's, bound in this process).

    A node is realised when it is an input, an output, a reduction, contraction or placement, or
    used by several consumers where recomputing would cost more than a load; everything else
    fuses into its consumers as index arithmetic and scalar code.
    """
    order = toposort(outputs)
    if gemm:
        canonical = blas.canonicalise(list(outputs), order)
        if any(a is not b for a, b in zip(canonical, outputs)):
            outputs, order = canonical, toposort(canonical)
    gemms = frozenset(n for n in order if gemm and blas.is_gemm(n))
    users = consumers(order)
    realised, costs = _realise(order, outputs, users, gemms)
    buffers: dict[UOp, Buffer] = {}
    for i, node in enumerate(inputs):
        buffers[node] = Buffer("input", i, node.dtype, node.size)
    constants = [n for n in order if n.op is CONST_ARRAY]
    for i, node in enumerate(constants):
        buffers[node] = Buffer("const", i, node.dtype, node.size)
    output_buffers = [Buffer("output", j, o.dtype, o.size) for j, o in enumerate(outputs)]
    for node, buffer in zip(outputs, output_buffers):
        if node not in buffers:
            buffers[node] = buffer
    tiled = _tile_outputs(outputs, users, realised, buffers)
    tiled |= _reshaped_outputs(outputs, users, realised, buffers)

    kernels: list[Kernel] = []
    chunks = _Chunks(realised, costs, set(outputs))
    in_graph, looped = set(order), set()
    for node in order:
        if node.op.kind is OpKind.LOOP:
            if node not in looped:
                kernel = loop.plan(node, in_graph, lambda i, o: schedule(i, o, gemm))
                looped.update(kernel.roots)
                kernels.append(kernel)
            continue
        if node.op.kind is OpKind.PROGRAM:
            kernels.append(Kernel((), [node], scratch_bytes=buffer_nbytes(
                node.dtype, node.op.scratch(node))))
            continue
        if (node not in realised or node.op in (INPUT, CONST_ARRAY) or node.size == 0
                or node in tiled):
            continue
        if over_source(node):
            # (a placement computing its seeds at each position runs its code once per seed)
            kernel = Kernel(nest_shape(node), [node],
                            ops=costs.nodes[node] * max(unrolled_seeds(node), 1))
        else:
            kernel = Kernel(node.shape, [node], flat=_is_flat(node, realised),
                            ops=costs.nodes[node])
        chunks.assign(kernel, node)
        kernels.append(kernel)
    _share_nests(kernels, realised)
    _slide_windows(kernels, realised, set(outputs), costs)
    # Outputs whose node lives elsewhere (an input, a constant, another output) are copied.
    for node, buffer in zip(outputs, output_buffers):
        if buffers[node] is not buffer and node.size:
            kernels.append(Kernel(node.shape, [node], flat=True, stores=[(node, buffer)]))

    _keep_in_chunks(kernels, realised, buffers, order)
    _keep_in_nests(kernels, realised, buffers, order)
    work_bytes = _plan_workspace(kernels, realised, buffers, order)
    for kernel in kernels:
        if not kernel.stores:
            kernel.stores = [(r, buffers[r]) for r in kernel.roots if r in buffers]
    _merge_chunks(kernels)
    elements = sum(node.size for node in order) + sum(
        k.roots[0].arg.length * k.body.elements for k in kernels if k.body is not None)
    return Schedule(list(inputs), list(outputs), kernels, buffers, constants, work_bytes,
                    elements, gemms, lapack=gemm)


def is_small(node: UOp) -> bool:
    """Whether `node` is scheduled like scalar code: realised when used twice unless trivial,
    cut where its code grows long, and, in a chunk, emitted position by position
    (docs/backend.md, 'Huge scalar graphs')."""
    return node.size <= SMALL_SIZE


def _too_long(node: UOp, costs: _Costs) -> bool:
    """Whether the code of a small node, unrolled over its positions, would outgrow a chunk:
    it is then realised, which cuts long expressions (a state updated step after step) into
    pieces that chunks can be made of."""
    return is_small(node) and costs.emitted[node] * node.size > CHUNK_OPS


class _Chunks:
    """Groups the kernels of small nodes, in order, into chunks of about CHUNK_OPS
    instructions, one `noinline` function each, so that LLVM's time grows linearly with the
    graph (docs/backend.md, 'Huge scalar graphs'): the steps of a long computation on a few
    numbers, e.g. a derivative of a time-stepping loop over a small state. A small output
    computed from inputs and constants alone (no other small intermediate) is not part of
    such code and stays a kernel of its own, as a vector of a few elements would be."""

    def __init__(self, realised: set, costs: _Costs, outputs: set):
        self.realised, self.costs, self.outputs = realised, costs, outputs
        self.chunk, self.ops = 0, 0

    def member(self, kernel: Kernel, node: UOp) -> bool:
        if kernel.reduction is not None or over_source(node) or not is_small(node):
            return False
        if node.shape == () or node not in self.outputs:
            return True
        stack, seen = list(node.src), set()
        while stack:        # loads([node], realised), stopping at the first small intermediate
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            if s not in self.realised:
                stack.extend(s.src)
            elif is_small(s) and s.op not in (INPUT, CONST_ARRAY):
                return True
        return False

    def assign(self, kernel: Kernel, node: UOp) -> None:
        if not self.member(kernel, node):
            return
        cost = self.costs.emitted[node] * node.size
        if self.ops + cost > CHUNK_OPS and self.ops:
            self.chunk, self.ops = self.chunk + 1, 0
        self.ops += cost
        kernel.chunk = self.chunk


def _keep_in_chunks(kernels: list[Kernel], realised: set, buffers: dict,
                    order: list[UOp]) -> None:
    """Unrealise the roots of chunks that no other kernel reads (nor is an output): their
    chunk keeps them in registers, in order, with no store nor workspace. A chunk is a run of
    consecutive kernels of one chunk id (`_merge_chunks`)."""
    groups, group, last = [], -1, None
    readers: dict[UOp, set] = {}
    table = load_sets(order, realised)
    for kernel in kernels:
        if kernel.chunk is None or last is None or kernel.chunk != last:
            group += 1
        last = kernel.chunk
        groups.append(group)
        for node in _kernel_loads(kernel, table):
            readers.setdefault(node, set()).add(group)
    for kernel, group in zip(kernels, groups):
        if kernel.chunk is None:
            continue
        for root in kernel.roots:
            if root not in buffers and readers.get(root, set()) <= {group}:
                realised.discard(root)


def _keep_in_nests(kernels: list[Kernel], realised: set, buffers: dict,
                   order: list[UOp]) -> None:
    """Unrealise the roots of a shared loop nest (`_share_nests`) that no other kernel reads
    (nor is an output): the nest computes them in order at each position and keeps them in
    registers, with no store nor workspace (e.g. the forward values a batched reverse pass
    reads at the same position: 252 MB of workspace for a 25-step RK4 loss over 1e5 points).
    The nest reads them only at the position it computes (`_can_share`)."""
    table = load_sets(order, realised)
    readers: dict[UOp, set] = {}
    for k, kernel in enumerate(kernels):
        for node in _kernel_loads(kernel, table):
            readers.setdefault(node, set()).add(k)
    for k, kernel in enumerate(kernels):
        if kernel.chunk is not None or kernel.body is not None or len(kernel.roots) < 2:
            continue
        for root in kernel.roots:
            if (root not in buffers and not over_source(root) and root.op.kind
                    is not OpKind.PROGRAM and readers.get(root, set()) <= {k}):
                realised.discard(root)


SHARE_BACK = 4      # how many kernels back a kernel may move to share an earlier nest


def _share_nests(kernels: list[Kernel], realised: set) -> None:
    """Run each kernel inside the loop nest of a kernel before it where `_can_share` allows:
    the last one, or one up to SHARE_BACK kernels back when the kernels in between store
    nothing it reads (it then runs before them: a reverse pass joins its forward pass across
    a reduction of the forward values). LLVM's time grows with the number of loop nests, and
    one pass over memory is faster."""
    merged: list[Kernel] = []
    for kernel in kernels:
        host = _host_nest(merged, kernel, realised) if kernel.shape else None
        if host is not None:
            host.roots.extend(kernel.roots)
            host.flat = host.flat and kernel.flat
            host.ops += kernel.ops
        else:
            merged.append(kernel)
    kernels[:] = merged


def _host_nest(merged: list[Kernel], kernel: Kernel, realised: set) -> Kernel | None:
    """The nest among the last SHARE_BACK of `merged` that `kernel` can run in (the latest)."""
    reads = None
    for back in range(1, min(SHARE_BACK, len(merged)) + 1):
        candidate = merged[-back]
        if _can_share(candidate, kernel, realised):
            return candidate
        if candidate.chunk is not None or candidate.body is not None:
            return None
        if reads is None:
            reads = loads(kernel.roots, realised)
        if reads & set(candidate.roots) or reads & set(candidate.windows):
            return None
    return None


def _tile_outputs(outputs: list[UOp], users: dict, realised: set, buffers: dict) -> set:
    """The outputs that are sums of realised nodes zero-padded along the leading axis into
    blocks tiling them exactly (a gradient with respect to a flat vector of parameters: each
    block's gradient padded to its place): each block is then computed in its place in the
    output, which needs no kernel of its own (nor the workspace and the copy)."""
    tiled, output_set = set(), set(outputs)
    for node in outputs:
        buffer = buffers[node]
        if buffer.kind != "output" or node in tiled or not node.ndim:
            continue
        blocks = _blocks(node, users, realised, output_set)
        if not blocks:
            continue
        for offset, block in blocks:
            buffers[block] = Buffer("output", buffer.position, block.dtype, block.size, offset)
        tiled.add(node)
    return tiled


def _reshaped_outputs(outputs: list[UOp], users: dict, realised: set, buffers: dict) -> set:
    """The outputs that reshape a node computed for them alone (a gradient with respect to a
    flat vector, computed on the grid it was reshaped to): that node is computed in the
    output's buffer, in a nest over its own axes (contiguous reads of shifted slices where a
    flat loop decodes each position and reads through gathers)."""
    aliased = set()
    for node in outputs:
        buffer = buffers[node]
        if node.op is not RESHAPE or buffer.kind != "output" or node in aliased:
            continue
        source = node.src[0]
        if (source in buffers or source.op in (INPUT, CONST_ARRAY) or source.ndim < 2
                or len(users[source]) != 1 or source.dtype != node.dtype or is_small(source)):
            continue
        buffers[source] = Buffer("output", buffer.position, source.dtype, source.size,
                                 buffer.offset)
        realised.add(source)
        aliased.add(node)
    return aliased


def _blocks(node: UOp, users: dict, realised: set, outputs: set) -> list | None:
    """`node` as [(flat offset, block)] when it is an add-tree of leading-axis pads of
    (reshaped) realised nodes used only there, tiling it exactly; else None."""
    stride = math.prod(node.shape[1:])
    blocks, stack = [], [node]
    while stack:
        part = stack.pop()
        if part is not node and len(users[part]) != 1:
            return None
        if part.op is ADD:
            stack.extend(part.src)
            continue
        if part.op is not PAD or any(pads != (0, 0) for pads in part.arg[1:]):
            return None
        block = part.src[0]
        while block.op is RESHAPE and len(users[block]) == 1:
            block = block.src[0]
        if (block not in realised or block.op in (INPUT, CONST_ARRAY) or block in outputs
                or len(users[block]) != 1 or block.dtype != node.dtype):
            return None
        blocks.append((part.arg[0][0] * stride, block))
    blocks.sort(key=lambda b: b[0])
    end = 0
    for offset, block in blocks:
        if offset != end:
            return None
        end += block.size
    return blocks if end == node.size else None


def _slide_windows(kernels: list[Kernel], realised: set, outputs: set, costs: _Costs) -> None:
    """Unrealise the intermediates that one kernel alone reads, at a few nearby offsets of its
    innermost loop (a stencil: `y[i] = g(x[i]) - g(x[i - 1])`): that kernel computes each once
    per iteration, carrying it to the next iterations, instead of a kernel storing it for this
    one to load (one loop nest less for LLVM, no workspace traffic) or recomputing it per
    offset."""
    readers: dict[UOp, list[Kernel]] = {}
    for kernel in kernels:
        for node in loads(kernel.roots, realised):
            readers.setdefault(node, []).append(kernel)
    for kernel in kernels:
        if (kernel.reduction is not None or kernel.chunk is not None or kernel.flat
                or not kernel.shape or kernel.shape[-1] < 2
                or any(costs.depth[root] > MAX_DEPTH // 2 for root in kernel.roots)):
            continue
        reads: dict[UOp, set] = {}
        for node, at in innermost_reads(kernel.roots, len(kernel.shape), realised):
            if node in realised and node not in kernel.roots:
                reads.setdefault(node, set()).add(at)
        seeds = {unrolled_seeds(root) for root in kernel.roots} - {0}
        for node, ats in reads.items():
            if not (node not in outputs and _fusable(node, costs.gemms)
                    and readers[node] == [kernel]
                    and (node.shape[:-1] == kernel.shape[:-1]
                         or node.shape[:-1] == (*seeds, *kernel.shape[:-1]))
                    and len(ats) > 1
                    and costs.depth[node] <= MAX_DEPTH // 2
                    and all(at is not None and at[0] == 1 and at[2] for at in ats)
                    and not loads([node], realised) & set(kernel.roots)):
                continue
            offsets = [offset for _, offset, _ in ats]
            if max(offsets) - min(offsets) >= WINDOW:
                continue
            kernel.windows[node] = (min(offsets), max(offsets))
            kernel.ops += costs.nodes[node]
            realised.discard(node)
            for other in kernels:
                if node in other.roots:
                    other.roots.remove(node)
    kernels[:] = [kernel for kernel in kernels if kernel.roots]


def _can_share(first: Kernel, then: Kernel, realised: set) -> bool:
    """Whether `then` may run in `first`'s nest: the same non-scalar shape, no nested reduction
    loops, and `then` reads what `first` stores only at the position being computed (through
    elementwise ops and reshapes), never a reduction still being accumulated."""
    if (first.shape != then.shape or not first.shape or first.chunk is not None
            or then.chunk is not None or first.reduction is not None
            or then.reduction is not None):
        return False
    stored = set(first.roots)
    stack, seen = [(root, True) for root in then.roots], set()
    while stack:
        node, aligned = stack.pop()
        if (node, aligned) in seen:
            continue
        seen.add((node, aligned))
        # Sources are read at the node's own position through these ops (an accumulating
        # reduction, a root here, reads its source at the nest's position).
        keeps = aligned and (node.op.kind is OpKind.ELEMENTWISE or node.op is RESHAPE
                             or over_source(node) and node in then.roots)
        for s in node.src:
            if s in stored:
                if not keeps or over_source(s):
                    return False
            elif s not in realised:
                stack.append((s, keeps))
    return True


def _merge_chunks(kernels: list[Kernel]) -> None:
    """Group consecutive scalar kernels of one chunk into one kernel (one function)."""
    merged: list[Kernel] = []
    for kernel in kernels:
        last = merged[-1] if merged else None
        if kernel.chunk is not None and last is not None and last.chunk == kernel.chunk:
            last.roots.extend(kernel.roots)
            last.stores.extend(kernel.stores)
        else:
            merged.append(kernel)
    kernels[:] = merged


def loads(roots: list[UOp], realised) -> set:
    """The realised nodes (those in `realised`, a set or a dict of buffers) that the fused
    code of `roots` loads."""
    found, stack, seen = set(), list(roots), set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for s in node.src:
            if s in realised:
                found.add(s)
            else:
                stack.append(s)
    return found


def load_sets(order: list[UOp], realised) -> dict[UOp, frozenset]:
    """`loads([node], realised)` for every node of the topological `order`, in one pass: a
    node's set is the union of its sources' (a realised source is loaded itself), so code
    shared by many kernels is walked once, not once per kernel."""
    table: dict[UOp, frozenset] = {}
    for node in order:
        found = _NOTHING
        for s in node.src:
            part = frozenset((s,)) if s in realised else table[s]
            if not found or found < part:
                found = part
            elif not part <= found:
                found = found | part
        table[node] = found
    return table


_NOTHING: frozenset = frozenset()


def _kernel_loads(kernel: Kernel, table: dict[UOp, frozenset]) -> frozenset:
    roots = kernel.roots
    return table[roots[0]] if len(roots) == 1 else frozenset().union(*(table[r] for r in roots))


def _align(nbytes: int) -> int:
    return (nbytes + 7) // 8 * 8 if nbytes < 64 else (nbytes + 63) // 64 * 64


def _take(free: dict[int, list[int]], nbytes: int, top: int) -> tuple[int, int]:
    """A free workspace slot of `nbytes` (or a new one at the top) and the new top."""
    slots = free.get(nbytes)
    if slots:
        return slots.pop(), top
    return top, top + nbytes


def _works_in_place(kernel: Kernel, buffers: dict, last_use: dict, k: int) -> bool:
    """Whether the program of `kernel` (the k-th) may work on its first source rather than a
    copy (`OpDef.in_place`): that source lies in workspace read for the last time here, and no
    other source of the program reads it."""
    root = kernel.roots[0]
    if not root.op.in_place:            # a loop borrows its scratch: never in place
        return False
    base = loop.viewed(root.src[0])[0]
    buffer = buffers.get(base)
    return (buffer is not None and buffer.kind == "work" and last_use.get(base) == k
            and all(loop.viewed(s)[0] is not base for s in root.src[1:]))


def _plan_workspace(kernels: list[Kernel], realised: set, buffers: dict,
                    order: list[UOp]) -> int:
    """Give every realised intermediate a workspace offset; slots are reused once dead."""
    last_use: dict[UOp, int] = {}
    table = load_sets(order, realised)
    for k, kernel in enumerate(kernels):
        for node in _kernel_loads(kernel, table):
            last_use[node] = k
    free: dict[int, list[int]] = {}
    dying: dict[int, list[UOp]] = {}
    top = 0
    for k, kernel in enumerate(kernels):
        for root in kernel.roots:
            if root in buffers or root not in realised:
                continue
            offset, top = _take(free, _align(buffer_nbytes(root.dtype, root.size)), top)
            buffers[root] = Buffer("work", offset, root.dtype, root.size)
            dying.setdefault(last_use.get(root, k), []).append(root)
        if kernel.scratch_bytes and _works_in_place(kernel, buffers, last_use, k):
            kernel.in_place = True
        elif kernel.scratch_bytes:
            kernel.scratch, top = _take(free, _align(kernel.scratch_bytes), top)
            free.setdefault(_align(kernel.scratch_bytes), []).append(kernel.scratch)
        for node in dying.pop(k, []):
            free.setdefault(_align(buffer_nbytes(node.dtype, node.size)), []).append(
                buffers[node].position)
    return top
