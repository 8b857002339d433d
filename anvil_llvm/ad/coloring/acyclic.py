"""Acyclic colouring of an adjacency graph (symmetric Hessians, decompression by substitution).

An acyclic colouring is a distance-1 colouring in which every cycle uses at least three colours,
so every 2-coloured subgraph is a forest and H follows from H·S by substitution along its trees
(Coleman & Cai 1986; Gebremedhin, Manne, Pothen, SIAM Review 47(4), 2005, section 5). The
algorithm is Algorithm 3.1 of Gebremedhin, Tarafdar, Manne, Pothen, "New acyclic and star
coloring algorithms with application to computing Hessians", SIAM J. Sci. Comput. 29(3), 2007:
greedy colouring that keeps the 2-coloured trees in a disjoint-set forest over the edges
(preventCycle, growStar, mergeTrees).
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import first_free, limited, list_find, list_push, new_lists
from .patterns import Adjacency


@numba.njit(cache=True)
def _find(parent, e):
    while parent[e] != e:
        parent[e] = parent[parent[e]]  # path halving
        e = parent[e]
    return e


@numba.njit(cache=True)
def _union(parent, rank, a, b):
    a = _find(parent, a)
    b = _find(parent, b)
    if a == b:
        return
    if rank[a] < rank[b]:
        a, b = b, a
    parent[b] = a
    if rank[a] == rank[b]:
        rank[a] += 1


@numba.njit(cache=True)
def _acyclic(indptr, indices, eid, order, limit):
    n = indptr.size - 1
    nedges = indices.size // 2
    color = np.full(n, -1, np.int64)
    forbidden = np.full(n + 1, -1, indices.dtype)
    first_v = np.full(n + 1, -1, indices.dtype)  # firstNeighbor[c]: stamp and edge to it
    first_e = np.full(n + 1, -1, indices.dtype)
    parent = np.arange(nedges)
    rank = np.zeros(nedges, indices.dtype)
    visit_v = np.full(nedges, -1, indices.dtype)  # firstVisitToTree[root] = (visit_v, visit_w)
    visit_w = np.full(nedges, -1, indices.dtype)
    # trees[w]: colour c -> one edge from w to colour c. All of w's edges to colour c lie in one
    # 2-coloured tree, so one representative replaces the paper's loop over N(w).
    trees = new_lists(n, 2 * nedges + 1, indices)
    head, nxt, key, val, _ = trees
    for v in order:
        for p in range(indptr[v], indptr[v + 1]):
            if color[indices[p]] >= 0:
                forbidden[color[indices[p]]] = v
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            if color[w] < 0:
                continue
            k = head[w]
            while k >= 0:  # preventCycle(v, w, x) for the tree of each colour around w
                if forbidden[key[k]] != v:
                    root = _find(parent, val[k])
                    if visit_v[root] != v:
                        visit_v[root] = v
                        visit_w[root] = w
                    elif visit_w[root] != w:
                        forbidden[key[k]] = v
                k = nxt[k]
        cv = first_free(forbidden, v)
        if cv >= limit:
            return color, False
        color[v] = cv
        for p in range(indptr[v], indptr[v + 1]):  # growStar(v, w)
            cw = color[indices[p]]
            if cw < 0:
                continue
            if first_v[cw] != v:
                first_v[cw] = v
                first_e[cw] = eid[p]
                list_push(trees, v, cw, eid[p])
            else:
                _union(parent, rank, eid[p], first_e[cw])
        for p in range(indptr[v], indptr[v + 1]):  # mergeTrees(v, w, x)
            w = indices[p]
            if color[w] < 0:
                continue
            e = list_find(trees, w, cv)
            if e >= 0:
                _union(parent, rank, eid[p], e)
            else:
                list_push(trees, w, cv, eid[p])
    return color, True


def acyclic_coloring(
    graph: Adjacency, order: np.ndarray, limit: int | None = None
) -> np.ndarray | None:
    """Acyclic colouring of ``graph`` visiting vertices in ``order`` (GTMP 2007, Algorithm 3.1).

    Returns ``None`` as soon as more than ``limit`` colours are needed.

    >>> import numpy as np
    >>> from anvil_llvm.ad.coloring.patterns import adjacency
    >>> path = adjacency(np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2]))
    >>> acyclic_coloring(path, np.arange(4)).tolist()
    [0, 1, 0, 1]
    """
    return limited(_acyclic, graph, order, limit)
