"""NumPy's API on traced Tensors (`anvil_llvm.numpy` and NumPy's own functions dispatched to
it): values against NumPy itself, compiled and interpreted; derivatives against finite
differences; vmap against a Python loop; errors for what is not supported."""
from __future__ import annotations

import numpy as np
import pytest
from avcheck import ULP64, Tol, arrays, check, fast
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

LOOSE = Tol(1e-12, 1e-13)       # composites: a few roundings away from NumPy's own kernels
# Sums of products summed in another order than NumPy's: off by a few eps times the sum of the
# terms' magnitudes, whatever the result's (values within 20: at most 6 terms of 400 here).
SUMS = Tol(1e-14, 4e-12)

# (id, function of NumPy's API applied alike to arrays and Tensors (or a pair: ours, SciPy's),
#  shape, tolerance)
UNARY = [
    ("sin", np.sin, (4,), ULP64), ("exp", np.exp, (2, 3), ULP64),
    ("abs", np.abs, (5,), None), ("negative", np.negative, (3,), None),
    ("square", np.square, (4,), None), ("sign", np.sign, (6,), None),
    ("log2", lambda x: np.log2(np.abs(x) + 0.5), (5,), LOOSE),
    ("log10", lambda x: np.log10(np.abs(x) + 0.5), (5,), LOOSE),
    ("exp2", lambda x: np.exp2(x / 10.0), (5,), ULP64), ("cbrt", np.cbrt, (5,), LOOSE),
    ("deg2rad", np.deg2rad, (3,), ULP64),
    ("floor", np.floor, (6,), None), ("ceil", np.ceil, (6,), None),
    ("trunc", np.trunc, (6,), None), ("rint", lambda x: np.rint(x * 2.0), (6,), None),
    ("round", lambda x: np.round(x, 2), (6,), None), ("around", np.around, (6,), None),
    ("erf", (anp.erf, special.erf), (6,), ULP64), ("erfc", (anp.erfc, special.erfc), (6,), ULP64),
    ("clip", lambda x: np.clip(x, -1.5, 2.0), (6,), None),
    ("sum", lambda x: np.sum(x, axis=1), (3, 4), ULP64),
    ("mean", lambda x: np.mean(x, axis=0, keepdims=True), (3, 4), ULP64),
    ("max", lambda x: np.max(x, axis=-1), (3, 4), None), ("amin", np.amin, (3, 4), None),
    ("prod", lambda x: np.prod(x / 10.0, axis=0), (3, 2), ULP64),
    ("var", lambda x: np.var(x, axis=0, ddof=1), (5, 3), LOOSE),
    ("std", lambda x: np.std(x), (2, 5), LOOSE),
    ("logsumexp", (lambda x: anp.logsumexp(x * 10.0, axis=1),
                   lambda x: special.logsumexp(x * 10.0, axis=1)), (3, 4), LOOSE),
    ("expit", (lambda x: anp.expit(x * 10.0), lambda x: special.expit(x * 10.0)), (6,), LOOSE),
    ("cumsum", lambda x: np.cumsum(x, axis=1), (3, 4), ULP64),
    ("cumprod", lambda x: np.cumprod(x / 10.0), (2, 3), ULP64),
    ("add.reduce", lambda x: np.add.reduce(x, axis=1), (3, 4), ULP64),
    ("add.accumulate", lambda x: np.add.accumulate(x), (5,), ULP64),
    ("norm", np.linalg.norm, (5,), LOOSE),
    ("norm-1-axis", lambda x: np.linalg.norm(x, 1, axis=0), (3, 4), ULP64),
    ("norm-inf-matrix", lambda x: np.linalg.norm(x, np.inf), (3, 4), None),
    ("norm-fro", lambda x: np.linalg.norm(x, "fro"), (3, 4), LOOSE),
    ("squeeze", np.squeeze, (1, 3, 1), None),
    ("expand_dims", lambda x: np.expand_dims(x, (0, 2)), (2, 3), None),
    ("swapaxes", lambda x: np.swapaxes(x, 0, 2), (2, 3, 4), None),
    ("moveaxis", lambda x: np.moveaxis(x, [0, 1], [2, 0]), (2, 3, 4), None),
    ("flip", lambda x: np.flip(x, 1), (2, 3), None), ("flip-all", np.flip, (2, 3), None),
    ("roll", lambda x: np.roll(x, -4, axis=1), (2, 3), None),
    ("roll-flat", lambda x: np.roll(x, 2), (2, 3), None),
    ("tile", lambda x: np.tile(x, (2, 1, 2)), (2, 3), None),
    ("repeat", lambda x: np.repeat(x, [1, 0, 2], axis=1), (2, 3), None),
    ("repeat-flat", lambda x: np.repeat(x, 2), (2, 2), None),
    ("take", lambda x: np.take(x, [[2, 0], [1, 1]], axis=1), (2, 3), None),
    ("triu", lambda x: np.triu(x, -1), (2, 4, 3), None), ("tril", np.tril, (3, 3), None),
    ("diag-of-matrix", lambda x: np.diag(x, 1), (3, 4), None),
    ("diag-of-vector", lambda x: np.diag(x, -2), (3,), None),
    ("trace", lambda x: np.trace(x, -1), (4, 3), SUMS),
    ("outer", lambda x: np.outer(x[0], x[1]), (2, 3), None),
    ("tensordot", lambda x: np.tensordot(x, x, ((0, 2), (0, 2))), (2, 3, 2), SUMS),
    ("einsum", lambda x: np.einsum("ijk,jk->ij", x, x[0]), (2, 3, 2), SUMS),
    ("einsum-implicit", lambda x: np.einsum("ij,ij", x, x), (2, 3), SUMS),
    ("dot", lambda x: np.dot(x, x.T), (2, 3), SUMS),
    ("hstack", lambda x: np.hstack([x, x * 2.0]), (2, 3), None),
    ("vstack", lambda x: np.vstack([x[0], x[1]]), (2, 3), None),
    ("where", lambda x: np.where(x > 0, x, 0.5 * x), (5,), None),
    ("stack", lambda x: np.stack([x, -x], axis=1), (3,), None),
    ("concatenate", lambda x: np.concatenate([x, x[:1]]), (3,), None),
]
BINARY = [
    ("hypot", np.hypot, ULP64), ("logaddexp", np.logaddexp, LOOSE),
    ("maximum", np.maximum, None), ("arctan2", np.arctan2, ULP64),
    ("multiply", np.multiply, None), ("power", lambda a, b: np.power(np.abs(a), b / 50.0), ULP64),
]


@pytest.mark.parametrize("name, fn, shape, tol", UNARY, ids=[u[0] for u in UNARY])
@fast(8)
@given(data=st.data())
def test_numpy_functions_trace_and_match_numpy(name, fn, shape, tol, data):
    x = data.draw(arrays(shape, elements=st.floats(-20.0, 20.0)))
    ours, reference = fn if isinstance(fn, tuple) else (fn, fn)
    check(lambda m, x: ours(x), x, tol=tol, numpy_op=lambda m, x: reference(x))


# NumPy 2's np.linalg names of the array API (the last axes are the matrices or vectors)
ARRAY_API = [
    ("vector_norm", lambda x: np.linalg.vector_norm(x), (2, 3), LOOSE),
    ("vector_norm-axes", lambda x: np.linalg.vector_norm(x, axis=(0, 2), ord=1, keepdims=True),
     (2, 3, 2), ULP64),
    ("vector_norm-inf", lambda x: np.linalg.vector_norm(x, axis=-1, ord=np.inf), (3, 4), None),
    ("vector_norm-3", lambda x: np.linalg.vector_norm(x, axis=0, ord=3), (4, 2), LOOSE),
    ("matrix_norm", lambda x: np.linalg.matrix_norm(x), (2, 3, 4), LOOSE),
    ("matrix_norm-1", lambda x: np.linalg.matrix_norm(x, ord=1, keepdims=True), (2, 3, 3),
     ULP64),
    ("diagonal", lambda x: np.linalg.diagonal(x, offset=1), (2, 3, 4), None),
    ("trace", lambda x: np.linalg.trace(x, offset=-1), (2, 4, 3), SUMS),
    ("cross", lambda x: np.linalg.cross(x[0], x[1]), (2, 4, 3), SUMS),
    ("vecdot", lambda x: np.linalg.vecdot(x[0], x[1]), (2, 3, 4), SUMS),
    ("outer", lambda x: np.linalg.outer(x[0], x[1]), (2, 3), None),
    ("matmul", lambda x: np.linalg.matmul(x, x.T), (2, 3), SUMS),
    ("tensordot", lambda x: np.linalg.tensordot(x, x, axes=2), (2, 3), SUMS),
    ("matrix_transpose", lambda x: np.linalg.matrix_transpose(x), (2, 3, 4), None),
    ("np.diagonal-axes", lambda x: np.diagonal(x, -1, 2, 0), (3, 2, 4), None),
    ("np.trace-axes", lambda x: np.trace(x, 1, 1, 2), (2, 3, 4), SUMS),
]


@pytest.mark.skipif(not hasattr(np.linalg, "vector_norm"), reason="NumPy 2's np.linalg names")
@pytest.mark.parametrize("name, fn, shape, tol", ARRAY_API, ids=[a[0] for a in ARRAY_API])
@fast(8)
@given(data=st.data())
def test_the_array_api_names_of_linalg_trace_and_match_numpy(name, fn, shape, tol, data):
    x = data.draw(arrays(shape, elements=st.floats(-20.0, 20.0)))
    check(lambda m, x: fn(x), x, tol=tol)


def test_the_linalg_namespace_shows_its_api_and_refuses_bad_input():
    assert "np" not in dir(anp.linalg) and "vector_norm" in dir(anp.linalg)
    assert anp.linalg.LinAlgError is np.linalg.LinAlgError
    with pytest.raises(ValueError, match="outer: expected two 1-D arrays"):
        av.NumericalFunction("f", lambda x: anp.linalg.outer(x, x), (av.Arg((2, 2)),))
    with pytest.raises(ValueError, match="repeated axis"):
        av.NumericalFunction("f", lambda x: anp.linalg.vector_norm(x, axis=(0, -2)),
                             (av.Arg((2, 2)),))
    with pytest.raises(ValueError, match="axis1 and axis2 cannot be the same"):
        av.NumericalFunction("f", lambda x: anp.diagonal(x, 0, 1, -2), (av.Arg((2, 2, 2)),))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        av.NumericalFunction("f", lambda x: anp.linalg.diagonal(x), (av.Arg(3),))


@pytest.mark.parametrize("name, fn, tol", BINARY, ids=[b[0] for b in BINARY])
@fast(8)
@given(data=st.data())
def test_binary_numpy_functions_trace_and_match_numpy(name, fn, tol, data):
    x, y = (data.draw(arrays((2, 3), elements=st.floats(-50.0, 50.0))) for _ in range(2))
    check(lambda m, x, y: fn(x, y), x, y, tol=tol)


def test_the_namespace_matches_numpy_on_special_values():
    big = np.array([3e200, -4e200, np.inf, 0.0, np.nan, 1e-300])
    check(lambda m, x, y: (anp.hypot(x, y), anp.logaddexp(x, y), anp.softplus(x),
                           anp.sigmoid(x)),
          big, big[::-1].copy(), tol=LOOSE,
          numpy_op=lambda m, x, y: (np.hypot(x, y), np.logaddexp(x, y),
                                    np.logaddexp(0.0, x), special.expit(x)))
    for x in (np.array([-np.inf, -np.inf]), np.array([1000.0, 1000.0])):
        check(lambda m, x: anp.logsumexp(x), x, tol=ULP64,
              numpy_op=lambda m, x: special.logsumexp(x))


def test_creation_functions_give_constants_of_the_traced_function():
    def make(m, x):
        return (x + anp.zeros(3) + anp.ones_like(x) * 2.0, anp.eye(3, k=1) @ x,
                anp.arange(3.0) * x, anp.linspace(0.0, 1.0, 3) + x, anp.full((3,), 7.0) - x,
                anp.linspace(x[0], x[1], 4), anp.full((2, 3), x[2]))
    x = np.array([0.5, -1.0, 2.0])
    check(make, x, tol=ULP64, numpy_op=lambda m, x: (
        x + np.zeros(3) + np.ones_like(x) * 2.0, np.eye(3, k=1) @ x, np.arange(3.0) * x,
        np.linspace(0.0, 1.0, 3) + x, np.full((3,), 7.0) - x, np.linspace(x[0], x[1], 4),
        np.full((2, 3), x[2])))


SMOOTH = [
    ("var", lambda x: anp.var(x, axis=0)), ("std", lambda x: anp.std(x, axis=1, ddof=1)),
    ("logsumexp", lambda x: anp.logsumexp(x, axis=1)), ("softplus", anp.softplus),
    ("expit", anp.expit), ("hypot", lambda x: anp.hypot(x, x[::-1] + 0.3)),
    ("logaddexp", lambda x: anp.logaddexp(x, 2.0 * x[::-1])), ("norm", anp.linalg.norm),
    ("cumprod", lambda x: anp.cumprod(x, axis=0)), ("cumsum", lambda x: anp.cumsum(x * x)),
    ("einsum", lambda x: anp.einsum("ij,kj->ik", x, x)),
    ("tensordot", lambda x: anp.tensordot(x, anp.sin(x), 2)),
    ("log2-cbrt", lambda x: anp.log2(x * x + 1.0) + anp.cbrt(x + 5.0)),
    ("diag-roll", lambda x: anp.diag(anp.roll(x[0], 1)) * anp.trace(x[:, :2])),
    ("erf", lambda x: anp.erf(x) + anp.erfc(x * x)),
    ("floor", lambda x: anp.floor(x * 3.0) * x + anp.round(x, 1) * x),
]


@pytest.mark.parametrize("name, fn", SMOOTH, ids=[s[0] for s in SMOOTH])
def test_gradients_match_central_differences(name, fn):
    x = np.array([[0.3, -1.1, 0.8], [1.4, 0.2, -0.6]])
    f = av.NumericalFunction("f", lambda x: (fn(x) * np.arange(1.0, fn(x).size + 1).reshape(
        fn(x).shape)).sum(), (av.Arg(x.shape),))
    g = ad.gradient(f)(x)
    h = 1e-6
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        fd[i] = (f(x + e) - f(x - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_vmap_of_namespace_functions_matches_a_python_loop():
    def per_row(r):
        return anp.var(r) + anp.logsumexp(r) + anp.einsum("i,i", r, anp.flip(r))
    xs = np.random.default_rng(3).normal(size=(5, 4))
    batched = av.NumericalFunction("v", av.vmap(per_row), (av.Arg(xs.shape),))
    single = av.NumericalFunction("s", per_row, (av.Arg(4),))
    np.testing.assert_allclose(batched(xs), [single(r) for r in xs], rtol=1e-14)


@pytest.mark.parametrize("use, exception, match", [
    (lambda x: np.signbit(x), NotImplementedError,
     r"np\.signbit is not supported on traced Tensors; the nearest supported: .*anvil_llvm\.numpy\.sign"),
    (lambda x: np.fft.fft(x), NotImplementedError, r"np\.fft\.fft is not supported"),
    (lambda x: np.linalg.norm(x.reshape(1, 3), 2), NotImplementedError, "singular values"),
    (lambda x: np.multiply(x, 2, out=np.empty(3)), TypeError, "takes no out="),
    (lambda x: np.add(x, 1.0, dtype=np.float32), TypeError, "takes no keyword arguments"),
    (lambda x: np.squeeze(x, 0), ValueError, "cannot select an axis to squeeze"),
    (lambda x: np.einsum("ij,j", x, x), ValueError, "subscript 'ij' for an operand of shape"),
    (lambda x: np.einsum("...i->i", x.reshape(1, 3) * x.reshape(3, 1)), ValueError,
     "add '...' to the output"),
    (lambda x: np.clip(x, None, None), ValueError, "cannot both be None"),
    (lambda x: np.tensordot(x, x, 2), ValueError, "axes=2 does not fit"),
    (lambda x: np.triu(x), ValueError, "at least 2 dimensions"),
    (np.asarray, TypeError, "a traced Tensor has no NumPy value while tracing"),
], ids=["signbit", "fft", "norm-2-matrix", "out", "dtype", "squeeze", "einsum-shape",
        "einsum-ellipsis", "clip", "tensordot", "triu-1d", "asarray"])
def test_what_is_not_supported_says_so(use, exception, match):
    with pytest.raises(exception, match=match):
        av.NumericalFunction("f", use, (av.Arg(3),))


# ---- linear algebra ---------------------------------------------------------------------------
def _well_conditioned(data, shape):
    m = data.draw(arrays(shape, elements=st.floats(-1.0, 1.0)))
    return m + 2.0 * shape[-1] * np.eye(shape[-1])


@pytest.mark.parametrize("a_shape, b_shape", [
    ((1, 1), (1,)), ((3, 3), (3,)), ((4, 4), (4, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 4)),
    ((3, 3), (2, 3, 1)),
], ids=["1x1", "vector", "matrix", "batched-a", "batched", "batched-b"])
@fast(6)
@given(data=st.data())
def test_solve_and_inv_match_numpy(a_shape, b_shape, data):
    a = _well_conditioned(data, a_shape)
    b = data.draw(arrays(b_shape, elements=st.floats(-5.0, 5.0)))
    check(lambda m, a, b: (np.linalg.solve(a, b), np.linalg.inv(a)), a, b, tol=LOOSE)


def test_solve_pivots_where_a_zero_leads():
    a = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    b = np.array([1.0, 2.0, 3.0])
    check(lambda m, a, b: np.linalg.solve(a, b), a, b, tol=LOOSE)


def test_solve_of_a_singular_matrix_gives_inf_or_nan_and_no_crash():
    f = av.NumericalFunction("f", anp.linalg.solve, (av.Arg((2, 2)), av.Arg(2)))
    out = f(np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([1.0, 1.0]))
    assert not np.isfinite(out).all()


def test_solve_derivatives_match_finite_differences():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4)) + 4.0 * np.eye(4)
    b = rng.normal(size=(4, 2))

    def loss(a, b):
        x = anp.linalg.solve(a, b)
        return (x * x).sum() + anp.linalg.inv(a)[0, 1]
    f = av.NumericalFunction("loss", loss, (av.Arg(a.shape), av.Arg(b.shape)))
    grads = ad.gradient(f, argnums=(0, 1))(a, b)
    for arg, (value, grad) in enumerate(zip((a, b), grads)):
        fd = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            e = np.zeros_like(value)
            e[i] = 1e-6
            args = [a, b]
            args[arg] = value + e
            up = f(*args)
            args[arg] = value - e
            fd[i] = (up - f(*args)) / 2e-6
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # second order: the Hessian in b against differences of the gradient
    g = ad.gradient(f, argnums=1)
    h = ad.hessian(f, argnums=1)(a, b).reshape(b.size, b.size)
    fd = np.array([((g(a, b + e) - g(a, b - e)) / 2e-6).ravel()
                   for e in np.eye(b.size).reshape((b.size,) + b.shape) * 1e-6])
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)


def test_vmap_of_solve_matches_a_python_loop():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(5, 3, 3)) + 3.0 * np.eye(3)
    b = rng.normal(size=(5, 3))
    batched = av.NumericalFunction("v", av.vmap(anp.linalg.solve), (av.Arg(a.shape),
                                                                   av.Arg(b.shape)))
    np.testing.assert_allclose(batched(a, b), [np.linalg.solve(m, r) for m, r in zip(a, b)],
                               rtol=1e-12)


@pytest.mark.parametrize("use, match", [
    (lambda x: anp.linalg.solve(x.reshape(1, 3), x), "must be square"),
    (lambda x: anp.linalg.solve(anp.eye(2), x), r"`b` of shape \(3, 1\) does not fit"),
    (lambda x: anp.linalg.inv(x), "must be square"),
], ids=["non-square", "mismatch", "inv-vector"])
def test_solve_refuses_shapes_that_do_not_fit(use, match):
    with pytest.raises(ValueError, match=match):
        av.NumericalFunction("f", use, (av.Arg(3),))


def test_sparsity_of_solve_covers_the_dense_derivatives_exactly_per_batch():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(2, 3, 3)) + 3.0 * np.eye(3)
    b = rng.normal(size=(2, 3, 2))
    z = np.concatenate([a.ravel(), b.ravel()])

    def f(z):
        x = anp.linalg.solve(z[:18].reshape(2, 3, 3), z[18:].reshape(2, 3, 2))
        return x[:, :, 0] * x[:, 0, 1:2] + z[18:21]
    fn = av.NumericalFunction("f", f, (av.Arg(z.size),))
    dense = (ad.jacobian(fn)(z) != 0).reshape(-1, z.size)
    pattern = ad.jacobian_sparsity(fn).toarray()
    np.testing.assert_array_equal(pattern, dense)
    g = av.NumericalFunction("g", lambda z: (f(z) ** 2).sum(), (av.Arg(z.size),))
    hessian = ad.hessian(g)(z) != 0
    h_pattern = ad.hessian_sparsity(g).toarray()
    assert (h_pattern | ~hessian).all(), "a nonzero of the Hessian is missing from its pattern"
    # the two batch matrices never interact
    assert not h_pattern[:9, 9:18].any() and not h_pattern[:9, 27:].any()


def test_clip_of_special_values_is_numpys_bits():
    """Every bound pair of -inf, -1, -0.0, +0.0, 1, inf, NaN or None against the same values:
    NumPy's bits (between two bounds a tie of zeros keeps `a`; with one bound clip is NumPy's
    maximum or minimum, which keeps the bound)."""
    special = [-np.inf, -1.0, -0.0, 0.0, 1.0, np.inf, np.nan]
    x = np.array(special)
    for lo in special + [None]:
        for hi in special + [None]:
            if lo is None and hi is None:
                continue
            f = av.NumericalFunction("clip", lambda a: anp.clip(a, lo, hi), (av.Arg(x.size),))
            np.testing.assert_array_equal(f(x).view(np.uint64), np.clip(x, lo, hi).view(np.uint64),
                                          err_msg=f"clip(x, {lo}, {hi})")
