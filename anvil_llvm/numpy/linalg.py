"""`anvil_llvm.numpy.linalg`: solve, inv, norms (det and the factorisations are to come)."""
from __future__ import annotations

import numpy as np

from .. import tensor as T
from ..ir.ops.linalg import solve as _solve
from ..tensor import Tensor, as_tensor
from ._elementwise import sqrt


def solve(a, b) -> Tensor:
    """x with a @ x == b, as np.linalg.solve: `a` (..., n, n), `b` (..., n) when 1-D, else
    (..., n, k), batch axes broadcast. Gaussian elimination with partial pivoting in native
    loops; a singular matrix gives inf/NaN where NumPy raises.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", anp.linalg.solve, (av.Arg((2, 2)), av.Arg(2)))
    >>> f(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0]))
    array([0.8, 1.4])
    """
    a, b = T._float(as_tensor(a)), T._float(as_tensor(b))
    if a.dtype != b.dtype:
        a, b = (x.astype(np.float64) for x in (a, b))
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"solve: `a` must be square over its last two axes, got shape {a.shape}")
    vector = b.ndim == 1
    if vector:
        b = b.reshape(b.shape[0], 1)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"solve: `b` of shape {b.shape} does not fit `a` of shape {a.shape}")
    batch = T.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    x = Tensor(_solve(a.broadcast_to(batch + a.shape[-2:]).node,
                      b.broadcast_to(batch + b.shape[-2:]).node))
    return x.reshape(x.shape[:-1]) if vector else x


def inv(a) -> Tensor:
    """The inverse of square matrices (..., n, n), as np.linalg.inv (solve with the identity)."""
    a = T._float(as_tensor(a))
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"inv: `a` must be square over its last two axes, got shape {a.shape}")
    eye = np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype.np), a.shape)
    return solve(a, eye)


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
