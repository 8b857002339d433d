"""Colouring results: colours, seed matrices, decompression tables as data, and ``decompress``.

Layout of the compressed products (one contiguous vector per directional derivative, which is
how a vmap over colour seeds writes them): ``compressed`` is the concatenation of
  - column products J·S (m × c) column by column: entry (i, k) at ``k*m + i``;
  - row products Sᵀ·J (c × n) row by row: entry (k, j) at ``k*n + j`` (after the column
    products, for a bidirectional colouring);
  - a Hessian's products H·S (n × c) like column products.
The tables fill ``values``, the CSC data of ``result.pattern`` (the Jacobian pattern, or the
upper triangle of the Hessian pattern), by the program

    for t in range(len(target)):
        values[target[t]] = compressed[source[t]]
        if subtract[t] >= 0:
            compressed[subtract[t]] -= values[target[t]]

Direct methods (distance-2, star, star bicolouring) store only ``source`` (``target`` is
``arange(nnz)`` and nothing is subtracted): ``values = compressed[source]`` is one gather.
Acyclic colourings subtract each solved value from the other product entry that holds it
(substitution).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numba
import numpy as np

from ..._lazy import scipy_sparse as sp
from .patterns import Adjacency
from .tables import direct_slots, substitution, unique_color_in_row


@dataclass(frozen=True, eq=False)
class DecompressionTables:
    """The decompression program: int64 arrays ``source``, ``target``, ``subtract`` (-1: none).

    Direct tables store only ``source`` (``target`` and ``subtract`` are ``None``): the program
    is then the gather ``values = compressed[source]``.

    >>> t = DecompressionTables(np.array([3, 0]))
    >>> t.direct, t.run(np.array([1.0, 2.0, 3.0, 4.0])).tolist()
    (True, [4.0, 1.0])
    """

    source: np.ndarray
    target: np.ndarray | None = None
    subtract: np.ndarray | None = None

    @property
    def direct(self) -> bool:
        """True when the program is one gather: ``values = compressed[source]``."""
        return self.target is None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.source, self.target, self.subtract) if a is not None)

    def run(self, compressed: np.ndarray) -> np.ndarray:
        """Run the program on a flat compressed vector (not modified); return the values."""
        if self.direct:
            return compressed[self.source]
        values = np.zeros(self.target.size, compressed.dtype)
        _run(compressed.copy(), self.target, self.source, self.subtract, values)
        return values


@numba.njit(cache=True)
def _run(compressed, target, source, subtract, values):
    for t in range(target.size):
        x = compressed[source[t]]
        values[target[t]] = x
        if subtract[t] >= 0:
            compressed[subtract[t]] -= x


@dataclass(frozen=True, eq=False)
class Coloring:
    """A colouring of a Jacobian or Hessian pattern with its decompression tables.

    ``partition`` is "column" (seeds S: n × c, products J·S), "row" (seeds S: m × c, products
    Sᵀ·J) or "bidirectional" (both). Hessian colourings are column partitions whose ``pattern``
    is the upper triangle. ``method`` is "distance2", "star", "acyclic" or "star_bicoloring".
    Colours are 0..c-1 per side; -1 marks a column (row) that is in no seed because its entries
    are all read from other products.

    >>> import numpy as np, scipy.sparse as sp
    >>> from anvil_llvm.ad.coloring import jacobian_coloring
    >>> J = sp.csc_array(np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 4.0]]))
    >>> r = jacobian_coloring(J != 0, partition="column")
    >>> r.ncolors, r.colors.tolist()
    (2, [1, 0, 1])
    >>> r.decompress(J @ r.seed_matrix()).toarray().tolist()
    [[1.0, 2.0, 0.0], [0.0, 3.0, 4.0]]
    """

    pattern: sp.csc_array
    partition: str
    method: str
    order: str
    column_colors: np.ndarray | None
    row_colors: np.ndarray | None
    tables: DecompressionTables

    @property
    def ncolumn_colors(self) -> int:
        return 0 if self.column_colors is None else int(self.column_colors.max(initial=-1)) + 1

    @property
    def nrow_colors(self) -> int:
        return 0 if self.row_colors is None else int(self.row_colors.max(initial=-1)) + 1

    @property
    def ncolors(self) -> int:
        """Number of directional derivatives (column plus row products)."""
        return self.ncolumn_colors + self.nrow_colors

    @property
    def colors(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Column colours, row colours, or (column, row) colours for "bidirectional"."""
        if self.partition == "bidirectional":
            return self.column_colors, self.row_colors
        return self.row_colors if self.partition == "row" else self.column_colors

    def seed_matrix(self) -> sp.csc_array | tuple[sp.csc_array, sp.csc_array]:
        """Seeds: n × c for "column", m × c for "row", the pair (n × c₁, m × c₂) otherwise."""
        if self.partition == "bidirectional":
            return _seeds(self.column_colors), _seeds(self.row_colors)
        return _seeds(self.colors)

    def decompress(self, compressed: object, row_compressed: object = None) -> sp.csc_array:
        """Recover the matrix from its products (the upper triangle for a Hessian), as CSC.

        Pass J·S for "column" (H·S for a Hessian), Sᵀ·J for "row", and J·S₁, S₂ᵀ·J for
        "bidirectional" with (S₁, S₂) = ``seed_matrix()``. Dense or sparse products are fine.
        """
        m, n = self.pattern.shape
        given = [compressed] if row_compressed is None else [compressed, row_compressed]
        expected = {
            "column": [("compressed", (m, self.ncolumn_colors), "F")],
            "row": [("compressed", (self.nrow_colors, n), "C")],
            "bidirectional": [
                ("compressed", (m, self.ncolumn_colors), "F"),
                ("row_compressed", (self.nrow_colors, n), "C"),
            ],
        }[self.partition]
        if len(given) != len(expected):
            raise TypeError(
                f"a {self.partition} colouring decompresses {len(expected)} product(s); "
                f"got {len(given)}"
            )
        parts = [_flat(x, name, shape, layout) for x, (name, shape, layout) in zip(given, expected)]
        flat = np.concatenate(parts) if len(parts) > 1 else parts[0]
        values = self.tables.run(flat)
        return sp.csc_array((values, self.pattern.indices, self.pattern.indptr), self.pattern.shape)


def _flat(x: object, name: str, shape: tuple[int, int], layout: str) -> np.ndarray:
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating)):
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"{name} must be a numeric array; got dtype {x.dtype}")
        x = x.astype(np.float64)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got shape {x.shape}")
    return x.ravel(order=layout)


def _seeds(colors: np.ndarray) -> sp.csc_array:
    keep = np.flatnonzero(colors >= 0)
    ncolors = int(colors.max(initial=-1)) + 1
    return sp.csc_array((np.ones(keep.size), (keep, colors[keep])), shape=(colors.size, ncolors))


def _compact(colors: np.ndarray, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the needed colours 0..k-1 in order, the others -1; also return the map (whose
    last entry maps -1 to -1)."""
    remap = np.append(np.where(needed, np.cumsum(needed) - 1, -1), -1)
    return remap[colors], remap


def _needed(colors: np.ndarray, used: np.ndarray) -> np.ndarray:
    needed = np.zeros(int(colors.max(initial=-1)) + 1, np.bool_)
    needed[used] = True
    return needed


@numba.njit(cache=True)
def _distance2_source(indptr, indices, colors, by_row, stride):
    # The compressed slot of each entry (i, j) of a CSC pattern: colour of j times m plus i for
    # column products, colour of i times n plus j for row products.
    source = np.empty(indices.size, np.int64)
    for j in range(indptr.size - 1):
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            source[p] = colors[i] * stride + j if by_row else colors[j] * stride + i
    return source


def distance2_result(
    pattern: sp.csc_array,
    rows_of: sp.csc_array,
    colors: np.ndarray,
    partition: str,
    order: str,
    check: bool = True,
) -> Coloring:
    """Direct tables for a distance-2 colouring of the columns (or, for "row", of the rows).

    ``colors`` colours the columns of ``pattern`` or, for partition "row", its rows. ``check``:
    raise ``ValueError`` unless it is a distance-2 colouring (pass False only for colours
    already checked that way).
    """
    m, n = pattern.shape
    by_row = partition == "row"
    if check:
        other = pattern if by_row else rows_of
        if not unique_color_in_row(other.indptr, other.indices, colors).all():
            raise ValueError(f"not a distance-2 colouring of the {partition}s")
    colors = np.ascontiguousarray(colors, np.int64)
    # The colours of the columns (rows) with entries are needed; the others are in no seed.
    nonempty = np.diff(rows_of.indptr if by_row else pattern.indptr) > 0
    colors, _ = _compact(colors, _needed(colors, colors[nonempty]))
    source = _distance2_source(pattern.indptr, pattern.indices, colors, by_row, n if by_row else m)
    sides = (None, colors) if by_row else (colors, None)
    return Coloring(pattern, partition, "distance2", order, *sides, DecompressionTables(source))


@numba.njit(cache=True)
def _upper_arrays(indptr, indices, gptr, gidx, eid):
    # The upper triangle of a sorted CSC pattern (indptr, indices, its diagonal mask), and the
    # edge id of each of its off-diagonal entries from the adjacency graph (gptr, gidx, eid):
    # row j of the graph, columns i < j, is column j of the upper triangle without its diagonal.
    n = indptr.size - 1
    uptr = np.zeros(n + 1, indices.dtype)
    for j in range(n):
        count = 0
        for p in range(indptr[j], indptr[j + 1]):
            if indices[p] > j:
                break
            count += 1
        uptr[j + 1] = uptr[j] + count
    uidx = np.empty(uptr[n], indices.dtype)
    diag = np.empty(uptr[n], np.bool_)
    for j in range(n):
        k = uptr[j]
        for p in range(indptr[j], indptr[j] + uptr[j + 1] - uptr[j]):
            uidx[k] = indices[p]
            diag[k] = indices[p] == j
            k += 1
    edges = np.empty(gidx.size // 2, eid.dtype)
    k = 0
    for j in range(n):
        for q in range(gptr[j], gptr[j + 1]):
            if gidx[q] >= j:
                break
            edges[k] = eid[q]
            k += 1
    return uptr, uidx, diag, edges[:k]


class Triangle(NamedTuple):
    """The upper triangle of a symmetric pattern and how its entries map to the adjacency
    graph's edges: what every candidate colouring's tables share (computed once per pattern)."""

    upper: sp.csc_array
    diag_pos: np.ndarray  # positions of the diagonal entries in upper's CSC order
    diag_rows: np.ndarray  # their rows
    off_pos: np.ndarray  # positions of the off-diagonal entries
    edges: np.ndarray  # the edge id of each of those
    edge_target: np.ndarray  # per edge id: its position


def upper_triangle(pattern: sp.csc_array, graph: Adjacency) -> Triangle:
    """The ``Triangle`` of a symmetric pattern with adjacency graph ``graph``."""
    uptr, uidx, diag, edges = _upper_arrays(
        pattern.indptr, pattern.indices, graph.indptr, graph.indices, graph.eid
    )
    upper = sp.csc_array((np.ones(uidx.size, np.bool_), uidx, uptr), shape=pattern.shape)
    kind = uidx.dtype
    diag_pos = np.flatnonzero(diag).astype(kind)
    off_pos = np.flatnonzero(~diag).astype(kind)
    del diag
    edge_target = np.empty(graph.nedges, kind)
    edge_target[edges] = off_pos
    return Triangle(upper, diag_pos, uidx[diag_pos], off_pos, edges, edge_target)


def star_result(
    pattern: sp.csc_array,
    graph: Adjacency,
    colors: np.ndarray,
    order: str,
    triangle: Triangle | None = None,
) -> Coloring:
    """Direct tables for a star colouring of a symmetric pattern (upper triangle, CSC order).

    ``triangle``: ``upper_triangle(pattern, graph)``, if already computed."""
    t = triangle or upper_triangle(pattern, graph)
    needed = _needed(colors, colors[t.diag_rows])
    edge_vertex, edge_color = direct_slots(graph, colors, needed)
    compact, remap = _compact(colors, needed)
    source = _star_source(t.upper.indices, t.off_pos, t.edges, edge_vertex, edge_color, colors,
                          remap, pattern.shape[0])
    return Coloring(t.upper, "column", "star", order, compact, None, DecompressionTables(source))


@numba.njit(cache=True)
def _star_source(rows, off_pos, edges, edge_vertex, edge_color, colors, remap, stride):
    # The compressed slot of each entry of the upper triangle (`rows`: their rows), in one pass
    # (NumPy's gathers and scatters took 0.12 s for 2e6 entries): a diagonal entry's is its
    # row's colour times `stride` plus its row; an off-diagonal one's, its edge's slot.
    source = np.empty(rows.size, np.int64)
    for p in range(rows.size):
        source[p] = remap[colors[rows[p]]] * stride + rows[p]
    for q in range(off_pos.size):
        e = edges[q]
        source[off_pos[q]] = remap[edge_color[e]] * stride + edge_vertex[e]
    return source


def acyclic_result(
    pattern: sp.csc_array,
    graph: Adjacency,
    colors: np.ndarray,
    order: str,
    triangle: Triangle | None = None,
) -> Coloring:
    """Tables for an acyclic colouring of a symmetric pattern (upper triangle): substitution
    tables, or, when it is a star colouring too (an arrowhead's two colours), the direct tables
    of `star_result`: one gather instead of a sequential pass.

    ``triangle``: ``upper_triangle(pattern, graph)``, if already computed."""
    n = pattern.shape[0]
    t = triangle or upper_triangle(pattern, graph)
    try:
        return replace(star_result(pattern, graph, colors, order, t), method="acyclic")
    except ValueError:       # not a star colouring: some entry needs substitution
        pass
    edge, vertex, color_of, sub_vertex, sub_color = substitution(graph, colors)
    needed = _needed(colors, colors[t.diag_rows])
    needed[color_of] = True
    compact, remap = _compact(colors, needed)
    tables = DecompressionTables(*_acyclic_tables(
        t.diag_pos, t.diag_rows, t.edge_target, edge, vertex, color_of, sub_vertex, sub_color,
        colors, remap, n))
    return Coloring(t.upper, "column", "acyclic", order, compact, None, tables)


@numba.njit(cache=True)
def _acyclic_tables(diag_pos, diag_rows, edge_target, edge, vertex, color_of, sub_vertex,
                    sub_color, colors, remap, stride):
    # The substitution program's (source slot, target position, slot to subtract from or -1)
    # per step, in one pass: first the diagonal entries, each read from its row's slot, then
    # the steps of `substitution` (edge solved, its slot, the slot it is subtracted from).
    diagonal, steps = diag_pos.size, edge.size
    source = np.empty(diagonal + steps, np.int64)
    target = np.empty(diagonal + steps, np.int64)
    subtract = np.full(diagonal + steps, -1, np.int64)
    for k in range(diagonal):
        row = diag_rows[k]
        source[k] = remap[colors[row]] * stride + row
        target[k] = diag_pos[k]
    for j in range(steps):
        k = diagonal + j
        source[k] = remap[color_of[j]] * stride + vertex[j]
        target[k] = edge_target[edge[j]]
        if sub_vertex[j] >= 0:
            subtract[k] = remap[sub_color[j]] * stride + sub_vertex[j]
    return source, target, subtract


def bicoloring_result(
    pattern: sp.csc_array, graph: Adjacency, colors: np.ndarray, order: str
) -> Coloring:
    """Direct tables for a star bicolouring (``colors`` of the n columns, then the m rows)."""
    m, n = pattern.shape
    ncol = int(colors[:n].max(initial=-1)) + 1
    disjoint = np.concatenate((colors[:n], colors[n:] + ncol))  # one seed set per side
    needed = np.zeros(int(disjoint.max(initial=-1)) + 1, np.bool_)
    edge_vertex, edge_color = direct_slots(graph, disjoint, needed)
    column_colors, column_remap = _compact(colors[:n], needed[:ncol])
    row_colors, row_remap = _compact(colors[n:], needed[ncol:])
    vertex = edge_vertex[graph.eid[: pattern.nnz]]
    color_of = edge_color[graph.eid[: pattern.nnz]]
    # A row vertex's slot is an entry of a column product J·S₁; a column vertex's slot is an
    # entry of a row product S₂ᵀ·J, stored after the column products.
    source = np.where(
        vertex >= n,
        column_remap[np.minimum(color_of, ncol)] * m + vertex - n,
        (column_remap.max() + 1) * m + row_remap[np.maximum(color_of - ncol, -1)] * n + vertex,
    )
    return Coloring(
        pattern,
        "bidirectional",
        "star_bicoloring",
        order,
        column_colors,
        row_colors,
        DecompressionTables(source),
    )
