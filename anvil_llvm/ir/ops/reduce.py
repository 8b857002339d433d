"""Reductions over axes: sum, prod, max, min (the result drops the reduced axes)."""
from __future__ import annotations

import numpy as np

from ..._lazy import scipy_sparse as sp
from ..uop import Linearity, OpDef, OpKind, Reduction
from .elementwise import ADD, CMPEQ, MAX, MIN, MUL
from .source import llvm_literal


def _reduce_shape(shapes, axes):
    (shape,) = shapes
    for a in axes:
        if not 0 <= a < len(shape):
            raise ValueError(f"reduction axis {a} out of range for shape {shape}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_dtype(dts, axes):
    if dts[0].kind == "b":
        raise TypeError("reductions take numbers; cast bool first")
    return dts[0]


def _body(ctx, node, out_dims, reduced_dims):
    axes = node.arg
    out_it, red_it = iter(out_dims), iter(reduced_dims)
    dims = tuple(next(red_it) if i in axes else next(out_it) for i in range(node.src[0].ndim))
    return ctx.value(node.src[0], ctx.index(node.src[0].shape, dims))


def _reduced_shape(node):
    return tuple(node.src[0].shape[a] for a in node.arg)


def _batch(B, node, sources, batched):
    return B.UOp(node.op, sources, tuple(a + 1 for a in node.arg))


def _sum_jvp(B, node, t):
    return B.reduce_sum(t[0], node.arg)


def _sum_vjp(B, node, ct):
    return (B.expand_back(ct, node.src[0].shape, node.arg),)


def _flatten_reduced(B, x, axes):
    """x with the reduced axes moved last and merged: shape kept + (r,)."""
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = B.permute(x, tuple(kept) + tuple(axes))
    r = 1
    for a in axes:
        r *= x.shape[a]
    return B.reshape(moved, tuple(x.shape[i] for i in kept) + (r,))


def _halves(B, x, fill):
    """Split the last axis in two halves, padding an odd length with `fill` (exact: a concat)."""
    r = x.shape[-1]
    if r % 2:
        x = B.concat([x, B.full(x.shape[:-1] + (1,), fill, x.dtype)], x.ndim - 1)
    h = x.shape[-1] // 2
    lead = tuple((0, 1, n) for n in x.shape[:-1])
    return B.slice_(x, lead + ((0, 1, h),)), B.slice_(x, lead + ((h, 1, h),))


def _prod_levels(B, x):
    """The pairwise product tree of the last axis: [x, ..., (..., 1)] (as JAX's prod JVP)."""
    levels = [x]
    while levels[-1].shape[-1] > 1:
        a, b = _halves(B, levels[-1], 1)
        levels.append(B.mul(a, b))
    return levels


def _prod_jvp(B, node, t):
    x = _flatten_reduced(B, node.src[0], node.arg)
    dt = _flatten_reduced(B, t[0], node.arg)
    if x.shape[-1] == 0:
        return None
    value, tangent = x, dt
    while value.shape[-1] > 1:
        a, b = _halves(B, value, 1)
        ta, tb = _halves(B, tangent, 0)
        value, tangent = B.mul(a, b), B.add(B.mul(ta, b), B.mul(a, tb))
    return B.reshape(tangent, node.shape)


def _prod_vjp(B, node, ct):
    """Exact with zeros among the factors, and differentiable again (products of slices)."""
    x, axes = node.src[0], node.arg
    flat = _flatten_reduced(B, x, axes)
    r = flat.shape[-1]
    if r == 0:
        return (None,)
    levels = _prod_levels(B, flat)
    down = B.reshape(ct, node.shape + (1,))
    for level in reversed(levels[:-1]):
        a, b = _halves(B, level, 1)
        both = B.concat([B.mul(down, b), B.mul(down, a)], level.ndim - 1)
        keep = tuple((0, 1, n) for n in level.shape)
        down = B.slice_(both, keep)
    kept = [i for i in range(x.ndim) if i not in axes]
    moved = B.reshape(down, tuple(x.shape[i] for i in kept) + tuple(x.shape[a] for a in axes))
    return (B.permute(moved, B.inverse_permutation(tuple(kept) + tuple(axes))),)


def _chooser_weights(B, node):
    """Where the extremum is attained, divided by how often (ties share equally, as JAX)."""
    x, axes = node.src[0], node.arg
    hit = B.cast(B.binary(CMPEQ, x, B.expand_back(node, x.shape, axes)), x.dtype)
    return B.div(hit, B.expand_back(B.reduce_sum(hit, axes), x.shape, axes))


def _chooser_jvp(B, node, t):
    return B.reduce_sum(B.mul(t[0], _chooser_weights(B, node)), node.arg)


def _chooser_vjp(B, node, ct):
    return (B.mul(B.expand_back(ct, node.src[0].shape, node.arg), _chooser_weights(B, node)),)


def _groups(node) -> list:
    """Each output element reads the source elements of its group (the dependence rule)."""
    src = node.src[0]
    kept = tuple(1 if axis in node.arg else n for axis, n in enumerate(src.shape))
    group = np.broadcast_to(np.arange(node.size).reshape(kept), src.shape).reshape(-1)
    return [sp.csr_array((np.ones(src.size, bool), (group, np.arange(src.size))),
                         shape=(node.size, src.size))]


def _product_pairs(node, live: np.ndarray) -> list:
    """A product's distinct factors interact (x * y), a factor not with itself (it is linear in
    each): pairs of distinct elements of a group whose product the output depends on."""
    (member,) = _groups(node)
    member = member[live]
    pairs = sp.csr_array(member.T @ member)
    pairs.setdiag(False)
    pairs.eliminate_zeros()
    return [(0, 0, pairs)]


def _reduce(name: str, np_fn, combine: OpDef, identity, jvp, vjp, **second) -> OpDef:
    return OpDef(name, 1, kind=OpKind.REDUCE, shape=_reduce_shape, dtype=_reduce_dtype,
                 numpy=lambda axes, x: np.asarray(np_fn(x, axis=axes)).astype(x.dtype, copy=False),
                 reduction=Reduction(identity, combine, _reduced_shape, _body),
                 jvp=jvp, vjp=vjp, batch=_batch, dependence=_groups, **second)


def _lowest(dtype):
    return -np.inf if dtype.is_float else np.iinfo(np.int64).min


def _highest(dtype):
    return np.inf if dtype.is_float else np.iinfo(np.int64).max


REDUCE_SUM = _reduce("sum", np.sum, ADD, lambda dtype: 0, _sum_jvp, _sum_vjp,
                     linearity=Linearity.LINEAR)
REDUCE_PROD = _reduce("prod", np.prod, MUL, lambda dtype: 1, _prod_jvp, _prod_vjp,
                      linearity=Linearity.NONLINEAR, pairs=_product_pairs)
REDUCE_MAX = _reduce("reduce_max", np.max, MAX, _lowest, _chooser_jvp, _chooser_vjp,
                     linearity=Linearity.LINEAR)
REDUCE_MIN = _reduce("reduce_min", np.min, MIN, _highest, _chooser_jvp, _chooser_vjp,
                     linearity=Linearity.LINEAR)
"""arg = the sorted tuple of reduced axes."""
