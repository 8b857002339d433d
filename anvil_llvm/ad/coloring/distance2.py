"""Partial distance-2 colouring of the columns of a bipartite graph (Jacobian columns or rows).

Two columns may share a colour only if they have no row in common, so one directional
derivative per colour recovers every nonzero directly. Gebremedhin, Manne, Pothen, "What color
is your Jacobian?", SIAM Review 47(4), 2005, Algorithm 3.2 (greedy partial distance-2 colouring
on the bipartite graph, O(sum over rows of row_nnz²) time, O(nnz + n) memory: JᵀJ is never
formed), plus DSATUR (Brélaz, "New methods to color the vertices of a graph", CACM 22(4), 1979)
on the same walk and Culberson's iterated greedy ("Iterated greedy graph coloring and the
difficulty landscape", TR 92-07, University of Alberta, 1992) as a post-pass that never adds a
colour.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import first_free
from .patterns import Walk


@numba.njit(cache=True)
def _greedy(ptr1, idx1, ptr2, idx2, order):
    n = order.size
    colors = np.full(n, -1, np.int64)
    forbidden = np.full(n + 1, -1, np.int64)
    for v in order:
        for a in range(ptr1[v], ptr1[v + 1]):
            r = idx1[a]
            for b in range(ptr2[r], ptr2[r + 1]):
                c = colors[idx2[b]]
                if c >= 0:
                    forbidden[c] = v
        colors[v] = first_free(forbidden, v)
    return colors


def greedy_coloring(walk: Walk, order: np.ndarray) -> np.ndarray:
    """Greedy distance-2 colouring visiting vertices in ``order`` (GMP 2005, Algorithm 3.2).

    >>> import numpy as np, scipy.sparse as sp
    >>> from anvil_llvm.ad.coloring.patterns import Walk, as_pattern, transposed
    >>> J = as_pattern(sp.eye_array(3) + sp.eye_array(3, k=1))
    >>> greedy_coloring(Walk.columns(J, transposed(J)), np.arange(3)).tolist()
    [0, 1, 0]
    """
    return _greedy(*walk, np.ascontiguousarray(order, dtype=np.int64))


@numba.njit(cache=True)
def _before(a, b, sat, degree):
    if sat[a] != sat[b]:
        return sat[a] > sat[b]
    if degree[a] != degree[b]:
        return degree[a] > degree[b]
    return a < b


@numba.njit(cache=True)
def _sift_up(heap, pos, i, sat, degree):
    v = heap[i]
    while i > 0:
        parent = (i - 1) // 2
        if not _before(v, heap[parent], sat, degree):
            break
        heap[i] = heap[parent]
        pos[heap[i]] = i
        i = parent
    heap[i] = v
    pos[v] = i


@numba.njit(cache=True)
def _sift_down(heap, pos, i, size, sat, degree):
    v = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and _before(heap[child + 1], heap[child], sat, degree):
            child += 1
        if not _before(heap[child], v, sat, degree):
            break
        heap[i] = heap[child]
        pos[heap[i]] = i
        i = child
    heap[i] = v
    pos[v] = i


@numba.njit(cache=True)
def _dsatur(ptr1, idx1, ptr2, idx2, degree, limit):
    # Indexed max-heap on (saturation, degree, -index). Saturation sets are bitsets of `limit`
    # colours per vertex; the first zero bit of a vertex's set is its greedy colour, so colouring
    # costs one walk per vertex (to update its neighbours' saturation).
    n = degree.size
    words = max(1, (limit + 63) // 64)
    seen = np.zeros((n, words), np.uint64)
    sat = np.zeros(n, np.int64)
    heap = np.arange(n)
    pos = np.arange(n)
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(heap, pos, i, n, sat, degree)
    colors = np.full(n, -1, np.int64)
    mark = np.full(n, -1, np.int64)
    one = np.uint64(1)
    for size in range(n - 1, -1, -1):
        v = heap[0]
        heap[0] = heap[size]
        pos[heap[0]] = 0
        _sift_down(heap, pos, 0, size, sat, degree)
        c = -1
        for w in range(words):
            free = ~seen[v, w]
            if free != 0:
                b = 0
                while ((free >> np.uint64(b)) & one) == 0:
                    b += 1
                c = 64 * w + b
                break
        if c < 0 or c >= limit:
            return colors, False
        colors[v] = c
        word = c // 64
        bit = one << np.uint64(c % 64)
        mark[v] = v
        for a in range(ptr1[v], ptr1[v + 1]):
            r = idx1[a]
            for b in range(ptr2[r], ptr2[r + 1]):
                u = idx2[b]
                if colors[u] >= 0 or mark[u] == v:
                    continue
                mark[u] = v
                if (seen[u, word] & bit) == 0:
                    seen[u, word] |= bit
                    sat[u] += 1
                    _sift_up(heap, pos, pos[u], sat, degree)
    return colors, True


def dsatur_coloring(walk: Walk, degree: np.ndarray, limit: int) -> np.ndarray | None:
    """DSATUR (Brélaz 1979) on the distance-2 graph, or ``None`` if it needs more than ``limit``.

    Picks the uncoloured vertex with the most distinct colours among its distance-2 neighbours,
    ties broken by largest degree, then lowest index (a static tie-break keeps the heap update to
    one sift per new colour; on 5- and 9-point stencils it reaches the optima 5 and 9).
    Memory: n·⌈limit/64⌉ words.

    >>> import numpy as np, scipy.sparse as sp
    >>> from anvil_llvm.ad.coloring.patterns import Walk, as_pattern, transposed
    >>> from anvil_llvm.ad.coloring.orders import walk_degrees
    >>> J = as_pattern(sp.eye_array(4) + sp.eye_array(4, k=1))
    >>> walk = Walk.columns(J, transposed(J))
    >>> int(dsatur_coloring(walk, walk_degrees(*walk), 4).max()) + 1
    2
    """
    colors, ok = _dsatur(*walk, degree, max(int(limit), 1))
    return colors if ok else None


def recolor(walk: Walk, colors: np.ndarray, lower_bound: int, passes: int = 4) -> np.ndarray:
    """Culberson's iterated greedy: re-run greedy with colour classes kept together.

    Visiting whole colour classes one after another (reverse class order, then largest class
    first) lets greedy give no vertex a colour above its old class's new colour, so the count
    never grows and often shrinks.
    """
    best = colors
    for k in range(passes):
        ncolors = int(colors.max()) + 1
        if ncolors <= lower_bound:
            break
        if k % 2 == 0:
            order = np.argsort(-colors, kind="stable")
        else:
            order = np.lexsort((colors, -np.bincount(colors)[colors]))
        colors = greedy_coloring(walk, order)
        if colors.max() < best.max():
            best = colors
    return best
