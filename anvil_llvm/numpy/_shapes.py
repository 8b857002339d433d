"""Array creation and movement with NumPy's names: new constant arrays inside a traced
function, and reshaping, reordering and repeating a tensor's elements."""
from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from .. import tensor as T
from ..tensor import Tensor, as_tensor, concatenate, where


def _const(array: np.ndarray) -> Tensor:
    return as_tensor(np.asarray(array))


def _dtype(dtype, default=np.float64):
    return np.dtype(default if dtype is None else dtype)


# ---- creation: constants of the traced function ---------------------------------------------
def zeros(shape, dtype=None) -> Tensor:
    return _const(np.zeros(shape, _dtype(dtype)))


def ones(shape, dtype=None) -> Tensor:
    return _const(np.ones(shape, _dtype(dtype)))


def full(shape, fill_value, dtype=None) -> Tensor:
    """`fill_value` (a number or a Tensor, broadcast) at every position of `shape`."""
    if isinstance(fill_value, Tensor):
        return fill_value.astype(_dtype(dtype, fill_value.dtype.np)).broadcast_to(
            T._shape_arg((shape,)) if not isinstance(shape, (int, np.integer)) else (shape,))
    return _const(np.full(shape, fill_value, _dtype(dtype, np.asarray(fill_value).dtype)))


def zeros_like(a, dtype=None) -> Tensor:
    a = as_tensor(a)
    return zeros(a.shape, _dtype(dtype, a.dtype.np))


def ones_like(a, dtype=None) -> Tensor:
    a = as_tensor(a)
    return ones(a.shape, _dtype(dtype, a.dtype.np))


def full_like(a, fill_value, dtype=None) -> Tensor:
    a = as_tensor(a)
    return full(a.shape, fill_value, _dtype(dtype, a.dtype.np))


def eye(N: int, M: int | None = None, k: int = 0, dtype=None) -> Tensor:
    return _const(np.eye(N, M, k, dtype=_dtype(dtype)))


def identity(n: int, dtype=None) -> Tensor:
    return eye(n, dtype=dtype)


def arange(start, stop=None, step=None, dtype=None) -> Tensor:
    """Evenly spaced values in [start, stop), as np.arange (the bounds are Python numbers)."""
    return _const(np.arange(start, stop, step, dtype=dtype))


def linspace(start, stop, num: int = 50, endpoint: bool = True, dtype=None) -> Tensor:
    """`num` evenly spaced values from `start` to `stop`, as np.linspace; the bounds may be
    Tensors (the values are then start + (stop - start) * t for NumPy's fractions t)."""
    if not isinstance(start, Tensor) and not isinstance(stop, Tensor):
        return _const(np.linspace(start, stop, num, endpoint, dtype=dtype))
    fractions = np.linspace(0.0, 1.0, num, endpoint)
    start, stop = as_tensor(start), as_tensor(stop)
    out = start[..., None] + (stop - start)[..., None] * fractions
    return out if dtype is None else out.astype(dtype)


# ---- movement ----------------------------------------------------------------------------------
def reshape(a, newshape) -> Tensor:
    return as_tensor(a).reshape(newshape)


def ravel(a) -> Tensor:
    return as_tensor(a).reshape(-1)


def transpose(a, axes=None) -> Tensor:
    a = as_tensor(a)
    return a.transpose() if axes is None else a.transpose(*axes)


def broadcast_to(a, shape) -> Tensor:
    return as_tensor(a).broadcast_to(shape)


def _axis_tuple(axis, ndim: int) -> tuple[int, ...]:
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = tuple(T._axis(a, ndim) for a in axes)
    if len(set(result)) != len(result):
        raise ValueError(f"repeated axis in {axis}")
    return result


def squeeze(a, axis=None) -> Tensor:
    """`a` without its axes of length 1 (those of `axis`, which must have length 1)."""
    a = as_tensor(a)
    if axis is None:
        axes = tuple(i for i, d in enumerate(a.shape) if d == 1)
    else:
        axes = _axis_tuple(axis, a.ndim)
        for i in axes:
            if a.shape[i] != 1:
                raise ValueError(f"squeeze: cannot select an axis to squeeze out which has "
                                 f"size not equal to one (axis {i} of shape {a.shape})")
    return a.reshape(tuple(d for i, d in enumerate(a.shape) if i not in axes))


def expand_dims(a, axis) -> Tensor:
    """`a` with new axes of length 1 at the positions `axis` of the result."""
    a = as_tensor(a)
    ndim = a.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1)
    axes = _axis_tuple(axis, ndim)
    dims = iter(a.shape)
    return a.reshape(tuple(1 if i in axes else next(dims) for i in range(ndim)))


def swapaxes(a, axis1: int, axis2: int) -> Tensor:
    a = as_tensor(a)
    order = list(range(a.ndim))
    i, j = T._axis(axis1, a.ndim), T._axis(axis2, a.ndim)
    order[i], order[j] = order[j], order[i]
    return a.transpose(*order)


def moveaxis(a, source, destination) -> Tensor:
    """`a` with the axes `source` moved to the positions `destination`, as np.moveaxis."""
    a = as_tensor(a)
    src = _axis_tuple(source, a.ndim)
    dst = _axis_tuple(destination, a.ndim)
    if len(src) != len(dst):
        raise ValueError("moveaxis: `source` and `destination` arguments must have the same "
                         "number of elements")
    order = [i for i in range(a.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return a.transpose(*order)


def flip(a, axis=None) -> Tensor:
    """`a` with the order of its elements along `axis` (every axis when None) reversed."""
    a = as_tensor(a)
    axes = range(a.ndim) if axis is None else _axis_tuple(axis, a.ndim)
    return a[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(a.ndim))]


def roll(a, shift, axis=None) -> Tensor:
    """Elements shifted by `shift` along `axis` (of the flattened array when None), those
    leaving at one end entering at the other, as np.roll."""
    a = as_tensor(a)
    if axis is None:
        return roll(a.reshape(-1), shift, 0).reshape(a.shape)
    shifts = shift if isinstance(shift, (tuple, list)) else (shift,)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    shifts, axes = np.broadcast_arrays(np.asarray(shifts), np.asarray(axes))
    out = a
    for s, ax in zip(shifts.ravel(), axes.ravel()):
        ax = T._axis(int(ax), a.ndim)
        n = a.shape[ax]
        s = int(s) % n if n else 0
        if s:
            head = tuple(slice(n - s, None) if i == ax else slice(None) for i in range(a.ndim))
            tail = tuple(slice(None, n - s) if i == ax else slice(None) for i in range(a.ndim))
            out = concatenate([out[head], out[tail]], axis=ax)
    return out


def tile(a, reps) -> Tensor:
    """`a` repeated `reps` times along each axis, as np.tile."""
    a = as_tensor(a)
    reps = tuple(int(r) for r in (reps if isinstance(reps, (tuple, list)) else (reps,)))
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"tile: negative repetitions {reps}")
    ndim = builtins.max(a.ndim, len(reps))
    reps = (1,) * (ndim - len(reps)) + reps
    a = a.reshape((1,) * (ndim - a.ndim) + a.shape)
    interleaved = tuple(x for d in a.shape for x in (1, d))
    spread = tuple(x for r, d in zip(reps, a.shape) for x in (r, d))
    return a.reshape(interleaved).broadcast_to(spread).reshape(
        tuple(r * d for r, d in zip(reps, a.shape)))


def repeat(a, repeats, axis=None) -> Tensor:
    """Each element repeated `repeats` times (an int, or one count per element along `axis`)
    along `axis` (of the flattened array when None), as np.repeat."""
    a = as_tensor(a)
    if axis is None:
        a, axis = a.reshape(-1), 0
    axis = T._axis(axis, a.ndim)
    counts = np.broadcast_to(np.asarray(repeats, dtype=np.int64), (a.shape[axis],))
    if (counts < 0).any():
        raise ValueError(f"repeat: negative repetitions {repeats}")
    positions = np.repeat(np.arange(a.shape[axis]), counts)
    return take(a, positions, axis)


def take(a, indices, axis=None) -> Tensor:
    """Elements at the constant integer `indices` along `axis` (of the flattened array when
    None), as np.take."""
    a = as_tensor(a)
    if axis is None:
        a, axis = a.reshape(-1), 0
    axis = T._axis(axis, a.ndim)
    return a[(slice(None),) * axis + (np.asarray(indices),)]


def _last_two(a: Tensor, name: str) -> None:
    if a.ndim < 2:
        raise ValueError(f"{name}: expected an array of at least 2 dimensions, got shape "
                         f"{a.shape}")


def triu(m, k: int = 0) -> Tensor:
    """The elements on and above the k-th diagonal of the last two axes, zeros below."""
    m = as_tensor(m)
    _last_two(m, "triu")
    keep = ~np.tri(m.shape[-2], m.shape[-1], k - 1, dtype=bool)
    return where(keep, m, 0)


def tril(m, k: int = 0) -> Tensor:
    """The elements on and below the k-th diagonal of the last two axes, zeros above."""
    m = as_tensor(m)
    _last_two(m, "tril")
    return where(np.tri(m.shape[-2], m.shape[-1], k, dtype=bool), m, 0)


def diagonal(a, offset: int = 0) -> Tensor:
    """The `offset`-th diagonal of a 2-D array, as np.diagonal."""
    a = as_tensor(a)
    if a.ndim != 2:
        raise ValueError(f"diagonal: expected a 2-D array, got shape {a.shape}")
    rows, cols = a.shape
    start_row, start_col = builtins.max(-offset, 0), builtins.max(offset, 0)
    count = builtins.max(0, builtins.min(rows - start_row, cols - start_col))
    flat = (start_row + np.arange(count)) * cols + start_col + np.arange(count)
    return a.reshape(-1)[flat]


def diag(v, k: int = 0) -> Tensor:
    """A 2-D array with the 1-D `v` on its k-th diagonal, or the k-th diagonal of a 2-D `v`,
    as np.diag."""
    v = as_tensor(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ValueError(f"diag: expected a 1-D or 2-D array, got shape {v.shape}")
    n = v.shape[0] + builtins.abs(k)
    rows = np.arange(n)[:, None]
    picked = rows - builtins.max(-k, 0)          # the element of v on row r
    on = (np.arange(n)[None, :] - rows == k) & (picked >= 0) & (picked < v.shape[0])
    if not v.shape[0]:
        return zeros((n, n), v.dtype.np)
    return where(on, v[np.clip(picked, 0, v.shape[0] - 1)], 0)


def trace(a, offset: int = 0) -> Tensor:
    """The sum of the `offset`-th diagonal of a 2-D array, as np.trace."""
    return diagonal(a, offset).sum()


def hstack(tup: Sequence) -> Tensor:
    items = [as_tensor(t) for t in tup]
    return concatenate(items, axis=0 if builtins.all(t.ndim <= 1 for t in items) else 1)


def vstack(tup: Sequence) -> Tensor:
    return concatenate([atleast_2d(t) for t in tup], axis=0)


def atleast_1d(a) -> Tensor:
    a = as_tensor(a)
    return a.reshape(1) if a.ndim == 0 else a


def atleast_2d(a) -> Tensor:
    a = as_tensor(a)
    return a.reshape((1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a

