"""Decompression by substitution: the sequential program that recovers a Hessian's nonzeros
from the products of an acyclic colouring (ad/coloring/result.py), as one op.

    for t in range(len(target)):
        values[target[t]] = compressed[source[t]]
        if subtract[t] >= 0:
            compressed[subtract[t]] -= values[target[t]]

over the last axis of its source (leading axes are a batch). It is linear; its transpose runs
the adjoint program backwards (`transposed`). It lowers to a kernel of its own, which runs the
program on its source in place where the source's buffer dies there, else on a copy in its
workspace.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..uop import Linearity, OpDef, OpKind, Payload, UOp


@dataclass(frozen=True)
class Program:
    """The tables (int32 or int64 Payloads of equal length: `tables` makes them), the number
    of values and of compressed entries, and the direction: forward maps compressed -> values,
    transposed values -> compressed."""

    source: Payload
    target: Payload
    subtract: Payload
    values: int
    compressed: int
    transposed: bool = False

    @property
    def stable_key(self) -> tuple:
        return (self.source, self.target, self.subtract, self.values, self.compressed,
                self.transposed)

    @property
    def sizes(self) -> tuple[int, int]:
        """(input size, output size) along the last axis."""
        pair = (self.compressed, self.values)
        return pair[::-1] if self.transposed else pair


def tables(*columns: np.ndarray) -> tuple[Payload, ...]:
    """A program's tables as Payloads: int32 where every entry fits (half the bytes the
    sequential pass reads), else int64."""
    arrays = [np.asarray(c, np.int64) for c in columns]
    small = all(not a.size or (a.min() >= -2 ** 31 and a.max() < 2 ** 31) for a in arrays)
    return tuple(Payload(a.astype(np.int32) if small else a) for a in arrays)


def _shape(shapes, arg: Program):
    (shape,) = shapes
    if not shape or shape[-1] != arg.sizes[0]:
        raise ValueError(f"substitute: the source's last axis must have {arg.sizes[0]} "
                         f"elements, got shape {shape}")
    return shape[:-1] + (arg.sizes[1],)


def _dtype(dts, arg):
    if not dts[0].is_float:
        raise TypeError(f"substitute: the source must be float, got {dts[0]}")
    return dts[0]


def _numpy(arg: Program, x: np.ndarray) -> np.ndarray:
    source, target, subtract = (p.array for p in (arg.source, arg.target, arg.subtract))
    work = np.array(x, copy=True)
    out = np.zeros(x.shape[:-1] + (arg.sizes[1],), work.dtype)
    if not arg.transposed:
        for t in range(source.size):
            out[..., target[t]] = work[..., source[t]]
            if subtract[t] >= 0:
                work[..., subtract[t]] -= out[..., target[t]]
    else:
        for t in reversed(range(source.size)):
            if subtract[t] >= 0:
                work[..., target[t]] -= out[..., subtract[t]]
            out[..., source[t]] += work[..., target[t]]
    return out


def substitute(x: UOp | None, arg: Program) -> UOp | None:
    return None if x is None else UOp(SUBSTITUTE, (x,), arg)


def _transposed(arg: Program) -> Program:
    return Program(arg.source, arg.target, arg.subtract, arg.values, arg.compressed,
                   not arg.transposed)


def _emit(ctx, node: UOp, out: str, scratch: str | None) -> None:
    """The kernel: per leading position, copy the input row into `scratch` (None: run on the
    input itself), zero the output row (transposed), run the program."""
    e = ctx.e
    arg: Program = node.arg
    src = node.src[0]
    n_in, n_out = arg.sizes
    ty = node.dtype.llvm
    size = node.dtype.itemsize
    e.declare("llvm.memcpy.p0.p0.i64", "void", ["ptr", "ptr", "i64", "i1"])
    e.declare("llvm.memset.p0.i64", "void", ["ptr", "i8", "i64", "i1"])
    rows = int(np.prod(src.shape[:-1], dtype=np.int64))
    length = arg.source.array.size
    row, close_rows = ctx.loop(rows, "row")
    base_in = e.op(f"getelementptr inbounds {ty}, ptr {ctx.start(src)}, "
                   f"i64 {e.mul_i(row, str(n_in))}")
    base_out = e.op(f"getelementptr inbounds {ty}, ptr {out}, i64 {e.mul_i(row, str(n_out))}")
    work = base_in if scratch is None else scratch    # None: the source dies here, ours
    if scratch is not None:
        e.line(f"call void @llvm.memcpy.p0.p0.i64(ptr {scratch}, ptr {base_in}, "
               f"i64 {n_in * size}, i1 false)")
    if arg.transposed:
        e.line(f"call void @llvm.memset.p0.i64(ptr {base_out}, i8 0, i64 {n_out * size}, "
               "i1 false)")
    t, close = ctx.loop(length, "step")
    if arg.transposed:
        t = e.op(f"sub nsw i64 {length - 1}, {t}")

    def entry(table: str) -> str:
        return ctx.load_constant(getattr(arg, table), t)

    def at(base: str, index: str) -> str:
        return e.op(f"getelementptr inbounds {ty}, ptr {base}, i64 {index}")
    s, g, sub = entry("source"), entry("target"), entry("subtract")
    has = e.op(f"icmp sge i64 {sub}, 0")
    if not arg.transposed:
        value = e.op(f"load {ty}, ptr {at(work, s)}")
        e.line(f"store {ty} {value}, ptr {at(base_out, g)}")
        ctx.guarded(has, lambda: _subtract(e, ty, at(work, sub), value), "false", "i1")
    else:
        def adjoint() -> str:
            down = e.op(f"load {ty}, ptr {at(base_out, sub)}")
            return _subtract(e, ty, at(work, g), down)
        ctx.guarded(has, adjoint, "false", "i1")
        moved = e.op(f"load {ty}, ptr {at(work, g)}")
        place = at(base_out, s)
        old = e.op(f"load {ty}, ptr {place}")
        e.line(f"store {ty} {e.op(f'fadd {ty} {old}, {moved}')}, ptr {place}")
    close()
    close_rows()


def _subtract(e, ty: str, place: str, value: str) -> str:
    old = e.op(f"load {ty}, ptr {place}")
    e.line(f"store {ty} {e.op(f'fsub {ty} {old}, {value}')}, ptr {place}")
    return "true"


SUBSTITUTE = OpDef(
    "substitute", 1, kind=OpKind.PROGRAM,
    shape=_shape,
    dtype=_dtype,
    numpy=_numpy,
    jvp=lambda B, node, t: substitute(t[0], node.arg),
    vjp=lambda B, node, ct: (substitute(ct, _transposed(node.arg)),),
    batch=lambda B, node, sources, batched: substitute(sources[0], node.arg),
    linearity=Linearity.LINEAR,
    program=_emit,
    scratch=lambda node: node.src[0].shape[-1] if node.src[0].ndim else 1,
    cost=1 << 20,
    in_place=True,
)
"""arg = Program: decompression by substitution over the last axis of the source."""
