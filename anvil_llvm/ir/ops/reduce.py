"""Reductions over axes: sum, prod, max, min (the result drops the reduced axes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..uop import OpDef
from .elementwise import ADD, MAX, MIN, MUL
from .source import llvm_literal


@dataclass(frozen=True)
class Reduction:
    """How a reduction lowers: the loop over `reduced_shape` folds `body` values with `combine`."""

    identity: Callable        # dtype -> Python scalar
    combine: OpDef            # the binary elementwise op that folds two partial results
    reduced_shape: Callable   # node -> shape of the reduced loop nest
    body: Callable            # (ctx, node, out_dims, reduced_dims) -> scalar value

    def identity_literal(self, dtype) -> str:
        return llvm_literal(self.identity(dtype), dtype)


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


def _reduce(name: str, np_fn, combine: OpDef, identity) -> OpDef:
    return OpDef(name, 1, kind="reduce", shape=_reduce_shape, dtype=_reduce_dtype,
                 numpy=lambda axes, x: np.asarray(np_fn(x, axis=axes)).astype(x.dtype, copy=False),
                 emit=Reduction(identity, combine, _reduced_shape, _body))


def _lowest(dtype):
    return -np.inf if dtype.is_float else np.iinfo(np.int64).min


def _highest(dtype):
    return np.inf if dtype.is_float else np.iinfo(np.int64).max


REDUCE_SUM = _reduce("sum", np.sum, ADD, lambda dtype: 0)
REDUCE_PROD = _reduce("prod", np.prod, MUL, lambda dtype: 1)
REDUCE_MAX = _reduce("reduce_max", np.max, MAX, _lowest)
REDUCE_MIN = _reduce("reduce_min", np.min, MIN, _highest)
REDUCES = (REDUCE_SUM, REDUCE_PROD, REDUCE_MAX, REDUCE_MIN)
"""arg = the sorted tuple of reduced axes."""
