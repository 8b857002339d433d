"""Vertex orderings for greedy colouring, on any graph given as a ``Walk``.

Degrees are taken in the graph being coloured: the column intersection graph (distance-2) for
Jacobians, the adjacency graph for Hessians. The orderings are those of Gebremedhin, Manne,
Pothen, "What color is your Jacobian?", SIAM Review 47(4), 2005, section 6.2 (and ColPack):
natural, largest-first (Welsh & Powell 1967), smallest-last (Matula & Beck 1983),
incidence-degree (Coleman & Moré 1983), dynamic largest-first, and a seeded random order; plus
smallest-first, which colours the densest vertices last so that in a star bicolouring dense rows
and columns become hubs with colours of their own (3 colours on an arrowhead, where every other
order needs about n).
"""

from __future__ import annotations

import numba
import numpy as np

from .options import ORDERS
from .patterns import Walk


@numba.njit(cache=True)
def walk_degrees(ptr1, idx1, ptr2, idx2):
    """Degree of every vertex in the graph walked by (ptr1, idx1, ptr2, idx2)."""
    n = ptr1.size - 1
    mark = np.full(n, -1, np.int64)
    degree = np.zeros(n, np.int64)
    for v in range(n):
        mark[v] = v
        d = 0
        for a in range(ptr1[v], ptr1[v + 1]):
            r = idx1[a]
            for b in range(ptr2[r], ptr2[r + 1]):
                u = idx2[b]
                if mark[u] != v:
                    mark[u] = v
                    d += 1
        degree[v] = d
    return degree


@numba.njit(cache=True)
def _dynamic_order(ptr1, idx1, ptr2, idx2, key, insertion, pick_max, step):
    # Bucket queue of doubly linked lists indexed by key; a picked vertex changes the key of its
    # unpicked neighbours by `step`. O(walk cost + n).
    n = key.size
    head = np.full(n + 1, -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    prv = np.full(n, -1, np.int64)
    for v in insertion:
        nxt[v] = head[key[v]]
        if nxt[v] >= 0:
            prv[nxt[v]] = v
        head[key[v]] = v
    done = np.zeros(n, np.bool_)
    mark = np.full(n, -1, np.int64)
    out = np.empty(n, np.int64)
    cur = key.max() if pick_max else key.min()
    for t in range(n):
        while head[cur] < 0:
            cur += -1 if pick_max else 1
        v = head[cur]
        head[cur] = nxt[v]
        if nxt[v] >= 0:
            prv[nxt[v]] = -1
        done[v] = True
        out[t] = v
        mark[v] = v
        for a in range(ptr1[v], ptr1[v + 1]):
            r = idx1[a]
            for b in range(ptr2[r], ptr2[r + 1]):
                u = idx2[b]
                if done[u] or mark[u] == v:
                    continue
                mark[u] = v
                if prv[u] >= 0:
                    nxt[prv[u]] = nxt[u]
                else:
                    head[key[u]] = nxt[u]
                if nxt[u] >= 0:
                    prv[nxt[u]] = prv[u]
                key[u] += step
                prv[u] = -1
                nxt[u] = head[key[u]]
                if nxt[u] >= 0:
                    prv[nxt[u]] = u
                head[key[u]] = u
                if pick_max:
                    cur = max(cur, key[u])
                elif key[u] < cur:
                    cur = key[u]
    return out


def vertex_order(
    name: str, walk: Walk, seed: int = 0, degree: np.ndarray | None = None
) -> np.ndarray:
    """The vertices of ``walk``'s graph in the ordering ``name`` (one of ``ORDERS``).

    ``degree`` may pass precomputed ``walk_degrees``.

    >>> import numpy as np
    >>> from anvil_llvm.ad.coloring.patterns import Walk
    >>> path = Walk(np.arange(4), np.arange(3), np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1]))
    >>> vertex_order("largest_first", path).tolist()
    [1, 0, 2]
    """
    n = walk.nvertices
    if name == "natural" or (n == 0 and name in ORDERS):
        return np.arange(n, dtype=np.int64)
    if name == "random":
        return np.random.default_rng(seed).permutation(n).astype(np.int64)
    if degree is None:
        degree = walk_degrees(*walk)
    if name == "largest_first":
        return np.argsort(-degree, kind="stable").astype(np.int64)
    if name == "smallest_first":
        return np.argsort(degree, kind="stable").astype(np.int64)
    # Buckets are stacks: insert so that, among equal keys, the lowest-numbered vertex of largest
    # degree is on top.
    insertion = np.lexsort((-np.arange(n), degree)).astype(np.int64)
    if name == "smallest_last":
        return _dynamic_order(*walk, degree.copy(), insertion, False, -1)[::-1].copy()
    if name == "incidence_degree":
        return _dynamic_order(*walk, np.zeros(n, np.int64), insertion, True, 1)
    if name == "dynamic_largest_first":
        return _dynamic_order(*walk, degree.copy(), insertion, True, -1)
    raise ValueError(f"order must be one of {ORDERS}; got {name!r}")
