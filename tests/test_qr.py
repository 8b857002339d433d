"""anvil_llvm.numpy.linalg.qr (the QR op: Householder in native loops) and lstsq / pinv through
it: values against NumPy (LAPACK's signs), orthogonality, accuracy on ill-conditioned problems
against NumPy's own lstsq, derivatives (both modes, second order) against central differences
of NumPy's qr and against JAX, batching against a loop, sparsity against dense Jacobians, the
exported object's symbols, bad input."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad


def _qr_function(shape, dtype=av.float64):
    return av.NumericalFunction("qr", lambda a: tuple(anp.linalg.qr(a)), (av.Arg(shape, dtype),))


def _same_signs_where_defined(ours: np.ndarray, numpy: np.ndarray) -> np.ndarray:
    """NumPy's R with the sign of each row flipped where its diagonal is within rounding of zero
    (there the sign LAPACK picks depends on the last bits)."""
    d = np.diagonal(numpy, axis1=-2, axis2=-1)
    tiny = np.abs(d) < 1e-9 * max(np.abs(numpy).max(), 1.0)
    flip = np.where(tiny & (np.sign(d) != np.sign(np.diagonal(ours, axis1=-2, axis2=-1))),
                    -1.0, 1.0)
    return numpy * flip[..., :, None]


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 7), n=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_qr_gives_numpys_factors_with_its_signs(m, n, seed):
    a = np.random.default_rng(seed).normal(size=(m, n)) + 2.0 * np.eye(m, n)
    q, r = _qr_function((m, n))(a)
    k = min(m, n)
    assert q.shape == (m, k) and r.shape == (k, n)
    np.testing.assert_allclose(q @ r, a, atol=1e-13)
    np.testing.assert_allclose(q.T @ q, np.eye(k), atol=1e-13)
    assert np.all(np.tril(r, -1) == 0)
    reference = np.linalg.qr(a)
    r_numpy = _same_signs_where_defined(r, reference.R)
    np.testing.assert_allclose(r, r_numpy, atol=1e-12)
    np.testing.assert_allclose(q * np.sign(np.diag(r_numpy) * np.diag(reference.R))[None, :k],
                               reference.Q, atol=1e-12)


def test_mode_r_complete_and_a_batch_of_matrices():
    a = np.random.default_rng(1).normal(size=(3, 6, 4))
    r = av.NumericalFunction("r", lambda a: anp.linalg.qr(a, mode="r"), (av.Arg(a.shape),))(a)
    q, full = _qr_function(a.shape)(a)
    np.testing.assert_array_equal(r, full)
    reference = np.linalg.qr(a)
    np.testing.assert_allclose(q, reference.Q, atol=1e-13)
    np.testing.assert_allclose(full, reference.R, atol=1e-13)
    wide = np.swapaxes(a, -1, -2)
    complete = av.NumericalFunction("c", lambda a: tuple(anp.linalg.qr(a, mode="complete")),
                                    (av.Arg(wide.shape),))(wide)
    for ours, numpy in zip(complete, np.linalg.qr(wide, mode="complete")):
        np.testing.assert_allclose(ours, numpy, atol=1e-13)


def test_numpys_own_qr_dispatches_on_tensors():
    a = np.random.default_rng(4).normal(size=(5, 3))
    f = av.NumericalFunction("qr", lambda a: tuple(np.linalg.qr(a)), (av.Arg(a.shape),))
    for ours, numpy in zip(f(a), np.linalg.qr(a)):
        np.testing.assert_allclose(ours, numpy, atol=1e-13)


@pytest.mark.parametrize("shape", [(3, 0), (0, 3), (2, 0, 3)])
def test_empty_matrices_give_numpys_empty_factors(shape):
    q, r = _qr_function(shape)(np.zeros(shape))
    reference = np.linalg.qr(np.zeros(shape))
    assert (q.shape, r.shape) == (reference.Q.shape, reference.R.shape)


def test_float32_matrices_factor_in_float32():
    a = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    q, r = _qr_function(a.shape, av.float32)(a)
    assert q.dtype == r.dtype == np.float32
    reference = np.linalg.qr(a.astype(np.float64))
    np.testing.assert_allclose(q, reference.Q, atol=1e-5)
    np.testing.assert_allclose(r, reference.R, atol=1e-5)


def test_rank_deficient_matrices_still_factor_without_nan():
    """Householder needs no division by a column's norm: a zero column and a repeated one give
    finite factors with Q R = A and orthonormal Q, as LAPACK's."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 4))
    a[:, 1] = 0.0
    a[:, 3] = a[:, 0]
    q, r = _qr_function(a.shape)(a)
    assert np.isfinite(q).all() and np.isfinite(r).all()
    np.testing.assert_allclose(q @ r, a, atol=1e-13)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-13)
    np.testing.assert_allclose(np.abs(r), np.abs(np.linalg.qr(a).R), atol=1e-12)


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
    assert error < 1e7 * 1e-15 * 100
    assert error < 100 * max(np.abs(numpy - x_true).max(), 1e-12)
    assert np.abs(normal - x_true).max() > 100 * error     # what the normal equations give


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
    """d f / d x by central differences, shaped f(x).shape + x.shape."""
    columns = []
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        columns.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(columns, axis=-1).reshape(np.shape(f(x)) + x.shape)


def _packed_numpy(a):
    q, r = np.linalg.qr(a)
    return np.concatenate([q.ravel(), r.ravel()])


def _packed(a):
    q, r = anp.linalg.qr(a)
    return anp.concatenate([q.ravel(), r.ravel()])


@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 5)], ids=["tall", "square", "wide"])
def test_jacobians_of_q_and_r_in_both_modes_equal_central_differences_of_numpy(shape):
    """Forward mode runs the QR op's JVP rule, reverse mode its VJP rule; wide matrices go
    through the QR of their first columns."""
    a = np.random.default_rng(6).normal(size=shape)
    f = av.NumericalFunction("qr", _packed, (av.Arg(shape),))
    numeric = _central(_packed_numpy, a)
    for jacobian in (ad.jacfwd, ad.jacrev):
        np.testing.assert_allclose(jacobian(f)(a), numeric, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("shape", [(5, 3), (4, 4)], ids=["tall", "square"])
def test_jacobians_and_a_hessian_of_qr_equal_jax(shape):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(7)
    a, w = rng.normal(size=shape), rng.normal(size=shape[0] * shape[1] + shape[1] ** 2)

    def packed_jax(a):
        q, r = jnp.linalg.qr(a)
        return jnp.concatenate([q.ravel(), r.ravel()])
    f = av.NumericalFunction("qr", _packed, (av.Arg(shape),))
    expected = np.asarray(jax.jacfwd(packed_jax)(a))
    np.testing.assert_allclose(ad.jacfwd(f)(a), expected, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ad.jacrev(f)(a), expected, rtol=1e-11, atol=1e-12)
    loss = av.NumericalFunction("loss", lambda a: (_packed(a) ** 3 * w).sum(), (av.Arg(shape),))
    hessian = np.asarray(jax.hessian(lambda a: (packed_jax(a) ** 3 * w).sum())(a))
    np.testing.assert_allclose(ad.hessian(loss)(a), hessian, rtol=1e-10, atol=1e-11)


def test_gradient_of_lstsq_equals_central_differences_of_numpy():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=6)
    loss = av.NumericalFunction("loss", lambda a: (anp.linalg.lstsq(a, b)[0] ** 2).sum(),
                                (av.Arg(a.shape),))
    numeric = _central(lambda a: (np.linalg.lstsq(a, b, rcond=None)[0] ** 2).sum(), a)
    np.testing.assert_allclose(ad.gradient(loss)(a), numeric, rtol=1e-6, atol=1e-7)


def test_the_hessian_of_a_least_squares_fit_is_symmetric_and_matches_differences():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=5)

    def loss(v):
        x = anp.linalg.lstsq(a * v[0] + v[1], b)[0]
        return (x ** 3).sum()
    f = av.NumericalFunction("f", loss, (av.Arg(2),))
    v = np.array([1.2, 0.3])
    hessian = ad.hessian(f)(v)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-10)
    numeric = _central(lambda u: _central(lambda w: (np.linalg.lstsq(a * w[0] + w[1], b,
                                                                      rcond=None)[0] ** 3).sum(),
                                          u, 1e-4), v, 1e-4)
    np.testing.assert_allclose(hessian, numeric, rtol=1e-5, atol=1e-6)


def test_vmap_of_qr_and_its_gradient_equal_a_loop():
    a = np.random.default_rng(11).normal(size=(8, 4, 3))
    f = av.NumericalFunction("r", lambda a: anp.linalg.qr(a, mode="r"), (av.Arg((4, 3)),))
    batched = av.vmap(f, 0, 8)(a)
    np.testing.assert_allclose(batched, np.stack([f(x) for x in a]), rtol=1e-14, atol=1e-14)
    g = ad.gradient(av.NumericalFunction("g", lambda a: (anp.linalg.qr(a).Q ** 3).sum(),
                                         (av.Arg((4, 3)),)))
    np.testing.assert_allclose(av.vmap(g, 0, 8)(a), np.stack([g(x) for x in a]),
                               rtol=1e-12, atol=1e-13)


def test_sparsity_follows_the_columns_and_keeps_batches_apart():
    """Q[:, j] and R[:, j] read A's columns 0..j only, and nothing crosses batch matrices."""
    a = np.random.default_rng(12).normal(size=(2, 4, 3))
    f = av.NumericalFunction("qr", lambda a: _packed(a), (av.Arg(a.shape),))
    jacobian = ad.jacobian(f)(a).reshape(-1, a.size)
    dense = np.abs(jacobian) > 1e-12 * np.abs(jacobian).max()
    np.testing.assert_array_equal(ad.jacobian_sparsity(f).toarray(), dense)
    g = av.NumericalFunction("g", lambda a: (_packed(a) ** 2).sum(), (av.Arg(a.shape),))
    hessian = np.abs(ad.hessian(g)(a).reshape(a.size, a.size)) > 1e-12
    pattern = ad.hessian_sparsity(g).toarray()
    assert (pattern | ~hessian).all(), "a nonzero of the Hessian is missing from its pattern"
    assert not pattern[:12, 12:].any(), "the two batch matrices interact"


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_an_export_of_qr_and_its_gradient_calls_no_library(tmp_path):
    """No LAPACK or BLAS: the object's only undefined symbols are the C library's memory
    copies that LLVM may emit for its copies of the matrices."""
    f = av.NumericalFunction("qrls", lambda a: anp.linalg.qr(a).Q.sum()
                             + anp.linalg.lstsq(a, a[:, 0] ** 2)[0].sum(), (av.Arg((12, 5)),))
    lib = av.export([f, ad.gradient(f)], tmp_path / "build", "qr")
    listing = subprocess.run(["nm", "-u", str(lib.object)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert set(listing) - {"U"} <= {"memcpy", "memset"}


@pytest.mark.parametrize("mode, error", [("economic", ValueError), ("raw", NotImplementedError)])
def test_unsupported_modes_are_refused_by_name(mode, error):
    with pytest.raises(error, match="qr: mode must be"):
        av.NumericalFunction("q", lambda a: anp.linalg.qr(a, mode=mode), (av.Arg((3, 2)),))


def test_complete_q_of_a_tall_matrix_is_refused():
    with pytest.raises(NotImplementedError, match="qr: mode 'complete'.*shape \\(3, 2\\)"):
        av.NumericalFunction("q", lambda a: anp.linalg.qr(a, mode="complete"), (av.Arg((3, 2)),))


def test_a_vector_is_not_a_matrix():
    with pytest.raises(ValueError, match="qr: `a` must be a matrix .* got shape \\(3,\\)"):
        av.NumericalFunction("q", lambda a: anp.linalg.qr(a), (av.Arg(3),))


def test_the_op_refuses_wide_matrices_by_shape():
    from anvil_llvm.ir.ops import QR
    from anvil_llvm.ir.uop import UOp
    from anvil_llvm.tensor import Tensor
    with pytest.raises(ValueError, match="qr: the matrix must have at least as many rows"):
        av.NumericalFunction("q", lambda a: Tensor(UOp(QR, (a.node,))), (av.Arg((2, 3)),))
