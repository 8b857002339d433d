"""Grid stencils: lattice colourings (anvil_llvm.ad.coloring.lattice) through the public API."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from test_coloring import (
    SETTINGS,
    assert_distance2,
    assert_recovers_hessian,
    assert_recovers_jacobian,
    banded,
    patterns,
    stencil,
)

from anvil_llvm.ad.coloring import check_coloring, hessian_coloring, jacobian_coloring
from anvil_llvm.ad.coloring.lattice import (
    distinct_offsets,
    grid_strides,
    lattice_coloring,
    lattice_modulus,
)
from anvil_llvm.ad.coloring.patterns import as_pattern, transposed

# ---------------------------------------------------------------- patterns


def laplacian7(m1: int, m2: int, m3: int) -> sp.csc_array:
    """kron(I,I,T) + kron(I,T,I) + kron(T,I,I): the 7-point stencil on a C-order (m1, m2, m3)
    grid (the index of u.reshape(m1, m2, m3)[i, j, k] is (i*m2 + j)*m3 + k)."""

    def tri(m):
        return sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1], shape=(m, m))

    def eye(m):
        return sp.eye_array(m)

    J = (
        sp.kron(sp.kron(eye(m1), eye(m2)), tri(m3))
        + sp.kron(sp.kron(eye(m1), tri(m2)), eye(m3))
        + sp.kron(sp.kron(tri(m1), eye(m2)), eye(m3))
    )
    return sp.csc_array(J != 0)


def grid_stencil(shape: tuple[int, ...], offsets: list[tuple[int, ...]]) -> sp.csc_array:
    """Row i (grid point x) has entries at the points x + offset inside a C-order grid."""
    n = int(np.prod(shape))
    coords = np.indices(shape).reshape(len(shape), -1).T
    rows, cols = [], []
    for offset in offsets:
        c = coords + np.array(offset)
        inside = np.all((c >= 0) & (c < np.array(shape)), axis=1)
        rows.append(np.flatnonzero(inside))
        cols.append(np.ravel_multi_index(c[inside].T, shape))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csc_array(sp.coo_array((np.ones(rows.size, bool), (rows, cols)), shape=(n, n)))


def axes(d: int, radius: int = 1) -> list[tuple[int, ...]]:
    """The (2·d·radius + 1)-point star: the centre and up to ``radius`` steps along each axis."""
    out = [(0,) * d]
    for k, step in itertools.product(range(d), range(1, radius + 1)):
        for sign in (1, -1):
            out.append(tuple(sign * step if i == k else 0 for i in range(d)))
    return out


def box(d: int) -> list[tuple[int, ...]]:
    return list(itertools.product((-1, 0, 1), repeat=d))


STENCILS = {
    "5pt": axes(2),
    "9pt": box(2),
    "13pt-2d": axes(2, 2) + [(1, 1), (1, -1), (-1, 1), (-1, -1)],  # biharmonic
    "7pt": axes(3),
    "13pt-3d": axes(3, 2),
    "19pt": [e for e in box(3) if sum(map(abs, e)) <= 2],
    "27pt": box(3),
    "upwind": [(0, 0, 0), (-1, 0, 0), (0, -1, 0), (0, 0, -1)],
    "9pt-4d": axes(4),
}


def assert_distance2_sparse(P: sp.csc_array, colors: np.ndarray) -> None:
    """Every column coloured, and the (row, colour) pairs of the entries all distinct."""
    coo = sp.coo_array(P)
    c = colors[coo.col]
    assert (c >= 0).all()
    assert np.unique(coo.row * (int(c.max()) + 1) + c).size == coo.nnz


def values(P: sp.csc_array, rng: np.random.Generator) -> sp.csc_array:
    J = sp.csc_array(P, dtype=np.float64)
    J.data = rng.standard_normal(J.nnz)
    return J


# ------------------------------------------------- 3-D 7-point: at most 8 colours


SHAPES_7PT = [(3, 3, 3), (7, 7, 7), (12, 12, 12), (13, 13, 13), (21, 21, 21), (30, 30, 30),
              (10, 20, 30), (2, 5, 9), (40, 3, 7)]  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES_7PT, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("partition", ["auto", "column", "row"])
def test_laplacian7_at_most_8_colours(shape, partition):
    P = laplacian7(*shape)
    r = jacobian_coloring(P, partition=partition)
    assert r.ncolors <= 8  # greedy orders give 10-12; the optimum is 7
    check_coloring(P, r)
    if partition == "column":
        assert_distance2_sparse(P, r.column_colors)
        J = values(P, np.random.default_rng(0))
        assert (r.decompress(J @ r.seed_matrix()) != J).nnz == 0  # exact


def test_laplacian7_reaches_optimum_7_quickly():
    # The lattice colouring reaches the lower bound (7 entries in a row), so "best" stops at
    # once; it is found whatever the time budget.
    for shape in [(12, 12, 12), (50, 50, 50), (10, 20, 30)]:
        P = laplacian7(*shape)
        r = jacobian_coloring(P, partition="column", time_budget=0.0)
        assert (r.ncolors, r.order) == (7, "lattice")
        check_coloring(P, r)


def test_laplacian7_colours_are_a_lattice_colouring():
    # Like (i + 2j + 3k) mod 7 (Goldfarb & Toint): colour = (a · x) mod 7, so a step along an
    # axis changes the colour by the same amount everywhere.
    r = jacobian_coloring(laplacian7(9, 10, 11), partition="column")
    colors = r.column_colors.reshape(9, 10, 11)
    assert r.ncolors == 7
    steps = [np.unique(np.diff(colors, axis=k) % 7) for k in range(3)]
    assert all(step.size == 1 for step in steps)
    assert len({0, *(int(step[0]) for step in steps)}) == 4


def test_explicit_orders_do_not_use_the_lattice():
    P = laplacian7(12, 12, 12)
    r = jacobian_coloring(P, partition="column", order="dsatur")
    assert r.order == "dsatur" and r.ncolors > 8


@pytest.mark.parametrize("shape", [(3, 3, 3), (7, 7, 7), (12, 12, 12), (13, 13, 13)])
def test_laplacian7_hessian_not_worse(shape):
    # Star colourings before the lattice: 4, 9, 10, 10 colours; its distance-2 colouring is a
    # star colouring with 7.
    before = {3: 4, 7: 9, 12: 10, 13: 10}[shape[0]]
    P = laplacian7(*shape)
    rng = np.random.default_rng(1)
    star = hessian_coloring(P)
    assert star.ncolors <= min(before, 7)
    check_coloring(P, star)
    assert_recovers_hessian(P, star, rng)
    acyclic = hessian_coloring(P, method="acyclic")
    check_coloring(P, acyclic)
    assert_recovers_hessian(P, acyclic, rng)


def test_acyclic_tries_the_lattice_only_above_the_bound(monkeypatch):
    """A path's acyclic colouring reaches the bound (2) by itself: its lattice (3 colours, a
    distance-2 colouring) is never made; star colourings start from it."""
    from anvil_llvm.ad.coloring import api
    made = []

    def counted(*args, **kwargs):
        made.append(True)
        return lattice_coloring(*args, **kwargs)
    monkeypatch.setattr(api, "lattice_coloring", counted)
    P = banded(40, 3)
    acyclic = hessian_coloring(P, method="acyclic")
    assert acyclic.ncolors == 2 and not made
    check_coloring(P, acyclic)
    assert hessian_coloring(P).ncolors == 3 and made


# ------------------------------------------------------------- other stencils


def test_5pt_still_5():
    for P in (stencil(30), grid_stencil((13, 41), STENCILS["5pt"])):
        for partition in ("auto", "column", "row"):
            r = jacobian_coloring(P, partition=partition)
            assert r.ncolors == 5
            check_coloring(P, r)
        assert hessian_coloring(P).ncolors == 5


@pytest.mark.parametrize("shape", [(3, 3, 3), (5, 6, 7), (12, 12, 12)])
def test_27pt_at_most_27(shape):
    P = grid_stencil(shape, STENCILS["27pt"])
    r = jacobian_coloring(P)
    assert r.ncolors <= 27
    check_coloring(P, r)
    assert_recovers_jacobian(P, r, np.random.default_rng(2))


@pytest.mark.parametrize("name", list(STENCILS))
def test_stencils_valid_and_no_worse_than_dsatur(name):
    offsets = STENCILS[name]
    shape = {2: (13, 17), 3: (6, 7, 9), 4: (5, 6, 4, 7)}[len(offsets[0])]
    P = grid_stencil(shape, offsets)
    rng = np.random.default_rng(3)
    for partition in ("column", "row"):
        r = jacobian_coloring(P, partition=partition)
        check_coloring(P, r)
        assert_recovers_jacobian(P, r, rng)
        assert r.ncolors <= jacobian_coloring(P, partition=partition, order="dsatur").ncolors
    if (P != P.T).nnz == 0:
        h = hessian_coloring(P)
        check_coloring(P, h)
        assert_recovers_hessian(P, h, rng)


def test_permuted_stencil_gets_a_valid_colouring():
    P = laplacian7(12, 12, 12)
    perm = np.random.default_rng(4).permutation(P.shape[0])
    Q = sp.csc_array(P[perm][:, perm])
    assert lattice_coloring(as_pattern(Q), transposed(as_pattern(Q)), 7) is None  # no grid
    rng = np.random.default_rng(5)
    for partition in ("auto", "column", "row"):
        r = jacobian_coloring(Q, partition=partition)
        check_coloring(Q, r)
        assert_recovers_jacobian(Q, r, rng)
    h = hessian_coloring(Q)
    check_coloring(Q, h)
    assert_recovers_hessian(Q, h, rng)


# --------------------------------------------------------- the lattice module


def test_grid_detection():
    for shape in [(10, 20, 30), (7, 7, 7), (3, 3, 3)]:
        P = as_pattern(laplacian7(*shape))
        _, m2, m3 = shape
        assert (1, m3, m2 * m3) in grid_strides(distinct_offsets(P), P.shape[1])
    P = as_pattern(grid_stencil((9, 11), STENCILS["13pt-2d"]))
    assert (1, 11) in grid_strides(distinct_offsets(P), P.shape[1])
    P = as_pattern(grid_stencil((4, 5, 6), STENCILS["27pt"]))
    assert (1, 6, 30) in grid_strides(distinct_offsets(P), P.shape[1])


def test_lattice_modulus():
    p, a = lattice_modulus(np.array(STENCILS["7pt"]), 1, 100)
    assert p == 7
    p, a = lattice_modulus(np.array(STENCILS["27pt"]), 1, 100)
    assert p == 27
    p, a = lattice_modulus(np.array(STENCILS["5pt"]), 1, 100)
    assert (p, a.tolist()) == (5, [1, 2])
    assert lattice_modulus(np.array(STENCILS["7pt"]), 1, 7) is None  # p < upper


@SETTINGS
@given(patterns(square=True), st.booleans())
def test_lattice_never_invalid(case, closed):
    P, _ = case
    A = as_pattern(P)
    if closed:
        A = as_pattern(A.toarray() | A.toarray().T)
    colors = lattice_coloring(A, transposed(A), 1, closed=closed)
    if colors is None:
        return
    dense = A.toarray()
    if closed:
        dense = dense | np.eye(A.shape[0], dtype=bool)
    assert_distance2(dense, colors)
