"""Dense Jacobians of sparse functions, computed through their sparsity (as CasADi does).

A dense `jacobian` evaluates one directional derivative per input (forward) or per output
(reverse). When the Jacobian is sparse, far fewer suffice: columns (or rows) that share no
row (column) go into one direction, coloured greedily on the pattern the sparsity detection
finds. The compressed products are placed straight into their entries of the dense result,
whose other entries are zero; a derivative of the entrywise form (ad/entrywise.py) needs no
colours at all. `compressed_jacobian` decides: it returns None (use the dense modes) when the
Jacobian has few directions anyway, when the detection meets a node denser than a quarter of
the result, or when the colouring does not at least halve the directions.

The greedy colouring runs in NumPy over the column (row) intersection graph, with no numba
kernels to load: a dense result is small enough (its size bounds the pattern) for that.
"""
from __future__ import annotations

import numpy as np

from .._lazy import scipy_sparse as sp
from ..ir import build as B
from ..ir.ops import PLACE
from ..ir.uop import UOp
from .dense import REVERSE_COST
from .forward import jvp_graph
from .reverse import vjp_graph
from .sparsity import TooDense, jacobian_pattern

MIN_DIRECTIONS = 16
"""Fewer directions than this (inputs for forward mode, outputs for reverse): dense as it is."""
MAX_GRAPH = 1 << 20
"""At most this many entries in the intersection graph coloured in NumPy (else dense)."""


def greedy_coloring(pattern: sp.csr_array) -> np.ndarray | None:
    """Colours of `pattern`'s columns such that two columns sharing a row differ (largest
    degree first; the first colour free), or None when the intersection graph is too large.

    >>> greedy_coloring(sp.csr_array(np.eye(3, dtype=bool) | np.eye(3, k=1, dtype=bool)))
    array([1, 0, 1])
    """
    rows = np.diff(pattern.indptr).astype(np.int64)
    if int((rows * rows).sum()) > MAX_GRAPH:
        return None
    incidence = sp.csr_array(pattern, dtype=np.int32)
    graph = sp.csr_array(incidence.T @ incidence)          # columns x columns: share a row
    n = graph.shape[0]
    colors = np.full(n, -1, np.int64)
    order = np.argsort(-np.diff(graph.indptr), kind="stable")
    for v in order:
        taken = colors[graph.indices[graph.indptr[v]:graph.indptr[v + 1]]]
        free = np.ones(taken.size + 2, bool)
        free[taken[(taken >= 0) & (taken < free.size)]] = False
        colors[v] = int(np.argmax(free))
    colors[np.diff(sp.csc_array(pattern).indptr) == 0] = -1   # empty columns: in no direction
    return colors


def compressed_jacobian(output: UOp, x: UOp) -> UOp | None:
    """d output / d x, shaped output.shape + x.shape, through its sparsity; None where the
    dense modes are as good (above)."""
    from .sparse import _batched, _placeholder, color_seeds, entrywise_jacobian, jacobian_csc
    m, n = output.size, x.size
    if min(m, n) < MIN_DIRECTIONS:
        return None
    try:
        pattern = jacobian_pattern([output], [x], budget=max(m * n // 4, 1024))
    except TooDense:
        return None
    if pattern.nnz > m * n // 4:
        return None
    csc = jacobian_csc(pattern)
    dense = np.asarray(csc.indices, np.int64) * n + np.repeat(
        np.arange(n, dtype=np.int64), np.diff(csc.indptr))  # each nonzero's place, row major
    # not through maps: their colours, greedy in NumPy here, build as fast and call faster
    # (multiple shooting, 50 stages: 60 against 65 us)
    values = entrywise_jacobian([output], x, csc, loops=False)
    if values is not None:
        return B.reshape(_placed(values, dense, m * n), output.shape + x.shape)
    by_column, by_row = greedy_coloring(pattern), greedy_coloring(sp.csr_array(pattern.T))
    forward, reverse = (int(c.max(initial=-1)) + 1 if c is not None else None
                        for c in (by_column, by_row))
    # multiple shooting's 8 column colours beat its 7 row colours, in calls (65 against 84 us)
    # and in code (11k against 20k lines of IR)
    use_forward = forward is not None and (reverse is None or forward <= REVERSE_COST * reverse)
    best = forward if use_forward else reverse
    if best is None or 2 * best > min(m, n):
        return None
    flat = B.reshape(output, (m,))
    rows, columns = pattern.nonzero()
    if use_forward:              # JVPs along column colours: product k at row r is J[r, c]
        seed = _placeholder(x)
        (tangent,) = jvp_graph([flat], {x: seed})
        products = _batched(tangent, seed, color_seeds(by_column, x), m, False)
        slot = by_column[columns] * m + rows
    else:                        # VJPs along row colours: product k at column c is J[r, c]
        seed = _placeholder(flat)
        (ct,) = vjp_graph([flat], [seed], [x])
        products = _batched(B.reshape(ct, (n,)), seed, color_seeds(by_row, flat), n, False)
        slot = by_row[rows] * n + columns
    slots = np.full(products.size, -1, np.int64)
    slots[slot] = rows * n + columns
    placed = B.place(products, slots.reshape(products.shape), m * n, distinct=True)
    return B.reshape(placed, output.shape + x.shape)


def _placed(values: UOp, dense: np.ndarray, size: int) -> UOp:
    """The CSC `values` at their `dense` places among `size` zeros: a placement's own slots
    moved there (one placement), else a placement of the values."""
    if values.op is PLACE:
        slots = values.arg[0].array
        moved = np.where(slots >= 0, dense[np.maximum(slots, 0)], -1)
        return B.place(values.src[0], moved, size, distinct=True)
    return B.place(values, dense, size, distinct=True)


__all__ = ["compressed_jacobian", "greedy_coloring"]
