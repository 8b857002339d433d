"""Reductions with NumPy's names and signatures (`axis`, `keepdims`, `ddof`)."""
from __future__ import annotations

import numpy as np

from .. import control
from .. import tensor as T
from ..tensor import Tensor, as_tensor
from ._elementwise import exp, isfinite, log, sqrt, where
from ._shapes import moveaxis


def sum(a, axis=None, keepdims: bool = False) -> Tensor:
    return as_tensor(a).sum(axis, keepdims)


def prod(a, axis=None, keepdims: bool = False) -> Tensor:
    return as_tensor(a).prod(axis, keepdims)


def max(a, axis=None, keepdims: bool = False) -> Tensor:
    return as_tensor(a).max(axis, keepdims)


def min(a, axis=None, keepdims: bool = False) -> Tensor:
    return as_tensor(a).min(axis, keepdims)


amax, amin = max, min


def mean(a, axis=None, keepdims: bool = False) -> Tensor:
    return as_tensor(a).mean(axis, keepdims)


def all(a, axis=None, keepdims: bool = False) -> Tensor:
    """Whether every element along `axis` is true (nonzero), as np.all."""
    return (as_tensor(a) == 0).astype(np.int64).sum(axis, keepdims) == 0


def any(a, axis=None, keepdims: bool = False) -> Tensor:
    """Whether some element along `axis` is true (nonzero), as np.any."""
    return (as_tensor(a) != 0).astype(np.int64).sum(axis, keepdims) > 0


def var(a, axis=None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """The variance about the mean (two passes: no cancellation), as np.var.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.var(x, ddof=1), (av.Arg(4),))
    >>> float(f(np.array([1.0, 2.0, 3.0, 4.0])))
    1.6666666666666667
    """
    a = T._float(as_tensor(a))
    axes = T._axes(axis, a.ndim)
    count = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    centred = a - a.mean(axes, keepdims=True)
    total = (centred * centred).sum(axes, keepdims)
    dof = count - ddof
    return total / dof if dof > 0 else total * np.nan


def std(a, axis=None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """The standard deviation, sqrt(var), as np.std."""
    return sqrt(var(a, axis, ddof, keepdims))


def logsumexp(a, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) along `axis`, shifted by the maximum so that nothing overflows, as
    scipy.special.logsumexp."""
    a = T._float(as_tensor(a))
    top = a.max(axis, keepdims=True)
    top = where(isfinite(top), top, 0.0)
    out = log(exp(a - top).sum(axis, keepdims=True)) + top
    axes = T._axes(axis, a.ndim)
    return out if keepdims else out.reshape(tuple(d for i, d in enumerate(out.shape)
                                                  if i not in axes))


def _accumulate(name: str, a, axis, combine) -> Tensor:
    a = as_tensor(a)
    if axis is None:
        a, axis = a.reshape(-1), 0
    axis = T._axis(axis, a.ndim)
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    leading = moveaxis(a, axis, 0)
    if leading.shape[0] == 0:
        return a

    def step(carry, x):
        new = combine(carry, x)
        return new, new
    identity = np.full(leading.shape[1:], 1 if name == "cumprod" else 0, leading.dtype.np)
    _, out = control.scan(step, as_tensor(identity), leading)
    return moveaxis(out, 0, axis)


def cumsum(a, axis=None) -> Tensor:
    """Running sums along `axis` (of the flattened array when None), as np.cumsum: one
    native loop (`anvil_llvm.scan`), whatever the length."""
    return _accumulate("cumsum", a, axis, lambda c, x: c + x)


def cumprod(a, axis=None) -> Tensor:
    """Running products along `axis` (of the flattened array when None), as np.cumprod."""
    return _accumulate("cumprod", a, axis, lambda c, x: c * x)
