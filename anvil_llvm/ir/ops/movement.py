"""Movement ops: reshape, permute, expand (broadcast), strided slice, pick (an entry of the first
axis), zero pad, concat, stack, gather.

They lower to index arithmetic on their source, never to copies: each `emit` maps the output
index to the source index (with clamped loads and a select where padding or concatenation decides).
"""
from __future__ import annotations

import math

import numpy as np

from ..._lazy import scipy_sparse as sp
from ..uop import Linearity, OpDef, OpKind, Payload


def _same_dtype(dts, arg):
    return dts[0]


def read_elements(node) -> list:
    """Which source element each element of `node` reads (the dependence rule of every
    movement op): the op's own NumPy rule run on element numbers, 0 where it reads none."""
    ends = np.cumsum([0] + [s.size for s in node.src])
    numbers = [np.arange(1 + start, 1 + end, dtype=np.int64).reshape(s.shape)
               for start, end, s in zip(ends, ends[1:], node.src)]
    read = np.asarray(node.op.numpy(node.arg, *numbers), dtype=np.int64).reshape(-1)
    rows = np.arange(read.size)
    patterns = []
    for start, end, s in zip(ends, ends[1:], node.src):
        mine = (read > start) & (read <= end)
        patterns.append(sp.csr_array((np.ones(int(mine.sum()), bool),
                                      (rows[mine], read[mine] - 1 - start)),
                                     shape=(node.size, s.size)))
    return patterns


def _reshape_shape(shapes, new):
    (old,) = shapes
    if math.prod(old) != math.prod(new):
        raise ValueError(f"cannot reshape size {math.prod(old)} {old} into {new}")
    return new


def _size(sources, batched):
    return next(s.shape[0] for s, b in zip(sources, batched) if b)


RESHAPE = OpDef("reshape", 1, kind=OpKind.MOVEMENT, dependence=read_elements,
               linearity=Linearity.LINEAR, shape=_reshape_shape, dtype=_same_dtype,
                numpy=lambda arg, x: x.reshape(arg), cost=0,
                emit=lambda ctx, node, index: ctx.value(
                    node.src[0], index.reshape(ctx.e, node.src[0].shape)),
                jvp=lambda B, node, t: B.reshape(t[0], node.arg),
                vjp=lambda B, node, ct: (B.reshape(ct, node.src[0].shape),),
                batch=lambda B, node, src, batched: B.reshape(
                    src[0], (src[0].shape[0],) + node.arg))
"""arg = the new shape."""


def _permute_shape(shapes, perm):
    (old,) = shapes
    if sorted(perm) != list(range(len(old))):
        raise ValueError(f"permutation {perm} does not fit {len(old)} axes")
    return tuple(old[p] for p in perm)


def _permute_emit(ctx, node, index):
    dims = index.dims(ctx.e)
    src_dims = [None] * len(dims)
    for out_axis, src_axis in enumerate(node.arg):
        src_dims[src_axis] = dims[out_axis]
    return ctx.value(node.src[0], ctx.index(node.src[0].shape, tuple(src_dims)))


PERMUTE = OpDef("permute", 1, kind=OpKind.MOVEMENT, dependence=read_elements,
               linearity=Linearity.LINEAR, shape=_permute_shape, dtype=_same_dtype,
                numpy=lambda arg, x: np.transpose(x, arg), emit=_permute_emit, cost=0,
                jvp=lambda B, node, t: B.permute(t[0], node.arg),
                vjp=lambda B, node, ct: (B.permute(ct, B.inverse_permutation(node.arg)),),
                batch=lambda B, node, src, batched: B.permute(
                    src[0], (0,) + tuple(p + 1 for p in node.arg)))
"""arg = the permutation: output axis i is source axis arg[i]."""


def _expand_shape(shapes, new):
    (old,) = shapes
    if len(old) != len(new) or any(o != n and o != 1 for o, n in zip(old, new)):
        raise ValueError(f"cannot broadcast {old} to {new}")
    return new


def _expand_emit(ctx, node, index):
    src = node.src[0]
    if src.size == 1:
        return ctx.value(src, ctx.index(src.shape, ("0",) * src.ndim))
    dims = index.dims(ctx.e)
    src_dims = tuple("0" if o == 1 and n != 1 else d
                     for d, o, n in zip(dims, src.shape, node.shape))
    return ctx.value(src, ctx.index(src.shape, src_dims))


EXPAND = OpDef("expand", 1, kind=OpKind.MOVEMENT, dependence=read_elements,
               linearity=Linearity.LINEAR, shape=_expand_shape, dtype=_same_dtype,
               numpy=lambda arg, x: np.broadcast_to(x, arg), emit=_expand_emit, cost=0,
               jvp=lambda B, node, t: B.UOp(EXPAND, (t[0],), node.arg),
               vjp=lambda B, node, ct: (B.sum_to(ct, node.src[0].shape),),
               batch=lambda B, node, src, batched: B.UOp(
                   EXPAND, (src[0],), (src[0].shape[0],) + node.arg))
"""arg = the broadcast shape (same rank; size-1 axes stretch)."""


def _slice_shape(shapes, spec):
    (old,) = shapes
    if len(spec) != len(old):
        raise ValueError(f"slice spec {spec} does not fit shape {old}")
    for (start, step, count), n in zip(spec, old):
        if count < 0 or step == 0 or (count > 0 and not (
                0 <= start < n and 0 <= start + step * (count - 1) < n)):
            raise ValueError(f"slice (start={start}, step={step}, count={count}) out of range "
                             f"for an axis of size {n}")
    return tuple(c for _, _, c in spec)


def _slice_emit(ctx, node, index):
    e = ctx.e
    dims = index.dims(e)
    src_dims = tuple(e.add_i(str(start), e.mul_i(str(step), d))
                     for d, (start, step, _) in zip(dims, node.arg))
    return ctx.value(node.src[0], ctx.index(node.src[0].shape, src_dims))


def _slice_last_axis(node):
    """The source at `start + step * p`; other axes in place when they are taken whole."""
    start, step, _ = node.arg[-1]
    kept = all(spec == (0, 1, n) for spec, n in zip(node.arg[:-1], node.src[0].shape))
    return (), ((node.src[0], step, start),), kept


def _slice_numpy(spec, x):
    return x[tuple(slice(start, start + step * count if start + step * count >= 0 else None, step)
                   for start, step, count in spec)]


SLICE = OpDef("slice", 1, kind=OpKind.MOVEMENT, dependence=read_elements,
               linearity=Linearity.LINEAR, shape=_slice_shape, dtype=_same_dtype,
              numpy=_slice_numpy, emit=_slice_emit, cost=0,
              jvp=lambda B, node, t: B.slice_(t[0], node.arg),
              vjp=lambda B, node, ct: (B.unslice(ct, node.arg, node.src[0].shape),),
              batch=lambda B, node, src, batched: B.slice_(
                  src[0], ((0, 1, src[0].shape[0]),) + node.arg),
              last_axis=_slice_last_axis)
"""arg = ((start, step, count), ...) per axis: source index start + step * i."""


def _pick_shape(shapes, i):
    (old,) = shapes
    if not old or not 0 <= i < old[0]:
        raise ValueError(f"pick: entry {i} out of range for shape {old}")
    return old[1:]


def _pick_emit(ctx, node, index):
    src = node.src[0]
    return ctx.value(src, ctx.index(src.shape, (str(node.arg),) + tuple(index.dims(ctx.e))))


def _pick_batch(B, node, src, batched):
    (x,) = src
    rest = x.shape[2:]
    return B.reshape(B.slice_(x, ((0, 1, x.shape[0]), (node.arg, 1, 1)) + B.whole(rest)),
                     x.shape[:1] + rest)


PICK = OpDef("pick", 1, kind=OpKind.MOVEMENT, dependence=read_elements,
             linearity=Linearity.LINEAR, shape=_pick_shape, dtype=_same_dtype,
             numpy=lambda i, x: x[i, ...], emit=_pick_emit, cost=0,
             jvp=lambda B, node, t: B.pick(t[0], node.arg),
             vjp=lambda B, node, ct: (B.unpick(ct, node.arg, node.src[0].shape),),
             batch=_pick_batch)
"""arg = i: `x[i]`, entry i of the first axis, which is dropped (an element of a vector, a row
of a matrix): scalar code's `x[0]` in one node, where a slice and a reshape took two."""

VIEWS = (RESHAPE, EXPAND, PERMUTE, SLICE, PICK)
"""The ops of one source whose every element is an element of the source: passes look through
them (to a constant, a leaf, a loop's param, the value an exact comparison reads)."""


def _pad_shape(shapes, pads):
    (old,) = shapes
    if len(pads) != len(old) or any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(f"pad widths {pads} must be non-negative, one pair per axis of {old}")
    return tuple(n + lo + hi for n, (lo, hi) in zip(old, pads))


def _pad_emit(ctx, node, index):
    e = ctx.e
    src = node.src[0]
    inside, src_dims = None, []
    for d, n, (lo, hi) in zip(index.dims(e), src.shape, node.arg):
        if lo == 0 and hi == 0:
            src_dims.append(d)
            continue
        shifted = e.add_i(d, str(-lo))
        ok = e.in_range(shifted, n)
        inside = ok if inside is None else e.op(f"and i1 {inside}, {ok}")
        src_dims.append(shifted)
    index = ctx.index(src.shape, tuple(src_dims))
    if inside is None:
        return ctx.value(src, index)
    return ctx.guarded(inside, lambda: ctx.value(src, index), node.dtype.zero, node.dtype.llvm)


def _pad_vjp(B, node, ct):
    spec = tuple((lo, 1, n) for (lo, _), n in zip(node.arg, node.src[0].shape))
    return (B.slice_(ct, spec),)


def _pad_last_axis(node):
    """The source, shifted by the low padding; tests at both ends of it."""
    low, _ = node.arg[-1]
    kept = all(pads == (0, 0) for pads in node.arg[:-1])
    return (low, low + node.src[0].shape[-1]), ((node.src[0], 1, -low),), kept


PAD = OpDef("pad", 1, kind=OpKind.MOVEMENT, dependence=read_elements,
               linearity=Linearity.LINEAR, shape=_pad_shape, dtype=_same_dtype,
            numpy=lambda pads, x: np.pad(x, pads) if pads else x.copy(),   # np.pad refuses 0-d
            emit=_pad_emit, cost=1,
            jvp=lambda B, node, t: B.pad(t[0], node.arg), vjp=_pad_vjp,
            batch=lambda B, node, src, batched: B.pad(src[0], ((0, 0),) + node.arg),
            last_axis=_pad_last_axis)
"""arg = ((before, after), ...) zeros per axis."""


def _concat_shape(shapes, axis):
    first = shapes[0]
    if not 0 <= axis < len(first):
        raise ValueError(f"concatenate: axis {axis} out of range for {len(first)} dimensions")
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first))
                                       if i != axis):
            raise ValueError(f"concatenate: shapes {shapes} differ off axis {axis}")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]


def _concat_dtype(dts, axis):
    if any(d != dts[0] for d in dts):
        raise TypeError(f"concatenate: sources must share a dtype, got {dts}")
    return dts[0]


def _concat_emit(ctx, node, index):
    e = ctx.e
    axis = node.arg
    dims = index.dims(e)
    ty = node.dtype.llvm
    if dims[axis].lstrip("-").isdigit():        # a known position (unrolled code): one source
        position = int(dims[axis])
        for s in node.src:
            if position < s.shape[axis]:
                src_dims = dims[:axis] + (str(position),) + dims[axis + 1:]
                return ctx.value(s, ctx.index(s.shape, src_dims))
            position -= s.shape[axis]
    pieces, offset = [], 0
    for s in node.src:
        n = s.shape[axis]
        if n:
            pieces.append((offset, offset + n, s))
        offset += n

    def piece(start, s):
        local = e.clamp_i(e.add_i(dims[axis], str(-start)), s.shape[axis])
        return ctx.value(s, ctx.index(s.shape, dims[:axis] + (local,) + dims[axis + 1:]))
    return _select(ctx, dims[axis], pieces, piece, ty)


def _select(ctx, position: str, pieces: list, piece, ty: str) -> str:
    """The value of the piece `(start, end, source)` that `position` falls in, `piece(start,
    source)` giving a piece's value: a select over a few pieces, a search over many."""
    e = ctx.e
    if len(pieces) > CONCAT_SELECTS:
        return _concat_search(ctx, position, pieces, piece, ty)
    result = piece(pieces[-1][0], pieces[-1][2])
    for start, end, s in reversed(pieces[:-1]):
        below = e.less_i(position, end)
        if below in ("true", "false"):
            result = piece(start, s) if below == "true" else result
        else:
            result = e.op(f"select i1 {below}, {ty} {piece(start, s)}, {ty} {result}")
    return result


CONCAT_SELECTS = 4
"""A concatenation of at most this many pieces computes each and selects; of more, it finds
its piece by binary search in branches, so that only that piece is computed (a stack of many
states: each element would otherwise compute all of them)."""


def _concat_search(ctx, position: str, pieces: list, piece, ty: str) -> str:
    if len(pieces) == 1:
        start, _, s = pieces[0]
        return piece(start, s)
    half = len(pieces) // 2
    return ctx.choose(ctx.e.less_i(position, pieces[half][0]),
                      lambda: _concat_search(ctx, position, pieces[:half], piece, ty),
                      lambda: _concat_search(ctx, position, pieces[half:], piece, ty), ty)


def _concat_jvp(B, node, t):
    if all(x is None for x in t):
        return None
    return B.concat([B.materialise(x, s) for x, s in zip(t, node.src)], node.arg)


def _concat_vjp(B, node, ct):
    axis, start, pieces = node.arg, 0, []
    for s in node.src:
        spec = tuple((start, 1, n) if a == axis else (0, 1, n) for a, n in enumerate(s.shape))
        pieces.append(B.slice_(ct, spec) if s.shape[axis] else None)
        start += s.shape[axis]
    return tuple(pieces)


def _concat_batch(B, node, sources, batched):
    size = _size(sources, batched)
    return B.concat([s if b else B.broadcast_to(s, (size,) + s.shape)
                     for s, b in zip(sources, batched)], node.arg + 1)


def _concat_last_axis(node):
    """Joined along the last axis: each source from where it starts (a test there); joined
    along another: every source at the same position."""
    if node.arg != node.ndim - 1:
        return (), tuple((s, 1, 0) for s in node.src), False
    starts = np.cumsum([0] + [s.shape[-1] for s in node.src[:-1]]).tolist()
    return tuple(starts), tuple((s, 1, -start) for s, start in zip(node.src, starts)), True


CONCAT = OpDef("concat", None, kind=OpKind.MOVEMENT, dependence=read_elements,
               linearity=Linearity.LINEAR, shape=_concat_shape, dtype=_concat_dtype,
               numpy=lambda axis, *xs: np.concatenate(xs, axis=axis), emit=_concat_emit, cost=1,
               jvp=_concat_jvp, vjp=_concat_vjp, batch=_concat_batch,
               last_axis=_concat_last_axis)
"""arg = the axis joined along."""


def _stack_shape(shapes, arg):
    if not shapes:
        raise ValueError("stack: needs at least one source")
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"stack: sources must share a shape, got {shapes}")
    return (len(shapes),) + shapes[0]


def _stack_emit(ctx, node, index):
    dims = index.dims(ctx.e)
    rest = tuple(dims[1:])
    if dims[0].lstrip("-").isdigit():           # a known position (unrolled code): one source
        s = node.src[int(dims[0])]
        return ctx.value(s, ctx.index(s.shape, rest))
    pieces = [(k, k + 1, s) for k, s in enumerate(node.src)]
    return _select(ctx, dims[0], pieces, lambda start, s: ctx.value(
        s, ctx.index(s.shape, rest)), node.dtype.llvm)


def _stack_jvp(B, node, t):
    if all(x is None for x in t):
        return None
    return B.stack([B.materialise(x, s) for x, s in zip(t, node.src)])


def _stack_batch(B, node, sources, batched):
    """Batched, a stack is a concatenation along the second axis (the form `vmap` has always
    given: the batched code of stacked states is split along it)."""
    size = _size(sources, batched)
    return B.concat([B.reshape(s if b else B.broadcast_to(s, (size,) + s.shape),
                               (size, 1) + node.shape[1:]) for s, b in zip(sources, batched)], 1)


def _stack_last_axis(node):
    """Stacked scalars: each source at its own position (a test at each); stacked arrays:
    every source at the same position."""
    if node.ndim != 1:
        return (), tuple((s, 1, 0) for s in node.src), False
    return tuple(range(len(node.src))), tuple((s, 1, -k) for k, s in enumerate(node.src)), True


STACK = OpDef("stack", None, kind=OpKind.MOVEMENT, dependence=read_elements,
              linearity=Linearity.LINEAR, shape=_stack_shape, dtype=_concat_dtype,
              numpy=lambda arg, *xs: np.stack(xs), emit=_stack_emit, cost=1,
              jvp=_stack_jvp, vjp=lambda B, node, ct: tuple(
                  B.pick(ct, k) for k in range(len(node.src))),
              batch=_stack_batch, last_axis=_stack_last_axis)
"""arg = None: the sources (of one shape and dtype) joined along a new first axis, np.stack's
default (scalar code's `stack([a, b])` in one node, where reshapes and a concat took three)."""


def _gather_shape(shapes, arg):
    (old,) = shapes
    axis, idx = arg
    if not 0 <= axis < len(old):
        raise ValueError(f"gather: axis {axis} out of range for shape {old}")
    table = idx.array
    if table.dtype not in (np.int32, np.int64) or (
            table.size and (table.min() < 0 or table.max() >= old[axis])):
        raise ValueError(f"gather: indices must be int32 or int64 in [0, {old[axis]}) on axis "
                         f"{axis}")
    return old[:axis] + table.shape + old[axis + 1:]


def _gather_emit(ctx, node, index):
    e = ctx.e
    axis, idx = node.arg
    k = idx.array.ndim
    dims = index.dims(e)
    flat = e.flatten(dims[axis:axis + k], idx.array.shape)
    picked = ctx.load_constant(idx, flat)
    src_dims = dims[:axis] + (picked,) + dims[axis + k:]
    return ctx.value(node.src[0], ctx.index(node.src[0].shape, src_dims))


GATHER = OpDef("gather", 1, kind=OpKind.MOVEMENT, dependence=read_elements, data_arg=True,
               linearity=Linearity.LINEAR, shape=_gather_shape, dtype=_same_dtype,
               numpy=lambda arg, x: np.take(x, arg[1].array, axis=arg[0]), emit=_gather_emit,
               cost=1,
               jvp=lambda B, node, t: B.gather(t[0], node.arg[0], node.arg[1].array),
               vjp=lambda B, node, ct: (B.scatter_add(ct, node.arg[0], node.arg[1].array,
                                                      node.src[0].shape[node.arg[0]]),),
               batch=lambda B, node, src, batched: B.gather(src[0], node.arg[0] + 1,
                                                            node.arg[1].array))
"""arg = (axis, Payload of int32 or int64 indices, all in range): x.take(indices, axis)."""


def _place_shape(shapes, arg):
    (old,) = shapes
    slots, size = arg[0].array, arg[1]
    lead = len(old) - slots.ndim
    if lead < 0 or old[lead:] != slots.shape:
        raise ValueError(f"place: the slot table's shape {slots.shape} must end the source's "
                         f"shape {old}")
    if slots.dtype not in (np.int32, np.int64) or (
            slots.size and (slots.min() < -1 or slots.max() >= size)):
        raise ValueError(f"place: slots must be int32 or int64 in [-1, {size})")
    return old[:lead] + (size,)


def _place_numpy(arg, x):
    slots, size = arg[0].array, arg[1]
    out = np.zeros(x.shape[:x.ndim - slots.ndim] + (size,), x.dtype)
    kept = slots >= 0
    out[..., slots[kept]] = x[..., kept]
    return out


def _place_vjp(B, node, ct):
    """Each source element reads its slot of the cotangent (a slot of -1: zero)."""
    slots, size = node.arg[0].array, node.arg[1]
    lead = node.ndim - 1
    if slots.size and slots.min() < 0:
        ct = B.pad(ct, ((0, 0),) * lead + ((0, 1),))
        slots = np.where(slots < 0, size, slots)
    return (B.gather(ct, lead, slots),)


PLACE = OpDef("place", 1, kind=OpKind.MOVEMENT, dependence=read_elements, data_arg=True,
              linearity=Linearity.LINEAR, shape=_place_shape, dtype=_same_dtype,
              numpy=_place_numpy, cost=1,
              jvp=lambda B, node, t: B.place(t[0], node.arg[0].array, node.arg[1]),
              vjp=_place_vjp,
              batch=lambda B, node, src, batched: B.place(src[0], node.arg[0].array,
                                                          node.arg[1]))
"""arg = (Payload of int32 or int64 slots, size): the scatter of a source into `size` slots
along a new last axis: element p of the source's trailing `slots.shape` axes goes to slot
`slots[p]` (-1: dropped; no two elements share a slot; slots no element goes to are zero).
Its kernel runs over the source (backend/kernel.py, `over_source`), so the source fuses into
it and nothing is read back: a sparse derivative's colour loop writes each nonzero straight to
its place in CSC order."""

PLACE_UNROLLED = 16
"""A placement whose source leads with an axis of at most this many elements that the slot
table spans (the seeds of a sparse derivative) runs one loop nest over the other axes and
computes every seed at each position: what the seeds share (exp(x) in a Jacobian's diagonal,
the colour table) is computed once, and each position's nonzeros land close together."""


def gather_arg(axis: int, indices: np.ndarray) -> tuple:
    """The argument of a GATHER node (indices already normalised to [0, n)): int32 where they
    fit, which halves the table the generated code reads."""
    table = np.asarray(indices, dtype=np.int64)
    if not table.size or table.max() < 2 ** 31:
        table = table.astype(np.int32)
    return (axis, Payload(table))
