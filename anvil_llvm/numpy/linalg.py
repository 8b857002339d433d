"""`anvil_llvm.numpy.linalg`: norms (solve, inv, det and the factorisations are to come)."""
from __future__ import annotations

import numpy as np

from .. import tensor as T
from ..tensor import Tensor, as_tensor
from ._elementwise import sqrt


def norm(x, ord=None, axis=None, keepdims: bool = False) -> Tensor:
    """Vector norms (`ord` None or 2, 1, inf, -inf, 0, any p) over one axis, and the
    Frobenius, 1 and inf norms of matrices over two, as np.linalg.norm.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.linalg.norm(x, 1), (av.Arg(3),))
    >>> float(f(np.array([1.0, -2.0, 3.0])))
    6.0
    """
    x = T._float(as_tensor(x))
    if axis is None:
        if ord is None:
            out = sqrt((x * x).sum())
            return out.reshape((1,) * x.ndim) if keepdims else out
        if x.ndim not in (1, 2):
            raise ValueError(f"norm: improper number of dimensions to norm ({x.ndim}) for "
                             f"ord={ord!r}; pass axis")
        axis = tuple(range(x.ndim))
    axes = tuple(T._axis(a, x.ndim) for a in (axis if isinstance(axis, (tuple, list))
                                                else (axis,)))
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"norm: improper number of axes {axis}")


def _vector_norm(x: Tensor, ord, axis: int, keepdims: bool) -> Tensor:
    if ord is None or ord == 2:
        return sqrt((x * x).sum(axis, keepdims))
    if ord == np.inf:
        return abs(x).max(axis, keepdims)
    if ord == -np.inf:
        return abs(x).min(axis, keepdims)
    if ord == 0:
        return (x != 0).astype(x.dtype.np).sum(axis, keepdims)
    if ord == 1:
        return abs(x).sum(axis, keepdims)
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")  # noqa: TRY004
    return (abs(x) ** float(ord)).sum(axis, keepdims) ** (1.0 / float(ord))


def _matrix_norm(x: Tensor, ord, axes: tuple, keepdims: bool) -> Tensor:
    rows, cols = axes
    if ord in (None, "fro"):
        out = sqrt((x * x).sum(axes, keepdims=True))
    elif ord in (1, -1, np.inf, -np.inf):
        summed, reduced = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = abs(x).sum(summed, keepdims=True)
        out = sums.max(reduced, keepdims=True) if ord > 0 else sums.min(reduced, keepdims=True)
    else:
        raise NotImplementedError(f"norm: ord={ord!r} of a matrix needs singular values, which "
                                  "are not supported yet; use 'fro', 1 or inf")
    return out if keepdims else out.reshape(tuple(d for i, d in enumerate(out.shape)
                                                  if i not in axes))
