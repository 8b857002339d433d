"""Loops in the backend: a LOOP node's kernel runs its body, a function of its own, in a native
loop (docs/backend.md, 'Loops').

The body is scheduled like any function (its params become its inputs; its outputs are the new
carries and the ys the graph uses) and emitted as an internal function with the C ABI. The
loop kernel keeps the carries in two workspace areas: each iteration the body reads the
current carries from the first and writes the next ones to the second, which are then copied
back; scanned arrays are passed at the current slice, ys are written in place in their
buffers. Code size and build time do not depend on the trip count.
"""
from __future__ import annotations

import math

from ..ir.ops import INPUT, PICK, RESHAPE, SLICE
from ..ir.ops.control import Scan, siblings
from ..ir.uop import UOp, substitute
from .kernel import Buffer, Index, Kernel, buffer_nbytes


STACK_CARRIES = 1024     # carries of at most this many bytes live on the stack
TABLE_INPUTS = 32        # a body reading more inputs gets them through a table of pointers


def takes_table(body) -> bool:
    """Whether a body's functions (the body's schedule `body`) receive their inputs as one
    table of pointers rather than one parameter each: a loop over the directions of a
    derivative reads thousands of values computed before it, and functions with thousands of
    `noalias` parameters take LLVM seconds to optimise."""
    return len(body.inputs) > TABLE_INPUTS


def _align(nbytes: int) -> int:
    return (nbytes + 63) // 64 * 64


def viewed(node: UOp) -> tuple[UOp, int]:
    """The node whose buffer holds the elements of `node` contiguously (through reshapes,
    picks and slices of leading rows), and the element they start at: a loop reads it in
    place."""
    offset = 0
    while True:
        if node.op is RESHAPE:
            node = node.src[0]
        elif node.op is PICK:
            offset += node.arg * node.size
            node = node.src[0]
        elif node.op is SLICE and all(
                (start, step, count) == (0, 1, n) for (start, step, count), n in zip(
                    node.arg[1:], node.src[0].shape[1:])) and node.arg[0][1] == 1:
            offset += node.arg[0][0] * math.prod(node.src[0].shape[1:])
            node = node.src[0]
        else:
            return node, offset


def plan(node: UOp, used: set, schedule) -> Kernel:
    """The kernel of the loop `node` is a result of, storing its results in `used` (the
    graph's nodes); `schedule(inputs, outputs)` schedules its body."""
    arg: Scan = node.arg
    results = [s for s in siblings(node) if s in used]
    body = arg.body
    inputs = [UOp(INPUT, (), (i, p.shape, p.dtype)) for i, p in enumerate(body.params)]
    ys = [s.arg.output for s in results if s.arg.output >= arg.carries]
    outputs = substitute(list(body.outputs[:arg.carries]) + [body.outputs[k] for k in ys],
                         dict(zip(body.params, inputs)))
    sched = schedule(inputs, outputs)
    carry_bytes = sum(_align(_nbytes(p)) for p in body.params[1:1 + arg.carries])
    kernel = Kernel((), results, body=sched)
    kernel.scratch_bytes = (2 * carry_bytes if carry_bytes > STACK_CARRIES else 0) + \
        sched.work_bytes
    return kernel


def _nbytes(node: UOp) -> int:
    return buffer_nbytes(node.dtype, node.size)


def emit(ctx, kernel: Kernel, body_symbol: str) -> None:
    """The loop calling `body_symbol` (the body's function) once per iteration."""
    e = ctx.e
    node = kernel.roots[0]
    arg: Scan = node.arg
    buffers: dict[UOp, Buffer] = ctx.sched.buffers
    init, xs, consts = arg.split(node.src)
    e.declare("llvm.memcpy.p0.p0.i64", "void", ["ptr", "ptr", "i64", "i1"])

    def start(n: UOp) -> str:
        if not n.size:
            return "null"           # empty arrays have no buffer, and are never read
        n, offset = viewed(n)
        buffer = buffers[n]
        return ctx.address(buffer, Index((buffer.size,), flat=str(offset)))

    def scratch(offset: int) -> str:
        return e.op(f"getelementptr inbounds i8, ptr %work, i64 {kernel.scratch + offset}")

    sizes = [_nbytes(c) for c in init]
    offsets, top = [], 0
    for size in sizes:
        offsets.append(top)
        top += _align(size)
    if top <= STACK_CARRIES:
        # On the stack: once LLVM inlines the body, it keeps small carries in registers.
        areas = [e.alloca(f"[{top} x i8], align 64") for _ in range(2)]
        current, following = ([e.op(f"getelementptr inbounds i8, ptr {area}, i64 {o}")
                               for o in offsets] for area in areas)
        work = scratch(0)
    else:
        current = [scratch(o) for o in offsets]
        following = [scratch(top + o) for o in offsets]
        work = scratch(2 * top)
    for dst, value, size in zip(current, init, sizes):
        _copy(e, dst, start(value), size)
    if arg.length:
        _iterate(ctx, kernel, body_symbol, start, current, following, work, sizes)
    for result in kernel.roots:
        if result.arg.output < arg.carries:
            _copy(e, start(result), current[result.arg.output], sizes[result.arg.output])


def _iterate(ctx, kernel: Kernel, body_symbol: str, start, current: list[str],
             following: list[str], work: str, sizes: list[int]) -> None:
    e = ctx.e
    arg: Scan = kernel.roots[0].arg
    _, xs, consts = arg.split(kernel.roots[0].src)
    slot = e.alloca("i64")
    table = _table(e, 1 + len(current) + len(xs), [start(c) for c in consts]) \
        if takes_table(kernel.body) else None
    i, close = ctx.loop(arg.length, "loop")
    index = e.op(f"sub nsw i64 {arg.length - 1}, {i}") if arg.reverse else i
    e.line(f"store i64 {index}, ptr {slot}")

    def at(base: str, n_bytes: int) -> str:
        return e.op(f"getelementptr inbounds i8, ptr {base}, i64 {e.mul_i(index, str(n_bytes))}")
    ys = [r for r in kernel.roots if r.arg.output >= arg.carries]
    inputs = [slot] + current + [at(start(x), _nbytes(x) // arg.length) for x in xs]
    if table is None:
        inputs += [start(c) for c in consts]
    else:
        for k, pointer in enumerate(inputs):
            e.line(f"store ptr {pointer}, ptr {_entry(e, table, k)}")
        inputs = [table]
    args = inputs + following + [at(start(y), _nbytes(y) // arg.length) for y in ys] + [work]
    e.line(f"call i32 @{body_symbol}({', '.join('ptr ' + a for a in args)})")
    for dst, src, size in zip(current, following, sizes):
        _copy(e, dst, src, size)
    close()


def _table(e, varying: int, constant: list[str]) -> str:
    """A table of a body's input pointers: the first `varying` are stored each iteration, the
    `constant` ones once, here (before the loop)."""
    table = e.alloca(f"[{varying + len(constant)} x ptr], align 8")
    for k, pointer in enumerate(constant, varying):
        e.line(f"store ptr {pointer}, ptr {_entry(e, table, k)}")
    return table


def _entry(e, table: str, k: int) -> str:
    return e.op(f"getelementptr inbounds ptr, ptr {table}, i64 {k}")


def _copy(e, dst: str, src: str, nbytes: int) -> None:
    if nbytes:
        e.line(f"call void @llvm.memcpy.p0.p0.i64(ptr {dst}, ptr {src}, i64 {nbytes}, i1 false)")
