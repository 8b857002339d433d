"""NumPy indexing of traced arrays: ints, slices with steps, None, Ellipsis, integer arrays
(broadcast together, placed as NumPy places them) and constant boolean masks (their nonzero
positions), lowered to slice, gather, reshape and permute nodes."""
from __future__ import annotations

import numpy as np

from .ir import build as B
from .ir import ops as O
from .ir.ops.movement import gather_arg
from .ir.uop import UOp

_SEPARATOR = object()     # stands for an ellipsis that covers no axis


def _is_mask(k) -> bool:
    """A constant boolean array (not a Python bool, not a traced Tensor)."""
    if hasattr(k, "node") or k is None or isinstance(k, (bool, slice, int, np.integer)) \
            or k is Ellipsis:
        return False
    return np.asarray(k).dtype.kind == "b" and np.ndim(k) >= 1


def _expand_masks(shape: tuple, key: tuple) -> tuple:
    """Each boolean mask replaced by the integer arrays of its nonzero positions, after
    checking it against the axes it covers."""
    if not any(_is_mask(k) for k in key):
        return key
    consumed = [0 if k is None or k is Ellipsis else np.ndim(k) if _is_mask(k) else 1
                for k in key]
    span = max(len(shape) - sum(consumed), 0)
    out, axis = [], 0
    for k, count in zip(key, consumed):
        if _is_mask(k):
            mask = np.asarray(k)
            if mask.shape != shape[axis:axis + mask.ndim]:
                raise IndexError(f"boolean index of shape {mask.shape} does not match the "
                                 f"indexed axes {shape[axis:axis + mask.ndim]} (from axis {axis})")
            out.extend(mask.nonzero())
        else:
            out.append(k)
        axis += span if k is Ellipsis else count
    return tuple(out)


def index(x: UOp, key) -> UOp:
    """`x[key]` with NumPy's rules for ints, slices, None, Ellipsis, integer arrays and
    constant boolean masks."""
    basic = _basic_index(x, key)
    if basic is not None:
        return basic
    key = _expand_masks(x.shape, key if isinstance(key, tuple) else (key,))
    if any(k is Ellipsis for k in key):
        i = [j for j, k in enumerate(key) if k is Ellipsis]
        if len(i) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        used = sum(1 for k in key if k is not None and k is not Ellipsis)
        # An ellipsis of no axes still separates advanced indices, as in NumPy.
        fill = (slice(None),) * (x.ndim - used) or (_SEPARATOR,)
        key = key[:i[0]] + fill + key[i[0] + 1:]
    used = sum(1 for k in key if k is not None and k is not _SEPARATOR)
    if used > x.ndim:
        raise IndexError(f"too many indices: {used} for a tensor of {x.ndim} dimensions")
    key = key + (slice(None),) * (x.ndim - used)
    spec, gathers, shape_after, axis = [], [], [], 0
    node = x
    for k in key:
        if k is None or k is _SEPARATOR:
            shape_after.append(("new" if k is None else "separator", None))
            continue
        n = x.shape[axis]
        if hasattr(k, "node"):
            raise TypeError("indexing with a traced Tensor is not supported (indices must be "
                            "known when tracing); use av.where or a constant integer array")
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            count = len(range(start, stop, step))
            spec.append((start if count else 0, step, count))
            shape_after.append(("keep", axis))
        elif (isinstance(k, (int, np.integer)) and not isinstance(k, bool)
              or isinstance(k, np.ndarray) and k.ndim == 0 and k.dtype.kind in "iu"):
            k = int(k)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis {axis} with size {n}")
            spec.append((int(k) % n, 1, 1))
            shape_after.append(("drop", axis))
        else:
            indices = np.asarray(k)
            if indices.dtype.kind == "b":
                raise TypeError("a boolean scalar index is not supported; index with a "
                                "boolean array of the indexed axes' shape")
            if indices.dtype.kind not in "iu" and indices.size:
                raise TypeError(f"index arrays must be integers, got {indices.dtype}")
            indices = indices.astype(np.int64)
            if indices.size and (indices.min() < -n or indices.max() >= n):
                raise IndexError(f"index array out of bounds for axis {axis} with size {n}")
            spec.append((0, 1, n))
            gathers.append((axis, np.where(indices < 0, indices + n, indices)))
            shape_after.append(("gather", axis))
        axis += 1
    node = B.slice_(node, spec)
    if len(gathers) > 1:
        return _gather_together(node, gathers, shape_after)
    for gather_axis, indices in gathers:
        node = UOp(O.GATHER, (node,), gather_arg(gather_axis, indices))
    shape, axis_out = [], 0
    for kind, a in shape_after:
        if kind == "new":
            shape.append(1)
        elif kind == "keep":
            shape.append(node.shape[axis_out])
            axis_out += 1
        elif kind == "drop":
            axis_out += 1
        elif kind == "gather":
            k = gathers[0][1].ndim
            shape.extend(node.shape[axis_out:axis_out + k])
            axis_out += k
    shape = tuple(shape)
    out = B.reshape(node, shape)
    # A None between advanced indices separates them too, as in NumPy.
    advanced = [i for i, (kind, _) in enumerate(shape_after) if kind in ("drop", "gather")]
    if gathers and advanced != list(range(advanced[0], advanced[-1] + 1)):
        # NumPy puts the array's axes first when advanced indices are separated by a slice.
        position = [i for i, (kind, _) in enumerate(shape_after) if kind == "gather"][0]
        start = sum(1 for kind, _ in shape_after[:position] if kind in ("new", "keep"))
        k = gathers[0][1].ndim
        rest = [a for a in range(out.ndim) if not start <= a < start + k]
        out = UOp(O.PERMUTE, (out,), tuple(range(start, start + k)) + tuple(rest))
    return out


def entry(x: UOp, i: int) -> UOp | None:
    """`x[i]` for a Python int `i` (negative from the end): a `pick`; None when x has no axis or
    `i` is out of range (the general path then raises NumPy's error)."""
    n = x.shape[0] if x.shape else 0
    return B.pick(x, i % n) if -n <= i < n else None


def _basic_index(x: UOp, key) -> UOp | None:
    """`x[key]` for Python ints and slices only (what traced scalar code indexes with, taken
    without the general path's bookkeeping); None for any other key. Leading ints are entries
    of the first axis (`pick`), `x[i, j]` two of them."""
    key = key if type(key) is tuple else (key,)
    if len(key) > x.ndim:
        return None
    while key and type(key[0]) is int:
        x, key = entry(x, key[0]), key[1:]
        if x is None:
            return None
    spec, shape = [], []
    for k, n in zip(key, x.shape):
        if type(k) is int:
            if not -n <= k < n:
                return None
            spec.append((k % n, 1, 1))
        elif type(k) is slice:
            start, stop, step = k.indices(n)
            count = len(range(start, stop, step))
            spec.append((start if count else 0, step, count))
            shape.append(count)
        else:
            return None
    rest = x.shape[len(key):]
    spec.extend((0, 1, n) for n in rest)
    return B.reshape(B.slice_(x, tuple(spec)), tuple(shape) + rest)


def _gather_together(node: UOp, gathers: list, shape_after: list) -> UOp:
    """Several integer arrays, broadcast together to a shape S: the indexed axes moved last and
    flattened, one gather of their flat positions, then S where NumPy puts it: in place of the
    advanced indices when they are adjacent, else first."""
    try:
        arrays = np.broadcast_arrays(*(indices for _, indices in gathers))
    except ValueError:
        shapes = " ".join(str(indices.shape) for _, indices in gathers)
        raise IndexError(f"shape mismatch: indexing arrays could not be broadcast together "
                         f"with shapes {shapes}") from None
    axes = [axis for axis, _ in gathers]
    others = [a for a in range(node.ndim) if a not in axes]
    sizes = [node.shape[a] for a in axes]
    flat = sum(a * int(np.prod(sizes[i + 1:], dtype=np.int64)) for i, a in enumerate(arrays))
    moved = B.reshape(B.permute(node, tuple(others + axes)),
                      tuple(node.shape[a] for a in others) + (int(np.prod(sizes)),))
    gathered = UOp(O.GATHER, (moved,), gather_arg(len(others), np.asarray(flat, np.int64)))
    base = [1 if kind == "new" else node.shape[a] for kind, a in shape_after
            if kind in ("new", "keep")]
    s = arrays[0].shape
    out = B.reshape(gathered, tuple(base) + s)
    advanced = [i for i, (kind, _) in enumerate(shape_after) if kind in ("drop", "gather")]
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
    position = sum(1 for kind, _ in shape_after[:advanced[0]] if kind in ("new", "keep")) \
        if adjacent else 0
    b = len(base)
    return B.permute(out, tuple(range(position)) + tuple(range(b, b + len(s)))
                     + tuple(range(position, b)))
