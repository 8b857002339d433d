"""Lower bounds on the colours of a symmetric (Hessian) colouring, so that ``order="best"`` stops
searching as soon as a colouring reaches one.

A vertex with a diagonal entry needs its colour in a seed (H_vv is read from slot (v, colour of
v)). Among those vertices every colouring of the search is proper, so two adjacent ones need two
colours. Beyond that, on the subgraph of the vertices with diagonal entries:
  - star colourings give every path on four vertices three colours (Gebremedhin, Manne, Pothen,
    SIAM Review 47(4), 2005, Definition 4.1), so a path on four such vertices needs three;
  - acyclic colourings give every cycle three colours (GMP 2005, Definition 5.1), so a cycle
    among such vertices needs three.
Both are O(nonzeros).
"""

from __future__ import annotations

import numba
import numpy as np

from .patterns import Adjacency


@numba.njit(cache=True)
def diagonal_mask(indptr, indices):
    """Per column of a sorted CSC (or row of a CSR) square pattern: has it a diagonal entry?"""
    n = indptr.size - 1
    diag = np.zeros(n, np.bool_)
    for j in range(n):
        for p in range(indptr[j], indptr[j + 1]):
            if indices[p] >= j:
                diag[j] = indices[p] == j
                break
    return diag


@numba.njit(cache=True)
def _kept_degrees(indptr, indices, keep):
    n = indptr.size - 1
    degree = np.zeros(n, np.int64)
    other = np.zeros(n, np.int64)  # the sum of the kept neighbours (the one, when degree is 1)
    for v in range(n):
        if not keep[v]:
            continue
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            if keep[w]:
                degree[v] += 1
                other[v] += w
    return degree, other


@numba.njit(cache=True)
def _has_path4(indptr, indices, keep):
    # A path x-u-v-y exists iff some edge (u, v) has a neighbour of u other than v and one of v
    # other than u, and these can differ: always when either end has two such neighbours.
    degree, other = _kept_degrees(indptr, indices, keep)
    for u in range(indptr.size - 1):
        if not keep[u] or degree[u] < 2:
            continue
        for p in range(indptr[u], indptr[u + 1]):
            v = indices[p]
            if v < u or not keep[v] or degree[v] < 2:
                continue
            if degree[u] > 2 or degree[v] > 2:
                return True
            if other[u] - v != other[v] - u:  # x != y: not a triangle
                return True
    return False


@numba.njit(cache=True)
def _find(parent, v):
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@numba.njit(cache=True)
def _has_cycle(indptr, indices, keep):
    n = indptr.size - 1
    parent = np.arange(n)
    for u in range(n):
        if not keep[u]:
            continue
        for p in range(indptr[u], indptr[u + 1]):
            v = indices[p]
            if v <= u or not keep[v]:
                continue
            a = _find(parent, u)
            b = _find(parent, v)
            if a == b:
                return True
            parent[a] = b
    return False


@numba.njit(cache=True)
def _adjacent_pair(indptr, indices, keep):
    for u in range(indptr.size - 1):
        if keep[u]:
            for p in range(indptr[u], indptr[u + 1]):
                if keep[indices[p]]:
                    return True
    return False


def hessian_lower_bound(graph: Adjacency, diag: np.ndarray, method: str) -> int:
    """Colours that every ``method`` ("star" or "acyclic") colouring of the search needs, given
    the adjacency ``graph`` (no loops) and which vertices have diagonal entries.

    >>> import numpy as np
    >>> from anvil_llvm.ad.coloring.patterns import adjacency
    >>> path = adjacency(np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2]))
    >>> full = np.ones(4, np.bool_)
    >>> hessian_lower_bound(path, full, "star"), hessian_lower_bound(path, full, "acyclic")
    (3, 2)
    """
    if graph.nvertices == 0:
        return 0
    keep = np.ascontiguousarray(diag, np.bool_)
    if not _adjacent_pair(graph.indptr, graph.indices, keep):
        return 1
    three = _has_path4 if method == "star" else _has_cycle
    return 3 if three(graph.indptr, graph.indices, keep) else 2
