"""Kernels -> LLVM IR text: one function per kernel (or chunk of scalar kernels) and the entry
function of the C ABI (docs/architecture.md): `int32_t f(const T *in..., T *out..., void *work)`."""
from __future__ import annotations

import itertools
import math
import re

import numpy as np


from ..ir.dtypes import DType
from ..ir.ops import CONST, CONST_ARRAY, GATHER, INPUT, PLACE
from ..ir.ops.source import llvm_literal
from ..ir.uop import OpKind, Payload, Reduction, UOp
from . import blas, constants, loop
from .emitter import Emitter, ModuleParts
from .kernel import Buffer, Index, Kernel, accumulates, innermost_reads, unrolled_seeds
from .placement import Periodic, periodic
from .schedule import CHUNK_OPS, Schedule, inline_reduction


UNROLL_POSITIONS = 32    # loop nests over at most this many positions are emitted unrolled,
UNROLL_OPS = 4000        # when that many copies of the body stay under this many operations


_SCOPE = re.compile("\x00(\\d+)\x00")
_GROUP = "\x01"    # marks a load or store of a buffer or table, for `_parallel_loops`
_LATCH = "\x02"    # marks the branch that closes a loop's iteration


def _scoped(buffer: Buffer) -> str:
    """The mark of an access to a workspace buffer, replaced by `_alias_scopes` once the
    kernel's code is complete."""
    return f"\x00{buffer.position}\x00" if buffer.kind == "work" else ""


def _alias_scopes(body: str, parts: ModuleParts) -> str:
    """`body` with each access to a workspace buffer marked as in that buffer's alias scope
    and disjoint from the kernel's other workspace buffers (`!alias.scope`, `!noalias`): the
    buffers are offsets of one `%work` pointer, and LLVM could not tell otherwise that a
    kernel's stores leave its other buffers alone (a row maximum loaded in a loop that stores
    the row's exponentials: not hoisted, not vectorised). Scopes are the kernel's own
    (a domain per kernel), and only what is loaded and stored through `Lowering.load` and
    `store` is marked: every other access stays may-alias."""
    positions = sorted({int(p) for p in _SCOPE.findall(body)})
    if len(positions) < 2:
        return _SCOPE.sub("", body)
    domain = parts.node('distinct !{{self}, !"anvil.kernel"}')
    scopes = {p: parts.node(f'distinct !{{{{self}}, {domain}, !"work+{p}"}}') for p in positions}
    marks = {p: f", !alias.scope {parts.node('!{' + scopes[p] + '}')}, !noalias "
                + parts.node("!{" + ", ".join(s for q, s in scopes.items() if q != p) + "}")
             for p in positions}
    return _SCOPE.sub(lambda m: marks[int(m.group(1))], body)


def _parallel_loops(body: str, parts: ModuleParts, parallel: bool) -> str:
    """`body` with, when `parallel`, each marked access in one access group and each loop
    declaring it free of loop-carried dependences (`llvm.loop.parallel_accesses`): what a
    nest computing a placement's seeds at each position needs to be vectorised, since LLVM
    cannot tell that stores through a slot table never meet (their slots are distinct, PLACE's
    contract). Accesses not made through `Lowering` stay unmarked: a loop holding any is not
    taken as parallel."""
    if not parallel:
        return body.replace(_GROUP, "").replace(_LATCH, "")
    group = parts.node("distinct !{}")
    body = body.replace(_GROUP, f", !llvm.access.group {group}")
    return re.sub(_LATCH, lambda _: ", !llvm.loop " + parts.node(
        f'distinct !{{{{self}}, !{{!"llvm.loop.parallel_accesses", {group}}}}}'), body)


def _parallel(kernel: Kernel) -> bool:
    """Whether a kernel's loops carry no dependence through memory and should say so: a nest
    storing a placement's seeds at each position, with no accumulating fold."""
    return (any(unrolled_seeds(root) for root in kernel.roots)
            and not any(accumulates(root) for root in kernel.roots))


def _storage(dtype: DType) -> str:
    """The in-memory LLVM type (NumPy stores bools as bytes)."""
    return "i8" if dtype.kind == "b" else dtype.llvm


class Lowering:
    """Lowers fused nodes at an index to scalar values: the `ctx` that op `emit` rules receive."""

    def __init__(self, e: Emitter, sched: Schedule, tables: "Tables", define=None):
        self.e = e
        self.sched = sched
        self.tables = tables      # constant arrays as globals, shared by the module
        self.define = define      # define(schedule, hint) -> the symbol of a function for it
        self.scopes: list[dict] = [{}]
        self.computing: UOp | None = None
        self.unroll_positions = 0   # loop nests over at most this many positions are unrolled
        # Inside a loop with windows (`each_range`): (node, leading dims, offset from the
        # counter) -> its value, and the counter with the position it starts at.
        self.window: dict = {}
        self.window_base: tuple[str, int] | None = None
        # Inside `each_period`: the placement whose slots repeat, how (backend/placement.py),
        # the iteration, its first position and the place in the period being emitted.
        self.repeating: tuple[UOp, Periodic, str, str, int] | None = None
        self.repeated: dict = {}        # `_repeated`'s findings

    # ---- the interface op rules use ------------------------------------------------------------
    def index(self, shape: tuple, dims: tuple) -> Index:
        return Index(shape, dims=dims)

    def value(self, node: UOp, index: Index) -> str:
        if node.op is CONST:
            return node.op.emit(self, node, index)
        if self.window:
            found = self.window.get(self._window_key(node, index))
            if found is not None:
                return found
        key = (node, index.key)
        for scope in reversed(self.scopes):
            found = scope.get(key)
            if found is not None:
                return found
        buffer = self.sched.buffers.get(node)
        if node.op is CONST_ARRAY and self.repeating is not None:
            result = self._repeated(node, index)
            if result is not None:
                return result
        if buffer is not None and (node is not self.computing or node.op in (INPUT, CONST_ARRAY)):
            result = self.load(buffer, index)
        elif node.op.kind is OpKind.ELEMENTWISE:
            result = node.op.scalar(self.e, node, *[self.value(s, index) for s in node.src])
        elif node.op.emit is not None:
            result = node.op.emit(self, node, index)
        elif inline_reduction(node, self.sched.gemms):
            result = self.unrolled_reduction(node, index)
        else:
            raise AssertionError(f"node {node} is neither realised nor fusable")
        self.scopes[-1][key] = result
        return result

    def unrolled_reduction(self, node: UOp, index: Index) -> str:
        """A small reduction folded in order, from the first element as NumPy does."""
        rule: Reduction = node.op.reduction
        out_dims = index.dims(self.e)
        acc = None
        for position in itertools.product(*map(range, rule.reduced_shape(node))):
            x = rule.body(self, node, out_dims, tuple(map(str, position)))
            acc = x if acc is None else rule.combine.scalar(self.e, node, acc, x)
        return identity_literal(rule, node.dtype) if acc is None else acc

    def cast_index(self, value: str, dtype: DType) -> str:
        if dtype.is_float:
            return self.e.op(f"sitofp i64 {value} to {dtype.llvm}")
        return value

    def load_constant(self, payload, flat: str, own: bool = False) -> str:
        """Element `flat` of an integer table (int32 or int64), as an i64; `own`: a table the
        lowering made (not the graph's, so never one of the process's shared constants)."""
        if own:
            self.tables.own.add(payload)
        name = self.tables.name(payload)
        ty = "i32" if payload.array.dtype == np.int32 else "i64"
        ptr = self.e.op(f"getelementptr inbounds {ty}, ptr {name}, i64 {flat}")
        value = self.e.op(f"load {ty}, ptr {ptr}{_GROUP}")
        return self.e.op(f"sext i32 {value} to i64") if ty == "i32" else value

    @property
    def lapack(self) -> bool:
        """Whether programs may call SciPy's LAPACK (the schedule is for this process)."""
        return self.sched.lapack

    # ---- buffers ---------------------------------------------------------------------------------
    def start(self, node: UOp) -> str:
        """The address of the first element of a realised node, or of a view of one (a
        program reads its sources in place: `loop.viewed`)."""
        buffer = self.sched.buffers.get(node)
        offset = 0
        if buffer is None:
            node, offset = loop.viewed(node)
            buffer = self.sched.buffers[node]
        return self.address(buffer, Index((buffer.size,), flat=str(offset)))

    def pointer(self, buffer: Buffer) -> str:
        if buffer.kind == "input":
            return f"%in{buffer.position}"
        if buffer.kind == "output":
            return f"%out{buffer.position}"
        if buffer.kind == "const":
            node = self.sched.constants[buffer.position]
            return self.tables.name(node.arg)
        return "%work"

    def address(self, buffer: Buffer, index: Index) -> str:
        """The address of one element; literal offsets fold into one byte offset."""
        flat = self.e.add_i(index.flat(self.e), str(buffer.offset))
        base = self.pointer(buffer)
        if buffer.kind == "work":
            if flat.lstrip("-").isdigit():
                offset = buffer.position + int(flat) * buffer.dtype.itemsize
                return self.e.op(f"getelementptr inbounds i8, ptr %work, i64 {offset}")
            base = self.e.op(f"getelementptr inbounds i8, ptr %work, i64 {buffer.position}")
        if flat == "0":
            return base
        return self.e.op(f"getelementptr inbounds {_storage(buffer.dtype)}, ptr {base}, "
                         f"i64 {flat}")

    def load(self, buffer: Buffer, index: Index) -> str:
        ty = _storage(buffer.dtype)
        value = self.e.op(f"load {ty}, ptr {self.address(buffer, index)}{_scoped(buffer)}"
                          f"{_GROUP}")
        return self.e.op(f"trunc i8 {value} to i1") if buffer.dtype.kind == "b" else value

    def store(self, buffer: Buffer, index: Index, value: str) -> None:
        ty = _storage(buffer.dtype)
        if buffer.dtype.kind == "b":
            value = self.e.op(f"zext i1 {value} to i8")
        self.e.line(f"store {ty} {value}, ptr {self.address(buffer, index)}{_scoped(buffer)}"
                    f"{_GROUP}")

    def guarded(self, condition: str, compute, default: str, ty: str) -> str:
        """`compute()` where `condition` holds, else `default`, as a branch: loads inside run
        only when in bounds, and LLVM's vectoriser turns them into masked loads."""
        return self.choose(condition, compute, lambda: default, ty)

    def choose(self, condition: str, then, otherwise, ty: str) -> str:
        """`then()` where `condition` holds, else `otherwise()`: each computed in a branch of
        its own, so only the one taken runs."""
        if condition in ("true", "false"):
            return then() if condition == "true" else otherwise()
        e = self.e
        values, ends = [], []
        labels = e.label("choose.then"), e.label("choose.else")
        join = e.label("choose.join")
        e.line(f"br i1 {condition}, label %{labels[0]}, label %{labels[1]}")
        for label, compute in zip(labels, (then, otherwise)):
            e.block(label)
            self.scopes.append({})
            values.append(compute())
            self.scopes.pop()
            ends.append(e.current)
            e.line(f"br label %{join}")
        e.block(join)
        return e.op(f"phi {ty} [ {values[0]}, %{ends[0]} ], [ {values[1]}, %{ends[1]} ]")

    # ---- loops -----------------------------------------------------------------------------------
    def loop(self, count: int, hint: str):
        """Open a counted loop; returns (counter, close) where close() ends it."""
        return self.range("0", str(count), count, hint)

    def range(self, start: str, stop: str, bound: int, hint: str):
        """Open a loop over start <= i < stop (operands: literals or values known at run time,
        within 0..bound); returns (counter, close) where close() ends it."""
        e = self.e
        head, body, end = e.label(hint + ".head"), e.label(hint + ".body"), e.label(hint + ".end")
        slot = e.alloca("i64")
        e.line(f"store i64 {start}, ptr {slot}")
        e.line(f"br label %{head}")
        e.block(head)
        i = e.op(f"load i64, ptr {slot}")
        more = e.op(f"icmp slt i64 {i}, {stop}")
        e.spans[i] = (0, bound - 1)     # inside the body
        e.line(f"br i1 {more}, label %{body}, label %{end}")
        e.block(body)
        self.scopes.append({})

        def close():
            self.scopes.pop()
            nxt = e.op(f"add nuw nsw i64 {i}, 1")
            e.line(f"store i64 {nxt}, ptr {slot}")
            e.line(f"br label %{head}{_LATCH}")
            e.block(end)
        return i, close

    def each(self, shape: tuple, hint: str, body, inner: int = 1) -> None:
        """Call `body(dims)` inside a loop nest over `shape`; or, when the nest's positions
        times `inner` (the positions of nested loops) fit `unroll_positions`, once per position
        with literal dims: straight-line code, which LLVM compiles without its loop passes,
        and where a value shared by several positions is computed once."""
        if math.prod(shape) * inner <= self.unroll_positions:
            for position in itertools.product(*map(range, shape)):
                body(tuple(map(str, position)))
            return
        dims, closes = self.loops(shape, hint)
        body(dims)
        _close(closes)

    def each_range(self, start: int, stop: int, body, windows: dict | None = None,
                   lead: tuple = ()) -> None:
        """Call `body(i)` for i in [start, stop): a loop (whose counter's span the emitter knows)
        or, for a few positions, once per literal position. In the loop, each node of
        `windows` (a kernel's) is computed once per iteration at `(*lead, i + highest)` and
        carried in registers to the iterations that read it at lower offsets."""
        if stop - start <= self.unroll_positions:
            for i in range(start, stop):
                body(str(i))
            return
        e = self.e
        # a window of a placement's seeds (one axis more than the nest) is carried per seed
        carried = [(node, low, high, lead if node.ndim == len(lead) + 1 else (str(k), *lead))
                   for node, (low, high) in (windows or {}).items()
                   for k in range(1 if node.ndim == len(lead) + 1 else node.shape[0])]
        slots = [self._carry_in(node, at, start, low, high) for node, low, high, at in carried]
        i, close = self.loop(stop - start, "s")
        position = e.add_i(i, str(start))
        self.window_base = (i, start)
        for (node, low, high, at), held in zip(carried, slots):
            ty = node.dtype.llvm
            for c, slot in zip(range(low, high), held):
                self.window[(node, at, c)] = e.op(f"load {ty}, ptr {slot}")
            self.window[(node, at, high)] = self._computed_in_range(
                node, at, e.add_i(position, str(high)))
        body(position)
        for (node, low, high, at), held in zip(carried, slots):
            for c, slot in zip(range(low, high), held):
                e.line(f"store {node.dtype.llvm} {self.window[(node, at, c + 1)]}, ptr {slot}")
        self.window, self.window_base = {}, None
        close()

    def _repeated(self, node: UOp, index: Index) -> str | None:
        """A constant array read in a period at the same place of every period (a colouring's
        seeds, periodic as the slots), as a literal: None where it is not."""
        _, found, _, first, _ = self.repeating
        dims = index.dims(self.e)
        base, offset = self.e.offset_of(dims[-1])
        if base != first or not all(d.isdigit() for d in dims[:-1]):
            return None
        key = (node, dims[:-1], offset, found.period, found.periods)
        if key not in self.repeated:
            line = node.arg.array[tuple(map(int, dims[:-1]))]
            values = line[offset:offset + found.period * found.periods:found.period]
            same = 0 <= offset and values.size == found.periods and (values == values[0]).all()
            self.repeated[key] = llvm_literal(values[0], node.dtype) if same else None
        return self.repeated[key]

    def each_period(self, root: UOp, found: Periodic, body) -> None:
        """Call `body(i)` for the `found.periods` periods of `found.period` positions from
        `found.start` on, one period per iteration, while `repeating` tells `_place` how to
        store `root` there. No windows: LLVM does not vectorise a loop whose values are
        carried from one position of the period to the next (measured)."""
        e = self.e
        i, close = self.loop(found.periods, "period")
        first = e.mul_i(i, str(found.period))
        for phase in range(found.period):
            self.repeating = root, found, i, first, phase
            body(e.add_i(first, str(found.start + phase)))
        self.repeating = None
        close()

    def _carry_in(self, node: UOp, lead: tuple, start: int, low: int, high: int) -> list[str]:
        """Slots holding `node` at the offsets [low, high) of a loop's first position."""
        slots = []
        for c in range(low, high):
            slot = self.e.alloca(node.dtype.llvm)
            value = self._computed_in_range(node, lead, str(start + c))
            self.e.line(f"store {node.dtype.llvm} {value}, ptr {slot}")
            slots.append(slot)
        return slots

    def _computed_in_range(self, node: UOp, lead: tuple, position: str) -> str:
        """`node` at `(*lead, position)`, or zero where that position is outside it (where
        nothing reads it)."""
        index = Index(node.shape, dims=lead + (position,))
        return self.guarded(self.e.in_range(position, node.shape[-1]),
                            lambda: self.value(node, index), node.dtype.zero, node.dtype.llvm)

    def _window_key(self, node: UOp, index: Index):
        """The `window` key of `node` at `index`, when it is the loop counter plus a literal."""
        dims = index.key[1]
        if not dims:
            return None
        base, offset = self.e.offset_of(dims[-1])
        counter, start = self.window_base
        return (node, dims[:-1], offset - start) if base == counter else None

    def loops(self, shape: tuple, hint: str) -> tuple[tuple[str, ...], list]:
        dims, closes = [], []
        for axis, n in enumerate(shape):
            if n == 1:
                dims.append("0")
                continue
            i, close = self.loop(n, f"{hint}{axis}.")
            dims.append(i)
            closes.append(close)
        return tuple(dims), closes


def _close(closes: list) -> None:
    for close in reversed(closes):
        close()


def _combine(e: Emitter, root: UOp, acc: str, x: str) -> str:
    """Fold `x` into the accumulator with the reduction's combining op (its scalar rule sees
    the reduction node, whose dtype is the accumulator's)."""
    op, dtype = root.op.reduction.combine, root.dtype
    if dtype.is_float and op.name in ("add", "mul"):
        # reassoc lets LLVM vectorise the reduction (docs/backend.md, 'Loop vectorisation').
        return e.op(f"f{op.name} reassoc {dtype.llvm} {acc}, {x}")
    if dtype.is_float and op.name in ("max", "min"):
        # llvm.maximum/minimum (NaN-propagating, associative) fold in any order, so LLVM
        # vectorises the loop; the elementwise op's compare and select, NumPy's exact rule
        # for the sign of a tie of zeros, would keep it scalar (6x slower at 1e6)
        intrinsic = f"llvm.{op.name}imum.{'f64' if dtype.llvm == 'double' else 'f32'}"
        return e.call(dtype.llvm, intrinsic, [(dtype.llvm, acc), (dtype.llvm, x)])
    return op.scalar(e, root, acc, x)


def _emit_reduction(ctx: Lowering, root: UOp, buffer: Buffer, flat: bool) -> None:
    """Output loops, an accumulator set to the identity, reduced loops folding the body into
    it, then the store. A flat full reduction runs one counter over its source's elements."""
    e, ty = ctx.e, root.dtype.llvm
    rule: Reduction = root.op.reduction
    acc = e.alloca(ty)
    src = root.src[0]
    reduced = (src.size,) if flat else rule.reduced_shape(root)

    def fold(out_dims, red_dims):
        x = (ctx.value(src, Index(src.shape, flat=red_dims[0])) if flat
             else rule.body(ctx, root, out_dims, red_dims))
        partial = e.op(f"load {ty}, ptr {acc}")
        e.line(f"store {ty} {_combine(e, root, partial, x)}, ptr {acc}")

    def reduce_at(out_dims):
        e.line(f"store {ty} {identity_literal(rule, root.dtype)}, ptr {acc}")
        ctx.each(reduced, "r", lambda red_dims: fold(out_dims, red_dims))
        ctx.store(buffer, Index(root.shape, dims=out_dims), e.op(f"load {ty}, ptr {acc}"))
    if flat:
        reduce_at(())
    else:
        ctx.each(root.shape, "o", reduce_at, inner=math.prod(reduced))


def _emit_map(ctx: Lowering, kernel: Kernel) -> None:
    """One loop nest storing each root at its position; an accumulating reduction's output is
    first set to the identity, then each element of its source is folded into it."""
    folds = [(root, buffer) for root, buffer in kernel.stores
             if accumulates(root) and ctx.sched.buffers.get(root) is buffer]
    for root, buffer in folds:
        identity = identity_literal(root.op.reduction, root.dtype)
        ctx.each(root.shape, "z", lambda dims, root=root, buffer=buffer, identity=identity:
                 ctx.store(buffer, Index(root.shape, dims=dims), identity))

    places = [(root, buffer) for root, buffer in kernel.stores
              if root.op is PLACE and ctx.sched.buffers.get(root) is buffer]
    for root, buffer in places:
        if not _fills(root):
            ctx.each(root.shape, "z", lambda dims, root=root, buffer=buffer: ctx.store(
                buffer, Index(root.shape, dims=dims), llvm_literal(0, root.dtype)))

    # roots kept in registers (schedule._keep_in_nests), computed in order before those after
    kept = {root: [(r, b) for r, b in kernel.stores if r is root] for root in kernel.roots}
    steps = [step for root in kernel.roots for step in kept[root] or [(root, None)]]
    steps += [(r, b) for r, b in kernel.stores if r not in kept]

    def store_at(index: Index):
        for root, buffer in steps:
            if buffer is None:
                ctx.value(root, index)
                continue
            # A copy of an output that lives elsewhere loads it; anything else is computed here.
            ctx.computing = root if ctx.sched.buffers.get(root) is buffer else None
            if (root, buffer) in folds:
                _fold(ctx, root, buffer, index.dims(ctx.e))
                continue
            if (root, buffer) in places:
                dims = index.dims(ctx.e)
                for seed in range(unrolled_seeds(root)) or [None]:
                    _place(ctx, root, buffer, dims if seed is None else (str(seed), *dims))
                continue
            value = ctx.value(root, index)
            ctx.store(buffer, index, value)
            ctx.scopes[-1][(root, index.key)] = value
        ctx.computing = None
    if kernel.flat:
        size = math.prod(kernel.shape)
        ctx.each((size,), "i", lambda dims: store_at(Index(kernel.shape, flat=dims[0])))
        return
    bounds = _pieces(ctx, kernel)
    unrolled = [root for root, _ in places if unrolled_seeds(root)]
    edges = bounds or ([0, kernel.shape[-1]] if kernel.shape else [])
    repeats = [periodic(unrolled[0].arg[0].array, start, stop)
               if len(unrolled) == 1 and stop - start > ctx.unroll_positions else None
               for start, stop in zip(edges, edges[1:])]
    if bounds is None and not kernel.windows and not any(repeats):
        ctx.each(kernel.shape, "i", lambda dims: store_at(Index(kernel.shape, dims=dims)))
        return
    bounds = edges

    def pieces(dims):
        def run(d):
            store_at(Index(kernel.shape, dims=dims + (d,)))
        for start, stop, found in zip(bounds, bounds[1:], repeats):
            if found is None:
                ctx.each_range(start, stop, run, kernel.windows, dims)
            else:
                _repeating_range(ctx, unrolled[0], found, start, stop, run, kernel.windows,
                                 dims)
    ctx.each(kernel.shape[:-1], "i", pieces, inner=kernel.shape[-1])


def _repeating_range(ctx: Lowering, root: UOp, found: Periodic, start: int, stop: int, run,
                     windows, dims: tuple) -> None:
    """`run(i)` for i in [start, stop) of a nest storing the placement `root`, whose slots
    repeat (`found`): the positions before the periods and after them through the slot table,
    the periods storing to addresses computed from the iteration (`_place`); the rows of the
    outer axes that do not repeat (flagged in a table) store through the table throughout."""
    def through_table() -> str:
        ctx.each_range(start, stop, run, windows, dims)
        return "true"

    def repeating() -> str:
        ctx.each_range(start, found.start, run, windows, dims)
        ctx.each_period(root, found, run)
        ctx.each_range(found.start + found.period * found.periods, stop, run, windows, dims)
        return "true"
    if found.rows is None:
        repeating()
        return
    flags = Payload(found.rows.astype(np.int32))
    row = ctx.e.flatten(dims, root.arg[0].array.shape[1:-1])
    ctx.choose(ctx.e.op(f"icmp ne i64 {ctx.load_constant(flags, row, own=True)}, 0"),
               repeating, through_table, "i1")


MAX_PIECES = 8      # the innermost axis of a nest is split into at most this many pieces


def _pieces(ctx: Lowering, kernel: Kernel) -> list[int] | None:
    """The bounds of the pieces a nest's innermost axis is split into, where a bounds test of
    the fused code changes outcome: each piece's tests are then known (folded away by the
    emitter's index spans), e.g. the interior of a gradient of shifted slices runs without
    any. Only into one loop and unrolled edges (several loops cost LLVM more time than one
    loop with tests); None when there is nothing to split."""
    if not kernel.shape:
        return None
    bounds = [0, *_cuts(ctx, kernel), kernel.shape[-1]]
    loops = sum(stop - start > ctx.unroll_positions for start, stop in zip(bounds, bounds[1:]))
    return bounds if len(bounds) > 2 and loops <= 1 else None


def _cuts(ctx: Lowering, kernel: Kernel) -> list[int]:
    """The positions along a nest's innermost axis where a bounds test in its fused code
    (padding, the pieces of a concatenation) changes outcome, found from where the ops with
    `last_axis` rules are read (`innermost_reads`); none when there would be more than
    MAX_PIECES pieces."""
    n = kernel.shape[-1]
    cuts: set[int] = set()
    realised = ctx.sched.buffers
    for node, at in innermost_reads(kernel.roots, len(kernel.shape), realised):
        if at is None or node.op.last_axis is None or (
                node not in kernel.roots and node in realised):
            continue
        scale, offset, _ = at
        # where `scale * i + offset >= edge` starts or stops holding
        cuts.update(-((offset - edge) // scale) if scale > 0 else
                    (edge - offset) // scale + 1 for edge in node.op.last_axis(node)[0])
    inside = sorted(c for c in cuts if 0 < c < n)
    return inside if len(inside) < MAX_PIECES else []


def _fold(ctx: Lowering, root: UOp, buffer: Buffer, dims: tuple) -> None:
    """Fold the source element at `dims` into the output element it reduces to."""
    src = root.src[0]
    x = ctx.value(src, Index(src.shape, dims=dims))
    index = Index(root.shape, dims=tuple(d for axis, d in enumerate(dims) if axis not in root.arg))
    partial = ctx.load(buffer, index)
    # One accumulator (a full sum) folds with `reassoc`, as a reduction kernel does, so that
    # the nest still vectorises; kept axes keep NumPy's sequential order.
    combine = _combine if root.size == 1 else root.op.reduction.combine.scalar
    ctx.store(buffer, index, combine(ctx.e, root, partial, x))


def emit_kernel(ctx: Lowering, kernel: Kernel, unroll_ops: int = UNROLL_OPS) -> None:
    """Emit the body of one kernel into `ctx.e` (the caller opens and closes the function);
    nests whose unrolled code stays under `unroll_ops` operations are unrolled."""
    if kernel.chunk is not None:
        _emit_chunk(ctx, kernel)
        return
    ctx.unroll_positions = min(UNROLL_POSITIONS, unroll_ops // max(kernel.ops, 1))
    root = kernel.reduction
    first = kernel.roots[0]
    if kernel.body is not None:
        loop.emit(ctx, kernel, ctx.define(kernel.body, "body"))
    elif first.op.kind is OpKind.PROGRAM:
        scratch = None if kernel.in_place else ctx.e.op(
            f"getelementptr inbounds i8, ptr %work, i64 {kernel.scratch}")
        first.op.program(ctx, first, ctx.start(first), scratch)
    elif root is not None and root in ctx.sched.gemms:
        blas.emit_gemm(ctx, root, kernel.stores[0][1])
    elif root is not None:
        ctx.computing = root
        _emit_reduction(ctx, root, kernel.stores[0][1], kernel.flat)
        ctx.computing = None
    else:
        _emit_map(ctx, kernel)


def _emit_chunk(ctx: Lowering, kernel: Kernel) -> None:
    """A chunk of small kernels (schedule._Chunks): each root at each of its positions in turn,
    unrolled, stored if it has a buffer (the others only this chunk reads: they stay in
    registers). Values computed stay known to the roots after them, under both index forms."""
    stored: dict[UOp, list[Buffer]] = {}
    for root, buffer in kernel.stores:
        stored.setdefault(root, []).append(buffer)
    for root in kernel.roots:
        ctx.computing = root
        for position in itertools.product(*map(range, root.shape)):
            index = Index(root.shape, dims=tuple(map(str, position)))
            value = ctx.value(root, index)
            for buffer in stored.get(root, ()):
                ctx.store(buffer, index, value)
            ctx.scopes[-1][(root, index.key)] = value
            ctx.scopes[-1][(root, Index(root.shape, flat=index.flat(ctx.e)).key)] = value
    ctx.computing = None


def _fills(root: UOp) -> bool:
    """Whether a placement writes every slot (else its output is zeroed first)."""
    slots = root.arg[0].array
    return int(np.count_nonzero(slots >= 0)) == root.arg[1]


def _place(ctx: Lowering, root: UOp, buffer: Buffer, dims: tuple) -> None:
    """Store the source element at `dims` to its slot (none for a slot of -1): read from the
    slot table or, in a period of repeating slots (`Lowering.each_period`), the row's slot at
    that place in the first period plus the iteration times the step."""
    e, payload = ctx.e, root.arg[0]
    lead = root.ndim - 1
    repeating = ctx.repeating is not None and ctx.repeating[0] is root
    if repeating:
        _, found, iteration, _, phase = ctx.repeating
        if not found.kept[int(dims[0])][phase]:
            return
    value = ctx.value(root.src[0], Index(root.src[0].shape, dims=dims))
    if repeating:
        at = (*dims[:-1], str(found.start + phase))
        first = (str(payload.array[tuple(map(int, at))]) if all(d.isdigit() for d in at) else
                 ctx.load_constant(payload, e.flatten(at, payload.array.shape)))
        slot = e.add_i(first, e.mul_i(iteration, str(found.step)))
    else:
        slot = ctx.load_constant(payload, e.flatten(dims[lead:], payload.array.shape))

    def store() -> str:
        ctx.store(buffer, Index(root.shape, dims=dims[:lead] + (slot,)), value)
        return "true"
    if not repeating and payload.array.min(initial=0) < 0:
        ctx.guarded(e.op(f"icmp sge i64 {slot}, 0"), store, "false", "i1")
    else:
        store()


def identity_literal(rule: Reduction, dtype: DType) -> str:
    """The LLVM literal a reduction's fold starts from."""
    return llvm_literal(rule.identity(dtype), dtype)


class Tables:
    """The constant arrays of a module: embedded as private globals, or, from `shared` bytes
    on, referenced by the process-wide symbol of their content (backend/constants.py)."""

    def __init__(self, symbol: str, shared: int | None):
        self.symbol, self.shared = symbol, shared
        self.names: dict[Payload, str] = {}
        self.own: set[Payload] = set()  # made by the lowering, not in the graph: embedded

    def is_shared(self, payload: Payload) -> bool:
        return (self.shared is not None and payload.array.nbytes >= self.shared
                and payload not in self.own)

    def name(self, payload: Payload) -> str:
        found = self.names.get(payload)
        if found is None:
            found = self.names[payload] = (
                f"@{constants.symbol(payload)}" if self.is_shared(payload)
                else f"@{self.symbol}.c{len(self.names)}")
        return found

    def text(self) -> list[str]:
        """The globals: a table's bytes as a string literal (it parses about 5x faster than a
        list of typed items: the mlp data, 19k numbers), or the shared symbol's declaration."""
        lines = []
        for payload, name in self.names.items():
            size = payload.array.nbytes          # bools are stored as one byte each
            if self.is_shared(payload):
                lines.append(f"{name} = external global [{size} x i8], align 64")
                continue
            data = constants.storage(payload.array).tobytes()
            body = f'c"\\{data.hex(chr(92))}"' if data else "zeroinitializer"
            lines.append(f"{name} = private unnamed_addr constant [{size} x i8] {body}, "
                         "align 64")
        return lines


def _attributes(kernel: Kernel, chunked: bool, linkage: str) -> str:
    """The attributes of a kernel's function. In a chunked function every kernel is `noinline`:
    optimised one by one, never inlined into one huge function, so that LLVM's time grows
    linearly with the graph (docs/backend.md, 'Huge scalar graphs'); e.g. the tangents of a
    traced loop's Jacobian, a few elements wide per direction, beside the chunks of its scalar
    code. The chunks are `optnone` as well (not optimised; the module is generated at codegen
    level 0), except in a loop body (`internal`), whose code runs every iteration. The kernels
    of other functions are left to the inliner and optimised."""
    if not chunked:
        return "nounwind"
    if kernel.chunk is not None and linkage != "internal":
        return "noinline optnone nounwind"
    return "noinline nounwind"


_INPUT = re.compile(r"%in(\d+)\b")


def _table_loads(body: str) -> str:
    """The loads of the input pointers a function's `body` uses from its table `%ins`
    (loop.takes_table), as the first lines of its entry block."""
    used = sorted({int(k) for k in _INPUT.findall(body)})
    return "".join(f"  %in{k}.at = getelementptr inbounds ptr, ptr %ins, i64 {k}\n"
                   f"  %in{k} = load ptr, ptr %in{k}.at\n" for k in used)


def _through_tables(sched: Schedule, kernel: Kernel) -> bool:
    """Whether a kernel's code reads or writes through an index table (a gather or placement
    it stores or fuses)."""
    stack, seen = list(kernel.roots), set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op in (GATHER, PLACE):
            return True
        if node in kernel.roots or node not in sched.buffers:
            stack.extend(node.src)
    return False


def _entry_attributes(sched: Schedule, chunked: bool, linkage: str) -> str:
    """The attributes of the function calling the kernels: `optnone` too when it calls only
    `optnone` chunks, so that the optimiser, which would leave every function as it is, does
    not run at all (jit.compile_object; it costs about 0.5 ms per chunk function)."""
    if chunked and all("optnone" in _attributes(kernel, chunked, linkage)
                       for kernel in sched.kernels):
        return "noinline optnone nounwind"
    return "nounwind"


def is_chunked(sched: Schedule) -> bool:
    """Whether the schedule split huge scalar code into several chunk functions."""
    return any(kernel.chunk for kernel in sched.kernels)


def module_text(sched: Schedule, symbol: str, vector_isas: tuple[str, ...] = (),
                shared_constants: int | None = None, table_features: str | None = None) -> str:
    """The LLVM module of one function: its kernels, constant tables and C-ABI entry point;
    loops call libmvec's vector functions of the ISAs `vector_isas`; constant arrays of at least
    `shared_constants` bytes are referenced, not embedded; kernels that access memory through
    index tables get the target features `table_features` (Target.table_features)."""
    parts = ModuleParts(vector_isas)
    tables = Tables(symbol, shared_constants)
    functions: list[str] = []
    _define(sched, symbol, "dso_local", parts, tables, functions, table_features)
    return "\n\n".join(tables.text() + [parts.text()] + functions) + "\n"


def _define(sched: Schedule, symbol: str, linkage: str, parts: ModuleParts, tables: Tables,
            functions: list[str], table_features: str | None = None) -> None:
    """Append to `functions` the kernels of `sched` and the function `symbol` calling them
    (with the C ABI), after the functions of the loop bodies they run."""
    table = linkage == "internal" and loop.takes_table(sched)
    params = (["ptr noalias readonly %ins"] if table else
              [f"ptr noalias readonly %in{i}" for i in range(len(sched.inputs))])
    params += [f"ptr noalias %out{j}" for j in range(len(sched.outputs))] + ["ptr noalias %work"]
    args = ", ".join(p.replace("noalias readonly ", "").replace("noalias ", "")
                     for p in params)
    calls = []

    def define(body: Schedule, hint: str) -> str:
        name = f"{symbol}.{hint}{len(functions)}"
        _define(body, name, "internal", parts, tables, functions, table_features)
        return name
    # Huge scalar graphs are split into chunks of about CHUNK_OPS operations, each a function that
    # is never inlined nor optimised and is generated at codegen level 0 (`is_chunked`): LLVM's
    # time then grows linearly (docs/backend.md, 'Huge scalar graphs'). At 30k operations: 0.4 s
    # against 1.3 s with O1 and full instruction selection, and the same run time
    # (straight-line SSA code gains little from either).
    chunked = is_chunked(sched)
    for k, kernel in enumerate(sched.kernels):
        e = Emitter(parts)
        # Beside the chunks of a huge scalar graph, an unrolled nest stays within a chunk's size.
        emit_kernel(Lowering(e, sched, tables, define), kernel,
                    CHUNK_OPS if chunked else UNROLL_OPS)
        # Other kernels are left to the inliner: marked `alwaysinline` (inlined before they are
        # simplified) they build ~10% faster, but LLVM 22's loop vectoriser then miscompiles
        # chains of guarded loads (the bratu2d energy gradient, tests/ad/test_ad_problems.py).
        attrs = _attributes(kernel, chunked, linkage)
        # A parallel nest is vectorised with vector gathers and scatters: without them LLVM
        # finds its several scalarised stores per position not worth vectorising (bratu2d
        # m=100 Jacobian 182 -> 56 us, the bratu2d_E Hessian at m=300 3.0 -> 1.5 ms).
        parallel = _parallel(kernel)
        if (table_features and not parallel and "optnone" not in attrs
                and _through_tables(sched, kernel)):
            attrs += f' "target-features"="{table_features}"'
        fname = f"@{symbol}.k{k}"
        # (an `optnone` chunk is not optimised: scopes would only lengthen its text)
        body = (_SCOPE.sub("", e.body()) if "optnone" in attrs else
                _alias_scopes(e.body(), parts))
        body = _parallel_loops(body, parts, parallel and "optnone" not in attrs)
        if table:
            body = _table_loads(body) + body
        functions.append(f"define internal void {fname}({', '.join(params)}) {attrs} {{\n"
                         f"entry:\n{body}\n  ret void\n}}")
        calls.append(f"  call void {fname}({args})")
    functions.append(f"define {linkage} i32 @{symbol}({', '.join(params)}) "
                     f"{_entry_attributes(sched, chunked, linkage)} {{\n"
                     "entry:\n" + "\n".join(calls) + "\n  ret i32 0\n}")

