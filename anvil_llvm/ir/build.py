"""Graph building helpers on UOps, used by the op rules and the transforms.

Arguments may be None for a symbolic zero (JAX's `Zero`): sums skip it, products with it are
None, so zero tangents and cotangents are never materialised.
"""
from __future__ import annotations

import functools

import numpy as np

from . import dtypes
from . import ops as O
from .dtypes import DType
from .ops.movement import gather_arg
from .ops.source import const_array
from .uop import Payload, UOp


def full(shape: tuple, value, dtype: DType = dtypes.float64) -> UOp:
    """A scalar constant broadcast to `shape` (structured, never an array): the one canonical
    form, RESHAPE to ones then EXPAND (no EXPAND when every dimension is 1)."""
    node = O.const(value, dtype)
    if shape:
        node = UOp(O.RESHAPE, (node,), (1,) * len(shape))
    if any(d != 1 for d in shape):
        node = UOp(O.EXPAND, (node,), tuple(shape))
    return node


def basis(shape: tuple, dtype: DType = dtypes.float64) -> UOp:
    """The standard basis of arrays of `shape`, stacked: shape (n,) + shape, symbolic (i == j)."""
    n = int(np.prod(shape, dtype=np.int64))
    rows = UOp(O.IOTA, (), ((n, n), 0))
    cols = UOp(O.IOTA, (), ((n, n), 1))
    return reshape(cast(UOp(O.CMPEQ, (rows, cols)), dtype), (n,) + tuple(shape))


def zeros_like(x: UOp) -> UOp:
    return full(x.shape, 0, x.dtype)


def materialise(x: UOp | None, like: UOp) -> UOp:
    """`x`, or explicit zeros of `like`'s shape and dtype when `x` is a symbolic zero."""
    return zeros_like(like) if x is None else x


def scalar(value, like: UOp) -> UOp:
    return full(like.shape, value, like.dtype)


def add(a: UOp | None, b: UOp | None) -> UOp | None:
    if a is None:
        return b
    if b is None:
        return a
    return UOp(O.ADD, (a, b))


def sub(a: UOp | None, b: UOp | None) -> UOp | None:
    if b is None:
        return a
    if a is None:
        return neg(b)
    return UOp(O.SUB, (a, b))


def mul(a: UOp | None, b: UOp | None) -> UOp | None:
    if a is None or b is None:
        return None
    return UOp(O.MUL, (a, b))


def div(a: UOp | None, b: UOp) -> UOp | None:
    return None if a is None else UOp(O.DIV, (a, b))


def neg(a: UOp | None) -> UOp | None:
    return None if a is None else UOp(O.NEG, (a,))


def unary(op, x: UOp) -> UOp:
    return UOp(op, (x,))


def binary(op, x: UOp, y: UOp) -> UOp:
    return UOp(op, (x, y))


def where(c: UOp, a: UOp | None, b: UOp | None) -> UOp | None:
    if a is None and b is None:
        return None
    like = a if a is not None else b
    return UOp(O.WHERE, (c, materialise(a, like), materialise(b, like)))


def cast(x: UOp | None, dtype: DType) -> UOp | None:
    if x is None or x.dtype == dtype:
        return x
    return UOp(O.CAST, (x,), dtype)


def sign(x: UOp) -> UOp:
    """-1, 0 or 1 by the sign of x, as np.sign: 0 at zero, NaN at NaN (x * 0 is both)."""
    one, zero = scalar(1, x), scalar(0, x)
    return UOp(O.WHERE, (binary(O.CMPLT, zero, x), one,
                         UOp(O.WHERE, (binary(O.CMPLT, x, zero), neg(one), mul(x, zero)))))


# ---- movement -------------------------------------------------------------------------------
def reshape(x: UOp | None, shape: tuple) -> UOp | None:
    """x with a new shape: no node when the shape is x's, and a reshape of a reshape reads
    the first one's source (the graph a trace records is already in `simplify`'s form)."""
    shape = tuple(shape)
    if x is not None and x.op is O.RESHAPE:
        x = x.src[0]
    if x is None or x.shape == shape:
        return x
    return UOp(O.RESHAPE, (x,), shape)


def permute(x: UOp | None, perm: tuple) -> UOp | None:
    if x is None or tuple(perm) == tuple(range(x.ndim)):
        return x
    return UOp(O.PERMUTE, (x,), tuple(perm))


def inverse_permutation(perm) -> tuple:
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return tuple(inverse)


def broadcast_to(x: UOp | None, shape: tuple) -> UOp | None:
    """NumPy broadcast of `x` (leading axes added) to `shape`; a broadcast of a broadcast is
    one broadcast of the first one's source."""
    if x is None or x.shape == tuple(shape):
        return x
    if x.op is O.EXPAND:
        x = x.src[0]
    if x.ndim < len(shape):
        x = reshape(x, (1,) * (len(shape) - x.ndim) + x.shape)
    return UOp(O.EXPAND, (x,), tuple(shape))


def reduce_sum(x: UOp | None, axes) -> UOp | None:
    if x is None:
        return None
    axes = tuple(sorted(axes))
    return UOp(O.REDUCE_SUM, (x,), axes) if axes else x


def sum_to(x: UOp | None, shape: tuple) -> UOp | None:
    """Sum `x` down to `shape` (the transpose of broadcasting `shape` to x.shape)."""
    if x is None or x.shape == tuple(shape):
        return x
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and x.shape[lead + i] != 1)
    return reshape(reduce_sum(x, axes), shape)


def expand_back(ct: UOp | None, shape: tuple, axes: tuple) -> UOp | None:
    """Broadcast a reduction's result over `axes` back to the source `shape`."""
    if ct is None:
        return None
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return broadcast_to(reshape(ct, kept), shape)


def slice_(x: UOp | None, spec: tuple) -> UOp | None:
    """x[spec] (per axis `(start, step, count)`): no node for the whole of x, and a slice of a
    slice is one slice of the first one's source."""
    if x is None:
        return None
    spec = tuple(spec)
    if x.op is O.SLICE:
        spec = tuple((s1 + t1 * s2, t1 * t2, c2) if c2 else (0, 1, 0)
                     for (s1, t1, _), (s2, t2, c2) in zip(x.arg, spec))
        x = x.src[0]
    if spec == whole(x.shape):
        return x
    return UOp(O.SLICE, (x,), spec)


@functools.lru_cache(maxsize=1024)
def whole(shape: tuple) -> tuple:
    """The slice spec of all of an array of `shape`."""
    return tuple((0, 1, n) for n in shape)


def pad(x: UOp | None, widths: tuple) -> UOp | None:
    if x is None or all(lo == 0 and hi == 0 for lo, hi in widths):
        return x
    return UOp(O.PAD, (x,), tuple(widths))


def unslice(ct: UOp | None, spec: tuple, shape: tuple) -> UOp | None:
    """The transpose of a strided slice: `ct` placed at the sliced positions of zeros(shape)."""
    if ct is None:
        return None
    for axis, ((start, step, count), n) in enumerate(zip(spec, shape)):
        if (start, step, count) == (0, 1, n):
            continue
        if count == 0:
            return full(shape, 0, ct.dtype)
        if step < 0:
            flip = tuple((c - 1, -1, c) if a == axis else (0, 1, c)
                         for a, c in enumerate(ct.shape))
            ct = slice_(ct, flip)
            start, step = start + step * (count - 1), -step
        if step > 1:
            dims = ct.shape
            spread = reshape(ct, dims[:axis + 1] + (1,) + dims[axis + 1:])
            widths = tuple((0, step - 1) if a == axis + 1 else (0, 0) for a in range(ct.ndim + 1))
            spread = reshape(pad(spread, widths), dims[:axis] + (count * step,) + dims[axis + 1:])
            keep = tuple((0, 1, (count - 1) * step + 1) if a == axis else (0, 1, d)
                         for a, d in enumerate(spread.shape))
            ct = slice_(spread, keep)
        end = start + ct.shape[axis]
        ct = pad(ct, tuple((start, n - end) if a == axis else (0, 0) for a in range(ct.ndim)))
    return ct


def pick(x: UOp | None, i: int) -> UOp | None:
    """x[i] (entry i of the first axis, which is dropped): an entry of a stack is its source,
    of a slice a slice of the entry it reads (the graph a trace records is already in
    `simplify`'s form)."""
    if x is None:
        return None
    if x.op is O.STACK:
        return x.src[i]
    if x.op is O.SLICE:
        (start, step, _), rest = x.arg[0], x.arg[1:]
        return slice_(UOp(O.PICK, (x.src[0],), start + step * i), rest)
    return UOp(O.PICK, (x,), i)


def unpick(ct: UOp | None, i: int, shape: tuple) -> UOp | None:
    """The transpose of `pick`: `ct` placed at entry i of zeros(shape)."""
    if ct is None:
        return None
    return pad(reshape(ct, (1,) + ct.shape), ((i, shape[0] - 1 - i),) + ((0, 0),) * ct.ndim)


def concat(xs: list[UOp], axis: int) -> UOp:
    return xs[0] if len(xs) == 1 else UOp(O.CONCAT, tuple(xs), axis)


def stack(xs: list[UOp]) -> UOp:
    """The nodes (of one shape and dtype) joined along a new first axis."""
    return UOp(O.STACK, tuple(xs))


def gather(x: UOp | None, axis: int, indices: np.ndarray) -> UOp | None:
    if x is None:
        return None
    return UOp(O.GATHER, (x,), gather_arg(axis, indices))


def place(x: UOp | None, slots: np.ndarray, size: int, distinct: bool = False) -> UOp | None:
    """`x`'s trailing `slots.shape` axes scattered into `size` slots: element p to slot
    `slots[p]` (-1: dropped); each slot receives at most one element, the others are zero
    (checked here unless the caller has: `distinct`)."""
    if x is None:
        return None
    table = np.asarray(slots)
    if table.dtype not in (np.int32, np.int64):
        table = table.astype(np.int64)
    if not distinct and np.bincount(table[table >= 0], minlength=size).max(initial=0) > 1:
        raise ValueError("place: two elements go to one slot")
    if table.dtype == np.int64 and (not table.size or table.max() < 2 ** 31):
        table = table.astype(np.int32)
    return UOp(O.PLACE, (x,), (Payload(table), int(size)))


def scatter_add(ct: UOp | None, axis: int, indices: np.ndarray, size: int) -> UOp | None:
    """The transpose of gather: sums `ct` into `size` slots along `axis`.

    Indices are constants. Distinct indices place each element in its slot (a scatter through
    the index table, the others zero); repeated ones make the inverse map a table: each slot
    gathers its (padded) list of sources and sums them, which costs size x (largest
    multiplicity) loads.
    """
    if ct is None:
        return None
    flat = np.asarray(indices, dtype=np.int64).reshape(-1)
    k = indices.ndim
    lead, trail = ct.shape[:axis], ct.shape[axis + k:]
    ct = reshape(ct, lead + (flat.size,) + trail)
    if flat.size == 0:
        return full(lead + (size,) + trail, 0, ct.dtype)
    counts = np.bincount(flat, minlength=size)
    width = int(counts.max())
    if width == 1:
        last = tuple(range(axis)) + tuple(range(axis + 1, ct.ndim)) + (axis,)
        placed = place(permute(ct, last), flat, size)
        return permute(placed, inverse_permutation(last))
    order = np.argsort(flat, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = np.arange(width)
    table = starts[:, None] + slots[None, :]
    valid = slots[None, :] < counts[:, None]
    sources = np.where(valid, order[np.minimum(table, flat.size - 1)], 0)
    picked = gather(ct, axis, sources)                      # lead + (size, width) + trail
    if not valid.all():
        shape = (1,) * len(lead) + valid.shape + (1,) * len(trail)
        mask = broadcast_to(reshape(const_array(valid), shape),
                            picked.shape)
        picked = UOp(O.WHERE, (mask, picked, zeros_like(picked)))
    return reduce_sum(picked, (axis + 1,))


def contract(a: UOp | None, b: UOp | None, lc, rc, lb=(), rb=()) -> UOp | None:
    if a is None or b is None:
        return None
    return UOp(O.CONTRACT, (a, b), (tuple(lc), tuple(rc), tuple(lb), tuple(rb)))
