"""Dense linear algebra as ops of their own: `solve(A, B)` for square A (..., n, n) and right
sides B (..., n, k), every leading axis a batch. It lowers to a sequential kernel (Gaussian
elimination with partial pivoting, in native loops: no LAPACK, so it also exports), and
differentiates by the matrix-calculus rules: d(A^-1 B) = A^-1 (dB - dA X), and for a cotangent
C of X: B gets A^-T C and A gets -(A^-T C) X^T.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..uop import Linearity, OpDef, OpKind, UOp


def _shape(shapes, arg):
    a, b = shapes
    if len(a) < 2 or a[-1] != a[-2]:
        raise ValueError(f"solve: the matrix must be square, got shape {a}")
    if len(b) != len(a) or b[:-2] != a[:-2] or b[-2] != a[-1]:
        raise ValueError(f"solve: right sides of shape {b} do not fit a matrix of shape {a} "
                         "(expected its batch axes, then (n, k))")
    return b


def _dtype(dts, arg):
    if dts[0] != dts[1] or not dts[0].is_float:
        raise TypeError(f"solve: the matrix and right sides must share a float dtype, got {dts}")
    return dts[0]


def _numpy(arg, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NumPy's solve, with what Gaussian elimination gives (inf/NaN) for a singular matrix
    where NumPy raises."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        with np.errstate(all="ignore"):
            return np.stack([_eliminate(m, r) for m, r in zip(
                a.reshape((-1,) + a.shape[-2:]), b.reshape((-1,) + b.shape[-2:]))]).reshape(
                b.shape)


def _eliminate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gaussian elimination with partial pivoting, the kernel's algorithm."""
    lu, x = a.copy(), b.copy()
    n = lu.shape[0]
    for c in range(n):
        p = c + int(np.argmax(np.abs(lu[c:, c])))
        lu[[c, p]], x[[c, p]] = lu[[p, c]], x[[p, c]]
        for i in range(c + 1, n):
            f = lu[i, c] / lu[c, c]
            lu[i, c:] -= f * lu[c, c:]
            x[i] -= f * x[c]
    for c in reversed(range(n)):
        x[c] /= lu[c, c]
        x[:c] -= np.outer(lu[:c, c], x[c])
    return x


def solve(a: UOp, b: UOp) -> UOp:
    return UOp(SOLVE, (a, b))


def _transpose(B, a: UOp) -> UOp:
    return B.permute(a, tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))


def _matmul(B, x: UOp, y: UOp) -> UOp:
    """Batched x @ y for x (..., n, m), y (..., m, k)."""
    batch = tuple(range(x.ndim - 2))
    return B.contract(x, y, (x.ndim - 1,), (y.ndim - 2,), batch, batch)


def _jvp(B, node, tangents):
    ta, tb = tangents
    if ta is None and tb is None:
        return None
    a = node.src[0]
    rhs = tb
    if ta is not None:
        rhs = B.sub(B.materialise(tb, node), _matmul(B, ta, node))
    return solve(a, rhs)


def _vjp(B, node, ct):
    a = node.src[0]
    cb = solve(_transpose(B, a), ct)
    return (B.neg(_matmul(B, cb, _transpose(B, node))), cb)


def _batch(B, node, sources, batched):
    size = next(s.shape[0] for s, f in zip(sources, batched) if f)
    a, b = (s if f else B.broadcast_to(s, (size,) + s.shape) for s, f in zip(sources, batched))
    return solve(a, b)


def _blocks(node: UOp) -> tuple[int, int, int]:
    n, k = node.shape[-2], node.shape[-1]
    return int(np.prod(node.shape[:-2], dtype=np.int64)), n, k


def _dependence(node: UOp) -> list:
    """X[b, i, j] reads all of A[b] and the column B[b, :, j]."""
    batches, n, k = _blocks(node)
    out = np.arange(node.size).reshape(batches, n, k)
    a_cols = np.arange(batches * n * n).reshape(batches, 1, 1, n * n)
    a_rows = np.broadcast_to(out[..., None], (batches, n, k, n * n))
    b_cols = np.arange(node.size).reshape(batches, n, k)
    b_rows = np.broadcast_to(out[:, :, None, :], (batches, n, n, k))      # [b, i, r, j]
    b_read = np.broadcast_to(b_cols[:, None, :, :], (batches, n, n, k))
    return [_pattern(a_rows, np.broadcast_to(a_cols, a_rows.shape), node.size, batches * n * n),
            _pattern(b_rows, b_read, node.size, node.size)]


def _pattern(rows: np.ndarray, cols: np.ndarray, height: int, width: int):
    return sp.csr_array((np.ones(rows.size, bool), (rows.ravel(), cols.ravel())),
                        shape=(height, width))


def _pairs(node: UOp, live: np.ndarray) -> list:
    """A's entries interact with each other and with B's (X is nonlinear in A, bilinear in A
    and B, linear in B): within each batch matrix whose outputs are live, and with the live
    columns of B."""
    batches, n, k = _blocks(node)
    columns = np.asarray(live).reshape(batches, n, k).any(axis=1)               # [b, j]
    a = np.arange(batches * n * n).reshape(batches, n * n)
    used = columns.any(axis=1)
    aa_rows = np.broadcast_to(a[used][:, :, None], (int(used.sum()), n * n, n * n))
    aa_cols = np.broadcast_to(a[used][:, None, :], aa_rows.shape)
    b_index = np.arange(node.size).reshape(batches, n, k)
    bb, jj = np.nonzero(columns)
    ab_rows = np.broadcast_to(a[bb][:, :, None], (bb.size, n * n, n))
    ab_cols = np.broadcast_to(b_index[bb, :, jj][:, None, :], ab_rows.shape)
    size_a = batches * n * n
    return [(0, 0, _pattern(aa_rows, aa_cols, size_a, size_a)),
            (0, 1, _pattern(ab_rows, ab_cols, size_a, node.size))]


def _scratch(node: UOp) -> int:
    n = node.src[0].shape[-1]
    return n * n


def _emit(ctx, node: UOp, out: str, scratch: str) -> None:
    """Per batch position: A into `scratch`, B into `out`; eliminate below each pivot (the
    largest magnitude in its column, rows swapped), then substitute back."""
    e = ctx.e
    a_node, b_node = node.src
    n, k = node.shape[-2], node.shape[-1]
    ty, size = node.dtype.llvm, node.dtype.itemsize
    e.declare("llvm.memcpy.p0.p0.i64", "void", ["ptr", "ptr", "i64", "i1"])
    rows = int(np.prod(node.shape[:-2], dtype=np.int64))
    best_slot, best_value_slot = e.alloca("i64"), e.alloca(ty)
    row, close_rows = ctx.loop(rows, "batch")
    a_in = e.op(f"getelementptr inbounds {ty}, ptr {ctx.start(a_node)}, "
                f"i64 {e.mul_i(row, str(n * n))}")
    x = e.op(f"getelementptr inbounds {ty}, ptr {out}, i64 {e.mul_i(row, str(n * k))}")
    b_in = e.op(f"getelementptr inbounds {ty}, ptr {ctx.start(b_node)}, "
                f"i64 {e.mul_i(row, str(n * k))}")
    for dst, src, count in ((scratch, a_in, n * n), (x, b_in, n * k)):
        e.line(f"call void @llvm.memcpy.p0.p0.i64(ptr {dst}, ptr {src}, i64 {count * size}, "
               "i1 false)")

    def at(base: str, i: str, j: str, width: int) -> str:
        return e.op(f"getelementptr inbounds {ty}, ptr {base}, "
                    f"i64 {e.add_i(e.mul_i(i, str(width)), j)}")

    def load(ptr: str) -> str:
        return e.op(f"load {ty}, ptr {ptr}")

    def fabs(v: str) -> str:
        return e.call(ty, f"llvm.fabs.{'f64' if ty == 'double' else 'f32'}", [(ty, v)])

    def when(condition: str, body) -> None:
        def run() -> str:
            body()
            return "true"
        ctx.guarded(condition, run, "false", "i1")

    def subtract_row(base: str, target: str, source: str, factor: str, first: str,
                     width: int) -> None:
        j, close = ctx.loop(width, "col")

        def update():
            place = at(base, target, j, width)
            product = e.op(f"fmul {ty} {factor}, {load(at(base, source, j, width))}")
            e.line(f"store {ty} {e.op(f'fsub {ty} {load(place)}, {product}')}, ptr {place}")
        when(e.op(f"icmp sge i64 {j}, {first}"), update)
        close()

    def swap_rows(base: str, r1: str, r2: str, width: int) -> None:
        j, close = ctx.loop(width, "swap")
        p1, p2 = at(base, r1, j, width), at(base, r2, j, width)
        v1, v2 = load(p1), load(p2)
        e.line(f"store {ty} {v2}, ptr {p1}")
        e.line(f"store {ty} {v1}, ptr {p2}")
        close()

    c, close_columns = ctx.loop(n, "pivot")
    e.line(f"store i64 {c}, ptr {best_slot}")
    e.line(f"store {ty} {fabs(load(at(scratch, c, c, n)))}, ptr {best_value_slot}")
    i, close_search = ctx.loop(n, "search")

    def consider():
        value = fabs(load(at(scratch, i, c, n)))
        better = e.op(f"fcmp ogt {ty} {value}, {load_slot(best_value_slot)}")
        when(better, lambda: (e.line(f"store i64 {i}, ptr {best_slot}"),
                              e.line(f"store {ty} {value}, ptr {best_value_slot}")))

    def load_slot(slot: str) -> str:
        return e.op(f"load {ty}, ptr {slot}")

    when(e.op(f"icmp sgt i64 {i}, {c}"), consider)
    close_search()
    best = e.op(f"load i64, ptr {best_slot}")
    swap_rows(scratch, c, best, n)
    swap_rows(x, c, best, k)
    pivot = load(at(scratch, c, c, n))
    r, close_below = ctx.loop(n, "below")

    def eliminate():
        factor = e.op(f"fdiv {ty} {load(at(scratch, r, c, n))}, {pivot}")
        subtract_row(scratch, r, c, factor, e.add_i(c, "1"), n)
        subtract_row(x, r, c, factor, "0", k)
    when(e.op(f"icmp sgt i64 {r}, {c}"), eliminate)
    close_below()
    close_columns()
    back, close_back = ctx.loop(n, "back")
    c = e.op(f"sub nsw i64 {n - 1}, {back}")
    pivot = load(at(scratch, c, c, n))
    j, close_scale = ctx.loop(k, "scale")
    place = at(x, c, j, k)
    e.line(f"store {ty} {e.op(f'fdiv {ty} {load(place)}, {pivot}')}, ptr {place}")
    close_scale()
    r, close_above = ctx.loop(n, "above")
    when(e.op(f"icmp slt i64 {r}, {c}"),
         lambda: subtract_row(x, r, c, load(at(scratch, r, c, n)), "0", k))
    close_above()
    close_back()
    close_rows()


SOLVE = OpDef(
    "solve", 2, kind=OpKind.PROGRAM,
    shape=_shape,
    dtype=_dtype,
    numpy=_numpy,
    jvp=_jvp,
    vjp=_vjp,
    batch=_batch,
    linearity=Linearity.NONLINEAR,
    program=_emit,
    scratch=_scratch,
    dependence=_dependence,
    pairs=_pairs,
    cost=1 << 20,
)
"""solve(A, B) = A^-1 B over the last two axes (the leading ones a batch)."""
