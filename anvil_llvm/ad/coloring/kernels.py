"""Small numba helpers shared by the colouring kernels.

``first_free`` is the greedy colour choice. The coloured-neighbourhood lists give, for each
vertex w, one record per colour present among w's coloured neighbours (a linked list through
flat arrays, O(edges) memory). Star and acyclic colouring store the 2-coloured structure of
that colour pair in the record, so a distance-2 step costs the number of colours around w
instead of w's degree: an arrowhead hub is one record, not n.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

from .patterns import Adjacency


@numba.njit(cache=True)
def first_free(forbidden, stamp):
    """Smallest colour c with ``forbidden[c] != stamp``."""
    c = 0
    while forbidden[c] == stamp:
        c += 1
    return c


@numba.njit(cache=True)
def new_lists(nvertices, capacity, like):
    """Empty per-vertex lists: (head, next, colour, value, [size]), of the index type of the
    array `like` (a pattern's)."""
    return (
        np.full(nvertices, -1, like.dtype),
        np.empty(capacity, like.dtype),
        np.empty(capacity, like.dtype),
        np.empty(capacity, like.dtype),
        np.zeros(1, np.int64),
    )


@numba.njit(cache=True)
def list_find(lists, w, color):
    """The value stored for ``colour`` in w's list, or -1."""
    head, nxt, key, val, _ = lists
    k = head[w]
    while k >= 0:
        if key[k] == color:
            return val[k]
        k = nxt[k]
    return -1


@numba.njit(cache=True)
def list_push(lists, w, color, value):
    head, nxt, key, val, size = lists
    k = size[0]
    nxt[k] = head[w]
    key[k] = color
    val[k] = value
    head[w] = k
    size[0] = k + 1


def limited(
    kernel: Callable, graph: Adjacency, order: np.ndarray, limit: int | None
) -> np.ndarray | None:
    """Run ``kernel(indptr, indices, eid, order, limit) -> (colors, ok)`` on ``graph``.

    Returns the colours, or ``None`` if the kernel stopped because it needed more than
    ``limit`` colours (no limit when ``None``).
    """
    limit = graph.nvertices + 1 if limit is None else limit
    order = np.ascontiguousarray(order, np.int64)
    colors, ok = kernel(graph.indptr, graph.indices, graph.eid, order, limit)
    return colors if ok else None
