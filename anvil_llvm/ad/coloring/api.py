"""Public entry points: pick the partition, method and ordering with the fewest colours.

``order="best"`` first tries a lattice colouring of a detected grid stencil (``lattice.py``),
then runs several orderings (and for Jacobians DSATUR and Culberson recolouring) and keeps the
fewest colours, stopping at a lower bound or when a time budget proportional to the pattern
size is spent. Kernels are compiled before the clock starts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np

from ..._lazy import scipy_sparse as sp
from .acyclic import acyclic_coloring
from .bounds import diagonal_mask, hessian_lower_bound
from .check import check_coloring
from .distance2 import dsatur_coloring, greedy_coloring, recolor
from .lattice import lattice_coloring
from .options import JACOBIAN_ORDERS, METHODS, check_hessian_options, check_jacobian_options
from .orders import vertex_order, walk_degrees
from .patterns import (
    Adjacency,
    Walk,
    adjacency,
    as_pattern,
    bipartite_adjacency,
    check_symmetric,
    with_transpose,
)
from .result import (
    Coloring,
    acyclic_result,
    bicoloring_result,
    distance2_result,
    star_result,
    upper_triangle,
)
from .star import restricted_star_coloring, restricted_star_steps, star_coloring

# "best" tries these in turn: the strongest first, so the lower bound often stops the search.
_DISTANCE2_SEARCH = (
    "dsatur",
    "smallest_last",
    "incidence_degree",
    "largest_first",
    "dynamic_largest_first",
    "natural",
    "random",
)
_SYMMETRIC_SEARCH = (
    "largest_first",
    "smallest_last",
    "natural",
    "incidence_degree",
    "smallest_first",
    "dynamic_largest_first",
    "random",
)
_BICOLORING_SEARCH = ("smallest_first", *(o for o in _SYMMETRIC_SEARCH if o != "smallest_first"))
_STEPS_PER_SECOND = 1e8  # rough speed of one neighbourhood-walk step, for cost estimates
_FIRST_ROUND_STEPS = 5e8  # the first order's algorithms run below this cost, whatever the time
_CHECK_NNZ = 200_000  # lattice colourings of patterns up to this size also pass check_coloring


class _Clock:
    def __init__(self, pattern: sp.csc_array, budget: float | None):
        if budget is None:
            budget = 0.05 + 2e-7 * (pattern.nnz + sum(pattern.shape))
        self.deadline = time.perf_counter() + budget

    def left(self) -> float:
        return self.deadline - time.perf_counter()



def _fewer(a: Coloring | None, b: Coloring | None) -> Coloring | None:
    return b if a is None or (b is not None and b.ncolors < a.ncolors) else a


def jacobian_coloring(
    pattern: object,
    *,
    partition: str = "auto",
    order: str = "best",
    seed: int = 0,
    time_budget: float | None = None,
) -> Coloring:
    """Colour a Jacobian pattern for compressed evaluation with the fewest products.

    ``partition``: "column" (partial distance-2 colouring of the columns; products J·S),
    "row" (of the rows; products Sᵀ·J), "bidirectional" (star bicolouring of the bipartite
    graph; both), or "auto" (the fewest products; partitions whose cost would be quadratic, as
    columns under a dense row, are pruned by the lower bound max(nnz per row)). ``order``: one of
    ``JACOBIAN_ORDERS``; "dsatur" is for column and row partitions only; "best" first tries the
    lattice colouring of a grid stencil (``lattice.py``; Goldfarb & Toint, Math. Comp. 43, 1984).
    Algorithms: Gebremedhin, Manne, Pothen, SIAM Review 47(4), 2005, Algorithm 3.2; Brélaz 1979
    (DSATUR); star bicolouring as in SparseMatrixColorings.jl (``bicoloring.py``).

    >>> import numpy as np
    >>> r = jacobian_coloring(np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool))
    >>> r.partition, r.ncolors
    ('column', 2)
    """
    check_jacobian_options(partition, order)
    J, JT = with_transpose(pattern)
    _compile("jacobian")
    return _jacobian(J, JT, partition, order, seed, _Clock(J, time_budget))


def _jacobian(
    J: sp.csc_array, JT: sp.csc_array, partition: str, order: str, seed: int, clock: _Clock
) -> Coloring:
    if partition in ("column", "row"):
        return _distance2(J, JT, partition, order, seed, clock)
    if partition == "bidirectional":
        return _bidirectional(J, JT, order, seed, clock)
    walks = {"column": Walk.columns(J, JT), "row": Walk.columns(JT, J)}
    costs = {side: walk.cost() for side, walk in walks.items()}
    best = None
    for side in sorted(walks, key=costs.__getitem__):
        size = J.shape[1] if side == "column" else J.shape[0]
        lower = _max_degree(walks[side].ptr2)
        too_slow = costs[side] / _STEPS_PER_SECOND > clock.left()
        if best is not None and (lower >= best.ncolors or (too_slow and lower < size)):
            continue
        best = _fewer(best, _distance2(J, JT, side, order, seed, clock, costs[side]))
    steps = 30.0 * J.nnz  # _star_steps of the bipartite graph, which has 2·nnz entries
    # Far more colours than an average row or column has entries means dense rows and columns:
    # then the bidirectional colouring runs whatever the clock says, so the choice is stable.
    dense = best.ncolors > 2 * J.nnz / max(min(J.shape), 1) + 2
    budget = _FIRST_ROUND_STEPS if dense else clock.left() * _STEPS_PER_SECOND
    if order != "dsatur" and best.ncolors > 2 and steps <= budget:
        best = _fewer(best, _bidirectional(J, JT, order, seed, clock))
    return best


def _max_degree(indptr: np.ndarray) -> int:
    return int(np.diff(indptr).max(initial=0))


def _distance2(
    J: sp.csc_array,
    JT: sp.csc_array,
    side: str,
    order: str,
    seed: int,
    clock: _Clock,
    cost: int | None = None,
) -> Coloring:
    walk = Walk.columns(JT, J) if side == "row" else Walk.columns(J, JT)
    n = walk.nvertices
    lower = _max_degree(walk.ptr2)
    name = "natural" if order == "best" else order
    if J.nnz == 0:
        return distance2_result(J, JT, np.zeros(n, np.int64), side, name)
    if lower == n:  # a dense row: every column needs its own colour
        return distance2_result(J, JT, np.arange(n), side, name)
    seconds = (walk.cost() if cost is None else cost) / _STEPS_PER_SECOND
    lattice = _lattice(J, JT, side) if order == "best" else None
    if lattice is not None and lattice.ncolors <= lower:
        return lattice  # optimal: the largest row count is a lower bound
    best = degree = None
    for candidate in _DISTANCE2_SEARCH if order == "best" else (order,):
        if best is not None and (best.max() < lower or seconds > clock.left()):
            break
        if degree is None and candidate not in ("natural", "random"):
            degree = walk_degrees(*walk)
        if candidate == "dsatur":
            limit = int(degree.max(initial=0)) + 1 if best is None else int(best.max())
            words = (limit + 63) // 64
            if order == "best" and words * n > 2 * (J.nnz + n):
                continue  # saturation bitsets would not fit in memory O(nnz)
            colors = dsatur_coloring(walk, degree, limit)
        else:
            colors = greedy_coloring(walk, vertex_order(candidate, walk, seed, degree))
        if colors is not None and (best is None or colors.max() < best.max()):
            best, name = colors, candidate
    if lattice is not None and lattice.ncolors <= best.max():
        best, name = lattice.colors, "lattice"
    if order == "best" and best.max() >= lower and seconds < clock.left():
        improved = recolor(walk, best, lower)
        if improved.max() < best.max():
            best, name = improved, name + "+recolor"
    if name == "lattice":
        return lattice
    return distance2_result(J, JT, best, side, name)


def _lattice(J: sp.csc_array, JT: sp.csc_array, side: str) -> Coloring | None:
    """The lattice colouring of a grid stencil's columns (rows), if one is found, as a result."""
    pattern, rows_of = (JT, J) if side == "row" else (J, JT)
    colors = lattice_coloring(pattern, rows_of, _max_degree(rows_of.indptr))
    if colors is None:
        return None
    # lattice_coloring checked that every row's columns (column's rows) have distinct colours
    return _checked(J, distance2_result(J, JT, colors, side, "lattice", check=False))


def _checked(pattern: sp.csc_array, result: Coloring) -> Coloring | None:
    """``result`` if ``check_coloring`` accepts it (run on patterns up to ``_CHECK_NNZ``)."""
    if pattern.nnz <= _CHECK_NNZ:
        try:
            check_coloring(pattern, result)
        except ValueError:
            return None
    return result


# A colouring algorithm for "best": (suffix for the order name, function, its cost in walk
# steps: computed when a budget is checked, which a search ended early never does; once).
_Algorithm = tuple[str, Callable[[Adjacency, np.ndarray, int | None], np.ndarray | None],
                   Callable[[], float]]


def _search(
    graph: Adjacency,
    algorithms: list[_Algorithm],
    build: Callable[[np.ndarray, str], Coloring],
    order: str,
    seed: int,
    lower: int,
    clock: _Clock,
    search: tuple[str, ...],
    degree: np.ndarray,
    initial: Coloring | None = None,
) -> Coloring:
    walk, best = None, initial
    for name in search if order == "best" else (order,):
        if best is not None and best.ncolors <= lower:
            return best
        if walk is None:
            walk = Walk.neighbours(graph)
        vertices = vertex_order(name, walk, seed, degree)
        for suffix, color, steps in algorithms:
            if best is not None and best.ncolors <= lower:
                return best
            # The first order runs every affordable algorithm, so "best" is never worse than
            # that order alone (CasADi's default is largest-first with GMP 2005's star).
            budget = _FIRST_ROUND_STEPS if name == search[0] else clock.left() * _STEPS_PER_SECOND
            if best is not None and steps() > budget:
                continue
            # Abandon a colouring that runs far past the best: post-processing seldom halves a
            # count, and with many colours each step scans them all.
            limit = None if best is None else 2 * best.ncolors + 2
            colors = color(graph, vertices, limit)
            if colors is not None:
                best = _fewer(best, build(colors, name + suffix))
    return best


def _star_steps(graph: Adjacency) -> float:
    """Rough cost of one star or acyclic colouring with its tables, in walk steps."""
    return 15.0 * graph.indices.size  # measured on stencils: about 0.15 µs per entry


def _bidirectional(
    J: sp.csc_array, JT: sp.csc_array, order: str, seed: int, clock: _Clock
) -> Coloring:
    graph = bipartite_adjacency(J, JT)
    return _search(
        graph,
        [("", star_coloring, lambda: _star_steps(graph))],
        lambda colors, name: bicoloring_result(J, graph, colors, name),
        order,
        seed,
        min(J.nnz, 1),
        clock,
        _BICOLORING_SEARCH,
        np.diff(graph.indptr),
    )


def hessian_coloring(
    pattern: object,
    *,
    method: str = "star",
    order: str = "best",
    seed: int = 0,
    time_budget: float | None = None,
) -> Coloring:
    """Colour a symmetric Hessian pattern; decompression recovers the upper triangle.

    ``method``: "star" (direct decompression; Gebremedhin, Tarafdar, Manne, Pothen, SIAM J. Sci.
    Comput. 29(3), 2007, Algorithm 4.1) or "acyclic" (fewer colours, decompression by
    substitution; same paper, Algorithm 3.1). ``order``: one of ``HESSIAN_ORDERS``; "best" also
    tries the lattice distance-2 colouring of a grid stencil, which is a star colouring.

    >>> import numpy as np
    >>> H = np.eye(5, dtype=bool) | np.eye(5, k=1, dtype=bool) | np.eye(5, k=-1, dtype=bool)
    >>> hessian_coloring(H).ncolors, hessian_coloring(H, method="acyclic").ncolors
    (3, 2)
    """
    check_hessian_options(method, order)
    H = as_pattern(pattern)
    check_symmetric(H)
    _compile("hessian")
    return _hessian(H, method, order, seed, _Clock(H, time_budget))


def _hessian(H: sp.csc_array, method: str, order: str, seed: int, clock: _Clock) -> Coloring:
    graph = adjacency(H.indptr, H.indices)
    triangle = upper_triangle(H, graph)  # shared by every candidate's tables
    if method == "star":
        algorithms = [
            ("", star_coloring, lambda: _star_steps(graph)),
            ("+gmp2005", restricted_star_coloring,
             functools.cache(lambda: restricted_star_steps(graph))),
        ]
        make = star_result
    else:
        algorithms = [("", acyclic_coloring, lambda: _star_steps(graph))]
        make = acyclic_result

    def result(colors: np.ndarray, name: str) -> Coloring:
        return make(H, graph, colors, name, triangle)

    # Vertices with diagonal entries need their colours; a path on four of them (star) or a
    # cycle (acyclic) needs three (bounds.py). Reaching the bound ends the search.
    diag = diagonal_mask(H.indptr, H.indices)
    lower = max(hessian_lower_bound(graph, diag, method), min(H.nnz, 1))
    # A grid stencil's lattice distance-2 colouring is a star (and acyclic) colouring. For
    # star colourings it is the first candidate: the orderings below still run (the first one
    # always, unless the lattice reaches the bound), and the fewest colours win. An acyclic
    # colouring seldom needs as many colours as a distance-2 one (a path: 2 against 3), so
    # there the lattice and its tables are made only when the orderings stay above the bound.
    def lattice() -> Coloring | None:
        colors = lattice_coloring(H, H, _max_degree(H.indptr), closed=True)
        return None if colors is None else _checked(H, result(colors, "lattice"))

    first = lattice() if order == "best" and method == "star" else None
    # Degrees count the diagonal, as CasADi's largest_first does.
    best = _search(graph, algorithms, result, order, seed, lower, clock, _SYMMETRIC_SEARCH,
                   np.diff(H.indptr), first)
    if order == "best" and method == "acyclic" and best.ncolors > lower:
        best = _fewer(best, lattice())
    return best


@functools.cache
def _compile(kind: str) -> None:
    """Compile (or load from numba's cache) the kernels of Jacobian or Hessian colourings
    (`kind`) before any clock starts: one loaded during the search would spend its time budget.
    Only those of `kind` (the other kind's cost 0.03 s more; numba's own first use, 0.18 s, is
    paid either way)."""
    tiny = as_pattern(np.tri(3, 3, 1, dtype=bool) & ~np.tri(3, 3, -2, dtype=bool))
    if kind == "jacobian":
        for partition in ("column", "row"):
            for order in JACOBIAN_ORDERS[1:]:
                _distance2(tiny, tiny, partition, order, 0, _Clock(tiny, np.inf))
        _bidirectional(tiny, tiny, "natural", 0, _Clock(tiny, np.inf))
        return
    for method in METHODS:
        r = _hessian(tiny, method, "best", 0, _Clock(tiny, np.inf))
        r.decompress(np.ones((3, r.ncolors)))
