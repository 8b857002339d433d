"""anvil_llvm.interop.scipy and anvil_llvm.interop.ipopt: the callables handed to
scipy.optimize and IPOPT against NumPy's analytic derivatives and finite differences, solves
against SciPy's own and against published optima, and the three solver examples (against the
data's truth, SciPy's finite-difference fit and CasADi's IPOPT)."""
import pathlib
import runpy
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from avcheck import fast
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import least_squares, minimize

import anvil_llvm as av
from anvil_llvm.interop import IpoptCallbacks, ipopt_problem, least_squares_kwargs, minimize_kwargs
from anvil_llvm.interop.ipopt import INSTALL

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
N = 6


def needs_cyipopt():
    return pytest.importorskip("cyipopt", reason=f"cyipopt is not installed: {INSTALL}")


# ---- a scalar objective with a parameter, and its derivatives written by hand in NumPy -------
def objective(x, c):
    """sum cosh(x - c) + sum x[i] x[i+1] / 4 + x[0]^2 x[-1]: tridiagonal plus a corner."""
    return np.sum(np.cosh(x - c)) + np.sum(x[1:] * x[:-1]) / 4 + x[0] * x[0] * x[-1]


def objective_gradient(x, c):
    g = np.sinh(x - c)
    g[1:] += x[:-1] / 4
    g[:-1] += x[1:] / 4
    g[0] += 2 * x[0] * x[-1]
    g[-1] += x[0] ** 2
    return g


def objective_hessian(x, c):
    H = np.diag(np.cosh(x - c)) + (np.eye(x.size, k=1) + np.eye(x.size, k=-1)) / 4
    H[0, 0] += 2 * x[-1]
    H[0, -1] += 2 * x[0]
    H[-1, 0] += 2 * x[0]
    return H


f = av.NumericalFunction("objective", objective, (av.Arg(N), av.Arg(N)))
C = np.linspace(-0.5, 0.5, N)
points = st.lists(st.floats(-1.5, 1.5), min_size=N, max_size=N).map(np.array)


@pytest.fixture(scope="module")
def minimize_forms():
    return {hessian: minimize_kwargs(f, args=(C,), hessian=hessian)
            for hessian in ("sparse", "dense", "hessp")}


@fast(20)
@given(points, points)
def test_minimize_callables_take_scipys_arguments_and_match_numpy(minimize_forms, x, p):
    reference = objective_hessian(x, C)
    sparse, dense, hessp = (minimize_forms[k] for k in ("sparse", "dense", "hessp"))
    for kwargs in (sparse, dense, hessp):
        assert kwargs["args"] == (C,)
        assert float(kwargs["fun"](x, C)) == pytest.approx(objective(x, C), rel=1e-13)
        np.testing.assert_allclose(kwargs["jac"](x, C), objective_gradient(x, C), rtol=1e-13,
                                   atol=1e-13)
    H = sparse["hess"](x, C)
    assert isinstance(H, sp.csc_array) and H.shape == (N, N)
    np.testing.assert_allclose(H.toarray(), reference, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dense["hess"](x, C), reference, rtol=1e-13, atol=1e-13)
    # SciPy calls hessp(x, p, *args); the generated product takes (x, *args, p)
    np.testing.assert_allclose(hessp["hessp"](x, p, C), reference @ p, rtol=1e-12, atol=1e-12)


def test_minimize_every_hessian_form_reaches_scipys_optimum(minimize_forms):
    reference = minimize(objective, np.zeros(N), args=(C,), jac=objective_gradient,
                         method="BFGS", options={"gtol": 1e-12})
    for method, hessian in [("trust-constr", "sparse"), ("Newton-CG", "sparse"),
                            ("trust-exact", "dense"), ("trust-ncg", "hessp"),
                            ("trust-constr", "hessp")]:
        result = minimize(x0=np.zeros(N), method=method, tol=1e-10, **minimize_forms[hessian])
        np.testing.assert_allclose(result.x, reference.x, atol=1e-6, err_msg=method)
    result = minimize(x0=np.zeros(N), method="L-BFGS-B",
                      **minimize_kwargs(f, args=(C,), hessian=None))
    np.testing.assert_allclose(result.x, reference.x, atol=1e-5)


def test_minimize_traces_a_plain_callable_for_x0_and_args():
    kwargs = minimize_kwargs(objective, np.zeros(N), args=(C,), hessian="sparse")
    x = np.linspace(-1.0, 1.0, N)
    np.testing.assert_allclose(kwargs["hess"](x, C).toarray(), objective_hessian(x, C),
                               rtol=1e-13, atol=1e-13)


def test_symmetric_sparse_hessian_of_a_random_pattern_matches_finite_differences():
    """Couplings between random pairs: the whole symmetric matrix is rebuilt from the upper
    triangle, against central differences of the hand-written gradient."""
    rng = np.random.default_rng(3)
    n = 30
    a, b = rng.integers(0, n, 40), rng.integers(0, n, 40)
    g = av.NumericalFunction("pairs", lambda x: av.sin(x[a] * x[b]).sum() + (x ** 4).sum(),
                             (av.Arg(n),))

    def gradient(x):
        out = 4 * x ** 3
        np.add.at(out, a, np.cos(x[a] * x[b]) * x[b])
        np.add.at(out, b, np.cos(x[a] * x[b]) * x[a])
        return out
    x, h = rng.uniform(-1, 1, n), 1e-6
    numeric = np.array([(gradient(x + h * e) - gradient(x - h * e)) / (2 * h) for e in np.eye(n)])
    H = minimize_kwargs(g)["hess"](x)
    np.testing.assert_allclose(H.toarray(), numeric, atol=1e-7)
    assert H.nnz == np.count_nonzero(np.abs(numeric) > 1e-7)     # nothing stored in excess


# ---- least squares --------------------------------------------------------------------------
def decay(p, t, y):
    return p[0] * np.exp(-p[1] * t) + p[2] - y


T = np.linspace(0.0, 4.0, 12)
r = av.NumericalFunction("decay", decay, (av.Arg(3), av.Arg(T.size), av.Arg(T.size)))


def decay_jacobian(p, t):
    e = np.exp(-p[1] * t)
    return np.stack([e, -p[0] * t * e, np.ones_like(t)], axis=1)


def test_least_squares_jacobians_match_numpy_and_the_pattern():
    y = 2.0 * np.exp(-0.7 * T) + 0.1
    p = np.array([1.5, 0.4, -0.2])
    sparse = least_squares_kwargs(r, args=(T, y))
    dense = least_squares_kwargs(r, args=(T, y), jacobian="dense")
    pattern = least_squares_kwargs(r, args=(T, y), jacobian="sparsity")
    J = sparse["jac"](p, T, y)
    assert isinstance(J, sp.csc_array)
    np.testing.assert_allclose(J.toarray(), decay_jacobian(p, T), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dense["jac"](p, T, y), decay_jacobian(p, T), rtol=1e-13,
                               atol=1e-15)
    assert "jac" not in pattern
    # every residual reads every parameter (J[0, 1] = -p0 t0 e^0 is zero only at t0 = 0)
    np.testing.assert_array_equal(pattern["jac_sparsity"].toarray(), np.ones((T.size, 3)))
    np.testing.assert_allclose(sparse["fun"](p, T, y), decay(p, T, y), rtol=1e-13, atol=1e-15)


def test_least_squares_sparse_dense_and_pattern_fits_agree_with_scipy():
    y = 2.0 * np.exp(-0.7 * T) + 0.1 + 0.01 * np.sin(7 * T)
    start = np.array([1.0, 1.0, 0.0])
    tight = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15}
    reference = least_squares(decay, start, args=(T, y), method="lm", **tight)
    for method, jacobian in [("trf", "sparse"), ("dogbox", "sparse"), ("lm", "dense"),
                             ("trf", "sparsity")]:
        fit = least_squares(x0=start, method=method, **tight,
                            **least_squares_kwargs(r, args=(T, y), jacobian=jacobian))
        np.testing.assert_allclose(fit.x, reference.x, rtol=1e-7, err_msg=method)


# ---- bad input ------------------------------------------------------------------------------
def test_scipy_helpers_refuse_bad_input_naming_it():
    with pytest.raises(TypeError, match=r"objective takes 2 arguments \(x, c\).*got 0 in args"):
        minimize_kwargs(f)
    with pytest.raises(TypeError, match="args: expected a tuple"):
        minimize_kwargs(f, args=C)
    with pytest.raises(ValueError, match="hessian: expected one of"):
        minimize_kwargs(f, args=(C,), hessian="bfgs")
    with pytest.raises(TypeError, match="x0 is needed to trace"):
        minimize_kwargs(objective, args=(C,))
    with pytest.raises(ValueError, match=r"x0 must have the shape .* \(6,\), got \(5,\)"):
        minimize_kwargs(f, np.zeros(5), args=(C,))
    with pytest.raises(TypeError, match="expected a NumericalFunction or a callable, got int"):
        minimize_kwargs(3)
    matrix = av.NumericalFunction("m", lambda x: (x * x).sum(), (av.Arg((2, 2)),))
    with pytest.raises(ValueError, match=r"expected a float64 vector, got float64\[2, 2\]"):
        minimize_kwargs(matrix)
    with pytest.raises(ValueError, match="must return one scalar"):
        minimize_kwargs(r, args=(T, T))
    with pytest.raises(ValueError, match=r"must return a vector of residuals, .* shape \(\)"):
        least_squares_kwargs(f, args=(C,))
    with pytest.raises(ValueError, match="jacobian: expected one of"):
        least_squares_kwargs(r, args=(T, T), jacobian="exact")


# ---- IPOPT ----------------------------------------------------------------------------------
def hs071_objective(x, p):
    return p * x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]


def hs071_constraints(x, p):
    return np.stack([x[0] * x[1] * x[2] * x[3], np.sum(x * x)])


HS071 = [av.NumericalFunction(name, fn, (av.Arg(4), av.Arg(())))
         for name, fn in (("hs071_f", hs071_objective), ("hs071_c", hs071_constraints))]


def hs071_lagrangian_hessian(x, lagrange, obj_factor, p):
    """obj_factor * Hessian of f + sum lagrange_i * Hessian of c_i, by hand."""
    x0, x1, x2, x3 = x
    Hf = p * np.array([[2 * x3, x3, x3, 2 * x0 + x1 + x2], [x3, 0, 0, x0], [x3, 0, 0, x0],
                       [2 * x0 + x1 + x2, x0, x0, 0]])
    Hc0 = np.array([[0, x2 * x3, x1 * x3, x1 * x2], [x2 * x3, 0, x0 * x3, x0 * x2],
                    [x1 * x3, x0 * x3, 0, x0 * x1], [x1 * x2, x0 * x2, x0 * x1, 0]])
    return obj_factor * Hf + lagrange[0] * Hc0 + lagrange[1] * 2 * np.eye(4)


def dense(values, structure, n, m):
    out = np.zeros((n, m))
    np.add.at(out, structure, values)
    return out


@fast(20)
@given(st.lists(st.floats(0.5, 5.0), min_size=4, max_size=4).map(np.array),
       st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2).map(np.array),
       st.floats(0.0, 2.0), st.floats(0.5, 2.0))
def test_ipopt_callbacks_match_hand_written_derivatives(x, lagrange, obj_factor, p):
    nlp = hs071_callbacks(p)
    assert (nlp.n, nlp.m) == (4, 2)
    assert nlp.objective(x) == pytest.approx(hs071_objective(x, p), rel=1e-14)
    h = 1e-6
    numeric = [(hs071_objective(x + h * e, p) - hs071_objective(x - h * e, p)) / (2 * h)
               for e in np.eye(4)]
    np.testing.assert_allclose(nlp.gradient(x), numeric, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(nlp.constraints(x), hs071_constraints(x, p), rtol=1e-14)
    J = dense(nlp.jacobian(x), nlp.jacobianstructure(), 2, 4)
    expected = np.stack([np.prod(x) / x, 2 * x])
    np.testing.assert_allclose(J, expected, rtol=1e-13)
    rows, cols = nlp.hessianstructure()
    assert np.all(rows >= cols)                                   # the lower triangle
    H = dense(nlp.hessian(x, lagrange, obj_factor), (rows, cols), 4, 4)
    np.testing.assert_allclose(H, np.tril(hs071_lagrangian_hessian(x, lagrange, obj_factor, p)),
                               rtol=1e-12, atol=1e-12)


_callbacks = {}


def hs071_callbacks(p) -> IpoptCallbacks:
    """The HS071 callbacks (compiled once) with the parameter p."""
    if "nlp" not in _callbacks:
        _callbacks["nlp"] = IpoptCallbacks(*HS071, args=(1.0,))
    nlp = _callbacks["nlp"]
    nlp.args = (p,)
    return nlp


def test_ipopt_solves_hs071_to_its_published_optimum():
    """Hock and Schittkowski problem 71 (the IPOPT and cyipopt tutorial problem):
    x* = (1, 4.74299963, 3.82114998, 1.37940829), f* = 17.0140173."""
    needs_cyipopt()
    problem = ipopt_problem(*HS071, args=(1.0,), lb=1.0, ub=5.0, cl=[25.0, 40.0],
                            cu=[np.inf, 40.0], options={"print_level": 0, "sb": "yes"})
    x, info = problem.solve(np.array([1.0, 5.0, 5.0, 1.0]))
    assert info["status"] == 0
    np.testing.assert_allclose(x, [1.0, 4.74299963, 3.82114998, 1.37940829], rtol=1e-7)
    assert info["obj_val"] == pytest.approx(17.0140173, rel=1e-8)


def test_ipopt_without_constraints_reaches_the_rosenbrock_minimum():
    needs_cyipopt()
    rosen = av.NumericalFunction(
        "rosen", lambda x: (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum(),
        (av.Arg(20),))
    nlp = IpoptCallbacks(rosen)
    assert nlp.m == 0 and nlp.constraints(np.ones(20)).shape == (0,)
    x, info = nlp.problem(options={"print_level": 0, "sb": "yes", "tol": 1e-12}).solve(
        np.full(20, 0.5))
    assert info["status"] == 0
    np.testing.assert_allclose(x, np.ones(20), atol=1e-8)
    assert nlp.iterations > 0


def test_ipopt_refuses_bad_input_and_says_how_to_install(monkeypatch):
    other = av.NumericalFunction("c3", lambda x, p: x * p, (av.Arg(3), av.Arg(())))
    with pytest.raises(ValueError, match="constraints .* must take the arguments of the"):
        IpoptCallbacks(HS071[0], other, args=(1.0,))
    with pytest.raises(ValueError, match="must return one scalar"):
        IpoptCallbacks(HS071[1], args=(1.0,))
    nlp = hs071_callbacks(1.0)
    monkeypatch.setitem(sys.modules, "cyipopt", None)          # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'anvil_llvm\[ipopt\]'"):
        nlp.problem()
    monkeypatch.undo()
    needs_cyipopt()
    with pytest.raises(ValueError, match=r"lb: expected a scalar or 4 values, got shape \(3,\)"):
        nlp.problem(lb=np.zeros(3))


# ---- the examples ---------------------------------------------------------------------------
def run_example(name: str) -> dict:
    return runpy.run_path(str(EXAMPLES / name))["main"]()


def test_lm_curve_fit_recovers_the_truth_and_matches_finite_differences():
    scope = runpy.run_path(str(EXAMPLES / "lm_curve_fit.py"))
    results = scope["main"]()
    fits, truth = results["fits"], scope["TRUTH"]
    np.testing.assert_allclose(fits[0.0, "ours"].x, truth, rtol=1e-10)
    np.testing.assert_allclose(fits[0.0, "2-point"].x, truth, rtol=1e-7)
    np.testing.assert_allclose(fits[0.01, "ours"].x, fits[0.01, "2-point"].x, rtol=1e-7)
    assert np.all(np.abs(fits[0.01, "ours"].x - truth) < 3 * results["errors"])


def test_trust_constr_reaches_the_rosenbrock_minimum_at_n_10000():
    results = run_example("trust_constr_rosenbrock.py")
    for label, result in results.items():
        assert result.x.size == 10_000
        np.testing.assert_allclose(result.x, 1.0, atol=1e-8, err_msg=label)


def test_ipopt_optimal_control_matches_casadi():
    needs_cyipopt()
    pytest.importorskip("casadi")
    ours, casadi = run_example("ipopt_optimal_control.py").values()
    assert ours["objective"] == pytest.approx(casadi["objective"], rel=1e-6)
    assert abs(ours["iterations"] - casadi["iterations"]) <= 2
    np.testing.assert_allclose(ours["z"], casadi["z"], atol=1e-6)
