"""Array creation and movement with NumPy's names: new constant arrays inside a traced
function, and reshaping, reordering and repeating a tensor's elements."""
from __future__ import annotations

import builtins
import itertools
from collections.abc import Sequence

import numpy as np

from .. import tensor as T
from ..tensor import Tensor, as_tensor, stack, where
from ..tensor import concatenate as _concatenate
from ..tensor import pad as _zero_pad


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


def array(object, dtype=None) -> Tensor:
    """A Tensor from a Tensor, a NumPy array, a number or nested lists of them, as np.array
    (and jnp.array): a list holding Tensors is stacked, so `array([[c, -s], [s, c]])` builds a
    rotation matrix from traced `c` and `s` (all entries of one level must have one shape).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> def rotation(q):
    ...     c, s = anp.cos(q), anp.sin(q)
    ...     return anp.array([[c, -s], [s, c]])
    >>> f = av.NumericalFunction("rotation", rotation, (av.Arg(()),))
    >>> f(np.pi / 2).round(12) + 0.0
    array([[ 0., -1.],
           [ 1.,  0.]])
    """
    out = _nested(object)
    return out if dtype is None else out.astype(dtype)


def _nested(value) -> Tensor:
    if isinstance(value, (list, tuple)) and _holds_tensors(value):
        if not value:
            return as_tensor(np.zeros(0))
        return stack([_nested(v) for v in value])
    return as_tensor(value)


def _holds_tensors(value) -> bool:
    if isinstance(value, Tensor):
        return True
    return isinstance(value, (list, tuple)) and builtins.any(_holds_tensors(v) for v in value)


asarray = array


def copy(a) -> Tensor:
    """`a` itself: traced values are never written in place, so no copy is needed (np.copy).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> av.NumericalFunction("f", lambda x: anp.copy(x) * 2.0, (av.Arg(2),))(np.ones(2))
    array([2., 2.])
    """
    return as_tensor(a)


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


def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The `offset`-th diagonal of the 2-D arrays over `axis1` and `axis2`, as np.diagonal: the
    other axes first, the diagonal last.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.diagonal(x, 0, 1, 2), (av.Arg((2, 2, 2)),))
    >>> f(np.arange(8.0).reshape(2, 2, 2))
    array([[0., 3.],
           [4., 7.]])
    """
    a = as_tensor(a)
    if a.ndim < 2:
        raise ValueError(f"diagonal: expected an array of at least 2 dimensions, got shape "
                         f"{a.shape}")
    axis1, axis2 = T._axis(axis1, a.ndim), T._axis(axis2, a.ndim)
    if axis1 == axis2:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    rest = [k for k in range(a.ndim) if k not in (axis1, axis2)]
    a = transpose(a, rest + [axis1, axis2])
    rows, cols = a.shape[-2:]
    start_row, start_col = builtins.max(-offset, 0), builtins.max(offset, 0)
    count = builtins.max(0, builtins.min(rows - start_row, cols - start_col))
    flat = (start_row + np.arange(count)) * cols + start_col + np.arange(count)
    return a.reshape(a.shape[:-2] + (rows * cols,))[..., flat]


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


def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The sums of the `offset`-th diagonals over `axis1` and `axis2`, as np.trace."""
    return diagonal(a, offset, axis1, axis2).sum(-1)


def concatenate(arrays: Sequence, axis: int | None = 0) -> Tensor:
    """The arrays joined along an existing `axis` (flattened first when None), as
    np.concatenate; an item may be a list holding Tensors (`[x, [total]]`).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.concatenate([x, x[:1]], axis=None),
    ...                          (av.Arg((2, 2)),))
    >>> f(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([1., 2., 3., 4., 1., 2.])
    """
    items = [array(a) for a in (arrays if isinstance(arrays, (list, tuple)) else
                                as_tensor(arrays))]
    if axis is None:
        return _concatenate([a.reshape(-1) for a in items])
    return _concatenate(items, axis=axis)


def append(arr, values, axis: int | None = None) -> Tensor:
    """`values` appended to `arr` along `axis` (both flattened when None), as np.append.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> av.NumericalFunction("f", lambda x: anp.append(x, 0.0), (av.Arg(2),))(np.ones(2))
    array([1., 1., 0.])
    """
    return concatenate([as_tensor(arr), as_tensor(values)], axis)


def split(ary, indices_or_sections, axis: int = 0) -> list[Tensor]:
    """`ary` cut along `axis` into equal sections (an int, which must divide the length) or
    at the given indices, as np.split.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.split(x, [1])[1], (av.Arg(3),))
    >>> f(np.array([1.0, 2.0, 3.0]))
    array([2., 3.])
    """
    a = as_tensor(ary)
    n = a.shape[T._axis(axis, a.ndim)]
    if isinstance(indices_or_sections, (int, np.integer)) and n % indices_or_sections:
        raise ValueError(f"split: array split does not result in an equal division ({n} into "
                         f"{indices_or_sections}); use array_split")
    return array_split(a, indices_or_sections, axis)


def array_split(ary, indices_or_sections, axis: int = 0) -> list[Tensor]:
    """`ary` cut along `axis` into `indices_or_sections` sections (the first ones one longer
    when the length does not divide) or at the given indices, as np.array_split."""
    a = as_tensor(ary)
    axis = T._axis(axis, a.ndim)
    n = a.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        if indices_or_sections <= 0:
            raise ValueError(f"array_split: number sections must be larger than 0, got "
                             f"{indices_or_sections}")
        size, extra = divmod(n, int(indices_or_sections))
        bounds = np.cumsum([0] + [size + 1] * extra + [size] * (indices_or_sections - extra))
    else:
        bounds = np.concatenate([[0], np.asarray(indices_or_sections, dtype=np.int64), [n]])
    cuts = np.clip(bounds, 0, n)
    return [a[(slice(None),) * axis + (slice(int(lo), int(builtins.max(lo, hi))),)]
            for lo, hi in itertools.pairwise(cuts)]


def pad(array, pad_width, mode: str = "constant", constant_values=0) -> Tensor:
    """`array` padded by `pad_width` (one int, one pair, or one pair per axis), as np.pad:
    `mode` 'constant' (with a scalar `constant_values`, a number or a Tensor), 'edge',
    'wrap' (periodic), 'reflect' or 'symmetric'.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.pad(x, (1, 2), mode="wrap"), (av.Arg(3),))
    >>> f(np.array([1.0, 2.0, 3.0]))
    array([3., 1., 2., 3., 1., 2.])
    """
    a = as_tensor(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (a.ndim, 2))
    if mode == "constant":
        out = _zero_pad(a, widths)
        if isinstance(constant_values, Tensor) or np.any(constant_values):
            border = np.pad(np.zeros(a.shape, a.dtype.np), widths, constant_values=1)
            out = where(border.astype(bool), constant_values, out)
        return out
    if mode not in ("edge", "wrap", "reflect", "symmetric"):
        raise NotImplementedError(f"pad: mode={mode!r} is not supported; use 'constant', "
                                  "'edge', 'wrap', 'reflect' or 'symmetric'")
    for axis, (lo, hi) in enumerate(widths):
        if lo or hi:
            source = np.pad(np.arange(a.shape[axis]), (int(lo), int(hi)), mode=mode)
            a = take(a, source, axis)
    return a


def column_stack(tup: Sequence) -> Tensor:
    """1-D arrays as the columns of a 2-D array (2-D ones as they are), joined, as
    np.column_stack.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.column_stack([x, 2.0 * x]), (av.Arg(2),))
    >>> f(np.array([1.0, 2.0]))
    array([[1., 2.],
           [2., 4.]])
    """
    items = [as_tensor(t) for t in tup]
    return _concatenate([t.reshape(-1, 1) if t.ndim < 2 else t for t in items], axis=1)


def meshgrid(*xi, indexing: str = "xy") -> list[Tensor]:
    """Coordinate arrays from 1-D coordinate vectors, as np.meshgrid ('xy': the first two
    axes swapped, NumPy's default; 'ij': matrix indexing).

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> f = av.NumericalFunction("f", lambda x: anp.meshgrid(x, x[:1])[0], (av.Arg(2),))
    >>> f(np.array([1.0, 2.0]))
    array([[1., 2.]])
    """
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    vectors = [as_tensor(x).reshape(-1) for x in xi]
    shape = [v.shape[0] for v in vectors]
    if indexing == "xy" and len(vectors) > 1:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, v in enumerate(vectors):
        position = 1 - i if indexing == "xy" and i < 2 and len(vectors) > 1 else i
        spread = [1] * len(vectors)
        spread[position] = v.shape[0]
        out.append(v.reshape(tuple(spread)).broadcast_to(tuple(shape)))
    return out


def hstack(tup: Sequence) -> Tensor:
    items = [as_tensor(t) for t in tup]
    return _concatenate(items, axis=0 if builtins.all(t.ndim <= 1 for t in items) else 1)


def vstack(tup: Sequence) -> Tensor:
    return _concatenate([atleast_2d(t) for t in tup], axis=0)


def dstack(tup: Sequence) -> Tensor:
    """Arrays joined along a third axis (1-D (n,) as (1, n, 1), 2-D (m, n) as (m, n, 1)),
    as np.dstack.

    >>> import numpy as np, anvil_llvm as av, anvil_llvm.numpy as anp
    >>> av.NumericalFunction("f", lambda x: anp.dstack([x, x]), (av.Arg(2),))(np.ones(2)).shape
    (1, 2, 2)
    """
    return _concatenate([atleast_3d(t) for t in tup], axis=2)


def atleast_1d(a) -> Tensor:
    a = as_tensor(a)
    return a.reshape(1) if a.ndim == 0 else a


def atleast_2d(a) -> Tensor:
    a = as_tensor(a)
    return a.reshape((1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a



def atleast_3d(a) -> Tensor:
    """`a` with at least three axes, as np.atleast_3d: (n,) becomes (1, n, 1), (m, n) becomes
    (m, n, 1)."""
    a = atleast_2d(a)
    return a.reshape(a.shape + (1,)) if a.ndim == 2 else a
