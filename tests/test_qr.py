"""anvil_llvm.numpy.linalg.qr, and lstsq / pinv through it: values against NumPy (up to the
signs LAPACK chooses), orthogonality, accuracy on ill-conditioned problems against NumPy's
own lstsq, derivatives against central differences, batching against a loop, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad


def _qr_function(shape):
    return av.NumericalFunction("qr", lambda a: tuple(anp.linalg.qr(a)), (av.Arg(shape),))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 7), n=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_qr_factors_a_with_orthonormal_q_and_the_r_numpy_finds_up_to_signs(m, n, seed):
    a = np.random.default_rng(seed).normal(size=(m, n))
    q, r = _qr_function((m, n))(a)
    k = min(m, n)
    assert q.shape == (m, k) and r.shape == (k, n)
    np.testing.assert_allclose(q @ r, a, atol=1e-13)
    np.testing.assert_allclose(q.T @ q, np.eye(k), atol=1e-13)
    assert np.all(np.tril(r, -1) == 0) and np.all(np.diag(r) > 0)
    reference = np.linalg.qr(a).R
    signs = np.sign(np.diag(reference))[:, None]
    np.testing.assert_allclose(r, signs * reference, atol=1e-12)


def test_mode_r_and_a_batch_of_matrices():
    a = np.random.default_rng(1).normal(size=(3, 6, 4))
    r = av.NumericalFunction("r", lambda a: anp.linalg.qr(a, mode="r"), (av.Arg(a.shape),))(a)
    q, full = _qr_function(a.shape)(a)
    np.testing.assert_array_equal(r, full)
    for k in range(3):
        np.testing.assert_allclose(q[k] @ full[k], a[k], atol=1e-13)


def _ill_conditioned(m: int, n: int, cond: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(m, n)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return (u * np.logspace(0, -np.log10(cond), n)) @ v.T


def test_lstsq_on_an_ill_conditioned_problem_is_as_accurate_as_numpy():
    """cond(a) = 1e7: QR's error is about cond * eps (1e-9), the normal equations' cond^2 *
    eps (of order one)."""
    a = _ill_conditioned(30, 6, 1e7)
    x_true = np.linspace(1.0, 2.0, 6)
    b = a @ x_true
    f = av.NumericalFunction("ls", lambda a, b: anp.linalg.lstsq(a, b)[0],
                             (av.Arg(a.shape), av.Arg(b.shape)))
    ours = f(a, b)
    numpy = np.linalg.lstsq(a, b, rcond=None)[0]
    normal = np.linalg.solve(a.T @ a, a.T @ b)
    error = np.abs(ours - x_true).max()
    assert error < 1e-6
    assert error < 100 * max(np.abs(numpy - x_true).max(), 1e-12)
    assert np.abs(normal - x_true).max() > 100 * error     # what the old form gave


@pytest.mark.parametrize("shape", [(7, 3), (3, 5)])
def test_pinv_and_least_norm_solutions_equal_numpy(shape):
    a = np.random.default_rng(5).normal(size=shape)
    pinv = av.NumericalFunction("p", anp.linalg.pinv, (av.Arg(shape),))(a)
    np.testing.assert_allclose(pinv, np.linalg.pinv(a), atol=1e-12)
    b = np.arange(1.0, shape[0] + 1.0)
    x = av.NumericalFunction("l", lambda a, b: anp.linalg.lstsq(a, b)[0],
                             (av.Arg(shape), av.Arg(shape[0])))(a, b)
    np.testing.assert_allclose(x, np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-12)


def _central(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def test_gradients_of_r_and_of_lstsq_equal_central_differences():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=6)
    w = rng.normal(size=(3, 3))

    def r_loss(a):
        return (anp.linalg.qr(a).R * w).sum()

    def ls_loss(a):
        x = anp.linalg.lstsq(a, b)[0]
        return (x * x).sum()
    for loss, reference in ((r_loss, lambda a: (np.sign(np.diag(np.linalg.qr(a).R))[:, None]
                                                 * np.linalg.qr(a).R * w).sum()),
                            (ls_loss, lambda a: (np.linalg.lstsq(a, b, rcond=None)[0] ** 2)
                             .sum())):
        g = ad.gradient(av.NumericalFunction("loss", loss, (av.Arg(a.shape),)))
        np.testing.assert_allclose(g(a), _central(reference, a), rtol=1e-6, atol=1e-7)


def test_the_hessian_of_a_least_squares_fit_is_symmetric_and_matches_differences():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=5)

    def loss(v):
        x = anp.linalg.lstsq(a * v[0] + v[1], b)[0]
        return (x ** 3).sum()
    f = av.NumericalFunction("f", loss, (av.Arg(2),))
    v = np.array([1.2, 0.3])
    H = ad.hessian(f)(v)
    g = ad.gradient(f)
    np.testing.assert_allclose(H, H.T, atol=1e-10)
    numeric = np.stack([_central(lambda u: g(u)[i], v, 1e-5) for i in range(2)])
    np.testing.assert_allclose(H, numeric, rtol=1e-5, atol=1e-6)


def test_vmap_of_qr_equals_a_loop():
    a = np.random.default_rng(11).normal(size=(8, 4, 3))
    f = av.NumericalFunction("r", lambda a: anp.linalg.qr(a, mode="r"), (av.Arg((4, 3)),))
    batched = av.vmap(f, 0, 8)(a)
    np.testing.assert_allclose(batched, np.stack([f(x) for x in a]), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("mode, error", [("economic", ValueError), ("complete", NotImplementedError),
                                         ("raw", NotImplementedError)])
def test_unsupported_modes_are_refused_by_name(mode, error):
    with pytest.raises(error, match="qr: mode"):
        av.NumericalFunction("q", lambda a: anp.linalg.qr(a, mode=mode), (av.Arg((3, 2)),))


def test_a_vector_is_not_a_matrix():
    with pytest.raises(ValueError, match="qr: `a` must be a matrix"):
        av.NumericalFunction("q", lambda a: anp.linalg.qr(a), (av.Arg(3),))
