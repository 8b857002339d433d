"""Tests of anvil_llvm.ad.coloring: known optima, definitions, decompression, bad input."""

from __future__ import annotations

import dataclasses
import doctest
import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anvil_llvm.ad.coloring import (
    HESSIAN_ORDERS,
    JACOBIAN_ORDERS,
    check_coloring,
    hessian_coloring,
    jacobian_coloring,
)

# ---------------------------------------------------------------- patterns


def tridiagonal(n: int) -> sp.csc_array:
    return banded(n, 3)


def banded(n: int, b: int) -> sp.csc_array:
    """b nonzeros per (interior) row: offsets -(b//2) .. b - b//2 - 1."""
    lo = b // 2
    return sp.csc_array(
        sum(sp.eye_array(n, k=k, dtype=bool).astype(np.int8) for k in range(-lo, b - lo)) != 0
    )


def stencil(m: int, points: int = 5) -> sp.csc_array:
    """Pattern of the 5- or 9-point stencil on an m x m grid (n = m²)."""
    eye = sp.eye_array(m, dtype=np.int8, format="csr")
    tri = banded(m, 3).astype(np.int8)
    A = sp.kron(tri, tri) if points == 9 else sp.kron(eye, tri) + sp.kron(tri, eye)
    return sp.csc_array(A != 0)


def stencil3d(m: int) -> sp.csc_array:
    """Pattern of the 7-point stencil on an m x m x m grid (n = m³), C order."""
    eye = sp.eye_array(m, dtype=np.int8, format="csr")
    tri = banded(m, 3).astype(np.int8)
    A = sp.kron(sp.kron(eye, eye), tri) + sp.kron(sp.kron(eye, tri), eye)
    return sp.csc_array(A + sp.kron(sp.kron(tri, eye), eye) != 0)


def arrowhead(n: int) -> sp.csc_array:
    A = sp.lil_array((n, n), dtype=bool)
    A[0, :] = True
    A[:, 0] = True
    A.setdiag(True)
    return sp.csc_array(A)


def block_diagonal(nblocks: int, k: int) -> sp.csc_array:
    return sp.csc_array(sp.block_diag([np.ones((k, k), bool)] * nblocks) != 0)


# ------------------------------------------------- independent checkers (pure Python)


def neighbours(P: np.ndarray) -> list[set[int]]:
    return [set(np.flatnonzero(P[v])) - {v} for v in range(P.shape[0])]


def unique_for_uncolored(colors: np.ndarray) -> list[int]:
    """-1 means "in no seed": give each such vertex a fresh colour (a refinement)."""
    top = max(colors.max(initial=-1), 0) + 1
    return [c if c >= 0 else top + v for v, c in enumerate(colors.tolist())]


def assert_distance2(P: np.ndarray, colors: np.ndarray) -> None:
    """No two columns of one colour share a row; every nonempty column coloured."""
    for i in range(P.shape[0]):
        cs = [colors[j] for j in np.flatnonzero(P[i])]
        assert all(c >= 0 for c in cs), (i, cs)
        assert len(set(cs)) == len(cs), f"row {i}: colours {cs}"


def assert_star(adj: list[set[int]], colors: list[int]) -> None:
    """Distance-1, and every path on four vertices uses at least three colours."""
    for b in range(len(adj)):
        for c in adj[b]:
            assert colors[b] != colors[c], (b, c)
            for a in adj[b] - {c}:
                for d in adj[c] - {a, b}:
                    assert len({colors[a], colors[b], colors[c], colors[d]}) >= 3, (a, b, c, d)


def assert_acyclic(adj: list[set[int]], colors: list[int]) -> None:
    """Distance-1, and every cycle uses at least three colours (2-coloured subgraphs are forests)."""

    def root(parent: list[int], x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for c1, c2 in itertools.combinations(sorted(set(colors)), 2):
        parent = list(range(len(adj)))
        for u in range(len(adj)):
            for w in adj[u]:
                assert colors[u] != colors[w], (u, w)
                if u < w and {colors[u], colors[w]} == {c1, c2}:
                    ru, rw = root(parent, u), root(parent, w)
                    assert ru != rw, f"2-coloured cycle through edge ({u}, {w})"
                    parent[ru] = rw


def random_values(P: sp.csc_array, rng: np.random.Generator) -> sp.csc_array:
    V = sp.csc_array(P, dtype=np.float64)
    V.data = rng.standard_normal(V.nnz)
    return V


def assert_recovers_jacobian(P: sp.csc_array, r, rng: np.random.Generator) -> None:
    J = random_values(P, rng)
    S = r.seed_matrix()
    if r.partition == "column":
        D = r.decompress(J @ S)
    elif r.partition == "row":
        D = r.decompress((S.T @ J).toarray())
    else:
        D = r.decompress(J @ S[0], S[1].T @ J)
    assert D.shape == J.shape and (D != J).nnz == 0  # direct: exact
    assert r.tables.direct
    flat = _flat_products(r, J)
    np.testing.assert_array_equal(flat[r.tables.source], J.data)  # the gather table itself


def _flat_products(r, J: sp.csc_array) -> np.ndarray:
    S = r.seed_matrix()
    if r.partition == "column":
        return (J @ S).toarray().ravel(order="F")
    if r.partition == "row":
        return (S.T @ J).toarray().ravel()
    return np.concatenate(((J @ S[0]).toarray().ravel(order="F"), (S[1].T @ J).toarray().ravel()))


def assert_recovers_hessian(P: sp.csc_array, r, rng: np.random.Generator) -> None:
    U = sp.triu(random_values(P, rng))
    H = sp.csc_array(U + sp.triu(U, k=1).T)
    B = H @ r.seed_matrix()
    D = r.decompress(B)
    upper = sp.csc_array(sp.triu(H))
    scale = max(np.abs(H.data).max(initial=0.0), 1.0)
    assert np.abs((D - upper).data).max(initial=0.0) <= 1e-12 * scale
    # The documented program, run in pure Python on the tables, gives the same values.
    flat = B.toarray().ravel(order="F")
    values = np.zeros(r.pattern.nnz)
    t = r.tables
    target = np.arange(t.source.size) if t.direct else t.target
    subtract = np.full(t.source.size, -1) if t.direct else t.subtract
    for k in range(t.source.size):
        values[target[k]] = flat[t.source[k]]
        if subtract[k] >= 0:
            flat[subtract[k]] -= values[target[k]]
    np.testing.assert_allclose(values, D.data, rtol=0, atol=1e-12 * scale)


# ------------------------------------------------------------------ known optima


@pytest.mark.parametrize(
    ("pattern", "partition", "expected"),
    [
        (tridiagonal(50), "column", 3),
        (tridiagonal(50), "auto", 3),
        (stencil(30), "auto", 5),
        (stencil(1000), "column", 5),
        (stencil(30, 9), "auto", 9),
        (banded(60, 4), "column", 4),
        (banded(60, 7), "auto", 7),
        (block_diagonal(10, 4), "auto", 4),
        (arrowhead(40), "column", 40),
        (arrowhead(40), "row", 40),
        (stencil3d(12), "column", 7),
        (stencil3d(13), "auto", 7),
        (stencil3d(21), "row", 7),
    ],
    ids=[
        "tridiag",
        "tridiag-auto",
        "5pt-30",
        "5pt-1000",
        "9pt",
        "band4",
        "band7",
        "blocks",
        "arrow-col",
        "arrow-row",
        "7pt-3d-12",
        "7pt-3d-13-auto",
        "7pt-3d-21-row",
    ],
)
def test_jacobian_optimum(pattern, partition, expected):
    r = jacobian_coloring(pattern, partition=partition)
    assert r.ncolors == expected
    check_coloring(pattern, r)


def test_dense_row_jacobian_uses_two_row_colors():
    P = sp.lil_array((30, 30), dtype=bool)
    P.setdiag(True)
    P[0, :] = True
    r = jacobian_coloring(P)
    assert (r.partition, r.ncolors) == ("row", 2)
    assert_recovers_jacobian(sp.csc_array(P), r, np.random.default_rng(0))


def test_arrowhead_jacobian_bidirectional():
    P = arrowhead(50)
    r = jacobian_coloring(P)
    assert r.partition == "bidirectional" and r.ncolors <= 3
    assert jacobian_coloring(P, partition="bidirectional").ncolors <= 3
    assert jacobian_coloring(P, time_budget=0.0).ncolors <= 3  # not left to the clock
    check_coloring(P, r)
    assert_recovers_jacobian(P, r, np.random.default_rng(1))


@pytest.mark.parametrize(
    ("pattern", "method", "expected"),
    [
        (arrowhead(200), "star", 2),
        (arrowhead(200), "acyclic", 2),
        (tridiagonal(40), "star", 3),
        (tridiagonal(40), "acyclic", 2),
        (stencil(20), "star", 5),
        (stencil3d(12), "star", 7),
        (block_diagonal(5, 3), "star", 3),
    ],
)
def test_hessian_optimum(pattern, method, expected):
    r = hessian_coloring(pattern, method=method)
    assert r.ncolors == expected
    check_coloring(pattern, r)
    assert_recovers_hessian(pattern, r, np.random.default_rng(2))


def test_large_arrowhead_star_is_linear_time():
    # Quadratic algorithms take seconds here; the star colouring is O(n) in every order.
    P = arrowhead(100_000)
    for order in HESSIAN_ORDERS:
        assert hessian_coloring(P, order=order).ncolors == 2


def test_every_order_gives_valid_colorings():
    P = sp.csc_array(stencil(8) + sp.random_array((64, 64), density=0.03, rng=3) != 0)
    H = sp.csc_array((P + P.T) != 0)
    rng = np.random.default_rng(4)
    for order in JACOBIAN_ORDERS:
        for partition in ("column", "row", "bidirectional"):
            if order == "dsatur" and partition == "bidirectional":
                continue
            r = jacobian_coloring(P, partition=partition, order=order)
            assert r.order.startswith(order) or order == "best"
            check_coloring(P, r)
            assert_recovers_jacobian(P, r, rng)
    for order in HESSIAN_ORDERS:
        for method in ("star", "acyclic"):
            r = hessian_coloring(H, method=method, order=order)
            check_coloring(H, r)
            assert_recovers_hessian(H, r, rng)


# ------------------------------------------------------- random patterns (hypothesis)


@st.composite
def patterns(draw, square: bool = False):
    m = draw(st.integers(1, 24))
    n = m if square else draw(st.integers(1, 24))
    density = draw(st.sampled_from([0.0, 0.05, 0.15, 0.3, 0.6]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = rng.random((m, n)) < density
    for _ in range(draw(st.integers(0, 2))):
        P[rng.integers(m), :] = True
    for _ in range(draw(st.integers(0, 2))):
        P[:, rng.integers(n)] = True
    if square:
        P = P | P.T
        if draw(st.booleans()):
            P |= np.eye(n, dtype=bool)
    return P, rng


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(patterns())
def test_random_jacobian(case):
    P, rng = case
    for partition in ("auto", "column", "row", "bidirectional"):
        r = jacobian_coloring(P, partition=partition)
        check_coloring(P, r)
        if r.partition == "column":
            assert_distance2(P, r.column_colors)
        elif r.partition == "row":
            assert_distance2(P.T, r.row_colors)
        else:
            m, n = P.shape
            augmented = np.block([[np.zeros((n, n), bool), P.T], [P, np.zeros((m, m), bool)]])
            shift = max(r.column_colors.max(initial=-1), 0) + 1
            colors = np.concatenate(
                (r.column_colors, np.where(r.row_colors >= 0, r.row_colors + shift, -1))
            )
            assert_star(neighbours(augmented), unique_for_uncolored(colors))
        assert_recovers_jacobian(sp.csc_array(P), r, rng)


@SETTINGS
@given(patterns(square=True))
def test_random_hessian(case):
    P, rng = case
    star = hessian_coloring(P)
    acyclic = hessian_coloring(P, method="acyclic")
    for r, assert_property in ((star, assert_star), (acyclic, assert_acyclic)):
        check_coloring(P, r)
        assert_property(neighbours(P), unique_for_uncolored(r.column_colors))
        assert_recovers_hessian(sp.csc_array(P), r, rng)
    assert acyclic.ncolors <= max(star.ncolors, 1) + 1


# ------------------------------------------------------------ input and errors


@pytest.mark.parametrize(
    "make",
    [
        np.array,
        sp.coo_array,
        sp.csr_array,
        sp.lil_array,
        sp.dok_array,
        sp.csc_matrix,
        sp.coo_matrix,
        lambda A: A.astype(np.float32),
        lambda A: A.astype(np.int64),
    ],
)
def test_accepts_any_format(make):
    P = stencil(6).toarray()
    assert jacobian_coloring(make(P)).ncolors == 5
    assert hessian_coloring(make(P)).ncolors == 5


def test_stored_zeros_are_not_entries():
    A = sp.csc_array((np.array([1.0, 0.0]), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 2))
    assert jacobian_coloring(A).pattern.nnz == 1


def test_empty_pattern():
    r = jacobian_coloring(np.zeros((3, 4), bool))
    assert r.ncolors == 0
    assert r.decompress(np.zeros((3, 0))).nnz == 0
    assert hessian_coloring(np.zeros((3, 3), bool)).ncolors == 0


@pytest.mark.parametrize("shape", [(0, 0), (3, 0), (0, 3)])
@pytest.mark.parametrize("partition", ["auto", "column", "row", "bidirectional"])
@pytest.mark.parametrize("order", ["best", "natural", "dsatur", "smallest_last"])
def test_patterns_without_rows_or_columns(shape, partition, order):
    if order == "dsatur" and partition == "bidirectional":
        return
    P = np.zeros(shape, bool)
    r = jacobian_coloring(P, partition=partition, order=order)
    check_coloring(P, r)
    assert r.ncolors == 0 and r.pattern.shape == shape
    m, n = shape
    products = {"column": [np.zeros((m, 0))], "row": [np.zeros((0, n))],
                "bidirectional": [np.zeros((m, 0)), np.zeros((0, n))]}[r.partition]
    J = r.decompress(*products)
    assert J.shape == shape and J.nnz == 0


@pytest.mark.parametrize("method", ["star", "acyclic"])
@pytest.mark.parametrize("order", HESSIAN_ORDERS)
def test_hessian_of_no_variables(method, order):
    r = hessian_coloring(np.zeros((0, 0), bool), method=method, order=order)
    check_coloring(np.zeros((0, 0), bool), r)
    assert r.ncolors == 0 and r.decompress(np.zeros((0, 0))).shape == (0, 0)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: jacobian_coloring(np.ones(3)), ValueError, ["pattern", "2-D", "(3,)"]),
        (lambda: jacobian_coloring(np.full((2, 2), 2.0)), ValueError, ["pattern", "0/1", "2.0"]),
        (lambda: jacobian_coloring(np.array([["a"]])), TypeError, ["pattern", "dtype"]),
        (lambda: hessian_coloring(np.ones((2, 3))), ValueError, ["square", "(2, 3)"]),
        (lambda: hessian_coloring(np.triu(np.ones((3, 3)))), ValueError, ["symmetric", "(0, 1)"]),
        (lambda: jacobian_coloring(np.eye(2), order="fancy"), ValueError, ["order", "fancy"]),
        (lambda: jacobian_coloring(np.eye(2), partition="diag"), ValueError, ["partition"]),
        (lambda: hessian_coloring(np.eye(2), method="magic"), ValueError, ["method", "magic"]),
        (lambda: hessian_coloring(np.eye(2), order="dsatur"), ValueError, ["order", "dsatur"]),
        (
            lambda: jacobian_coloring(np.eye(2), partition="bidirectional", order="dsatur"),
            ValueError,
            ["dsatur", "bidirectional"],
        ),
    ],
)
def test_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_decompress_checks_shapes():
    r = jacobian_coloring(tridiagonal(5), partition="column")
    with pytest.raises(
        ValueError, match=r"compressed must have shape \(5, 3\); got shape \(5, 2\)"
    ):
        r.decompress(np.zeros((5, 2)))
    with pytest.raises(TypeError, match="1 product"):
        r.decompress(np.zeros((5, 3)), np.zeros((3, 5)))
    rows = jacobian_coloring(tridiagonal(5), partition="row")
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        rows.decompress(np.zeros((5, 3)))
    bi = jacobian_coloring(arrowhead(6), partition="bidirectional")
    with pytest.raises(TypeError, match="2 product"):
        bi.decompress(np.zeros((6, bi.ncolumn_colors)))
    with pytest.raises(TypeError, match="numeric"):
        r.decompress(np.full((5, 3), "x"))


def test_acyclic_colourings_that_are_star_colourings_decompress_directly():
    """An arrowhead's acyclic colouring (2 colours) is a star colouring too: one gather, no
    substitution; a path's (2 colours, where a star colouring needs 3) substitutes. Both
    recover the Hessian."""
    rng = np.random.default_rng(9)
    for P, direct in ((arrowhead(60), True), (tridiagonal(60), False)):
        r = hessian_coloring(P, method="acyclic")
        assert (r.method, r.ncolors, r.tables.direct) == ("acyclic", 2, direct)
        check_coloring(P, r)
        assert_recovers_hessian(P, r, rng)


def test_check_coloring_names_conflicting_columns():
    P = tridiagonal(6)
    r = jacobian_coloring(P, partition="column")
    bad = dataclasses.replace(r, column_colors=np.array([0, 0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match="columns 0 and 1 both have colour 0 and share row 0"):
        check_coloring(P, bad)
    h = hessian_coloring(P, method="acyclic")
    with pytest.raises(ValueError, match="cycle|share"):
        check_coloring(P, dataclasses.replace(h, column_colors=np.zeros(6, np.int64)))
    with pytest.raises(ValueError, match="does not match"):
        check_coloring(stencil(3), r)


def test_user_docs_examples_run():
    docs = Path(__file__).resolve().parents[2] / "docs" / "coloring.md"
    result = doctest.testfile(str(docs), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_hessian_lower_bounds():
    from anvil_llvm.ad.coloring.bounds import diagonal_mask, hessian_lower_bound
    from anvil_llvm.ad.coloring.patterns import adjacency, as_pattern

    def bound(H, method):
        H = as_pattern(H)
        graph = adjacency(H.indptr, H.indices)
        return hessian_lower_bound(graph, diagonal_mask(H.indptr, H.indices), method)

    path = tridiagonal(4).toarray()
    assert (bound(path, "star"), bound(path, "acyclic")) == (3, 2)
    assert bound(tridiagonal(3), "star") == 2  # no path on four vertices
    cycle = path.copy()
    cycle[0, 3] = cycle[3, 0] = True
    assert bound(cycle, "acyclic") == 3
    no_diagonal = path & ~np.eye(4, dtype=bool)
    assert bound(no_diagonal, "star") == 1  # products of distinct variables need no diagonal
    assert bound(np.zeros((0, 0)), "star") == 0


@pytest.mark.parametrize("seed", range(12))
def test_hessian_lower_bound_never_exceeds_the_colours(seed):
    from anvil_llvm.ad.coloring.bounds import diagonal_mask, hessian_lower_bound
    from anvil_llvm.ad.coloring.patterns import adjacency, as_pattern

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    A = rng.random((n, n)) < rng.uniform(0.02, 0.3)
    H = A | A.T
    np.fill_diagonal(H, rng.random(n) < 0.7)
    P = as_pattern(H)
    graph = adjacency(P.indptr, P.indices)
    for method in ("star", "acyclic"):
        lower = hessian_lower_bound(graph, diagonal_mask(P.indptr, P.indices), method)
        for order in ("natural", "largest_first", "best"):
            assert lower <= hessian_coloring(H, method=method, order=order).ncolors
