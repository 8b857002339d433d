"""Independent checks of a colouring against the pattern, from the definitions (NumPy/SciPy only).

A colouring is valid when every nonzero can be recovered from the products:
  - distance-2 (Gebremedhin, Manne, Pothen, SIAM Review 47(4), 2005, Definition 3.1): no two
    columns of one colour share a row (rows: no two rows of one colour share a column);
  - star and star bicolouring: every nonzero is alone in one of its two slots, i.e. the
    partition is symmetrically orthogonal (Coleman & Moré 1984; GMP 2005, Theorem 4.6), the
    condition star colouring guarantees;
  - acyclic (GMP 2005, Definition 5.1 and Theorem 5.3): adjacent coloured vertices differ and
    every cycle uses three or more colours, so each 2-coloured subgraph is a forest.
Uncoloured (-1) columns are in no seed, so their entries must be alone in the other slot.
None of this shares code with the colouring or table-building kernels.
"""

from __future__ import annotations

import numpy as np

from ..._lazy import scipy_sparse as sp
from .patterns import as_pattern, check_symmetric
from .result import Coloring


def check_coloring(pattern: object, result: Coloring) -> None:
    """Raise ``ValueError`` naming two conflicting columns (or rows) if ``result`` is invalid.

    ``pattern`` is the pattern that was coloured (the full symmetric pattern for a Hessian).

    >>> import numpy as np
    >>> from anvil_llvm.ad.coloring import jacobian_coloring
    >>> J = np.array([[1, 1, 0], [0, 1, 1]])
    >>> r = jacobian_coloring(J, partition="column")
    >>> check_coloring(J, r)
    >>> check_coloring(np.ones((2, 3)), r)
    Traceback (most recent call last):
    ...
    ValueError: pattern does not match the pattern the colouring was computed for
    """
    A = as_pattern(pattern)
    symmetric = result.method in ("star", "acyclic")
    if symmetric:
        check_symmetric(A)
    expected = as_pattern(sp.triu(A)) if symmetric else A
    if expected.shape != result.pattern.shape or (expected != result.pattern).nnz:
        raise ValueError("pattern does not match the pattern the colouring was computed for")
    coo = A.tocoo()
    rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
    if result.method == "acyclic":
        _check_acyclic(rows, cols, result.column_colors)
    elif result.partition == "row":
        _check_alone(cols, rows, result.row_colors, "rows", "column")
    elif result.partition == "bidirectional":
        from_columns = _alone(rows, result.column_colors[cols])
        from_rows = _alone(cols, result.row_colors[rows])
        _raise_unless(from_columns | from_rows, rows, cols, result.column_colors, "columns", "row")
    elif result.method == "star":
        colors = result.column_colors
        ok = _alone(rows, colors[cols]) | ((rows != cols) & _alone(cols, colors[rows]))
        _raise_unless(ok, rows, cols, colors, "columns", "row")
    else:
        _check_alone(rows, cols, result.column_colors, "columns", "row")


def _alone(major: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Per entry: coloured, and no other entry with the same (major index, colour)."""
    key = major * (int(color.max(initial=-1)) + 2) + color + 1
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return (color >= 0) & (counts[inverse] == 1)


def _check_alone(major, minor, colors, what, shared) -> None:
    _raise_unless(_alone(major, colors[minor]), major, minor, colors, what, shared)


def _raise_unless(ok, major, minor, colors, what, shared) -> None:
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return
    e = bad[0]
    i, j, c = int(major[e]), int(minor[e]), int(colors[minor[e]])
    if c < 0:
        raise ValueError(f"{what[:-1]} {j} has no colour but entry ({i}, {j}) needs it")
    same = np.flatnonzero((major == i) & (colors[minor] == c) & (minor != j))
    raise ValueError(
        f"{what} {j} and {int(minor[same[0]])} both have colour {c} and share {shared} {i}"
    )


def _check_acyclic(rows: np.ndarray, cols: np.ndarray, colors: np.ndarray) -> None:
    on = rows == cols
    if (colors[rows[on]] < 0).any():
        v = int(rows[on][np.argmin(colors[rows[on]])])
        raise ValueError(f"column {v} has no colour but its diagonal entry needs it")
    off = ~on
    rows, cols = rows[off], cols[off]
    a, b = colors[rows], colors[cols]
    clash = np.flatnonzero((a == b) & (a >= 0))
    if clash.size:
        e = clash[0]
        raise ValueError(
            f"columns {rows[e]} and {cols[e]} both have colour {a[e]} and share row {rows[e]}"
        )
    # An uncoloured column's entries are read from its own row: its neighbours' colours differ.
    loose = a < 0
    _raise_unless(_alone(rows[loose], b[loose]), rows[loose], cols[loose], colors, "columns", "row")
    # Each 2-coloured subgraph must be a forest. Vertex v of the subgraph with colours
    # {colour(v), c} is the node (v, c); all these subgraphs form one graph.
    upper = (rows < cols) & (a >= 0) & (b >= 0)
    u, v = rows[upper], cols[upper]
    ncolors = int(colors.max(initial=-1)) + 1
    nodes, ends = np.unique(
        np.concatenate((u * ncolors + colors[v], v * ncolors + colors[u])), return_inverse=True
    )
    graph = sp.coo_array(
        (np.ones(u.size), (ends[: u.size], ends[u.size :])), shape=(nodes.size, nodes.size)
    )
    from scipy.sparse.csgraph import connected_components  # slow to import; seldom needed

    ncomp, label = connected_components(graph, directed=False)
    edges_per = np.bincount(label[ends[: u.size]], minlength=ncomp)
    nodes_per = np.bincount(label, minlength=ncomp)
    cyclic = np.flatnonzero(edges_per >= nodes_per)
    if cyclic.size:
        e = np.flatnonzero(label[ends[: u.size]] == cyclic[0])[0]
        raise ValueError(
            f"columns {u[e]} and {v[e]} lie on a cycle that uses only colours "
            f"{colors[u[e]]} and {colors[v[e]]}"
        )
