"""Graph simplification as data: rewrite rows `(op, rule)` applied bottom-up until none fires.

Constant folding stops at `FOLD_LIMIT` elements so structured constants (broadcast scalars,
iotas) are never expanded into large arrays. Contractions that sum one product become products,
and contractions with the symbolic identity of dense derivatives (`iota == iota`, moved, scaled)
become selections, so basis seeds never reach a GEMM as an n x n matrix.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from . import build as B
from .build import full, slice_
from .ops import (ADD, CAST, CMPEQ, CONCAT, CONST, CONST_ARRAY, CONTRACT, DIV, EXPAND, IOTA, LOOP,
                  MUL, NEG, PAD, PERMUTE, PICK, REDUCE_SUM, RESHAPE, SLICE, STACK, SUB, VIEWS,
                  WHERE, const)
from .ops.contract import free_axes
from .ops.control import merge_loops
from .ops.source import const_array
from .uop import SMALL_SIZE, OpDef, OpKind, UOp, toposort

FOLD_LIMIT = 64


def scalar_value(node: UOp):
    """The value of a node that is one scalar constant at every position, else None."""
    while node.op in VIEWS:
        node = node.src[0]
    return node.arg.value if node.op is CONST else None


def _is(node: UOp, value) -> bool:
    v = scalar_value(node)
    return v is not None and v == value


def _fold(node: UOp):
    if not node.src or node.op.kind in (OpKind.SOURCE, OpKind.LOOP):
        return None
    scalars = [scalar_value(s) for s in node.src]
    if None not in scalars:         # (scalars are numbers: `in` compares none equal to None)
        if node.op.kind is OpKind.ELEMENTWISE:
            values = [np.array(v, dtype=s.dtype.np) for v, s in zip(scalars, node.src)]
            with np.errstate(all="ignore"):
                folded = np.asarray(node.op.numpy(node.arg, *values)).astype(node.dtype.np)
            return full(node.shape, folded.item(), node.dtype)
        if node.op in VIEWS:
            canonical = full(node.shape, scalars[0], node.dtype)
            return canonical if canonical is not node else None
    if node.size > FOLD_LIMIT:
        return None
    for s, v in zip(node.src, scalars):
        if v is None and s.op is not CONST_ARRAY:
            return None
    from .interpret import evaluate
    (value,) = evaluate([node], [])
    return const(value.item(), node.dtype) if value.ndim == 0 else const_array(value)


def _is_zero(node: UOp, negative: bool) -> bool:
    """Whether `node` is a zero of the given sign (either zero for integers)."""
    v = scalar_value(node)
    if v is None or v != 0:
        return False
    return not node.dtype.is_float or (math.copysign(1.0, v) < 0) == negative


def _is_additive_identity(node: UOp) -> bool:
    """Zero that leaves every x unchanged under +: -0.0 for floats (x + 0.0 turns -0.0 into 0.0)."""
    return _is_zero(node, negative=True)


def _merge_pads(node: UOp):
    inner = node.src[0]
    if inner.op is not PAD:
        return None
    widths = tuple((a + c, b + d) for (a, b), (c, d) in zip(node.arg, inner.arg))
    return UOp(PAD, (inner.src[0],), widths)


def _slice_of_pad(node: UOp):
    """A slice that reads only the unpadded region is a slice of the pad's source."""
    pad = node.src[0]
    if pad.op is not PAD:
        return None
    spec = []
    for (start, step, count), (lo, _), n in zip(node.arg, pad.arg, pad.src[0].shape):
        first, last = start - lo, start - lo + step * (count - 1)
        if count and not (0 <= first < n and 0 <= last < n):
            return None
        spec.append((first if count else 0, step, count))
    return UOp(SLICE, (pad.src[0],), tuple(spec))


def _slice_through_elementwise(node: UOp):
    """Slicing commutes with elementwise ops: compute only the elements that are kept (not for
    small arrays, which are scalar code anyway: there it would only multiply the nodes of long
    traced chains of a few numbers)."""
    inner = node.src[0]
    if (inner.op.kind is not OpKind.ELEMENTWISE or node.size >= inner.size
            or inner.size <= SMALL_SIZE):
        return None
    return UOp(inner.op, tuple(UOp(SLICE, (s,), node.arg) for s in inner.src), inner.arg)


def _pick_through(node: UOp):
    """The only entry is a reshape; an entry of a stack is its source; of a slice, a slice of
    the entry it reads; of a concatenation along the first axis, an entry of the piece it falls
    in; of an elementwise op (not on small arrays, as for slices), the op on the entries."""
    inner, i = node.src[0], node.arg
    if inner.shape[0] == 1:
        return B.reshape(inner, node.shape)
    if inner.op is STACK or inner.op is SLICE:
        return B.pick(inner, i)
    if inner.op is CONCAT and inner.arg == 0:
        for s in inner.src:
            if i < s.shape[0]:
                return UOp(PICK, (s,), i)
            i -= s.shape[0]
    if inner.op.kind is OpKind.ELEMENTWISE and inner.size > SMALL_SIZE:
        return UOp(inner.op, tuple(UOp(PICK, (s,), i) for s in inner.src), inner.arg)
    return None


def _stack_of_picks(node: UOp):
    """`stack([x[0], x[1], ..., x[n - 1]])` is x."""
    first = node.src[0]
    if first.op is not PICK or first.src[0].shape[0] != len(node.src):
        return None
    whole = first.src[0]
    return whole if all(s.op is PICK and s.arg == k and s.src[0] is whole
                        for k, s in enumerate(node.src)) else None


_AXIS_MOVES = (PAD, SLICE, PERMUTE)


def _moved(node: UOp) -> bool:
    """Whether `node`'s elements come through a pad, slice or permutation (itself, or a source
    of it when it is elementwise): read at a flat position, each needs its position decoded."""
    return node.op in _AXIS_MOVES or node.op.kind is OpKind.ELEMENTWISE and any(
        s.op in _AXIS_MOVES for s in node.src)


def _elementwise_on_the_grid(node: UOp):
    """An elementwise op over the flat view of a grid whose elements come through pads or
    slices (the reverse pass of a stencil on a reshaped vector, added to a flat term) is
    computed on the grid and reshaped after: its kernel runs a nest over the grid's axes that
    reads the moved elements contiguously, where a flat loop decodes every position and reads
    them through gathers (scalar code on CPUs without AVX-512). Not for a grid whose last axis
    is shorter than a vector."""
    if node.op.kind is not OpKind.ELEMENTWISE or node.size <= SMALL_SIZE:
        return None
    grids = {s.src[0].shape for s in node.src
             if s.op is RESHAPE and s.src[0].ndim > node.ndim and _moved(s.src[0])}
    if len(grids) != 1:
        return None
    (grid,) = grids
    if grid[-1] < SMALL_SIZE:
        return None
    return B.reshape(UOp(node.op, tuple(B.reshape(s, grid) for s in node.src), node.arg),
                     node.shape)


# ---- contractions: one product per result, or a selection through an identity ---------------------
def _contract_of_one_term(node: UOp):
    """A contraction that sums one product (no contracted axes, or all of size 1) is an
    elementwise product of the broadcast operands: no loop, no GEMM, and `x * 1` simplifies."""
    (lc, rc, lb, rb) = node.arg
    a, b = node.src
    if node.size == 0 or math.prod(a.shape[i] for i in lc) != 1:
        return None
    fa, fb = free_axes(a.ndim, lc, lb), free_axes(b.ndim, rc, rb)
    batch = tuple(a.shape[i] for i in lb)
    x = B.reshape(B.permute(a, tuple(lb) + tuple(fa) + tuple(lc)),
                  batch + tuple(a.shape[i] for i in fa) + (1,) * len(fb))
    y = B.reshape(B.permute(b, tuple(rb) + tuple(rc) + tuple(fb)),
                  batch + (1,) * len(fa) + tuple(b.shape[j] for j in fb))
    return _plus_zero(UOp(MUL, (B.broadcast_to(x, node.shape), B.broadcast_to(y, node.shape))))


def _plus_zero(y: UOp) -> UOp:
    """`y + 0.0` for floats: a contraction's sum starts at +0.0, so it never gives -0.0."""
    return UOp(ADD, (y, full(y.shape, 0, y.dtype))) if y.dtype.is_float else y


def _contract_drops_added_zero(node: UOp):
    """`y + 0` contracts as `y`: the two differ only in the sign of zeros, and the products
    of a contraction are summed from +0.0, where zeros of either sign change nothing."""
    a, b = (_without_added_zero(s) for s in node.src)
    if a is None and b is None:
        return None
    return UOp(CONTRACT, (a or node.src[0], b or node.src[1]), node.arg)


def _without_added_zero(node: UOp) -> UOp | None:
    """`y` when `node` is `y + 0` under movement ops, else None."""
    chain = []
    while node.op in (RESHAPE, PERMUTE, EXPAND):
        chain.append(node)
        node = node.src[0]
    if node.op is not ADD:
        return None
    for y, zero in (node.src, node.src[::-1]):
        if _is_zero(zero, negative=False):
            return _replayed(chain, y)
    return None


def identity_axes(node: UOp) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """`(rows, cols)` when `node` is a symbolic identity: 1 where the row-major flat index of
    its axes `rows` (listed in the order they flatten) equals that of its axes `cols`, else 0,
    whatever its other axes (sizes 1 and broadcasts). That is `cast(iota == iota)`, the basis
    of dense derivatives (`build.basis`), under casts, reshapes, permutations and broadcasts, as
    vmap leaves it; None for any other node."""
    if node.size == 0:
        return None
    chain = []
    while node.op in (CAST, RESHAPE, PERMUTE, EXPAND):
        chain.append(node)
        node = node.src[0]
    if node.op is not CMPEQ or any(s.op is not IOTA for s in node.src):
        return None
    (shape, i), (other, j) = node.src[0].arg, node.src[1].arg
    if shape != other or i == j:
        return None
    groups = tuple((a,) if shape[a] != 1 else () for a in (i, j))
    for step in reversed(chain):         # an expand broadcasts axes of size 1: none in a group
        if step.op is PERMUTE:
            position = B.inverse_permutation(step.arg)
            groups = tuple(tuple(position[a] for a in g) for g in groups)
        elif step.op is RESHAPE:
            groups = _reshaped_groups(step.src[0].shape, step.shape, groups)
            if groups is None:
                return None
    return groups


def _reshaped_groups(old: tuple, new: tuple, groups: tuple) -> tuple | None:
    """Axis `groups` of shape `old` (each in flattening order) as axes of the reshaped `new`;
    None when the reshape merges a group's axes out of that order or with other axes."""
    olds = [a for a, d in enumerate(old) if d != 1]
    news = [a for a, d in enumerate(new) if d != 1]
    runs = {}        # first old axis of each run of axes -> (the run, the new axes it becomes)
    i = j = 0
    while i < len(olds):
        run, into = [olds[i]], [news[j]]
        size, new_size = old[olds[i]], new[news[j]]
        i, j = i + 1, j + 1
        while size != new_size:
            if size < new_size:
                run.append(olds[i])
                size, i = size * old[olds[i]], i + 1
            else:
                into.append(news[j])
                new_size, j = new_size * new[news[j]], j + 1
        runs[run[0]] = (run, into)
    reshaped = []
    for g in groups:
        axes, at = [], 0
        while at < len(g):
            run, into = runs.get(g[at], ((), ()))
            if not run or list(g[at:at + len(run)]) != run:
                return None
            axes += into
            at += len(run)
        reshaped.append(tuple(axes))
    return tuple(reshaped)


def _common_factors(*shapes: list[int]) -> list[int] | None:
    """The coarsest sizes whose row-major splitting refines each of `shapes` (of one size, no
    axis of size 1): 6 against 2 x 3 gives 2, 3; None when no splitting nests in both (4 x 6
    against 6 x 4)."""
    bounds = sorted({math.prod(s[:k]) for s in shapes for k in range(1, len(s) + 1)})
    factors, last = [], 1
    for bound in bounds:
        if bound % last:
            return None
        factors.append(bound // last)
        last = bound
    return factors


def _factor_ranges(sizes: list[int], factors: list[int]) -> list[range]:
    """Which of the common `factors` each axis of these `sizes` splits into."""
    ranges, u = [], 0
    for size in sizes:
        start, covered = u, 1
        while covered < size:
            covered, u = covered * factors[u], u + 1
        ranges.append(range(start, u))
    return ranges


def _scaled_identity(node: UOp, depth: int = 4) -> tuple[UOp | None, tuple] | None:
    """`(scale, groups)` when `node` is `scale * identity` (scale None: 1), the identity's axis
    groups as `identity_axes` gives them: a product with the identity under movement ops, as
    a JVP along a basis seed makes it (`cos(x) * seed`). `depth` bounds the nested products
    searched."""
    groups = identity_axes(node)
    if groups is not None:
        return None, groups
    chain = []
    while node.op in (RESHAPE, PERMUTE, EXPAND):
        chain.append(node)
        node = node.src[0]
    if node.op is not MUL or depth == 0:
        return None
    for factor, other in (node.src, node.src[::-1]):
        found = _scaled_identity(_replayed(chain, factor), depth - 1)
        if found is not None:
            scale, groups = found
            other = _replayed(chain, other)
            return (other if scale is None else UOp(MUL, (scale, other))), groups
    return None


def _replayed(chain: list[UOp], node: UOp) -> UOp:
    """The movement ops of `chain` (outermost first) applied to `node` instead."""
    for step in reversed(chain):
        node = UOp(step.op, (node,), step.arg)
    return node


def _constant_along(node: UOp, axis: int, depth: int = 16) -> bool:
    """Whether `node` is provably constant along `axis` (a broadcast): through movement ops
    and up to `depth` elementwise ops."""
    while node.shape[axis] != 1:
        if node.op is EXPAND:
            if node.src[0].shape[axis] == 1:
                return True
        elif node.op is PERMUTE:
            axis = node.arg[axis]
        elif node.op is RESHAPE:
            old, new = node.src[0].shape, node.shape
            before = math.prod(new[:axis])
            axis = next((j for j in range(len(old)) if math.prod(old[:j]) == before
                         and old[j] == new[axis]), None)
            if axis is None:
                return False
        elif node.op is IOTA:
            return node.arg[1] != axis
        elif node.op.kind is OpKind.ELEMENTWISE and node.src and depth:
            return all(_constant_along(s, axis, depth - 1) for s in node.src)
        else:
            return False
        node = node.src[0]
    return True


def _diagonal(z: UOp, labels: list, drop, keep) -> UOp:
    """`z` read where its axes labelled `drop` and `keep` are equal, as the axis `keep`: one
    index of a broadcast axis, or the two axes side by side, merged, read with a stride of
    n + 1 (movement ops either way)."""
    p, q = labels.index(drop), labels.index(keep)
    if _constant_along(z, q):        # then read along `drop`, moved to where `keep` is
        z = B.permute(z, tuple(p if i == q else q if i == p else i for i in range(z.ndim)))
    if _constant_along(z, p) or z.shape[p] == 1:
        labels.pop(p)
        spec = tuple((0, 1, 1) if i == p else (0, 1, d) for i, d in enumerate(z.shape))
        return B.reshape(B.slice_(z, spec), z.shape[:p] + z.shape[p + 1:])
    order = [i for i in range(z.ndim) if i != p]
    at = order.index(q)
    order.insert(at, p)
    z = B.permute(z, tuple(order))
    n = z.shape[at]
    shape = z.shape[:at] + (n * n,) + z.shape[at + 2:]
    spec = tuple((0, n + 1, n) if i == at else (0, 1, d) for i, d in enumerate(shape))
    labels.pop(p)
    return B.slice_(B.reshape(z, shape), spec)


def _reads(label, read: dict) -> bool:
    """Whether the output axis `label` reads x: a factor whose partner factor x sums."""
    return type(label) is tuple and (1 - label[0], label[1]) in read


def _contract_with_identity(node: UOp):
    """Summing against a symbolic identity selects instead of multiplying (so JVPs and VJPs
    along basis seeds cost no contraction): see `_selected`. Exact for finite values (the
    dense sum adds 0 * x over the other elements, NaN where x is infinite), up to the order of
    summation where the identity is broadcast along a contracted axis."""
    (lc, rc, lb, rb) = node.arg
    for side in (1, 0):
        e, x = node.src[side], node.src[1 - side]
        found = _scaled_identity(e)
        if found is None:
            continue
        (ce, be), (cx, bx) = ((rc, rb), (lc, lb)) if side else ((lc, lb), (rc, rb))
        y = _selected(x, e, *found, dict(zip(cx, ce)), bx, be)
        if y is None:
            continue
        if side == 0:        # the identity's free axes come before x's
            nb, kept = len(bx), x.ndim - len(cx)
            y = B.permute(y, tuple(range(nb)) + tuple(range(kept, y.ndim))
                          + tuple(range(nb, kept)))
        return y
    return None


def _selected(x: UOp, e: UOp, scale: UOp | None, groups: tuple, summed_with: dict, bx, be):
    """The contraction of `x` with `e` = `scale` * identity(`groups`), `x` first, where
    `summed_with` maps x's contracted axes to e's; None where it needs a diagonal of `x`.

    With the identity's row and column axes split into common factors, it is a product of one
    delta per factor. A factor summed on one side reads `x` there: a movement of `x`, no
    products; a factor summed on neither side stays a delta, a mask. The scale is read on
    the diagonals of the factors summed."""
    ce = tuple(summed_with.values())
    if (any(i in g for g in groups for i in be)
            or not any(i in g for g in groups for i in ce)):
        return None
    factors = _common_factors(*[[e.shape[i] for i in g] for g in groups])
    if factors is None:
        return None
    ranges = {a: (k, us) for k, g in enumerate(groups)
              for a, us in zip(g, _factor_ranges([e.shape[i] for i in g], factors))}
    # x with its axes summed against the identity's groups split into their factors
    shape, axis_of, read = [], {}, {}        # read: (group, factor) -> axis of split x
    for d in range(x.ndim):
        if summed_with.get(d) in ranges:
            k, us = ranges[summed_with[d]]
            for u in us:
                read[k, u] = len(shape)
                shape.append(factors[u])
        else:
            axis_of[d] = len(shape)
            shape.append(x.shape[d])
    if any((0, u) in read and (1, u) in read for u in range(len(factors))):
        return None
    others = [a for a in ce if a not in ranges]       # the identity is constant along these
    if scale is not None and any(e.shape[a] != 1 for a in others):
        return None
    fx, fe = free_axes(x.ndim, tuple(summed_with), bx), free_axes(e.ndim, ce, be)
    kept = [axis_of[d] for d in tuple(bx) + tuple(fx)]
    labels = {a: [(ranges[a][0], u) for u in ranges[a][1]] if a in ranges else [a]
              for a in range(e.ndim)}
    size = {(k, u): factors[u] for k in (0, 1) for u in range(len(factors))}
    size.update({a: e.shape[a] for a in range(e.ndim)})
    out = [label for a in fe for label in labels[a]]
    out_shape = tuple(shape[i] for i in kept) + tuple(size[label] for label in out)
    selected = [read[1 - label[0], label[1]] for label in out if _reads(label, read)]
    y = B.permute(B.reshape(x, tuple(shape)),
                  tuple(kept + selected + [axis_of[d] for d in summed_with if
                                           summed_with[d] in others]))
    y = B.reduce_sum(y, range(len(kept) + len(selected), len(shape)))
    y = B.reshape(y, out_shape[:len(kept)] + tuple(
        size[label] if _reads(label, read) else 1 for label in out))
    y = B.broadcast_to(y, out_shape)
    deltas: dict[int, list[int]] = {}                 # factors free on both sides
    for position, label in enumerate(out, len(kept)):
        if type(label) is tuple and not _reads(label, read):
            deltas.setdefault(label[1], []).append(position)
    for p, q in deltas.values():
        y = UOp(MUL, (y, B.cast(UOp(CMPEQ, (UOp(IOTA, (), (out_shape, p)),
                                            UOp(IOTA, (), (out_shape, q)))), y.dtype)))
    if scale is not None:
        z_labels = [label for a in range(e.ndim) for label in labels[a]]
        z = B.reshape(scale, tuple(size[label] for label in z_labels))
        for k, u in read:
            z = _diagonal(z, z_labels, (k, u), (1 - k, u))
        target = [a for a in be] + out
        z = B.permute(z, tuple(z_labels.index(label) for label in
                               target + [label for label in z_labels if label not in target]))
        z = B.reshape(z, out_shape[:len(be)] + (1,) * len(fx) + out_shape[len(kept):])
        y = UOp(MUL, (y, B.broadcast_to(z, out_shape)))
    return _plus_zero(B.reshape(y, out_shape[:len(kept)] + tuple(e.shape[a] for a in fe)))


def _identity_unless(pred: Callable[[UOp], bool]):
    return lambda n: n.src[0] if pred(n) else None


RULES: list[tuple[OpDef | None, Callable[[UOp], UOp | None]]] = [
    (None, _fold),
    (None, _elementwise_on_the_grid),
    (ADD, lambda n: n.src[0] if _is_additive_identity(n.src[1]) else n.src[1]
     if _is_additive_identity(n.src[0]) else None),
    # x - 0.0 == x (but x - (-0.0) turns -0.0 into 0.0); -0.0 - x == -x (0.0 - 0.0 is 0.0).
    (SUB, lambda n: n.src[0] if _is_zero(n.src[1], negative=False) else UOp(NEG, (n.src[1],))
     if _is_additive_identity(n.src[0]) else None),
    (MUL, lambda n: n.src[0] if _is(n.src[1], 1) else n.src[1] if _is(n.src[0], 1) else None),
    (MUL, lambda n: UOp(NEG, (n.src[0],)) if _is(n.src[1], -1) else None),
    (DIV, lambda n: n.src[0] if _is(n.src[1], 1) else None),
    (NEG, lambda n: n.src[0].src[0] if n.src[0].op is NEG else None),
    (CAST, _identity_unless(lambda n: n.src[0].dtype == n.dtype)),
    (RESHAPE, _identity_unless(lambda n: n.src[0].shape == n.shape)),
    (RESHAPE, lambda n: UOp(RESHAPE, (n.src[0].src[0],), n.arg)
     if n.src[0].op is RESHAPE else None),
    (EXPAND, _identity_unless(lambda n: n.src[0].shape == n.shape)),
    (EXPAND, lambda n: UOp(EXPAND, (n.src[0].src[0],), n.arg)
     if n.src[0].op is EXPAND and n.src[0].src[0].ndim == n.ndim else None),
    (PERMUTE, _identity_unless(lambda n: n.arg == tuple(range(n.ndim)))),
    (PERMUTE, lambda n: UOp(PERMUTE, (n.src[0].src[0],), tuple(n.src[0].arg[p] for p in n.arg))
     if n.src[0].op is PERMUTE else None),
    (SLICE, lambda n: slice_(n.src[0], n.arg)
     if n.src[0].op is SLICE or n.shape == n.src[0].shape else None),
    (SLICE, _slice_of_pad),
    (SLICE, _slice_through_elementwise),
    (PICK, _pick_through),
    (STACK, _stack_of_picks),
    (PAD, _merge_pads),
    (CONTRACT, _contract_drops_added_zero),
    (CONTRACT, _contract_of_one_term),
    (CONTRACT, _contract_with_identity),
    # NumPy adds the identity +0.0 even over no axes, turning -0.0 into 0.0.
    (REDUCE_SUM, lambda n: (UOp(ADD, (n.src[0], full(n.shape, 0, n.dtype)))
                            if n.dtype.is_float else n.src[0]) if n.arg == () else None),
    (WHERE, lambda n: n.src[1] if _is(n.src[0], True) else n.src[2] if _is(n.src[0], False)
     else n.src[1] if n.src[1] is n.src[2] else None),
]

# Per op, its own rows then the general ones (op None), in table order.
_GENERAL = [rule for op, rule in RULES if op is None]
_BY_OP: dict[OpDef, list[Callable]] = {}
for _op, _rule in RULES:
    if _op is not None:
        _BY_OP.setdefault(_op, []).append(_rule)
for _rules in _BY_OP.values():
    _rules.extend(_GENERAL)


MAX_NESTING = 64    # rewrites of rewrites simplified at once; deeper ones wait for a later pass


def _simplified(roots: Sequence[UOp], memo: dict, nesting: int = 0) -> bool:
    """Simplify the graph of `roots` into `memo` (node -> its simplified form; simplified nodes
    map to themselves), sources first. A rule's result is simplified at once, its new nodes
    included, so one traversal reaches the fixed point; returns False when rewrites nested
    deeper than MAX_NESTING were left for another traversal."""
    complete = True
    for node in toposort(roots, memo):
        src = tuple(map(memo.__getitem__, node.src))
        rebuilt = node if src == node.src else UOp(node.op, src, node.arg)   # (`is` first)
        result = memo.get(rebuilt)
        if result is None:
            result = rebuilt
            for rule in _BY_OP.get(rebuilt.op, _GENERAL):
                new = rule(rebuilt)
                if new is not None and new is not rebuilt:
                    if nesting < MAX_NESTING:
                        complete &= _simplified([new], memo, nesting + 1)
                        result = memo[new]
                    else:
                        result, complete = new, False
                    break
        memo[node] = memo[rebuilt] = result
        memo.setdefault(result, result)
    return complete


def simplify(outputs: Sequence[UOp], max_passes: int = 8) -> list[UOp]:
    """Apply the rewrite rules bottom-up until none fires: a rule's result is simplified in
    turn (a slice pushed through an elementwise op meets the next op), so one traversal
    usually suffices; very deep chains of rewrites take up to `max_passes`.

    >>> from anvil_llvm.ir.ops import INPUT
    >>> from anvil_llvm.ir import dtypes
    >>> x = UOp(INPUT, (), (0, (3,), dtypes.float64))
    >>> one = UOp(EXPAND, (UOp(RESHAPE, (const(1.0),), (1,)),), (3,))
    >>> simplify([UOp(MUL, (x, one))])[0] is x
    True
    """
    outputs = list(outputs)
    for _ in range(max_passes):
        memo: dict[UOp, UOp] = {}
        complete = _simplified(outputs, memo)
        outputs = [memo[o] for o in outputs]
        if complete:
            break
    # the graph's nodes are among the last pass's: without two loop results, nothing to merge
    looping = sum(1 for node in memo.values() if node.op is LOOP)
    return merge_loops(outputs) if looping > 1 else outputs
