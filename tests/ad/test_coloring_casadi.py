"""anvil_llvm.ad.coloring never uses more colours than CasADi's colourings."""

from __future__ import annotations

import pytest
import scipy.sparse as sp
from hypothesis import given
from test_coloring import SETTINGS, arrowhead, patterns, stencil, tridiagonal

from anvil_llvm.ad.coloring import hessian_coloring, jacobian_coloring

casadi = pytest.importorskip("casadi")


def casadi_sparsity(P) -> casadi.Sparsity:
    P = sp.csc_array(P)
    return casadi.Sparsity(*P.shape, P.indptr.tolist(), P.indices.tolist())


def casadi_counts(P, symmetric: bool) -> dict[str, int]:
    """Colour counts of CasADi (columns = ``Sparsity.size2()`` of the colouring pattern)."""
    if not sp.csc_array(P).nnz:
        return {}
    S = casadi_sparsity(P)
    if symmetric:
        return {"star": S.star_coloring().size2(), "star2": S.star_coloring2().size2()}
    return {"column": S.uni_coloring().size2(), "row": S.T.uni_coloring().size2()}


def assert_not_worse(P, symmetric: bool) -> None:
    theirs = casadi_counts(P, symmetric)
    if not theirs:
        return
    if symmetric:
        assert hessian_coloring(P).ncolors <= min(theirs.values()), theirs
        return
    column = jacobian_coloring(P, partition="column").ncolors
    row = jacobian_coloring(P, partition="row").ncolors
    assert column <= theirs["column"] and row <= theirs["row"], (column, row, theirs)
    assert jacobian_coloring(P).ncolors <= min(theirs.values())


@SETTINGS
@given(patterns())
def test_random_jacobian_not_worse_than_casadi(case):
    assert_not_worse(case[0], symmetric=False)


@SETTINGS
@given(patterns(square=True))
def test_random_hessian_not_worse_than_casadi(case):
    assert_not_worse(case[0], symmetric=True)


@pytest.mark.parametrize(
    ("pattern", "symmetric"),
    [
        (stencil(30), False),  # bratu2d Jacobian, m = 30
        (stencil(30), True),  # bratu2d Hessian
        (tridiagonal(1000), True),  # rosen Hessian
        (arrowhead(1000), True),  # arrowhead Hessian, n = 1e3
        (arrowhead(300), False),
    ],
    ids=["bratu2d-jac", "bratu2d-hess", "rosen-hess", "arrowhead-hess", "arrowhead-jac"],
)
def test_public_problems_not_worse_than_casadi(pattern, symmetric):
    assert_not_worse(pattern, symmetric)


def test_where_casadi_is_beaten():
    # bratu2d: 5 colours where CasADi's greedy natural order needs 7; arrowhead: 3 products
    # (bidirectional) where CasADi's column and row colourings need n.
    P = stencil(30)
    assert casadi_counts(P, False)["column"] == 7
    assert jacobian_coloring(P).ncolors == 5
    A = arrowhead(300)
    assert min(casadi_counts(A, False).values()) == 300
    assert jacobian_coloring(A).ncolors == 3
    assert hessian_coloring(arrowhead(1000)).ncolors == 2
