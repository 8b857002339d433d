"""casadi_derivatives=True: the jac_/adj1_/jac_adj1_ entry points CasADi looks up by name, checked
against CasADi's own derivatives of the same functions written in SX, and NLPs solved by CasADi's
IPOPT on our exported functions (exact derivatives) as it solves the SX formulation."""
import subprocess

import numpy as np
import pytest

import anvil_llvm as av

from export_helpers import CC, needs_cc

casadi = pytest.importorskip("casadi")
pytestmark = needs_cc


class AV:
    """The operations the formulas use, for anvil_llvm Tensors."""
    sin, stack = av.sin, staticmethod(av.stack)
    total = staticmethod(lambda v: v.sum())


class SX:
    """The same operations for CasADi SX."""
    sin, stack = casadi.sin, staticmethod(lambda items: casadi.vertcat(*items))
    total = staticmethod(casadi.sum1)


def hs071_objective(x, m):
    return x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]


def hs071_constraints(x, m):
    return m.stack([x[0] * x[1] * x[2] * x[3], m.total(x * x)])


def chain_objective(x, m):
    """Chained Rosenbrock."""
    return m.total(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def chain_constraints(x, m):
    """Neighbour products and a sine coupling: a banded constraint Jacobian."""
    return x[1:] * x[:-1] + 0.1 * m.sin(x[1:])


FORMULAS = {"obj": hs071_objective, "con": hs071_constraints, "chain": chain_objective,
            "chain_g": chain_constraints}
N = {"obj": 4, "con": 4, "chain": 12, "chain_g": 12}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    functions = [av.NumericalFunction(name, lambda x, f=f: f(x, AV), (av.Arg(N[name]),))
                 for name, f in FORMULAS.items()]
    functions += [
        av.NumericalFunction("two", lambda x, y: (x * av.exp(y[0]), (x * y[1:]).sum()),
                             (av.Arg(3), av.Arg(4))),
        # a sparse result: CasADi differentiates the constraint Jacobian through our code
        av.ad.spjacobian(functions[3], name="chain_g_jac"),
    ]
    return av.export(functions, tmp_path_factory.mktemp("nlp"), "nlp", shared=True,
                     casadi=True, casadi_derivatives=True)


def _sx(name):
    """The same function in CasADi SX (the independent reference)."""
    if name == "two":
        x, y = casadi.SX.sym("x", 3), casadi.SX.sym("y", 4)
        return casadi.Function("two", [x, y], [x * casadi.exp(y[0]),
                                               casadi.dot(x, y[1:])], ["x", "y"], ["out0", "out1"])
    if name == "chain_g_jac":
        x = casadi.SX.sym("x", N["chain_g"])
        return casadi.Function(name, [x], [casadi.jacobian(chain_constraints(x, SX), x)],
                               ["x"], ["out"])
    x = casadi.SX.sym("x", N[name])
    return casadi.Function(name, [x], [FORMULAS[name](x, SX)], ["x"], ["out"])


def _dense(values) -> list:
    return [np.array(casadi.DM(v).full()) for v in values]


@pytest.mark.parametrize("name", ["obj", "con", "chain_g", "two", "chain_g_jac"])
def test_derivative_entry_points_match_casadis_own(lib, name):
    """jac_f, adj1_f and jac_adj1_f: CasADi's signatures, and the values of CasADi's own
    Function.jacobian(), reverse(1) and reverse(1).jacobian() of the SX formulation."""
    sx = _sx(name)
    rng = np.random.default_rng(7)
    for ours, theirs in ((f"jac_{name}", sx.jacobian()), (f"adj1_{name}", sx.reverse(1)),
                         (f"jac_adj1_{name}", sx.reverse(1).jacobian())):
        ext = casadi.external(ours, str(lib.shared))
        assert (ext.n_in(), ext.n_out()) == (theirs.n_in(), theirs.n_out())
        assert [ext.name_in(i) for i in range(ext.n_in())] == theirs.name_in()
        assert [ext.size_out(j) for j in range(ext.n_out())] == \
            [theirs.size_out(j) for j in range(theirs.n_out())]
        for i in range(ext.n_in()):
            assert ext.sparsity_in(i).nnz() == theirs.sparsity_in(i).nnz(), (ours, i)
        args = [casadi.DM(theirs.sparsity_in(i), rng.standard_normal(theirs.nnz_in(i)))
                for i in range(theirs.n_in())]
        got = ext.call(args)
        expected = theirs.call(args)
        for j, (a, b) in enumerate(zip(_dense(got), _dense(expected))):
            # (a nonzero missing from our pattern would read as a zero here)
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13, err_msg=f"{ours} out {j}")


def _ipopt(objective, constraints, x, x0, bounds):
    solver = casadi.nlpsol("S", "ipopt", {"x": x, "f": objective, "g": constraints},
                           {"ipopt.print_level": 0, "print_time": False,
                            "ipopt.sb": "yes"})
    result = solver(x0=x0, **bounds)
    stats = solver.stats()
    assert stats["success"], stats["return_status"]
    return np.array(result["x"]).ravel(), float(result["f"]), stats["iter_count"]


HS071 = {"lbx": 1, "ubx": 5, "lbg": [25, 40], "ubg": [casadi.inf, 40]}


@pytest.mark.parametrize("problem", ["hs071", "chain"])
def test_ipopt_solves_the_nlp_with_our_exact_derivatives(lib, problem):
    if problem == "hs071":
        names, n, x0, bounds = ("obj", "con"), 4, [1, 5, 5, 1], HS071
    else:
        n = 12
        names, x0 = ("chain", "chain_g"), np.full(n, -0.5)
        bounds = {"lbx": -2, "ubx": 2, "lbg": np.full(n - 1, 0.2),
                  "ubg": np.full(n - 1, casadi.inf)}
    F, G = (casadi.external(name, str(lib.shared)) for name in names)
    X = casadi.MX.sym("x", n)
    ours = _ipopt(F(X), G(X), X, x0, bounds)
    f_sx, g_sx = (_sx(name) for name in names)
    Y = casadi.SX.sym("x", n)
    theirs = _ipopt(f_sx(Y), g_sx(Y), Y, x0, bounds)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-8)
    assert ours[1] == pytest.approx(theirs[1], rel=1e-10, abs=1e-12)
    assert abs(ours[2] - theirs[2]) <= 1, (ours[2], theirs[2])


def test_the_header_declares_the_derivative_entry_points(lib, tmp_path):
    header = lib.header.read_text()
    for name in ("jac_con", "adj1_con", "jac_adj1_con"):
        assert f"int {name}(const double **arg, double **res" in header
        assert lib.symbols[name] == f"nlp_{name}"
    (tmp_path / "c.c").write_text('#include "nlp.h"\nint main(void) { return 0; }\n')
    result = subprocess.run([CC, "-std=c99", "-pedantic", "-Wall", "-Werror", "-I",
                             str(lib.directory), str(tmp_path / "c.c"), "-o",
                             str(tmp_path / "a.out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_casadi_derivatives_needs_casadi_float64_and_inputs_that_matter(tmp_path):
    f = av.NumericalFunction("f", lambda x: x * 2.0, (av.Arg(3),))
    with pytest.raises(ValueError, match="^casadi_derivatives: True needs casadi=True"):
        av.export([f], tmp_path, "lib", casadi_derivatives=True)
    with pytest.raises(TypeError, match="^casadi_derivatives: expected a bool"):
        av.export([f], tmp_path, "lib", casadi=True, casadi_derivatives=1)
    J = av.ad.spjacobian(f, name="J")          # constant: its own Jacobian has no nonzeros
    with pytest.raises(ValueError, match="^casadi_derivatives: jac_J: the outputs of 'J' do "
                       "not depend on its inputs"):
        av.export([J], tmp_path, "lib", casadi=True, casadi_derivatives=True)
    g = av.NumericalFunction("g", lambda x: x * 2.0, (av.Arg(3, av.float32),))
    with pytest.raises(ValueError, match="^casadi_derivatives: function 'g' has argument 'x' "
                       "of dtype float32"):
        av.export([g], tmp_path, "lib", casadi=True, casadi_derivatives=True)
    jac_f = av.NumericalFunction("jac_f", lambda x: x * 3.0, (av.Arg(3),))
    with pytest.raises(ValueError, match="'lib_jac_f' is used twice"):
        av.export([f, jac_f], tmp_path, "lib", casadi=True, casadi_derivatives=True)
