"""Contraction (dot_general): matmul, dot and tensordot as one op with batch and contracted axes."""
from __future__ import annotations

import numpy as np

from ..._lazy import scipy_sparse as sp
from ..uop import Linearity, OpDef, OpKind, Reduction
from .elementwise import ADD, MUL


def free_axes(ndim: int, contracted, batch) -> list[int]:
    """The axes of an operand that are neither contracted nor batch axes, in order."""
    return [i for i in range(ndim) if i not in contracted and i not in batch]


def _shape(shapes, arg):
    (lc, rc, lb, rb) = arg
    a, b = shapes
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ValueError(f"contract: axis lists differ in length: {arg}")
    for i, j in zip(lc + lb, rc + rb):
        if a[i] != b[j]:
            raise ValueError(f"contract: dimension {a[i]} of axis {i} does not match {b[j]} of "
                             f"axis {j} (shapes {a} and {b})")
    return (tuple(a[i] for i in lb) + tuple(a[i] for i in free_axes(len(a), lc, lb))
            + tuple(b[j] for j in free_axes(len(b), rc, rb)))


def _dtype(dts, arg):
    if dts[0] != dts[1] or dts[0].kind not in "fi":
        raise TypeError(f"contract: operands must share a numeric dtype, got {dts}")
    return dts[0]


def _numpy(arg, a, b):
    (lc, rc, lb, rb) = arg
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sa = [next(letters) for _ in range(a.ndim)]
    sb = [None] * b.ndim
    for i, j in zip(lc + lb, rc + rb):
        sb[j] = sa[i]
    sb = [s or next(letters) for s in sb]
    out = ([sa[i] for i in lb] + [sa[i] for i in free_axes(a.ndim, lc, lb)]
           + [sb[j] for j in free_axes(b.ndim, rc, rb)])
    return np.einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


def _reduced_shape(node):
    return tuple(node.src[0].shape[i] for i in node.arg[0])


def _body(ctx, node, out_dims, reduced_dims):
    (lc, rc, lb, rb) = node.arg
    a, b = node.src
    nb = len(lb)
    fa, fb = free_axes(a.ndim, lc, lb), free_axes(b.ndim, rc, rb)
    da, db = [None] * a.ndim, [None] * b.ndim
    for k, (i, j) in enumerate(zip(lb, rb)):
        da[i] = db[j] = out_dims[k]
    for k, i in enumerate(fa):
        da[i] = out_dims[nb + k]
    for k, j in enumerate(fb):
        db[j] = out_dims[nb + len(fa) + k]
    for k, (i, j) in enumerate(zip(lc, rc)):
        da[i] = db[j] = reduced_dims[k]
    x = ctx.value(a, ctx.index(a.shape, tuple(da)))
    y = ctx.value(b, ctx.index(b.shape, tuple(db)))
    return MUL.scalar(ctx.e, node, x, y)


def _jvp(B, node, t):
    a, b = node.src
    return B.add(B.UOp(CONTRACT, (t[0], b), node.arg) if t[0] is not None else None,
                 B.UOp(CONTRACT, (a, t[1]), node.arg) if t[1] is not None else None)


def _positions(order: list[int]) -> tuple:
    """The permutation taking axes listed in `order` (axis ids) back to increasing axis order."""
    return tuple(order.index(i) for i in range(len(order)))


def _vjp(B, node, ct):
    """Transpose of dot_general (as JAX's _dot_general_transpose_lhs/rhs)."""
    if ct is None:
        return (None, None)
    (lc, rc, lb, rb) = node.arg
    a, b = node.src
    nb = len(lb)
    fa, fb = free_axes(a.ndim, lc, lb), free_axes(b.ndim, rc, rb)
    ct_batch = tuple(range(nb))
    ct_fa = tuple(range(nb, nb + len(fa)))
    ct_fb = tuple(range(nb + len(fa), nb + len(fa) + len(fb)))
    # d a: ct (batch, fa, fb) with b over fb -> (batch, fa, b's contracted axes in b's order)
    da = B.contract(ct, b, ct_fb, fb, ct_batch, rb)
    da_axes = list(lb) + fa + [lc[rc.index(j)] for j in sorted(rc)]
    # d b: a over fa with ct -> (batch, a's contracted axes in a's order, fb)
    db = B.contract(a, ct, fa, ct_fa, lb, ct_batch)
    db_axes = list(rb) + [rc[lc.index(i)] for i in sorted(lc)] + fb
    return (B.permute(da, _positions(da_axes)), B.permute(db, _positions(db_axes)))


def _batch(B, node, sources, batched):
    (lc, rc, lb, rb) = node.arg
    a, b = sources
    shift = lambda axes: tuple(i + 1 for i in axes)
    if batched[0] and batched[1]:
        return B.contract(a, b, shift(lc), shift(rc), (0,) + shift(lb), (0,) + shift(rb))
    if batched[0]:
        out = B.contract(a, b, shift(lc), rc, shift(lb), rb)
        position = len(lb)
    else:
        out = B.contract(a, b, lc, shift(rc), lb, shift(rb))
        position = len(lb) + len(free_axes(a.ndim, lc, lb))
    order = [position] + [i for i in range(out.ndim) if i != position]
    return B.permute(out, tuple(order))


def _terms(node) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The products the contraction sums: for each (output element, contracted position), the
    output's flat index and the flat indices of its two factors."""
    (lc, rc, lb, rb) = node.arg
    a, b = node.src
    fa, fb = free_axes(a.ndim, lc, lb), free_axes(b.ndim, rc, rb)
    grid = node.shape + tuple(a.shape[i] for i in lc)
    at = np.indices(grid).reshape(len(grid), -1)
    da, db = [None] * a.ndim, [None] * b.ndim
    for k, (i, j) in enumerate(zip(lb, rb)):
        da[i] = db[j] = at[k]
    for k, i in enumerate(fa):
        da[i] = at[len(lb) + k]
    for k, j in enumerate(fb):
        db[j] = at[len(lb) + len(fa) + k]
    for k, (i, j) in enumerate(zip(lc, rc)):
        da[i] = db[j] = at[node.ndim + k]

    def flat(dims, shape):
        return np.ravel_multi_index(dims, shape) if shape else np.zeros(at.shape[1], np.int64)
    return flat(list(at[:node.ndim]), node.shape), flat(da, a.shape), flat(db, b.shape)


def _dependence(node) -> list:
    out, ia, ib = _terms(node)
    ones = np.ones(out.size, bool)
    return [sp.csr_array((ones, (out, i)), shape=(node.size, s.size))
            for i, s in zip((ia, ib), node.src)]


def _pairs(node, live: np.ndarray) -> list:
    """The two factors of each product the output depends on interact."""
    out, ia, ib = _terms(node)
    used = live[out]
    a, b = node.src
    return [(0, 1, sp.csr_array((np.ones(int(used.sum()), bool), (ia[used], ib[used])),
                                shape=(a.size, b.size)))]


CONTRACT = OpDef("contract", 2, kind=OpKind.CONTRACT, shape=_shape, dtype=_dtype, numpy=_numpy,
                 reduction=Reduction(lambda dtype: 0, ADD, _reduced_shape, _body), cost=2,
                 jvp=_jvp, vjp=_vjp, batch=_batch, dependence=_dependence, pairs=_pairs,
                 linearity=Linearity.BILINEAR)
"""arg = (lhs contracted axes, rhs contracted axes, lhs batch axes, rhs batch axes); the result is
batch axes, then the lhs free axes, then the rhs free axes (as jax.lax.dot_general)."""
