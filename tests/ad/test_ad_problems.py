"""The public problems against CasADi: each problem written again as a CasADi expression from its
definition (docs/architecture.md); value, gradient, Jacobian, Hessian compared to 1e-10 relative at
the start point and at a perturbed point. The problems' data and start points are checked against
the same definitions."""
from __future__ import annotations

import casadi as ca
import numpy as np
import pytest

from anvil_llvm.ad import gradient, hessian, jacobian
from anvil_llvm.benchmarks.problems import problem

RTOL = 1e-10


# ---- the problems in CasADi (SX scalar graphs; mlp as MX matrix graphs) ------------------------
def sumsq(x, n):
    return ca.sumsqr(x)


def rosen(x, n):
    a, b = x[:n - 1], x[1:]
    return ca.sum1(100 * (b - a ** 2) ** 2 + (1 - a) ** 2)


def bratu_grid(x, m):
    """u(i, j) on the interior, 0 on the boundary ring (i or j in {-1, m})."""
    def u(i, j):
        return x[i * m + j] if 0 <= i < m and 0 <= j < m else 0
    return u


def bratu_h2(m, lam=6.0):
    return lam / (m + 1) ** 2


def bratu2d(x, m):
    u = bratu_grid(x, m)
    return ca.vertcat(*[4 * u(i, j) - u(i - 1, j) - u(i + 1, j) - u(i, j - 1) - u(i, j + 1)
                        - bratu_h2(m) * ca.exp(u(i, j)) for i in range(m) for j in range(m)])


def bratu2d_E(x, m):
    u = bratu_grid(x, m)
    edges = [(u(i, j) - u(i, j + 1)) ** 2 + (u(j, i) - u(j + 1, i)) ** 2
             for i in range(m) for j in range(-1, m)]          # along rows, then along columns
    return 0.5 * ca.sum1(ca.vertcat(*edges)) - bratu_h2(m) * ca.sum1(ca.exp(x))


def arrowhead(x, n):
    return ca.sum1((x[0] * x[1:]) ** 2) + ca.sum1(x ** 4)


def arm(x, n):
    lengths = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    theta = [ca.sum1(x[:k + 1]) for k in range(6)]
    return ca.vertcat(sum(L * ca.cos(t) for L, t in zip(lengths, theta)),
                      sum(L * ca.sin(t) for L, t in zip(lengths, theta)), theta[5])


def expdecay_data():
    t = np.linspace(0.0, 10.0, 50)
    return t, 2.5 * np.exp(-0.3 * t) + 0.01 * np.random.default_rng(5).standard_normal(50)


def expdecay(p, n):
    t, y = expdecay_data()
    return p[0] * ca.exp(-p[1] * ca.DM(t)) - ca.DM(y)


def mlp_data():
    rng = np.random.default_rng(42)
    return rng.standard_normal((256, 64)), rng.standard_normal((256, 10))


def row_major(v, rows, cols):
    """CasADi reshapes column-major: a row-major (rows, cols) block of a flat vector."""
    return ca.reshape(v, cols, rows).T


def mlp(x, n):
    X, Y = mlp_data()
    W1, b1 = row_major(x[:8192], 64, 128), x[8192:8320]
    W2, b2 = row_major(x[8320:9600], 128, 10), x[9600:9610]
    hidden = ca.tanh(ca.mtimes(ca.DM(X), W1) + ca.repmat(b1.T, 256, 1))
    r = ca.mtimes(hidden, W2) + ca.repmat(b2.T, 256, 1) - ca.DM(Y)
    return ca.sumsqr(r) / r.numel()


CASADI = {"sumsq": sumsq, "rosen": rosen, "bratu2d": bratu2d, "bratu2d_E": bratu2d_E,
          "arrowhead": arrowhead, "arm": arm, "expdecay": expdecay, "mlp": mlp}


def casadi_derivatives(name: str, size: int, n: int, what: str):
    """A CasADi function of x returning (value, derivative) for `what` in grad, jac, hess."""
    x = (ca.MX if name == "mlp" else ca.SX).sym("x", n)
    value = CASADI[name](x, size)
    derivative = {"grad": lambda: ca.gradient(value, x), "jac": lambda: ca.jacobian(value, x),
                  "hess": lambda: ca.hessian(value, x)[0]}[what]()
    return ca.Function(name, [x], [value, derivative])


def points(p):
    """The start point and a deterministic perturbation of it."""
    return [p.x0, p.x0 + 0.1 * np.random.default_rng(11).standard_normal(p.n)]


def assert_relative(actual, expected, what: str) -> None:
    """1e-10 relative to the largest entry (sparse Jacobians have exact zeros elsewhere)."""
    expected = np.asarray(expected, dtype=np.float64)
    assert np.shape(actual) == expected.shape, what
    scale = float(np.abs(expected).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)


# ---- value and derivative -----------------------------------------------------------------------
CASES = [
    ("sumsq", 5, "grad"), ("rosen", 100, "grad"), ("bratu2d_E", 10, "grad"), ("mlp", 9610, "grad"),
    ("arrowhead", 50, "grad"),
    ("bratu2d", 10, "jac"), ("arm", 6, "jac"), ("expdecay", 2, "jac"),
    ("sumsq", 5, "hess"), ("rosen", 100, "hess"), ("arrowhead", 50, "hess"),
    ("bratu2d_E", 5, "hess"),
]
OPERATORS = {"grad": gradient, "jac": jacobian, "hess": hessian}


@pytest.mark.parametrize("name, size, what", CASES, ids=[f"{n}-{s}-{w}" for n, s, w in CASES])
def test_problem_against_casadi(name, size, what):
    p = problem(name, size)
    f = p.function()
    derivative = OPERATORS[what](f)
    reference = casadi_derivatives(name, size, p.n, what)
    for x in points(p):
        value, expected = (np.array(r) for r in reference(x))     # CasADi's are all 2-D
        value = value.reshape(f.output_shapes[0])
        expected = expected.reshape(p.n) if what == "grad" else expected
        assert_relative(f(x), value, f"{name}: value")
        assert_relative(p.reference(x), value, f"{name}: NumPy reference value")
        assert_relative(derivative(x), expected, f"{name}: {what}")


def test_bratu_energy_gradient_is_the_residual():
    # docs/architecture.md: E is made so that grad E = F, so the Hessian of E is the Jacobian of F.
    energy, residual = problem("bratu2d_E", 5), problem("bratu2d", 5)
    E, F = energy.function(), residual.function()
    for x in points(energy):
        assert_relative(gradient(E)(x), F(x), "grad E vs F")
        assert_relative(hessian(E)(x), jacobian(F)(x), "hess E vs jac F")


# ---- the problems' data -------------------------------------------------------------------------
def test_start_points_and_data_follow_the_definitions():
    rosen_x0 = problem("rosen", 6).x0
    np.testing.assert_array_equal(rosen_x0, [-1.2, 1.0, -1.2, 1.0, -1.2, 1.0])
    np.testing.assert_array_equal(problem("bratu2d", 10).x0,
                                  0.5 * np.random.default_rng(1234).random(100))
    mlp_problem = problem("mlp")
    np.testing.assert_array_equal(mlp_problem.x0, 0.1 * np.random.default_rng(7).standard_normal(
        9610))
    X, Y = mlp_data()
    np.testing.assert_array_equal(mlp_problem.data["X"], X)
    np.testing.assert_array_equal(mlp_problem.data["Y"], Y)
    np.testing.assert_array_equal(problem("expdecay").x0, [2.0, 0.4])
    assert problem("arm").n == 6 and problem("sumsq").n == 5
