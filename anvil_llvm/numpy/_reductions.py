"""Reductions with NumPy's names and signatures (`axis`, `keepdims`, `ddof`)."""
from __future__ import annotations

import builtins

import numpy as np

from .. import control
from .. import tensor as T
from ..tensor import Tensor, as_tensor
from ._elementwise import exp, isfinite, log, sqrt, where
from ._shapes import concatenate, moveaxis


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


def diff(a, n: int = 1, axis: int = -1, prepend=None, append=None) -> Tensor:
    """The n-th differences `a[1:] - a[:-1]` along `axis`, as np.diff (with `prepend` and
    `append` joined first, scalars broadcast across the other axes).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.diff(x, 2), (av.Arg(4),))
    >>> f(np.array([1.0, 4.0, 9.0, 16.0]))
    array([2., 2.])
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"diff: order must be a non-negative int, got n={n!r}")
    a = as_tensor(a)
    if a.ndim == 0:
        raise ValueError("diff: requires an input of at least one dimension")
    axis = T._axis(axis, a.ndim)
    parts = [a]
    for value, at in ((prepend, 0), (append, 1)):
        if value is not None:
            value = as_tensor(value)
            if value.ndim == 0:
                value = value.broadcast_to(a.shape[:axis] + (1,) + a.shape[axis + 1:])
            parts.insert(at * len(parts), value)
    a = concatenate(parts, axis) if len(parts) > 1 else a
    head = (slice(None),) * axis
    for _ in range(n):
        a = a[head + (slice(1, None),)] - a[head + (slice(None, -1),)]
    return a


def trapezoid(y, x=None, dx: float = 1.0, axis: int = -1) -> Tensor:
    """The integral of samples `y` along `axis` by the trapezoidal rule, at points `x` (a
    Tensor or array along that axis) or spacing `dx`, as np.trapezoid.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda y: anp.trapezoid(y, dx=0.5), (av.Arg(3),))
    >>> float(f(np.array([0.0, 1.0, 2.0])))
    1.0
    """
    y = T._float(as_tensor(y))
    axis = T._axis(axis, y.ndim)
    head = (slice(None),) * axis
    mid = (y[head + (slice(1, None),)] + y[head + (slice(None, -1),)]) * 0.5
    if x is None:
        return mid.sum(axis) * dx
    x = as_tensor(x)
    steps = diff(x, axis=-1 if x.ndim == 1 else axis)
    if x.ndim == 1:
        steps = steps.reshape((-1,) + (1,) * (y.ndim - 1 - axis))
    return (mid * steps).sum(axis)


def average(a, axis=None, weights=None, returned: bool = False, keepdims: bool = False):
    """The mean of `a` along `axis`, weighted by `weights` (one per element of `a`, or 1-D
    along `axis`), as np.average; with `returned`, also the sum of the weights.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.average(x, weights=[3.0, 1.0]), (av.Arg(2),))
    >>> float(f(np.array([1.0, 5.0])))
    2.0
    """
    a = T._float(as_tensor(a))
    if weights is None:
        out = a.mean(axis, keepdims)
        total = as_tensor(float(a.size // builtins.max(out.size, 1)))
        return (out, total.broadcast_to(out.shape)) if returned else out
    w = T._float(as_tensor(weights))
    if w.shape != a.shape:
        if axis is None or w.ndim != 1:
            raise ValueError(f"average: weights of shape {w.shape} do not fit a of shape "
                             f"{a.shape}; give one weight per element, or 1-D weights and "
                             "an axis")
        w = w.reshape((-1,) + (1,) * (a.ndim - 1 - T._axis(axis, a.ndim)))
        w = w.broadcast_to(a.shape)
    total = w.sum(axis, keepdims)
    out = (a * w).sum(axis, keepdims) / total
    return (out, total) if returned else out


def ptp(a, axis=None, keepdims: bool = False) -> Tensor:
    """The range max - min along `axis`, as np.ptp.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> float(av.NumericalFunction("f", anp.ptp, (av.Arg(3),))(np.array([2.0, -1.0, 5.0])))
    6.0
    """
    a = as_tensor(a)
    return a.max(axis, keepdims) - a.min(axis, keepdims)
