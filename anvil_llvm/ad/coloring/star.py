"""Star colouring of an adjacency graph (symmetric Hessians, and bidirectional Jacobians).

A star colouring is a distance-1 colouring in which every path on four vertices uses at least
three colours; then every nonzero of a symmetric matrix is read directly from H·S (Coleman &
Moré 1984; Gebremedhin, Manne, Pothen, SIAM Review 47(4), 2005, Theorem 4.6). Two greedy
algorithms, which colour differently enough that each wins on some graphs:
  - ``star_coloring``: Algorithm 4.1 of Gebremedhin, Tarafdar, Manne, Pothen, "New acyclic and
    star coloring algorithms with application to computing Hessians", SIAM J. Sci. Comput.
    29(3), 2007, which maintains the 2-coloured stars (each edge's star and its hub) to forbid
    exactly the colours that would close a 2-coloured path on four vertices; near-linear time.
  - ``restricted_star_coloring``: Algorithm 4.1 of GMP 2005, which also keeps vertices at
    distance two through an uncoloured vertex apart; O(sum of deg·deg·deg) time.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import first_free, limited, list_find, list_push, new_lists
from .patterns import Adjacency


@numba.njit(cache=True)
def _forbid_around(lists, forbidden, w, v):
    # Forbid every colour adjacent to w (the paper's treat(v, w), via w's colour records).
    head, nxt, key, _, _ = lists
    k = head[w]
    while k >= 0:
        forbidden[key[k]] = v
        k = nxt[k]


@numba.njit(cache=True)
def _star(indptr, indices, eid, order, limit):
    n = indptr.size - 1
    nedges = indices.size // 2
    color = np.full(n, -1, np.int64)
    forbidden = np.full(n + 1, -1, indices.dtype)
    # firstNeighbor[c] = (first_v, first_w) via edge first_e
    first_v = np.full(n + 1, -1, indices.dtype)
    first_w = np.full(n + 1, -1, indices.dtype)
    first_e = np.full(n + 1, -1, indices.dtype)
    treated = np.full(n, -1, indices.dtype)
    star = np.full(nedges, -1, indices.dtype)
    hub = np.full(nedges, -1, indices.dtype)
    nstars = 0
    # stars[w]: colour c -> the star holding w's edges to colour c (one per colour pair)
    stars = new_lists(n, 2 * nedges + 1, indices)
    head, nxt, _, val, _ = stars
    for v in order:
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            cw = color[w]
            if cw < 0:
                continue
            forbidden[cw] = v
            if first_v[cw] == v:  # Case 1: a second neighbour of colour cw
                q = first_w[cw]
                if treated[q] != v:
                    _forbid_around(stars, forbidden, q, v)
                    treated[q] = v
                _forbid_around(stars, forbidden, w, v)
                treated[w] = v
            else:
                first_v[cw] = v
                first_w[cw] = w
                first_e[cw] = eid[p]
                k = head[w]
                while k >= 0:  # potential Case 2: w is a spoke of a star whose hub is x
                    x = hub[val[k]]
                    if x >= 0 and x != w:
                        forbidden[color[x]] = v
                    k = nxt[k]
        cv = first_free(forbidden, v)
        if cv >= limit:
            return color, False
        color[v] = cv
        # updateStars(v)
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            cw = color[w]
            if cw < 0:
                continue
            s = list_find(stars, w, cv)
            if s >= 0:  # w already has a neighbour x of colour cv: vw joins star(wx), hub w
                if hub[s] < 0:
                    hub[s] = w
                star[eid[p]] = s
                list_push(stars, v, cw, s)
            elif first_v[cw] == v and first_w[cw] != w:  # v has another neighbour of colour cw
                s = star[first_e[cw]]
                if hub[s] < 0:
                    hub[s] = v
                star[eid[p]] = s
                list_push(stars, w, cv, s)
            else:
                s = nstars
                nstars += 1
                star[eid[p]] = s
                list_push(stars, v, cw, s)
                list_push(stars, w, cv, s)
    return color, True


def star_coloring(
    graph: Adjacency, order: np.ndarray, limit: int | None = None
) -> np.ndarray | None:
    """Star colouring of ``graph`` visiting vertices in ``order`` (GTMP 2007, Algorithm 4.1).

    The distance-2 steps go through per-vertex records of the 2-coloured stars (one per colour
    around a vertex), so an arrowhead's hub costs O(1) per spoke and the whole colouring is
    O(n) on it, in any order. Returns ``None`` as soon as more than ``limit`` colours are needed.

    >>> import numpy as np
    >>> from anvil_llvm.ad.coloring.patterns import adjacency
    >>> path = adjacency(np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2]))
    >>> star_coloring(path, np.arange(4)).tolist()
    [0, 1, 0, 2]
    """
    return limited(_star, graph, order, limit)


@numba.njit(cache=True)
def _restricted_star(indptr, indices, eid, order, limit):
    n = indptr.size - 1
    color = np.full(n, -1, np.int64)
    forbidden = np.full(n + 1, -1, indices.dtype)
    for v in order:
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            cw = color[w]
            if cw >= 0:
                forbidden[cw] = v
            for q in range(indptr[w], indptr[w + 1]):
                x = indices[q]
                if color[x] < 0:
                    continue
                if cw < 0:  # v and x would meet through w, whatever colour w gets
                    forbidden[color[x]] = v
                    continue
                for r in range(indptr[x], indptr[x + 1]):  # v-w-x-y would be 2-coloured
                    y = indices[r]
                    if y != w and color[y] == cw:
                        forbidden[color[x]] = v
                        break
        cv = first_free(forbidden, v)
        if cv >= limit:
            return color, False
        color[v] = cv
    return color, True


def restricted_star_coloring(
    graph: Adjacency, order: np.ndarray, limit: int | None = None
) -> np.ndarray | None:
    """Star colouring by GMP 2005, Algorithm 4.1 (as in CasADi's ``star_coloring``).

    Same interface as ``star_coloring``; ``eid`` is unused by this kernel.
    """
    return limited(_restricted_star, graph, order, limit)


def restricted_star_steps(graph: Adjacency) -> float:
    """Inner-loop steps of ``restricted_star_coloring``: sum over w of deg(w)·Σ_{x~w} deg(x)."""
    degree = np.diff(graph.indptr).astype(np.float64)
    running = np.concatenate(([0.0], np.cumsum(degree[graph.indices])))
    return float(degree @ (running[graph.indptr[1:]] - running[graph.indptr[:-1]]))
