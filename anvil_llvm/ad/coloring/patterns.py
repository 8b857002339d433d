"""Pattern input: validation, canonical CSC/CSR index arrays, symmetric and bipartite adjacency.

Every colouring routine works on index arrays with sorted indices and no duplicates, int32
where a pattern's sizes fit (half the memory: a million-variable Hessian's colouring holds
several arrays of its entries), else int64, and derived arrays take the pattern's type. The
graphs are never formed as products: a Jacobian's column intersection graph is walked through
its bipartite graph (column -> rows -> columns), a Hessian's adjacency graph is its pattern
without the diagonal, and bidirectional colouring uses the bipartite graph of [[0, Jᵀ], [J, 0]].
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from ..._lazy import scipy_sparse as sp


def as_pattern(pattern: object, name: str = "pattern") -> sp.csc_array:
    """Validate a sparsity pattern and return it as a canonical boolean ``csc_array``.

    Accepts scipy.sparse arrays and matrices of any format and dense array-likes. Values must be
    boolean or 0/1; stored zeros are dropped; indices are sorted, duplicates merged, and index
    arrays are of ``index_type``.

    >>> import numpy as np
    >>> as_pattern(np.eye(2)).nnz
    2
    """
    array = pattern if sp.issparse(pattern) else np.asarray(pattern)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {array.shape}")
    if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number)):
        raise TypeError(f"{name} must be boolean or 0/1 numbers; got dtype {array.dtype}")
    csc = sp.csc_array(array)  # no copy when already CSC
    data = csc.data
    if data.dtype != np.bool_:
        bad = (data != 0) & (data != 1)
        if bad.any():
            raise ValueError(
                f"{name} must be boolean or 0/1; got the value {data[np.argmax(bad)]!r}"
            )
    if not csc.has_canonical_format or not data.all():
        csc = sp.csc_array((data != 0, csc.indices, csc.indptr), shape=csc.shape)
        csc.eliminate_zeros()
        csc.sum_duplicates()
    kind = index_type(csc.shape, csc.nnz)
    return sp.csc_array(
        (np.ones(csc.nnz, np.bool_), csc.indices.astype(kind), csc.indptr.astype(kind)),
        shape=csc.shape,
    )


def index_type(shape: tuple, nnz: int) -> type:
    """int32 when every index and position of a pattern of `shape` and `nnz` entries fits, also
    in its bipartite graph (twice the entries, rows and columns numbered together), else int64.

    >>> index_type((10, 10), 30), index_type((3_000_000_000, 1), 2)
    (<class 'numpy.int32'>, <class 'numpy.int64'>)
    """
    return np.int32 if 2 * nnz + sum(shape) < 2**31 else np.int64


@numba.njit(cache=True)
def _transpose(indptr, indices, nrows):
    # Counting sort by row; visiting columns in order leaves each row's columns sorted.
    tptr = np.zeros(nrows + 1, indices.dtype)
    for p in range(indices.size):
        tptr[indices[p] + 1] += 1
    for i in range(nrows):
        tptr[i + 1] += tptr[i]
    fill = tptr[:-1].copy()
    tidx = np.empty(indices.size, indices.dtype)
    for j in range(indptr.size - 1):
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            tidx[fill[i]] = j
            fill[i] += 1
    return tptr, tidx


def with_transpose(pattern: object, name: str = "pattern") -> tuple[sp.csc_array, sp.csc_array]:
    """``as_pattern(pattern)`` and its ``transposed``; from a canonical CSR input (what sparsity
    detection gives) the transpose is its arrays as they are, with no sort."""
    if (
        sp.issparse(pattern)
        and pattern.format == "csr"
        and pattern.ndim == 2
        and pattern.dtype == np.bool_
        and pattern.has_canonical_format
        and pattern.data.all()
    ):
        m, n = pattern.shape
        kind = index_type(pattern.shape, pattern.nnz)
        indptr, indices = pattern.indptr.astype(kind), pattern.indices.astype(kind)
        JT = sp.csc_array((np.ones(indices.size, np.bool_), indices, indptr), shape=(n, m))
        return transposed(JT), JT
    J = as_pattern(pattern, name)
    return J, transposed(J)


def transposed(pattern: sp.csc_array) -> sp.csc_array:
    """The transpose of a canonical pattern, canonical CSC (its arrays are ``pattern``'s CSR)."""
    m, n = pattern.shape
    tptr, tidx = _transpose(pattern.indptr, pattern.indices, m)
    return sp.csc_array((np.ones(tidx.size, np.bool_), tidx, tptr), shape=(n, m))


def check_symmetric(pattern: sp.csc_array, name: str = "pattern") -> None:
    """Raise ``ValueError`` naming an entry whose mirror is missing unless square and symmetric."""
    m, n = pattern.shape
    if m != n:
        raise ValueError(f"{name} must be square and symmetric; got shape {pattern.shape}")
    mirror = transposed(pattern)
    if np.array_equal(mirror.indptr, pattern.indptr) and np.array_equal(
        mirror.indices, pattern.indices
    ):
        return
    extra = (pattern > mirror).tocoo()
    i, j = (int(extra.row[0]), int(extra.col[0]))
    raise ValueError(f"{name} must be symmetric; entry ({i}, {j}) is present but ({j}, {i}) is not")


class Adjacency(NamedTuple):
    """A symmetric graph as sorted CSR arrays, with the mirror position and an edge id per entry.

    ``tpos[p]`` is the position of the entry mirroring position ``p``; ``eid[p]`` numbers each
    undirected edge once (0 .. nedges-1), the same for both of its positions.
    """

    indptr: np.ndarray
    indices: np.ndarray
    tpos: np.ndarray
    eid: np.ndarray

    @property
    def nvertices(self) -> int:
        return self.indptr.size - 1

    @property
    def nedges(self) -> int:
        return self.indices.size // 2


@numba.njit(cache=True)
def _mirror_positions(indptr, indices):
    # Rows are visited in increasing order and each row is sorted, so the k-th time column j is
    # met is the k-th entry of row j (valid for symmetric patterns only).
    n = indptr.size - 1
    seen = indptr[:-1].copy()
    tpos = np.empty(indices.size, indices.dtype)
    eid = np.empty(indices.size, indices.dtype)
    nedges = 0
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            tpos[p] = seen[j]
            seen[j] += 1
            if i < j:
                eid[p] = nedges
                nedges += 1
            else:
                eid[p] = eid[tpos[p]]
    return tpos, eid


def adjacency(indptr: np.ndarray, indices: np.ndarray) -> Adjacency:
    """The adjacency graph of a symmetric pattern given by sorted CSR arrays, without loops."""
    kind = indices.dtype
    rows = np.repeat(np.arange(indptr.size - 1, dtype=kind), np.diff(indptr))
    keep = indices != rows
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rows[keep], minlength=indptr.size - 1))))
    del rows
    indices = np.ascontiguousarray(indices[keep])
    indptr = indptr.astype(kind)
    return Adjacency(indptr, indices, *_mirror_positions(indptr, indices))


def bipartite_adjacency(pattern: sp.csc_array, rows_of: sp.csc_array) -> Adjacency:
    """The bipartite graph of an m x n pattern as the adjacency of [[0, Jᵀ], [J, 0]].

    Vertices 0..n-1 are the columns and n..n+m-1 the rows; positions 0..nnz-1 are the entries
    of ``pattern`` in CSC order. ``rows_of`` is ``transposed(pattern)``.
    """
    n = pattern.shape[1]
    indptr = np.concatenate((pattern.indptr, pattern.nnz + rows_of.indptr[1:]))
    indices = np.concatenate((pattern.indices + n, rows_of.indices))
    return Adjacency(indptr, indices, *_mirror_positions(indptr, indices))


class Walk(NamedTuple):
    """The neighbourhood of vertex v as a two-step walk:
    v -> ``idx1[ptr1[v]:ptr1[v+1]]`` -> ``idx2``.

    For the columns of a Jacobian the first step is the CSC (column -> rows) and the second the
    CSR (row -> columns): the column intersection graph without forming JᵀJ. For an adjacency
    graph the first step is the identity.
    """

    ptr1: np.ndarray
    idx1: np.ndarray
    ptr2: np.ndarray
    idx2: np.ndarray

    @property
    def nvertices(self) -> int:
        return self.ptr1.size - 1

    @classmethod
    def columns(cls, pattern: sp.csc_array, rows_of: sp.csc_array) -> Walk:
        """Distance-2 walk over the columns of ``pattern`` (``rows_of = transposed(pattern)``)."""
        return cls(pattern.indptr, pattern.indices, rows_of.indptr, rows_of.indices)

    @classmethod
    def neighbours(cls, graph: Adjacency) -> Walk:
        """Distance-1 walk over an adjacency graph."""
        n = graph.nvertices
        return cls(np.arange(n + 1), np.arange(n), graph.indptr, graph.indices)

    def cost(self) -> int:
        """Steps of one full walk (sum over middle vertices of their degree squared)."""
        inner = np.diff(self.ptr2).astype(np.float64)
        counts = np.bincount(self.idx1, minlength=inner.size)
        return int(counts @ inner)
