"""spjacobian and sphessian against the dense Jacobian and Hessian: the public problems, random
sparse functions, every partition and the unrolled variant, colour counts of the classic
patterns, composition, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from avcheck import fast
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
from anvil_llvm.ad import gradient, hessian, jacobian, sphessian, spjacobian, vmap
from anvil_llvm.benchmarks.problems import problem

RTOL = 1e-12


def assert_matches_dense(sparse, dense_values: np.ndarray) -> None:
    """The sparse values against a dense matrix: equal where stored, and nothing nonzero left
    out of the pattern."""
    dense_values = np.asarray(dense_values).reshape(sparse.shape)
    stored = sparse.toarray()
    scale = max(1.0, float(np.abs(dense_values).max(initial=0.0)))
    np.testing.assert_allclose(stored, dense_values, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("name, size", [("rosen", 100), ("bratu2d", 10), ("arrowhead", 1000),
                                        ("sumsq", 5)])
def test_public_problems_jacobian_of_the_gradient_and_hessian(name, size):
    p = problem(name, size)
    f = p.function()
    rng = np.random.default_rng(0)
    x = p.x0 + rng.uniform(-0.1, 0.1, p.n)
    if f.outputs[0].shape == ():
        dense = hessian(f)(x)
        for method, separate in (("star", False), ("star", True), ("acyclic", False)):
            H = sphessian(f, method=method, sep_uncompression=separate)
            assert_matches_dense(H.csc(x), np.triu(dense))
        assert_matches_dense(spjacobian(gradient(f)).csc(x), dense)
    else:
        for separate in (False, True):
            J = spjacobian(f, sep_uncompression=separate)
            assert_matches_dense(J.csc(x), jacobian(f)(x))


@st.composite
def sparse_functions(draw):
    """A function of x (n,) whose outputs read a few random elements each, through nonlinear
    ops: y_i = sin(x[a_i]) * x[b_i] + x[c_i] ** 2 / (2 + cos(x[a_i]))."""
    n = draw(st.integers(1, 12))
    m = draw(st.integers(1, 12))
    picks = [np.array(draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)))
             for _ in range(3)]
    a, b, c = picks

    def f(x):
        return av.sin(x[a]) * x[b] + x[c] ** 2 / (2.0 + av.cos(x[a]))
    return av.NumericalFunction("r", f, (av.Arg(n),)), n


@fast(10)
@given(sparse_functions(), st.sampled_from(["auto", "column", "row", "bidirectional"]),
       st.booleans(), st.booleans(), st.integers(0, 2 ** 31))
def test_random_sparse_jacobians(case, partition, unroll, separate, seed):
    f, n = case
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    J = spjacobian(f, partition=partition, unroll=unroll, sep_uncompression=separate)
    assert_matches_dense(J.csc(x), jacobian(f)(x))
    assert J.indices.dtype == np.int32 and J.indptr.dtype == np.int32


@fast(10)
@given(sparse_functions(), st.booleans(), st.sampled_from(["star", "acyclic"]), st.booleans(),
       st.integers(0, 2 ** 31))
def test_random_sparse_hessians(case, unroll, method, separate, seed):
    f, n = case
    scalar = av.NumericalFunction("s", lambda x: (f.inline(x) ** 2).sum(), (av.Arg(n),))
    x = np.random.default_rng(seed).uniform(-1, 1, n)
    H = sphessian(scalar, unroll=unroll, method=method, sep_uncompression=separate)
    assert_matches_dense(H.csc(x), np.triu(hessian(scalar)(x)))
    full = spjacobian(gradient(scalar)).csc(x).toarray()
    upper = H.csc(x).toarray()
    np.testing.assert_allclose(full, upper + np.triu(upper, 1).T, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case, colors", [
    ("tridiagonal", 3), ("stencil", 5), ("band5", 5), ("arrowhead", 2)])
def test_colour_counts_of_classic_patterns(case, colors):
    n = 30
    if case == "tridiagonal":
        f = av.NumericalFunction("t", lambda x: av.concatenate(
            x[:1] * x[1:2], x[1:-1] * (x[:-2] + x[2:]), x[-1:] * x[-2:-1]), (av.Arg(n),))
        got = spjacobian(f, partition="column").ncolors
    elif case == "stencil":
        got = spjacobian(problem("bratu2d", 10).function(), partition="column").ncolors
    elif case == "band5":
        f = av.NumericalFunction("b", lambda x: av.sin(av.pad(x, 2))[:-4] + av.pad(x, 2)[1:-3]
                                 + av.pad(x, 2)[2:-2] + av.pad(x, 2)[3:-1]
                                 + av.pad(x, 2)[4:] ** 2, (av.Arg(n),))
        got = spjacobian(f, partition="column").ncolors
    else:
        got = sphessian(problem("arrowhead", 1000).function()).ncolors
    assert got == colors


def test_vmap_of_a_sparse_function():
    f = av.NumericalFunction("f", lambda x: x[1:] * av.exp(x[:-1]), (av.Arg(6),))
    J = spjacobian(f)
    xs = np.random.default_rng(2).uniform(-1, 1, (4, 6))
    batched = vmap(J)(xs)
    for x, values in zip(xs, batched):
        np.testing.assert_allclose(values, J(x), rtol=RTOL)


def test_a_structurally_empty_jacobian():
    f = av.NumericalFunction("f", lambda x: (x > 0).astype(av.float64) + 1.0, (av.Arg(3),))
    J = spjacobian(f)
    assert J.nnz == 0 and J.shape == (3, 3)
    assert J.csc(np.ones(3)).nnz == 0


@pytest.mark.parametrize("call, error, match", [
    (lambda f, g: sphessian(f), ValueError, "one scalar"),
    (lambda f, g: spjacobian(f, argnum=1), TypeError, "int64"),
    (lambda f, g: spjacobian(f, argnum=5), ValueError, "out of range"),
    (lambda f, g: spjacobian(av.NumericalFunction("h", lambda x, y: x * y,
                                                  (av.Arg(2), av.Arg(2))), argnum=(0, 1)),
     TypeError, "one argument position"),
    (lambda f, g: spjacobian(f, partition="diagonal"), ValueError, "partition"),
    (lambda f, g: spjacobian(f, order="sideways"), ValueError, "order"),
    (lambda f, g: spjacobian(f, unroll=1), TypeError, "unroll"),
    (lambda f, g: sphessian(g, sep_uncompression="yes"), TypeError, "sep_uncompression"),
    (lambda f, g: sphessian(g, method="fastest"), ValueError, "method"),
])
def test_bad_input_names_the_argument(call, error, match):
    f = av.NumericalFunction("f", lambda x, k: x * k, (av.Arg(3), av.Arg(3, av.int64)))
    g = av.NumericalFunction("g", lambda x: (x * x).sum(), (av.Arg(3),))
    with pytest.raises(error, match=match):
        call(f, g)


def test_a_larger_stencil_compresses_to_five_products():
    m = 30
    p = problem("bratu2d", m)
    f = p.function()
    x = p.x0 + 0.01
    J = spjacobian(f)
    assert J.ncolors == 5 and J.nnz == 5 * m * m - 4 * m
    assert_matches_dense(J.csc(x), jacobian(f)(x))


def test_derivatives_through_the_substitution_of_an_acyclic_hessian():
    """The values of an acyclic colouring's Hessian (a sequential substitution pass) are
    differentiated, forward and reverse, and batched like any function."""
    f = av.NumericalFunction("c", lambda x: (x[1:] * x[:-1] ** 2).sum() + (av.sin(x) ** 3).sum(),
                             (av.Arg(6),))
    H = sphessian(f, method="acyclic")
    assert H.ncolors < sphessian(f).ncolors
    x = np.linspace(0.1, 0.9, 6)
    fd = np.stack([(H(x + 1e-6 * e) - H(x - 1e-6 * e)) / 2e-6 for e in np.eye(6)], axis=1)
    for mode in ("fwd", "rev"):
        np.testing.assert_allclose(jacobian(H, mode=mode)(x), fd, rtol=1e-6, atol=1e-8)
    xs = np.stack([x, x * 0.5, x + 0.2])
    for values, row in zip(vmap(H)(xs), xs):
        np.testing.assert_allclose(values, H(row), rtol=RTOL)


def test_the_colour_loop_writes_the_nonzeros_in_place():
    """By default no compressed matrix is stored: the workspace holds less than the products
    (ncolors x n doubles), which sep_uncompression=True stores before gathering."""
    f = problem("bratu2d", 30).function()
    placed = spjacobian(f, entrywise=False)
    separate = spjacobian(f, sep_uncompression=True)
    products = placed.ncolors * 30 * 30 * 8
    assert placed.work_bytes < products <= separate.work_bytes
