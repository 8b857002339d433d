"""The examples of the seed documents, ported to anvil_llvm, asserting the values they print.

000: anvil's automatic differentiation page (gradient, jacobian, hessian, argnum).
003: Nabla's autodiff example (grad, value_and_grad, argnums, jvp, vjp, jacrev, jacfwd, Hessians
by composition, a regression loss and gradient descent). Nabla's tensors are float32 there; so are
the ports, and results keep that dtype. The calls of our operators are the document's, except
where Nabla's API is not ours: `nb.jvp(g, (x,), (v,))` and `nb.vjp(f, x)` evaluate at once
(JAX's forms; ours return functions), and `nb.grad` of a shape-(1,) output (jax.grad refuses it, as
we do).

Not run: 000's sparse section (spjacobian, sphessian: not in anvil_llvm.ad yet).
"""
from __future__ import annotations

import numpy as np
import pytest

import anvil_llvm as av
from anvil_llvm.ad import (grad, gradient, hessian, jacfwd, jacobian, jacrev, jvp, value_and_grad,
                           vjp)

F32 = np.float32


def assert_printed(actual, printed, dtype=np.float64) -> None:
    """`actual` has the document's dtype and equals the values it prints (exactly: every printed
    value here is exact in binary floating point)."""
    actual = np.asarray(actual)
    assert actual.dtype == dtype
    np.testing.assert_array_equal(actual, np.asarray(printed, dtype=dtype), strict=True)


# ---- 000: the anvil AD page -------------------------------------------------------------------
def test_000_gradient_of_cost():
    @av.numerical_function("cost", 5)
    def cost(x: av.Tensor) -> av.Tensor:
        return (x * x).sum()

    cost_grad = gradient(cost)
    assert isinstance(cost_grad, av.NumericalFunction) and cost_grad.name == "cost_grad"
    assert cost_grad.output_shapes == [(5,)]
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert_printed(cost_grad(x), [2.0, 4.0, 6.0, 8.0, 10.0])


def test_000_jacobian_of_f():
    fn = av.NumericalFunction("f", lambda x: av.Tensor.stack(x[0] * x[1], x[1] ** 2),
                              (av.Arg(2),))
    jac = jacobian(fn)
    assert jac.output_shapes == [(2, 2)]
    assert_printed(jac(np.array([3.0, 4.0])), [[4.0, 3.0], [0.0, 8.0]])


def test_000_hessian():
    cost = av.NumericalFunction("cost", lambda x: x[0] ** 2 + x[0] * x[1] + x[1] ** 2,
                                (av.Arg(2),))
    H = hessian(cost)
    assert H.output_shapes == [(2, 2)]
    assert_printed(H(np.array([1.0, 1.0])), [[2.0, 1.0], [1.0, 2.0]])


def test_000_argnum():
    fn = av.NumericalFunction("f", lambda x, p: x * p, (av.Arg(3), av.Arg(3)))
    jac_x = jacobian(fn, argnum=0)
    jac_p = jacobian(fn, argnum=1)
    x, p = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    assert_printed(jac_x(x, p), np.diag(p))
    assert_printed(jac_p(x, p), np.diag(x))


# ---- 003: Nabla's transforms --------------------------------------------------------------------
def test_003_grad_of_a_cubic():
    # Nabla differentiates f of shape (1,); our gradient takes scalar functions (a ValueError
    # otherwise), so the port sums the single element.
    def f(x):
        return (x ** 3 + 2.0 * x ** 2 - 5.0 * x + 3.0).sum()

    x = np.array([2.0], dtype=F32)
    assert 3 * 4 + 4 * 2 - 5 == 15
    assert_printed(grad(f)(x), [15.0], F32)              # Nabla grad: Tensor([15.] : f32[1])


def test_003_value_and_grad():
    def quadratic(x):
        return (x * x).sum()

    value, g = value_and_grad(quadratic)(np.array([1.0, 2.0, 3.0], dtype=F32))
    assert_printed(value, 14.0, F32)                      # Tensor(14. : f32[])
    assert_printed(g, [2.0, 4.0, 6.0], F32)               # Tensor([2. 4. 6.] : f32[3])


def test_003_argnums():
    def weighted_sum(w, x):
        return (w * x).sum()

    w, x = np.array([1.0, 2.0], dtype=F32), np.array([3.0, 4.0], dtype=F32)
    assert_printed(grad(weighted_sum, argnums=0)(w, x), [3.0, 4.0], F32)
    assert_printed(grad(weighted_sum, argnums=1)(w, x), [1.0, 2.0], F32)
    gw, gx = grad(weighted_sum, argnums=(0, 1))(w, x)
    assert_printed(gw, [3.0, 4.0], F32)
    assert_printed(gx, [1.0, 2.0], F32)


def test_003_jvp():
    def g(x):
        r0 = (x[0] ** 2 + x[1]).reshape((1,))
        r1 = (x[0] * x[1]).reshape((1,))
        return av.concatenate([r0, r1], axis=0)

    g_jvp = jvp(av.NumericalFunction("g", g, (av.Arg(2, F32),)))
    x = np.array([3.0, 2.0], dtype=F32)
    output, jvp_val = g_jvp(x, np.array([1.0, 0.0], dtype=F32))
    assert_printed(output, [11.0, 6.0], F32)              # g([3, 2]) = [11. 6.]
    assert_printed(jvp_val, [6.0, 2.0], F32)              # first column of J
    _, jvp_val2 = g_jvp(x, np.array([0.0, 1.0], dtype=F32))
    assert_printed(jvp_val2, [1.0, 3.0], F32)             # second column


def test_003_vjp():
    A = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]], dtype=F32)
    mat_fn = av.NumericalFunction("mat_fn", lambda x: A @ x, (av.Arg(3, F32),))
    x = np.array([1.0, 2.0, 3.0], dtype=F32)
    assert_printed(mat_fn(x), [7.0, 9.0], F32)
    pullback = vjp(mat_fn)
    assert_printed(pullback(x, np.array([1.0, 0.0], dtype=F32)), [1.0, 0.0, 2.0], F32)
    assert_printed(pullback(x, np.array([0.0, 1.0], dtype=F32)), [0.0, 3.0, 1.0], F32)


@pytest.mark.parametrize("transform", [jacrev, jacfwd], ids=["jacrev", "jacfwd"])
def test_003_jacobian_of_a_nonlinear_map(transform):
    A = np.array([[2.0, -1.0], [1.0, 3.0]], dtype=F32)

    def h(x):
        return A @ x + av.sin(x)

    x = np.array([1.0, 0.5], dtype=F32)
    J = transform(h)(x)
    assert J.dtype == F32
    np.testing.assert_array_equal(np.round(J, 4), np.array([[2.5403, -1.0], [1.0, 3.8776]], F32))
    np.testing.assert_allclose(J, A + np.diag(np.cos(x)), rtol=1e-6)


HESSIANS = {
    "jacfwd(grad(f))": lambda f: jacfwd(grad(f)),
    "jacrev(grad(f))": lambda f: jacrev(grad(f)),
    "jacrev(jacfwd(f))": lambda f: jacrev(jacfwd(f)),
    "jacfwd(jacrev(f))": lambda f: jacfwd(jacrev(f)),
}


@pytest.mark.parametrize("method", HESSIANS)
def test_003_hessians_by_composition(method):
    def scalar_fn(x):
        return x[0] ** 2 * x[1] + x[1] ** 3

    x = np.array([2.0, 3.0], dtype=F32)
    f = av.NumericalFunction("scalar_fn", scalar_fn, (av.Arg(2, F32),))
    assert_printed(f(x), 39.0, F32)
    assert_printed(HESSIANS[method](scalar_fn)(x), [[6.0, 4.0], [4.0, 18.0]], F32)


# Section 8 draws its targets with Nabla's own generator (nb.gaussian), which NumPy cannot
# reproduce; the port uses noise-free targets. The noise term of the gradient, (0.2/n) X^T eps, has a
# standard deviation of about 0.2/sqrt(50) = 0.03 per entry, so the printed values are compared to
# within 0.1 (over 3 sigma), and our results exactly against NumPy's closed form.
def regression_data():
    np.random.seed(42)
    X = np.random.randn(50, 3).astype(F32)
    w_true = np.array([[2.0], [-1.0], [0.5]], dtype=F32)
    return X, X @ w_true


def linear_regression_loss(w, b, X, y):
    predictions = X @ w + b
    residuals = predictions - y
    return (residuals * residuals).mean()


def test_003_gradient_of_a_regression_loss():
    X, y = regression_data()
    w, b = np.zeros((3, 1), F32), np.zeros((1,), F32)
    dw, db = grad(linear_regression_loss, argnums=(0, 1))(w, b, X, y)
    assert dw.shape == (3, 1) and db.shape == (1,) and dw.dtype == db.dtype == F32
    np.testing.assert_allclose(dw, -2 / 50 * X.T @ y, rtol=1e-5)
    np.testing.assert_allclose(db, [-2 / 50 * y.sum()], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dw, [[-2.3079], [2.5454], [-0.4476]], atol=0.1)
    np.testing.assert_allclose(db, [0.0037], atol=0.1)


def test_003_gradient_descent():
    X, y = regression_data()
    n_features = 3
    # the loop of section 9 verbatim, Nabla's tensors as NumPy arrays
    w = np.zeros((n_features, 1), F32)
    b = np.zeros((1,), F32)
    lr = 0.1
    vg_fn = value_and_grad(linear_regression_loss, argnums=(0, 1))
    losses = []
    for step in range(10):
        loss, (dw, db) = vg_fn(w, b, X, y)
        np.testing.assert_allclose(loss, linear_regression_loss(w, b, X, y), rtol=1e-5)
        w = w - lr * dw
        b = b - lr * db
        losses.append(loss.item())
    assert w.dtype == b.dtype == F32
    # The printed losses at steps 2, 4, ..., 10 and weights: the noise adds its variance 0.01 to
    # each loss and moves it and the weights by a few percent.
    np.testing.assert_allclose(losses[1::2], [2.658563, 1.408227, 0.797857, 0.478955, 0.301070],
                               rtol=0.05, atol=0.02)
    np.testing.assert_allclose(w, [[1.3725], [-1.022], [0.3079]], atol=0.05)
