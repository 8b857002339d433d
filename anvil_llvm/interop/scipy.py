"""Keyword arguments for `scipy.optimize.minimize` and `scipy.optimize.least_squares` from a
generated function: its exact gradient, dense or sparse Hessian, Hessian-vector product, and
dense or sparse Jacobian, each compiled once.

SciPy calls `fun(x, *args)`, `jac(x, *args)`, `hess(x, *args)` but `hessp(x, p, *args)`; the
generated functions take `(x, *args)` (and the Hessian-vector product `(x, *args, p)`), so the
callables returned here put each argument where it belongs, and the returned keywords carry
`args` for SciPy to pass on.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import ad
from .._lazy import scipy_sparse as sp
from ..ad.operators import Traced
from ..function import NumericalFunction, SparseNumericalFunction

HESSIANS = ("sparse", "dense", "hessp", None)
"""What `minimize_kwargs(hessian=...)` accepts."""
JACOBIANS = ("sparse", "dense", "sparsity", None)
"""What `least_squares_kwargs(jacobian=...)` accepts."""


def problem_function(fun, x0, args: Sequence, what: str) -> NumericalFunction:
    """`fun` as a NumericalFunction of `(x, *args)` with `x` a float64 vector: a
    NumericalFunction as it is, a plain callable traced for the shapes and dtypes of `x0` and
    `args`. `what` names the caller in errors.

    >>> import anvil_llvm as av
    >>> f = problem_function(lambda x, p: (x * p).sum(), np.zeros(3), (2.0,), "minimize_kwargs")
    >>> f.args
    (Arg((3,), float64), Arg((), float64))
    """
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"{what}: args: expected a tuple of the extra arguments, got "
                        f"{type(args).__name__}")
    if not isinstance(fun, NumericalFunction):
        if not callable(fun):
            raise TypeError(f"{what}: expected a NumericalFunction or a callable, got "
                            f"{type(fun).__name__}")
        if x0 is None:
            raise TypeError(f"{what}: x0 is needed to trace the plain callable "
                            f"{getattr(fun, '__name__', fun)!r} (or give a NumericalFunction)")
        fun = Traced(fun).specialise(np.asarray(x0, np.float64), *args)
    if len(fun.args) != 1 + len(args):
        raise TypeError(f"{what}: {fun.name} takes {len(fun.args)} arguments "
                        f"({', '.join(fun.arg_names)}): x and {len(fun.args) - 1} in args, "
                        f"got {len(args)} in args")
    x = fun.args[0]
    if len(x.shape) != 1 or x.dtype.np != np.float64:
        raise ValueError(f"{what}: the first argument of {fun.name} ({fun.arg_names[0]}) is the "
                         f"variable: expected a float64 vector, got {x.dtype}{list(x.shape)}")
    if x0 is not None and np.shape(x0) != x.shape:
        raise ValueError(f"{what}: x0 must have the shape of {fun.name}'s first argument "
                         f"{x.shape}, got {np.shape(x0)}")
    if fun.multiple:
        raise ValueError(f"{what}: {fun.name} must return one array, it returns "
                         f"{len(fun.outputs)}")
    return fun


def csc_coordinates(matrix: SparseNumericalFunction) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) of each value of a sparse function, in the order of its values (CSC),
    as int64 arrays.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x[1:] * x[:-1], (av.Arg(3),))
    >>> [a.tolist() for a in csc_coordinates(av.ad.spjacobian(f))]
    [[0, 0, 1, 1], [0, 1, 1, 2]]
    """
    columns = np.repeat(np.arange(matrix.shape[1]), np.diff(matrix.indptr))
    return matrix.indices.astype(np.int64), columns


def symmetric_csc(upper: SparseNumericalFunction) -> Callable[[np.ndarray], sp.csc_array]:
    """The map from the values of an upper-triangle CSC pattern (`sphessian`'s) to the whole
    symmetric matrix as a scipy.sparse.csc_array: one gather per call.

    >>> import anvil_llvm as av
    >>> f = av.NumericalFunction("f", lambda x: x[0] * x[1] + x[1] ** 3, (av.Arg(2),))
    >>> H = av.ad.sphessian(f)
    >>> symmetric_csc(H)(H(np.array([1.0, 2.0]))).toarray().tolist()
    [[0.0, 1.0], [1.0, 12.0]]
    """
    n = upper.shape[0]
    rows, cols = csc_coordinates(upper)
    below = rows != cols
    slot = np.arange(upper.nnz)
    rows, cols, slot = (np.concatenate([a, b[below]]) for a, b in
                        ((rows, cols), (cols, rows), (slot, slot)))
    order = np.lexsort((rows, cols))
    gather, indices = slot[order], rows[order].astype(np.int32)
    indptr = np.searchsorted(cols[order], np.arange(n + 1)).astype(np.int32)
    shape = (n, n)
    return lambda values: sp.csc_array((values[gather], indices, indptr), shape=shape)


def minimize_kwargs(fun, x0=None, *, args: Sequence = (), hessian: str | None = "sparse") -> dict:
    """`fun`, `jac`, the Hessian and `args` for `scipy.optimize.minimize(x0=..., **kwargs)`.

    fun: a NumericalFunction of `(x, *args)` returning a scalar, `x` a float64 vector (or a
    plain callable, traced for the shapes and dtypes of `x0` and `args`); args: the fixed
    arguments, passed on by SciPy. hessian: "sparse" (`hess` returns the symmetric Hessian as a
    scipy.sparse.csc_array from `sphessian`: for "trust-constr" and "Newton-CG"), "dense" (`hess`
    returns an array from `hessian`: "trust-exact", "dogleg"), "hessp" (`hessp` from `hvp`:
    "trust-ncg", "trust-krylov", "Newton-CG", "trust-constr"), or None (gradient only: "BFGS",
    "L-BFGS-B", "CG", "SLSQP").

    >>> import anvil_llvm as av
    >>> from scipy.optimize import minimize
    >>> f = av.NumericalFunction(
    ...     "f", lambda x, c: av.cosh(x - c).sum() + (x[1:] * x[:-1]).sum() / 4,
    ...     (av.Arg(3), av.Arg(3)))
    >>> kwargs = minimize_kwargs(f, args=(np.array([1.0, 2.0, 3.0]),))
    >>> sorted(kwargs)
    ['args', 'fun', 'hess', 'jac']
    >>> result = minimize(x0=np.zeros(3), method="trust-constr", **kwargs)
    >>> bool(np.linalg.norm(result.grad) < 1e-8)
    True
    """
    if hessian not in HESSIANS:
        raise ValueError(f"minimize_kwargs: hessian: expected one of {HESSIANS}, got "
                         f"{hessian!r}")
    fn = problem_function(fun, x0, args, "minimize_kwargs")
    kwargs = {"fun": fn.compile(), "jac": ad.gradient(fn).compile(), "args": tuple(args)}
    if hessian == "sparse":
        H = ad.sphessian(fn).compile()
        whole = symmetric_csc(H)
        kwargs["hess"] = lambda x, *a: whole(H(x, *a))
    elif hessian == "dense":
        kwargs["hess"] = ad.hessian(fn).compile()
    elif hessian == "hessp":
        Hv = ad.hvp(fn).compile()
        kwargs["hessp"] = lambda x, p, *a: Hv(x, *a, p)
    return kwargs


def least_squares_kwargs(residual, x0=None, *, args: Sequence = (),
                         jacobian: str | None = "sparse") -> dict:
    """`fun`, the Jacobian and `args` for `scipy.optimize.least_squares(x0=..., **kwargs)`.

    residual: a NumericalFunction of `(x, *args)` returning a vector, `x` a float64 vector (or
    a plain callable, traced for `x0` and `args`); args: the fixed arguments, passed on by
    SciPy. jacobian: "sparse" (`jac` returns a scipy.sparse.csc_array from `spjacobian`:
    methods "trf" and "dogbox", which then solve with LSMR), "dense" (`jac` returns an array
    from `jacobian`: needed by method "lm"), "sparsity" (no `jac`: SciPy's finite differences,
    grouped by the exact pattern given as `jac_sparsity`), or None (`fun` only).

    >>> import anvil_llvm as av
    >>> from scipy.optimize import least_squares
    >>> t = np.linspace(0.0, 1.0, 8)
    >>> r = av.NumericalFunction("r", lambda p, t, y: p[0] * av.exp(-p[1] * t) - y,
    ...                          (av.Arg(2), av.Arg(8), av.Arg(8)))
    >>> y = 3.0 * np.exp(-2.0 * t)
    >>> fit = least_squares(x0=np.ones(2), method="lm",
    ...                     **least_squares_kwargs(r, args=(t, y), jacobian="dense"))
    >>> np.round(fit.x, 8).tolist()
    [3.0, 2.0]
    """
    if jacobian not in JACOBIANS:
        raise ValueError(f"least_squares_kwargs: jacobian: expected one of {JACOBIANS}, got "
                         f"{jacobian!r}")
    fn = problem_function(residual, x0, args, "least_squares_kwargs")
    if len(fn.outputs[0].shape) != 1:
        raise ValueError(f"least_squares_kwargs: {fn.name} must return a vector of residuals, "
                         f"it returns shape {fn.outputs[0].shape}")
    kwargs = {"fun": fn.compile(), "args": tuple(args)}
    if jacobian == "sparse":
        kwargs["jac"] = ad.spjacobian(fn).compile().csc
    elif jacobian == "dense":
        kwargs["jac"] = ad.jacobian(fn).compile()
    elif jacobian == "sparsity":
        kwargs["jac_sparsity"] = ad.jacobian_sparsity(fn)
    return kwargs


__all__ = ["HESSIANS", "JACOBIANS", "csc_coordinates", "least_squares_kwargs", "minimize_kwargs",
           "problem_function", "symmetric_csc"]
