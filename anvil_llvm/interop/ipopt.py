"""IPOPT through cyipopt: the callbacks of a nonlinear program built from generated functions
(the gradient, the sparse constraint Jacobian, and the sparse Hessian of the Lagrangian as one
`sphessian`), and the `cyipopt.Problem` built from them.

cyipopt is optional and imported only when a problem is built (`IpoptCallbacks.problem`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import ad
from ..function import Arg, NumericalFunction
from .scipy import csc_coordinates, problem_function

INSTALL = ("IPOPT needs cyipopt: pip install 'anvil_llvm[ipopt]' (the cyipopt-wheels wheel, "
           "IPOPT bundled); or, with IPOPT installed (Debian: apt-get install "
           "coinor-libipopt-dev pkg-config liblapack-dev libblas-dev), pip install cyipopt")
"""How to get cyipopt (the ImportError says it)."""


def import_cyipopt():
    """The cyipopt module, or an ImportError saying how to install it."""
    try:
        import cyipopt
    except ImportError as e:
        raise ImportError(f"{INSTALL} ({e})") from e
    return cyipopt


def lagrangian(objective: NumericalFunction, constraints: NumericalFunction | None,
               m: int) -> NumericalFunction:
    """L(x, obj_factor, lagrange, *args) = obj_factor f(x, *args) + lagrange . c(x, *args),
    the function whose Hessian in x IPOPT asks for (`lagrange` has the m constraints' shape).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: (x * x).sum(), (av.Arg(2),))
    >>> c = av.NumericalFunction("c", lambda x: x[:1] * x[1:], (av.Arg(2),))
    >>> float(lagrangian(f, c, 1)(np.array([1.0, 2.0]), 2.0, np.array([3.0])))
    16.0
    """
    x, *params = objective.args
    names = objective.arg_names

    def value(x, obj_factor, lagrange, *args):
        total = obj_factor * objective.inline(x, *args)
        if constraints is not None:
            total = total + (lagrange * constraints.inline(x, *args).flatten()).sum()
        return total
    args = [Arg(x.shape, x.dtype, names[0]), Arg((), name="obj_factor"),
            Arg((m,), name="lagrange")]
    args += [Arg(a.shape, a.dtype, n) for a, n in zip(params, names[1:])]
    return NumericalFunction(f"{objective.name}_lagrangian", value, args)


def _bounds(value, size: int, default: float, name: str) -> np.ndarray:
    """A bound as a float64 vector of `size`: None is `default`, a scalar applies to all."""
    if value is None:
        return np.full(size, default)
    array = np.asarray(value, np.float64)
    if array.ndim == 0:
        return np.full(size, float(array))
    if array.shape != (size,):
        raise ValueError(f"{name}: expected a scalar or {size} values, got shape {array.shape}")
    return array.copy()


class IpoptCallbacks:
    """The callbacks cyipopt asks of a problem (its `problem_obj`): minimise `objective(x,
    *args)` subject to `cl <= constraints(x, *args) <= cu` and `lb <= x <= ub`, with exact
    sparse derivatives, each compiled once.

    objective: a NumericalFunction of `(x, *args)` returning a scalar, `x` a float64 vector;
    constraints: a NumericalFunction of the same arguments returning a vector (or a scalar),
    or None; plain callables are traced for `x0` and `args`. args: fixed arguments given to
    every call (the attribute `args`: set it to solve again for other values of the same
    shapes, nothing is compiled again). `n` and `m` count the variables and constraints; `iterations` is the
    iteration count of the last solve (from `intermediate`). The sparse functions behind the
    callbacks: `constraint_jacobian` (`spjacobian` of the constraints; None without them) and
    `lagrangian_hessian` (`sphessian` of `lagrangian`).

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x, p: ((x - p) ** 2).sum(), (av.Arg(2), av.Arg(())))
    >>> c = av.NumericalFunction("c", lambda x, p: x[0] * x[1], (av.Arg(2), av.Arg(())))
    >>> nlp = IpoptCallbacks(f, c, args=(3.0,))
    >>> nlp.n, nlp.m, nlp.jacobianstructure()
    (2, 1, (array([0, 0]), array([0, 1])))
    >>> rows, cols = nlp.hessianstructure()       # the lower triangle
    >>> rows.tolist(), cols.tolist()
    ([0, 1, 1], [0, 0, 1])
    >>> nlp.hessian(np.ones(2), np.array([5.0]), 1.0).tolist()   # 2 I + 5 (the xy term)
    [2.0, 5.0, 2.0]
    """

    def __init__(self, objective, constraints=None, *, x0=None, args: Sequence = ()):
        self._f = problem_function(objective, x0, args, "IpoptCallbacks: objective")
        ad.dense.scalar_output(self._f, "IpoptCallbacks: objective")
        self._f.compile()
        self.args = tuple(args)
        self.n = self._f.args[0].shape[0]
        self._gradient = ad.gradient(self._f).compile()
        self._c = self.constraint_jacobian = None
        self._jacobian_structure = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.m = 0
        if constraints is not None:
            self._c = problem_function(constraints, x0, args, "IpoptCallbacks: constraints")
            if [(a.shape, a.dtype) for a in self._c.args] != [
                    (a.shape, a.dtype) for a in self._f.args]:
                raise ValueError(f"IpoptCallbacks: constraints {self._c!r} must take the "
                                 f"arguments of the objective {self._f!r}")
            if len(self._c.outputs[0].shape) > 1:
                raise ValueError(f"IpoptCallbacks: constraints {self._c.name} must return a "
                                 f"vector, it returns shape {self._c.outputs[0].shape}")
            self.m = self._c.outputs[0].size
            self._c.compile()
            self.constraint_jacobian = ad.spjacobian(self._c).compile()
            self._jacobian_structure = csc_coordinates(self.constraint_jacobian)
        self.lagrangian_hessian = ad.sphessian(lagrangian(self._f, self._c, self.m)).compile()
        # The upper triangle in CSC order read as (column, row): IPOPT's lower triangle, the
        # values in the same order.
        self._hessian_structure = csc_coordinates(self.lagrangian_hessian)[::-1]
        self.iterations = 0

    def objective(self, x: np.ndarray) -> float:
        return float(self._f(x, *self.args))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self._gradient(x, *self.args)

    def constraints(self, x: np.ndarray) -> np.ndarray:
        if self._c is None:
            return np.zeros(0)
        return np.reshape(self._c(x, *self.args), (self.m,))

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """The constraint Jacobian's nonzeros, in the order of `jacobianstructure`."""
        if self.constraint_jacobian is None:
            return np.zeros(0)
        return self.constraint_jacobian(x, *self.args)

    def jacobianstructure(self) -> tuple[np.ndarray, np.ndarray]:
        return self._jacobian_structure

    def hessian(self, x: np.ndarray, lagrange: np.ndarray, obj_factor: float) -> np.ndarray:
        """The lower triangle of obj_factor ∇²f + Σ lagrange_i ∇²c_i, in the order of
        `hessianstructure`."""
        return self.lagrangian_hessian(x, obj_factor, lagrange, *self.args)

    def hessianstructure(self) -> tuple[np.ndarray, np.ndarray]:
        return self._hessian_structure

    def intermediate(self, alg_mod, iter_count, *progress) -> bool:
        self.iterations = int(iter_count)
        return True

    def problem(self, lb=None, ub=None, cl=None, cu=None, options: dict | None = None):
        """The cyipopt.Problem with these callbacks: bounds `lb <= x <= ub` (default
        unbounded) and `cl <= constraints <= cu` (default 0: equalities), each a scalar or one
        value per element; `options` are IPOPT's (`{"tol": 1e-10, "print_level": 0}`).
        Solve it with `x, info = problem.solve(x0)`.
        """
        cyipopt = import_cyipopt()
        problem = cyipopt.Problem(
            self.n, self.m, self, _bounds(lb, self.n, -np.inf, "lb"),
            _bounds(ub, self.n, np.inf, "ub"), _bounds(cl, self.m, 0.0, "cl"),
            _bounds(cu, self.m, 0.0, "cu"))
        for key, value in (options or {}).items():
            problem.add_option(key, value)
        return problem


def ipopt_problem(objective, constraints=None, *, x0=None, args: Sequence = (), lb=None,
                  ub=None, cl=None, cu=None, options: dict | None = None):
    """`IpoptCallbacks(objective, constraints, x0=x0, args=args).problem(lb, ub, cl, cu,
    options)`: a cyipopt.Problem with exact sparse derivatives.

    >>> import pytest, anvil_llvm as av
    >>> cyipopt = pytest.importorskip("cyipopt", reason=INSTALL)
    >>> f = av.NumericalFunction("f", lambda x: ((x - 2.0) ** 2).sum(), (av.Arg(2),))
    >>> c = av.NumericalFunction("c", lambda x: x.sum(), (av.Arg(2),))    # x0 + x1 <= 1
    >>> problem = ipopt_problem(f, c, cl=-np.inf, cu=1.0,
    ...                         options={"print_level": 0, "sb": "yes"})
    >>> x, info = problem.solve(np.zeros(2))
    >>> np.round(x, 8).tolist(), info["status"]
    ([0.5, 0.5], 0)
    """
    return IpoptCallbacks(objective, constraints, x0=x0, args=args).problem(
        lb, ub, cl, cu, options)


__all__ = ["INSTALL", "IpoptCallbacks", "import_cyipopt", "ipopt_problem", "lagrangian"]
