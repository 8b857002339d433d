"""Lattice colourings of grid stencils: colour = (a · x) mod p over detected grid coordinates x.

A square pattern whose index is a C-order reshape of a grid (m_0 fastest, stride 1; m_1, stride
m_0; ...) and whose entries are stencil couplings has few distinct diagonal offsets j - i, each
a small combination of the strides. From them we detect the grid, collect the stencil
C = {x(j) - x(i)} over the entries in grid coordinates (exactly, in O(nnz)), and search for a
modulus p and coefficients a with a · e ≢ 0 (mod p) for every nonzero e in C - C. Then
colour(j) = (a · x(j)) mod p gives the columns of every row distinct colours: two columns j, j'
of row i differ by x(j) - x(j') = (x(j) - x(i)) - (x(j') - x(i)) in C - C. This holds for any
grid, so a wrong guess only costs colours, never validity; the result is checked anyway.

This generalises the banded colouring of Curtis, Powell and Reid ("On the estimation of sparse
Jacobian matrices", J. Inst. Math. Appl. 13, 1974: colour j mod p, here the 1-D grid) to the
grid colourings of Goldfarb and Toint ("Optimal estimation of Jacobian and Hessian matrices
that arise in finite difference calculations", Math. Comp. 43(167), 1984), for example
(i + 2j + 3k) mod 7 for the 3-D 7-point stencil and the 3 x 3 x 3 block colouring
(i + 3j + 9k) mod 27 for the 27-point one. With ``closed=True`` the vertex itself joins C, so
the colouring is a distance-2 colouring of the adjacency graph, hence a star colouring
(Coleman & Moré, Math. Programming 28, 1984).
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np

from ..._lazy import scipy_sparse as sp
from .tables import unique_color_in_row

MAX_STENCIL = 125  # distinct offsets (a 5 x 5 x 5 stencil); beyond this no grid is sought
_MAX_VECTORS = 1 << 20  # coefficient vectors tried per modulus
_MAX_TRIES = 1 << 21  # coefficient vectors tried in all, per grid (and at most 4 per entry)
_MIN_TRIES = 1 << 16
_RADII = (1, 2, 3)  # stencil radii tried when splitting the offsets into strides


@numba.njit(cache=True)
def _distinct_differences(indptr, indices, key, cap):
    # The distinct key[j] - key[i] over the entries (i, j) of a CSC pattern, in an open-addressing
    # hash set of at most `cap` values; (values, False) as soon as there are more.
    size = 16
    while size < 4 * cap:
        size *= 2
    shift = np.uint64(64 - int(np.log2(size)))
    table = np.zeros(size, np.int64)
    used = np.zeros(size, np.bool_)
    out = np.empty(cap, np.int64)
    count = 0
    golden = np.uint64(11400714819323198485)
    mask = size - 1
    for j in range(indptr.size - 1):
        kj = key[j]
        last = -1
        for p in range(indptr[j], indptr[j + 1]):
            v = kj - key[indices[p]]
            if p > indptr[j] and v == last:
                continue
            last = v
            h = np.int64((np.uint64(v) * golden) >> shift)
            while used[h] and table[h] != v:
                h = (h + 1) & mask
            if not used[h]:
                if count == cap:
                    return out[:count], False
                used[h] = True
                table[h] = v
                out[count] = v
                count += 1
    return out[:count], True


@numba.njit(cache=True)
def _find_coefficients(diffs, p, first_one, max_vectors):
    # The lexicographically first a in Z_p^d (a[0] = 1 when first_one) with (diffs @ a) % p != 0
    # on every row;
    # rows are sorted shortest first, so most candidates fail after a step or two.
    k, d = diffs.shape
    a = np.zeros(d, np.int64)
    start = 0
    if first_one:
        a[0] = 1
        start = 1
    for _ in range(max_vectors):
        ok = True
        for r in range(k):
            s = 0
            for c in range(d):
                s += diffs[r, c] * a[c]
            if s % p == 0:
                ok = False
                break
        if ok:
            return a, True
        c = d - 1  # next vector in lexicographic order
        while c >= start:
            a[c] += 1
            if a[c] < p:
                break
            a[c] = 0
            c -= 1
        if c < start:
            break
    return a, False


def distinct_offsets(pattern: sp.csc_array, cap: int = MAX_STENCIL) -> np.ndarray | None:
    """The sorted distinct j - i over the entries (i, j), or ``None`` if more than ``cap``.

    >>> import scipy.sparse as sp
    >>> from anvil_llvm.ad.coloring.patterns import as_pattern
    >>> distinct_offsets(as_pattern(sp.eye_array(4) + sp.eye_array(4, k=2))).tolist()
    [0, 2]
    """
    n = pattern.shape[1]
    values, ok = _distinct_differences(pattern.indptr, pattern.indices, np.arange(n), cap)
    return np.sort(values) if ok else None


def _small(value: int, strides: list[int], radius: int) -> bool:
    """Is ``value`` a combination of ``strides`` with coefficients in [-radius, radius]?"""
    for s in reversed(strides):
        c = math.floor(value / s + 0.5)
        if abs(c) > radius:
            return False
        value -= c * s
    return value == 0


def grid_strides(offsets: np.ndarray, n: int) -> list[tuple[int, ...]]:
    """Candidate C-order grids for n indices, as strides (1, m_0, m_0·m_1, ...), from offsets.

    For each radius r (1, 2, 3), strides are added from the smallest offset up: the first offset
    that is not a combination of the strides so far with coefficients in [-r, r] opens a new
    level, whose stride is the centre of the offsets within 2·r·(sum of strides) of it (for a
    symmetric stencil the level's offsets are s ± the smaller combinations), rounded to a
    multiple of the previous stride that divides n.

    >>> grid_strides(np.array([-100, -10, -1, 0, 1, 10, 100]), 1000)
    [(1, 10, 100)]
    """
    positive = sorted({abs(int(v)) for v in offsets} - {0})
    out: list[tuple[int, ...]] = []
    for radius in _RADII:
        strides = [1]
        while True:
            bad = [v for v in positive if not _small(v, strides, radius)]
            if not bad:
                break
            width = 2 * radius * sum(strides)
            level = [v for v in bad if v <= bad[0] + width]
            top = strides[-1]
            k = max(round((level[0] + level[-1]) / 2 / top), 2)
            options = [k, k - 1, k + 1]
            fits = [c * top for c in options if c >= 2 and c * top < n and n % (c * top) == 0]
            if not fits:
                break
            strides.append(fits[0])
        if len(strides) > 1 and tuple(strides) not in out:
            out.append(tuple(strides))
    return out


def _grid_key(n: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per index: the grid coordinates packed with radix 2·m_k - 1 (so differences of keys are
    the differences of coordinates, packed), plus the shape and the packing weights."""
    shape = np.array([*(b // a for a, b in itertools.pairwise(strides)), n // strides[-1]])
    weights = np.cumprod(np.concatenate(([1], 2 * shape[:-1] - 1)))
    index = np.arange(n, dtype=np.int64)
    key = np.zeros(n, np.int64)
    for s, m, w in zip(strides, shape, weights):
        key += (index // s % m) * w
    return key, shape, weights


def _unpack(values: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Coordinate differences from packed key differences (inverse of ``_grid_key``'s packing)."""
    out = np.empty((values.size, shape.size), np.int64)
    rest = values.astype(np.int64)
    for k, m in enumerate(shape):
        digit = (rest + (m - 1)) % (2 * m - 1) - (m - 1)
        out[:, k] = digit
        rest = (rest - digit) // (2 * m - 1)
    return out


def lattice_modulus(
    stencil: np.ndarray, lower: int, upper: int, max_tries: int = _MAX_TRIES
) -> tuple[int, np.ndarray] | None:
    """The smallest p in [lower, upper) with coefficients a such that (a · e) mod p != 0 for
    every nonzero e in stencil - stencil, as (p, a); ``None`` if none is found within
    ``max_tries`` coefficient vectors. ``stencil`` holds one offset per row, in grid coordinates.

    >>> p, a = lattice_modulus(np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0],
    ...                                  [0, 0, 1], [0, 0, -1]]), 1, 20)
    >>> p, a.tolist()                                # the 3-D 7-point stencil
    (7, [1, 2, 3])
    """
    diffs = (stencil[:, None, :] - stencil[None, :, :]).reshape(-1, stencil.shape[1])
    diffs = np.unique(diffs, axis=0)
    diffs = diffs[diffs.any(axis=1)]
    used = np.flatnonzero(diffs.any(axis=0))
    diffs = diffs[:, used]
    diffs = diffs[np.argsort(np.abs(diffs).sum(axis=1), kind="stable")]
    # With a mixed radix the block colouring always works: p = prod(span + 1).
    span = np.abs(diffs).max(axis=0, initial=0)
    upper = min(upper, int(np.prod(span + 1)) + 1)
    tries = 0
    for p in range(max(lower, len(stencil), 1), upper):
        first_one = p**used.size > _MAX_VECTORS
        vectors = min(p ** (used.size - first_one), _MAX_VECTORS)
        if tries + vectors > max_tries:
            break
        tries += vectors
        a, ok = _find_coefficients(np.ascontiguousarray(diffs), p, first_one, vectors)
        if ok:
            full = np.zeros(stencil.shape[1], np.int64)
            full[used] = a
            return p, full
    return None


def lattice_coloring(
    pattern: sp.csc_array,
    rows_of: sp.csc_array,
    lower: int,
    upper: int | None = None,
    *,
    closed: bool = False,
) -> np.ndarray | None:
    """A lattice colouring of the columns of a square pattern with fewer than ``upper`` colours.

    Returns colours under which every row's columns have distinct colours (with ``closed``, for
    a symmetric pattern, also distinct from the row's own index: a distance-2 colouring of the
    adjacency graph), checked on the pattern, or ``None`` when no grid stencil is found.
    ``rows_of`` is ``transposed(pattern)``; ``lower`` is a lower bound on the colours (stop there).

    >>> import scipy.sparse as sp
    >>> from anvil_llvm.ad.coloring.patterns import as_pattern, transposed
    >>> T = sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1], shape=(6, 6))
    >>> I = sp.eye_array(6)
    >>> J = as_pattern(sp.kron(sp.kron(I, I), T) + sp.kron(sp.kron(I, T), I)
    ...                + sp.kron(sp.kron(T, I), I) != 0)  # 3-D 7-point stencil, 6 x 6 x 6
    >>> int(lattice_coloring(J, transposed(J), 7).max()) + 1
    7
    """
    m, n = pattern.shape
    if m != n or pattern.nnz == 0:
        return None
    upper = n + 1 if upper is None else min(upper, n + 1)
    offsets = distinct_offsets(pattern)
    if offsets is None:
        return None
    # Distinct offsets have distinct coordinate differences, so no grid's stencil is smaller.
    bound = max(lower, offsets.size + int(closed and not (offsets == 0).any()))
    best = None
    # Fewest dimensions first (a radius too small splits the grid further). The 1-D grid
    # (colour j·a mod p, the banded colouring) last: a detected grid does at least as well, and
    # the 1-D search then only looks below the grid's modulus.
    for strides in [*sorted(grid_strides(offsets, n), key=len), (1,)]:
        if best is not None and best[0] <= bound:
            break
        if len(strides) == 1:
            key, shape, stencil = np.arange(n), np.array([n]), offsets[:, None]
        else:
            key, shape, _ = _grid_key(n, strides)
            packed, ok = _distinct_differences(pattern.indptr, pattern.indices, key, MAX_STENCIL)
            if not ok:
                continue
            stencil = _unpack(np.sort(packed), shape)
        if closed:
            stencil = np.unique(np.vstack((stencil, np.zeros((1, shape.size), np.int64))), axis=0)
        tries = min(max(4 * pattern.nnz, _MIN_TRIES), _MAX_TRIES)
        found = lattice_modulus(stencil, lower, upper if best is None else best[0], tries)
        if found is None:
            continue
        p, a = found
        index = np.arange(n, dtype=np.int64)
        colors = np.zeros(n, np.int64)
        for s, size, coef in zip(strides, shape, a):
            if coef:
                colors += (index // s % size) * coef
        colors %= p
        if not _valid(pattern, rows_of, colors, closed):
            continue
        used = np.zeros(p, np.bool_)
        used[colors] = True
        colors = (np.cumsum(used) - 1)[colors]  # small grids may leave colours unused
        if best is None or colors.max() < best[1].max():
            best = (p, colors)
    return None if best is None else best[1]


def _valid(pattern: sp.csc_array, rows_of: sp.csc_array, colors: np.ndarray, closed: bool) -> bool:
    """Distinct colours in every row (and, if ``closed``, at both ends of every entry)."""
    if not unique_color_in_row(rows_of.indptr, rows_of.indices, colors).all():
        return False
    return not closed or _ends_differ(pattern.indptr, pattern.indices, colors)


@numba.njit(cache=True)
def _ends_differ(indptr, indices, colors):
    """Whether every off-diagonal entry's row and column have different colours."""
    for j in range(indptr.size - 1):
        for p in range(indptr[j], indptr[j + 1]):
            i = indices[p]
            if i != j and colors[i] == colors[j]:
                return False
    return True
