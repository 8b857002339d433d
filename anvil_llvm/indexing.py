"""NumPy indexing of traced arrays: ints, slices with steps, None, Ellipsis and one integer
array, lowered to slice, gather, reshape and permute nodes."""
from __future__ import annotations

import numpy as np

from .ir import build as B
from .ir import ops as O
from .ir.ops.movement import gather_arg
from .ir.uop import UOp

_SEPARATOR = object()     # stands for an ellipsis that covers no axis


def index(x: UOp, key) -> UOp:
    """`x[key]` with NumPy's rules for ints, slices, None, Ellipsis and one integer array."""
    key = key if isinstance(key, tuple) else (key,)
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
                raise TypeError("boolean mask indexing gives a data-dependent shape; use "
                                "av.where(mask, x, 0) instead")
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
        raise IndexError("more than one integer-array index is not supported; index one axis "
                         "at a time")
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
