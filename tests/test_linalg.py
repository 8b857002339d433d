"""Linear algebra beyond solve (`anvil_llvm.numpy.linalg`, ir/ops/linalg.py): values against
NumPy and SciPy, compiled and interpreted; derivatives against central differences; vmap
against a Python loop; sparsity patterns against dense Jacobians; what NumPy raises for."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla
from avcheck import Tol, arrays, check, fast
from hypothesis import given
from hypothesis import strategies as st

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

LOOSE = Tol(1e-11, 1e-12)       # factorisations in another order than LAPACK's


def _well_conditioned(data, shape):
    m = data.draw(arrays(shape, elements=st.floats(-1.0, 1.0)))
    return m + 2.0 * shape[-1] * np.eye(shape[-1])


def _spd(data, shape):
    m = data.draw(arrays(shape, elements=st.floats(-1.0, 1.0)))
    return m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])


def _central_differences(f, args: list, arg: int, h: float = 1e-6) -> np.ndarray:
    """d f / d args[arg] (f scalar) by central differences."""
    value = args[arg]
    out = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        e = np.zeros_like(value)
        e[i] = h
        up = [*args[:arg], value + e, *args[arg + 1:]]
        down = [*args[:arg], value - e, *args[arg + 1:]]
        out[i] = (f(*up) - f(*down)) / (2 * h)
    return out


def _check_gradients(loss, *args, rtol=1e-6, atol=1e-8):
    """The gradient of a scalar loss in every argument against central differences, and its
    Hessian in the first against differences of the gradient."""
    f = av.NumericalFunction("loss", loss, tuple(av.Arg(a.shape) for a in args))
    argnums = tuple(range(len(args)))
    grads = ad.gradient(f, argnums=argnums)(*args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for arg, grad in enumerate(grads):
        np.testing.assert_allclose(grad, _central_differences(f, list(args), arg),
                                   rtol=rtol, atol=atol)
    g = ad.gradient(f, argnums=0)
    h = ad.hessian(f, argnums=0)(*args).reshape(args[0].size, args[0].size)
    fd = np.stack([_central_differences(lambda x, *rest, i=i: g(x, *rest)[i], list(args), 0).ravel()
                   for i in np.ndindex(args[0].shape)])
    np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-6)


# ---- det, slogdet ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4)], ids=["1x1", "3x3", "batched"])
@fast(6)
@given(data=st.data())
def test_det_and_slogdet_match_numpy(shape, data):
    a = data.draw(arrays(shape, elements=st.floats(-2.0, 2.0)))
    a = a + (0.5 - data.draw(st.integers(0, 1))) * np.eye(shape[-1])
    check(lambda m, a: (*np.linalg.slogdet(a), np.linalg.det(a)), a, tol=LOOSE)


def test_det_of_a_singular_matrix_is_zero_and_slogdet_minus_inf():
    f = av.NumericalFunction("f", lambda a: (*anp.linalg.slogdet(a), anp.linalg.det(a)),
                             (av.Arg((3, 3)),))
    for a in (np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]]),
              np.zeros((3, 3)), np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [0.0, 5.0, 4.0]])):
        sign, logabsdet, det = f(a)
        expected = np.linalg.slogdet(a)
        assert (sign, logabsdet, det) == (expected.sign, expected.logabsdet, 0.0)


def test_slogdet_pivots_and_counts_row_swaps():
    a = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    check(lambda m, a: tuple(np.linalg.slogdet(a)), a, tol=LOOSE)
    check(lambda m, a: np.linalg.det(a), np.eye(4)[[1, 0, 3, 2]].copy(), tol=LOOSE)


def test_det_and_slogdet_derivatives_match_finite_differences():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 3)) + 2.0 * np.eye(3)
    _check_gradients(lambda a: anp.linalg.det(a) + anp.linalg.slogdet(a * a)[1], a)


# ---- cholesky, triangular solves ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (2, 3, 3)], ids=["1x1", "4x4", "batched"])
@fast(6)
@given(data=st.data())
def test_cholesky_matches_numpy_and_reads_the_lower_triangle(shape, data):
    a = _spd(data, shape)
    upper_noise = np.triu(data.draw(arrays(shape, elements=st.floats(-9.0, 9.0))), 1)
    check(lambda m, a: (np.linalg.cholesky(a), np.linalg.cholesky(a, upper=True)),
          a + upper_noise, tol=LOOSE,
          numpy_op=lambda m, x: (np.linalg.cholesky(a), np.linalg.cholesky(a, upper=True)))


def test_cholesky_of_a_matrix_not_positive_definite_is_nan():
    f = av.NumericalFunction("f", anp.linalg.cholesky, (av.Arg((2, 3, 3)),))
    good = np.eye(3) * 2.0
    for bad in (np.diag([1.0, -1.0, 1.0]), np.diag([1.0, 0.0, 1.0]), np.full((3, 3), np.nan)):
        out = f(np.stack([good, bad]))
        np.testing.assert_allclose(out[0], np.linalg.cholesky(good), rtol=1e-15)
        assert np.isnan(out[1]).all()
        if not np.isnan(bad).any():
            with pytest.raises(np.linalg.LinAlgError):
                np.linalg.cholesky(bad)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [0, 1])
@pytest.mark.parametrize("b_shape", [(3,), (3, 2)], ids=["vector", "matrix"])
def test_solve_triangular_and_cho_solve_match_scipy(lower, trans, b_shape):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 3)) + 4.0 * np.eye(3)
    b = rng.normal(size=b_shape)
    f = av.NumericalFunction("f", lambda a, b: anp.linalg.solve_triangular(
        a, b, trans=trans, lower=lower), (av.Arg(a.shape), av.Arg(b.shape)))
    np.testing.assert_allclose(f(a, b), sla.solve_triangular(a, b, trans=trans, lower=lower),
                               rtol=1e-13)
    spd = a @ a.T
    factor = sla.cholesky(spd, lower=lower)
    g = av.NumericalFunction("g", lambda c, b: anp.linalg.cho_solve((c, lower), b),
                             (av.Arg(a.shape), av.Arg(b.shape)))
    np.testing.assert_allclose(g(factor, b), sla.cho_solve((factor, lower), b), rtol=1e-12)


def test_cholesky_and_cho_solve_derivatives_match_finite_differences():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(3, 3))
    a = m @ m.T + 3.0 * np.eye(3) + np.triu(rng.normal(size=(3, 3)), 1)   # upper: not read
    b = rng.normal(size=(3, 2))

    def loss(a, b):
        l = anp.linalg.cholesky(a)
        x = anp.linalg.cho_solve((l, True), b)
        return (x * x).sum() + (l * anp.sin(l)).sum() + anp.linalg.solve_triangular(
            a, b, trans=1)[1, 0]
    _check_gradients(loss, a, b)


# ---- eigh, lstsq, pinv ----------------------------------------------------------------------------
def _signed(v: np.ndarray) -> np.ndarray:
    """Eigenvectors with their entry of largest magnitude positive (our convention)."""
    largest = np.take_along_axis(v, np.argmax(np.abs(v), axis=-2)[..., None, :], axis=-2)
    return v * np.sign(largest)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (5, 5), (3, 4, 4), (12, 12)])
def test_eigh_matches_numpy_and_reads_one_triangle(shape):
    rng = np.random.default_rng(sum(shape))
    m = rng.normal(size=shape)
    a = m + np.swapaxes(m, -1, -2)
    noise = np.triu(rng.normal(size=shape), 1)
    f = av.NumericalFunction("f", lambda x, y: (*anp.linalg.eigh(x), anp.linalg.eigvalsh(x),
                                                *np.linalg.eigh(y, UPLO="U")),
                             (av.Arg(shape), av.Arg(shape)))
    w, v, w2, w3, v3 = f(a + noise, a - np.swapaxes(noise, -1, -2))
    expected_w, expected_v = np.linalg.eigh(a)
    for values in (w, w2, w3):
        np.testing.assert_allclose(values, expected_w, rtol=1e-12, atol=1e-12)
    for vectors in (v, v3):
        np.testing.assert_allclose(vectors, _signed(expected_v), rtol=1e-10, atol=1e-10)


def test_eigh_of_a_diagonal_and_of_repeated_eigenvalues():
    f = av.NumericalFunction("f", lambda a: tuple(anp.linalg.eigh(a)), (av.Arg((3, 3)),))
    w, v = f(np.diag([3.0, -1.0, 2.0]))
    np.testing.assert_array_equal(w, [-1.0, 2.0, 3.0])
    np.testing.assert_array_equal(v, np.eye(3)[:, [1, 2, 0]])
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    a = q @ np.diag([1.0, 1.0, 4.0]) @ q.T
    w, v = f(a)
    np.testing.assert_allclose(w, [1.0, 1.0, 4.0], rtol=1e-13)
    np.testing.assert_allclose(v @ np.diag(w) @ v.T, a, atol=1e-13)
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-14)


def test_eigh_derivatives_match_finite_differences():
    rng = np.random.default_rng(6)
    m = rng.normal(size=(3, 3))
    a = m + m.T + np.diag([0.0, 3.0, 6.0])           # well separated eigenvalues

    def loss(a):
        w, v = anp.linalg.eigh(a)
        return (w * anp.arange(1.0, 4.0)).sum() + (v * anp.sin(v)).sum()
    _check_gradients(loss, a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("a_shape, b_shape", [((6, 3), (6,)), ((5, 2), (5, 3)), ((2, 4), (2,))],
                         ids=["tall", "tall-matrix", "wide"])
def test_lstsq_and_pinv_match_numpy(a_shape, b_shape):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
    f = av.NumericalFunction("f", lambda a, b: (*anp.linalg.lstsq(a, b), anp.linalg.pinv(a)),
                             (av.Arg(a_shape), av.Arg(b_shape)))
    x, residuals, rank, s, pinv = f(a, b)
    ex, eres, erank, es = np.linalg.lstsq(a, b)
    np.testing.assert_allclose(x, ex, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(residuals, eres, rtol=1e-10)
    assert rank == erank and rank.dtype == np.int64
    np.testing.assert_allclose(s, es, rtol=1e-10)
    np.testing.assert_allclose(pinv, np.linalg.pinv(a), rtol=1e-10, atol=1e-12)


def test_lstsq_derivatives_match_finite_differences():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=5)
    _check_gradients(lambda a, b: (anp.linalg.lstsq(a, b)[0] ** 2).sum(), a, b)


# ---- vmap, sparsity, errors -----------------------------------------------------------------------
def test_vmap_of_the_factorisations_matches_a_python_loop():
    rng = np.random.default_rng(4)
    m = rng.normal(size=(5, 3, 3))
    a = m @ np.swapaxes(m, 1, 2) + 3.0 * np.eye(3)
    b = rng.normal(size=(3,))

    def f(a, b):
        return (anp.linalg.det(a), anp.linalg.cholesky(a),
                anp.linalg.cho_solve((anp.linalg.cholesky(a), True), b))
    batched = av.NumericalFunction("v", av.vmap(f, in_axes=(0, None)),
                                   (av.Arg(a.shape), av.Arg(b.shape)))
    for got, expected in zip(batched(a, b), zip(*[
            (np.linalg.det(x), np.linalg.cholesky(x), np.linalg.solve(x, b)) for x in a])):
        np.testing.assert_allclose(got, np.stack(expected), rtol=1e-12)


@pytest.mark.parametrize("name, f", [
    ("slogdet", lambda z: anp.linalg.slogdet(z[:18].reshape(2, 3, 3))[1] * z[18:20]),
    ("cholesky", lambda z: anp.linalg.cholesky(z[:18].reshape(2, 3, 3)) + z[18]),
    ("trisolve", lambda z: anp.linalg.solve_triangular(z[:18].reshape(2, 3, 3),
                                                       z[18:24].reshape(2, 3, 1), lower=True)),
    ("eigh", lambda z: anp.linalg.eigh(z[:18].reshape(2, 3, 3))[1] * z[18]),
    ("trisolve-T", lambda z: anp.linalg.solve_triangular(z[:18].reshape(2, 3, 3),
                                                         z[18:24].reshape(2, 3, 1), trans=1)),
])
def test_sparsity_matches_the_dense_derivatives_and_keeps_batches_apart(name, f):
    rng = np.random.default_rng(5)
    m = rng.normal(size=(2, 3, 3))
    z = np.concatenate([(m @ np.swapaxes(m, 1, 2) + 3.0 * np.eye(3)).ravel(),
                        rng.normal(size=6)])
    fn = av.NumericalFunction("f", f, (av.Arg(z.size),))
    # nonzero beyond rounding: cholesky's rule leaves noise of ~1e-17 at exact zeros
    jacobian = ad.jacobian(fn)(z).reshape(-1, z.size)
    dense = np.abs(jacobian) > 1e-12 * np.abs(jacobian).max()
    np.testing.assert_array_equal(ad.jacobian_sparsity(fn).toarray(), dense)
    g = av.NumericalFunction("g", lambda z: (f(z) ** 2).sum(), (av.Arg(z.size),))
    hessian = ad.hessian(g)(z) != 0
    pattern = ad.hessian_sparsity(g).toarray()
    assert (pattern | ~hessian).all(), "a nonzero of the Hessian is missing from its pattern"
    assert not pattern[:9, 9:18].any(), "the two batch matrices interact"


@pytest.mark.parametrize("use, exception, match", [
    (lambda x: anp.linalg.det(x.reshape(1, 4)), ValueError, "det: `a` must be square"),
    (lambda x: anp.linalg.slogdet(x), ValueError, "slogdet: `a` must be square"),
    (lambda x: anp.linalg.cholesky(x.reshape(4, 1)), ValueError, "cholesky: `a` must be square"),
    (lambda x: anp.linalg.cho_solve(x.reshape(2, 2), x[:2]), TypeError, "pair"),
    (lambda x: anp.linalg.solve_triangular(x.reshape(2, 2), x[:3]), ValueError,
     r"`b` of shape \(3, 1\) does not fit"),
    (lambda x: anp.linalg.solve_triangular(x.reshape(2, 2), x[:2], trans="X"), ValueError,
     "`trans`"),
    (lambda x: anp.linalg.eigh(x.reshape(2, 2), UPLO="X"), ValueError, "`UPLO`"),
    (lambda x: anp.linalg.eigvalsh(x), ValueError, "eigvalsh: `a` must be square"),
    (lambda x: anp.linalg.lstsq(x.reshape(2, 2), x), ValueError, "lstsq: `a` .m, n. and `b`"),
    (lambda x: anp.linalg.pinv(x.reshape(2, 2), rcond=1e-3), NotImplementedError, "cut-off"),
], ids=["det", "slogdet", "cholesky", "cho_solve", "solve_triangular", "trans", "UPLO",
        "eigvalsh", "lstsq", "pinv"])
def test_shapes_that_do_not_fit_are_refused(use, exception, match):
    with pytest.raises(exception, match=match):
        av.NumericalFunction("f", use, (av.Arg(4),))


# ---- einsum: ellipses and repeated indices --------------------------------------------------------
@pytest.mark.parametrize("subscripts, shapes", [
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("iij->ji", [(3, 3, 2)]), ("ijji->", [(2, 3, 3, 2)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i...,i...->...", [(3, 2, 2), (3, 1, 2)]), ("bii->b", [(2, 3, 3)]), ("...", [(2, 3)]),
    ("...ii->...i", [(2, 3, 3)]),
])
def test_einsum_with_ellipses_and_repeated_indices_matches_numpy(subscripts, shapes):
    rng = np.random.default_rng(len(subscripts))
    xs = [rng.normal(size=s) for s in shapes]
    check(lambda m, *ts: np.einsum(subscripts, *ts), *xs, tol=Tol(1e-13, 1e-14))


def test_einsum_trace_and_diagonal_differentiate():
    a = np.random.default_rng(9).normal(size=(3, 3))
    _check_gradients(lambda a: anp.einsum("ii", a) * anp.einsum("ii->i", a * a).sum()
                     + anp.einsum("...ij,...ji", a, a), a)


def test_vmap_of_einsum_with_an_ellipsis_matches_a_python_loop():
    x = np.random.default_rng(10).normal(size=(4, 2, 3, 3))
    f = av.NumericalFunction("v", av.vmap(lambda x: anp.einsum("...ii->...", x)),
                             (av.Arg(x.shape),))
    np.testing.assert_allclose(f(x), [np.einsum("...ii->...", m) for m in x], rtol=1e-14)


# ---- indexing: several integer arrays, constant boolean masks -------------------------------------
ROWS, COLS = np.array([0, 2, 1, 2]), np.array([[1], [3]])
MASK = np.array([[True, False, True, True], [False, False, True, False],
                 [True, True, False, False]])


@pytest.mark.parametrize("key", [
    (ROWS, ROWS), (ROWS, slice(None), ROWS), (slice(None), ROWS[:2, None], np.array([0, 4])),
    (0, ROWS, ROWS), (ROWS, 1, ROWS), (COLS - 1, ROWS[:2]), (MASK,),
    (Ellipsis, np.array([True, False, True, True, False])),
    (MASK, 2), (None, ROWS, ROWS), (ROWS, None, ROWS), (slice(1, 3), MASK[0]),
    (np.zeros((3, 4), bool),), ([True, False, True],),
], ids=["pair", "separated", "broadcast", "int-first", "int-between", "column-row", "mask-2d",
        "ellipsis-mask", "mask-int", "new-first", "new-between", "slice-mask", "empty-mask",
        "list-mask"])
def test_advanced_indexing_matches_numpy(key):
    x = np.random.default_rng(11).normal(size=(3, 4, 5))
    check(lambda m, x: x[key], x)


def test_advanced_indexing_differentiates_and_vmaps():
    x = np.random.default_rng(12).normal(size=(3, 4))
    _check_gradients(lambda x: (anp.sin(x[ROWS[:3], np.array([0, 0, 3])]) * x[MASK][:3]).sum()
                     + (x[ROWS, 1:2] ** 2).sum(), x)
    xs = np.random.default_rng(13).normal(size=(2, 3, 4))
    f = av.NumericalFunction("v", av.vmap(lambda x: x[ROWS, ROWS] + x[MASK][:4]),
                             (av.Arg(xs.shape),))
    np.testing.assert_array_equal(f(xs), [x[ROWS, ROWS] + x[MASK][:4] for x in xs])


def test_a_mask_of_the_wrong_shape_is_refused():
    with pytest.raises(IndexError, match=r"boolean index of shape \(2,\) does not match"):
        av.NumericalFunction("f", lambda x: x[np.array([True, False])], (av.Arg(3),))
