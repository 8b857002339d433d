"""Dense linear algebra (issue 19): solve, det and cholesky and their gradients at n = 4, 8,
16, 32, anvil_llvm side by side with hand-written numba (`@njit` LU with partial pivoting,
Cholesky, and their adjoints written out) and JAX (`jit`, x64, CPU); and solve, slogdet,
cholesky and eigh at n = 64-256, where JIT code calls LAPACK, beside NumPy and JAX. Prints
markdown tables and writes them to docs/benchmarks/linalg.md.

    python scripts/bench_linalg.py            # the full run (docs/benchmarks/linalg.md)
    python scripts/bench_linalg.py --quick    # fewer rounds, a smoke test

Every tool's output is checked against NumPy's closed forms (np.linalg) before it is timed.
Calls are from Python, one matrix per call (float64): the figures include each tool's call
overhead (anvil's and numba's dispatch are a fraction of a microsecond, JAX's a few).
"""
import os
from collections.abc import Callable

# Before NumPy: NumPy's and SciPy's OpenBLAS thread pools fight on this 2-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import benchtools as bt
import numba
import numpy as np
from benchtools import Row, Section, Tool, peers

import anvil_llvm as av
import anvil_llvm.numpy as anp
from anvil_llvm import ad

FULL = bt.Timing(rounds=9, seconds=0.05, build_rounds=1, processes=0)
QUICK = bt.Timing(rounds=3, seconds=0.01, build_rounds=1, processes=0)
SIZES = (4, 8, 16, 32)
NUMBA_BOUND, JAX_BOUND = 2.0, 1.0
"""Issue 19's goals: within 2x a hand-written numba LU, faster than JAX's jit (n = 4-16)."""


# ---- the problems: data from default_rng(19) -------------------------------------------------------
def general(n: int) -> np.ndarray:
    return np.random.default_rng(19).standard_normal((n, n)) + n * np.eye(n)


def spd(n: int) -> np.ndarray:
    m = np.random.default_rng(19).standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def rhs(n: int) -> np.ndarray:
    return np.random.default_rng(20).standard_normal(n)


def cholesky_gradient(a: np.ndarray) -> np.ndarray:
    """d sum(cos(L)) / dA for L = cholesky(A) reading A's lower triangle (closed form)."""
    l = np.linalg.cholesky(a)
    c = -np.sin(l) * np.tri(len(a))
    p = l.T @ c
    phi = np.tril(p) - 0.5 * np.diag(np.diag(p))
    g = np.linalg.solve(l.T, phi) @ np.linalg.inv(l)
    return np.tril(g) + np.tril(g.T, -1)


# ---- numba: LU with partial pivoting, Cholesky, and their adjoints by hand ------------------------
@numba.njit(cache=True)
def nb_lu(a):
    lu = a.copy()
    n = lu.shape[0]
    piv = np.arange(n)
    sign = 1.0
    for c in range(n):
        p = c
        for i in range(c + 1, n):
            if abs(lu[i, c]) > abs(lu[p, c]):
                p = i
        if p != c:
            sign = -sign
            for j in range(n):
                lu[c, j], lu[p, j] = lu[p, j], lu[c, j]
            piv[c], piv[p] = piv[p], piv[c]
        for i in range(c + 1, n):
            f = lu[i, c] / lu[c, c]
            lu[i, c] = f
            for j in range(c + 1, n):
                lu[i, j] -= f * lu[c, j]
    return lu, piv, sign


@numba.njit(cache=True)
def nb_lu_solve(lu, piv, b):
    """x with A x = b from P A = L U."""
    n = lu.shape[0]
    x = b[piv].copy()
    for i in range(n):
        for j in range(i):
            x[i] -= lu[i, j] * x[j]
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            x[i] -= lu[i, j] * x[j]
        x[i] /= lu[i, i]
    return x


@numba.njit(cache=True)
def nb_lu_solve_t(lu, piv, b):
    """x with A^T x = b from P A = L U: U^T L^T P x = b."""
    n = lu.shape[0]
    y = b.copy()
    for i in range(n):
        for j in range(i):
            y[i] -= lu[j, i] * y[j]
        y[i] /= lu[i, i]
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            y[i] -= lu[j, i] * y[j]
    x = np.empty(n)
    x[piv] = y
    return x


@numba.njit(cache=True)
def nb_solve(a, b):
    lu, piv, _ = nb_lu(a)
    return nb_lu_solve(lu, piv, b)


@numba.njit(cache=True)
def nb_solve_gradient(a, b):
    """d sum(solve(a, b)^2) / da = -(a^-T 2x) x^T: one factorisation, two substitutions."""
    lu, piv, _ = nb_lu(a)
    x = nb_lu_solve(lu, piv, b)
    g = nb_lu_solve_t(lu, piv, 2.0 * x)
    return -np.outer(g, x)


@numba.njit(cache=True)
def nb_det(a):
    lu, _, sign = nb_lu(a)
    d = sign
    for i in range(a.shape[0]):
        d *= lu[i, i]
    return d


@numba.njit(cache=True)
def nb_det_gradient(a):
    """det(a) a^-T, a^-T by substitution from the one factorisation."""
    lu, piv, sign = nb_lu(a)
    n = a.shape[0]
    d = sign
    for i in range(n):
        d *= lu[i, i]
    out = np.empty((n, n))
    e = np.zeros(n)
    for j in range(n):
        e[j] = 1.0
        out[j] = nb_lu_solve(lu, piv, e)        # row j of a^-T = column j of a^-1
        e[j] = 0.0
    return d * out


@numba.njit(cache=True)
def nb_cholesky(a):
    n = a.shape[0]
    l = np.zeros((n, n))
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= l[j, k] * l[j, k]
        l[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s -= l[i, k] * l[j, k]
            l[i, j] = s / l[j, j]
    return l


@numba.njit(cache=True)
def nb_cholesky_gradient(a):
    """d sum(cos(L)) / dA: Phi(L^T C), then L^-T . L^-1 by substitution, then the lower
    triangle's share."""
    l = nb_cholesky(a)
    n = a.shape[0]
    c = -np.sin(l)
    p = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = 0.0
            for k in range(i, n):          # (L^T C)[i, j] = sum_k L[k, i] C[k, j], k >= i
                s += l[k, i] * c[k, j]
            p[i, j] = 0.5 * s if i == j else s
    for j in range(n):                     # Q = L^-T P: column by column, back substitution
        for i in range(n - 1, -1, -1):
            s = p[i, j]
            for k in range(i + 1, n):
                s -= l[k, i] * p[k, j]
            p[i, j] = s / l[i, i]
    for i in range(n):                     # G = Q L^-1: row by row, G[i] L = Q[i]
        for j in range(n - 1, -1, -1):
            s = p[i, j]
            for k in range(j + 1, n):
                s -= p[i, k] * l[k, j]
            p[i, j] = s / l[j, j]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            out[i, j] = p[i, j] + (p[j, i] if i != j else 0.0)
    return out


# ---- the three tools per problem ------------------------------------------------------------------
def tool(f: Callable, inputs: list, expected: Callable[[], np.ndarray], finish: str = "") -> Tool:
    stmt = f"f({', '.join(f'x{i}' for i in range(len(inputs)))}){finish}"
    env = {"f": f, **{f"x{i}": x for i, x in enumerate(inputs)}}
    eval(stmt, env)
    return Tool(stmt, env, expected)


def anvil_solve(n, grad):
    f = av.NumericalFunction(bt.fresh_name("solve"), lambda a, b: (anp.linalg.solve(a, b) ** 2)
                             .sum() if grad else anp.linalg.solve(a, b),
                             [av.Arg((n, n)), av.Arg(n)])
    return ad.gradient(f, argnums=0) if grad else f


def anvil_det(n, grad):
    f = av.NumericalFunction(bt.fresh_name("det"), anp.linalg.det, [av.Arg((n, n))])
    return ad.gradient(f) if grad else f


def anvil_cholesky(n, grad):
    f = av.NumericalFunction(bt.fresh_name("chol"), lambda a: anp.cos(anp.linalg.cholesky(a))
                             .sum() if grad else anp.linalg.cholesky(a), [av.Arg((n, n))])
    return ad.gradient(f) if grad else f


def jax_functions():
    jax, jnp = peers.jax, peers.jnp

    def lower(a):
        return jnp.tril(a) + jnp.tril(a, -1).T

    return {
        ("solve", False): jnp.linalg.solve,
        ("solve", True): jax.grad(lambda a, b: jnp.sum(jnp.linalg.solve(a, b) ** 2)),
        ("det", False): jnp.linalg.det,
        ("det", True): jax.grad(jnp.linalg.det),
        ("cholesky", False): jnp.linalg.cholesky,
        ("cholesky", True): jax.grad(lambda a: jnp.sum(jnp.cos(jnp.linalg.cholesky(lower(a))))),
    }


PROBLEMS = {
    # name: (anvil builder, numba value, numba gradient, inputs(n), value, gradient)
    "solve": (anvil_solve, nb_solve, nb_solve_gradient, lambda n: [general(n), rhs(n)],
              lambda a, b: np.linalg.solve(a, b),
              lambda a, b: -np.outer(np.linalg.solve(a.T, 2 * np.linalg.solve(a, b)),
                                     np.linalg.solve(a, b))),
    "det": (anvil_det, nb_det, nb_det_gradient, lambda n: [general(n)],
            np.linalg.det, lambda a: np.linalg.det(a) * np.linalg.inv(a).T),
    "cholesky": (anvil_cholesky, nb_cholesky, nb_cholesky_gradient, lambda n: [spd(n)],
                 np.linalg.cholesky, cholesky_gradient),
}


def section_for(name: str, grad: bool, cfg: bt.Timing) -> Section:
    make_anvil, nb_value, nb_grad, inputs_for, value, gradient = PROBLEMS[name]
    jitted = peers.jax.jit(jax_functions()[(name, grad)])
    rows = []
    for n in SIZES:
        xs = inputs_for(n)
        expected = (lambda xs=xs: (gradient if grad else value)(*xs))
        tools = {"anvil": tool(make_anvil(n, grad), xs, expected),
                 "numba": tool(nb_grad if grad else nb_value, xs, expected),
                 "JAX jit": tool(jitted, [peers.jnp.asarray(x) for x in xs], expected,
                                 ".block_until_ready()")}
        calls = bt.side_by_side(tools, cfg.rounds, cfg.seconds)
        peer_times = {p: calls[p] for p in ("numba", "JAX jit")}
        rows.append(Row(f"n = {n}", calls["anvil"], peer_times, ("numba",), NUMBA_BOUND))
        rows.append(Row(f"n = {n}", calls["anvil"], peer_times, ("JAX jit",),
                        JAX_BOUND if n <= 16 else None))
    what = {"solve": "solve(A, b)", "det": "det(A)", "cholesky": "cholesky(A)"}[name]
    if grad:
        what = {"solve": "gradient of sum(solve(A, b)^2) in A", "det": "gradient of det(A)",
                "cholesky": "gradient of sum(cos(cholesky(A)))"}[name]
    return Section(what, rows, NOTES[(name, grad)])


NOTES = {
    ("solve", False): "anvil: one SOLVE kernel (elimination with partial pivoting, then back "
                      "substitution). numba: LU, then two substitutions.",
    ("solve", True): "anvil: the SOLVE op forward, and SOLVE of A^T for the cotangent (a second "
                     "factorisation). numba: one LU, a solve with it and one with its "
                     "transpose.",
    ("det", False): "anvil: SLOGDET (elimination, the sign and log|pivots|), det = sign * exp; "
                    "numba: the product of the pivots.",
    ("det", True): "anvil: det * A^-T with A^-T a SOLVE of A^T against the identity (a second "
                   "factorisation). numba: one LU, n substitutions.",
    ("cholesky", False): "anvil: one CHOLESKY kernel (Cholesky-Crout in native loops).",
    ("cholesky", True): "anvil: dA from Phi(L^T C) and two TRISOLVEs (substitution kernels). "
                        "numba: the same formula in loops. JAX's cholesky symmetrises its "
                        "input; it is given tril(A) + tril(A, -1)^T so that all read the "
                        "same lower triangle.",
}


LARGE_SIZES = (64, 128, 256)
LARGE = {
    # name: (anvil traced function, NumPy's, inputs(n), JAX's)
    "solve(A, b)": (lambda a, b: anp.linalg.solve(a, b), np.linalg.solve,
                    lambda n: [general(n), rhs(n)], lambda: peers.jnp.linalg.solve),
    "slogdet(A)": (lambda a: anp.stack(anp.linalg.slogdet(a)),
                   lambda a: np.stack(np.linalg.slogdet(a)), lambda n: [general(n)],
                   lambda: lambda a: peers.jnp.stack(peers.jnp.linalg.slogdet(a))),
    "cholesky(A)": (lambda a: anp.linalg.cholesky(a), np.linalg.cholesky, lambda n: [spd(n)],
                    lambda: peers.jnp.linalg.cholesky),
    # eigenvalues and eigenvectors (|V|: the signs are each tool's own convention)
    "eigh(A)": (lambda a: _eigen(anp, a), lambda a: _eigen(np, a), lambda n: [spd(n)],
                lambda: lambda a: _eigen(peers.jnp, a)),
}


def _eigen(xp, a):
    w, v = xp.linalg.eigh(a)
    return xp.concatenate([w[None], xp.abs(v)])


def large_matrices(cfg: bt.Timing) -> Section:
    """Matrices from n = 64 on, where JIT code calls SciPy's LAPACK (`LAPACK_FROM`)."""
    rows = []
    for what, (traced, numpy_fn, inputs_for, jax_fn) in LARGE.items():
        jitted = peers.jax.jit(jax_fn())
        for n in LARGE_SIZES:
            xs = inputs_for(n)
            f = av.NumericalFunction(bt.fresh_name("large"), traced,
                                     [av.Arg(x.shape) for x in xs])
            expected = (lambda xs=xs, numpy_fn=numpy_fn: numpy_fn(*xs))
            tools = {"anvil": tool(f, xs, expected),
                     "NumPy": tool(numpy_fn, xs, expected),
                     "JAX jit": tool(jitted, [peers.jnp.asarray(x) for x in xs], expected,
                                     ".block_until_ready()")}
            calls = bt.side_by_side(tools, cfg.rounds, cfg.seconds)
            rows.append(Row(f"{what}, n = {n}", calls["anvil"],
                            {p: calls[p] for p in ("NumPy", "JAX jit")}, ("NumPy",),
                            LARGE_BOUND))
    return Section("Large matrices: LAPACK in JIT code", rows,
                   "anvil: the SOLVE, SLOGDET, CHOLESKY and EIGH ops, which in JIT code call "
                   "SciPy's getrf/getrs, getrf, potrf and syevd from these sizes on (the "
                   "loops that exported code keeps took, at n = 256: solve 936 us, slogdet "
                   "930 us, cholesky 1.7 ms, eigh 1.15 s; docs/numpy.md). eigh: eigenvalues "
                   "over the eigenvectors' absolute values (each tool has its own signs). "
                   "NumPy: np.linalg (its LAPACK, single-threaded here). JAX: jit, x64, CPU. "
                   "Target: within "
                   f"{LARGE_BOUND}x NumPy's call.")


LARGE_BOUND = 1.5


def _section(op: str, gradient: bool, name: str):
    """The section of `op` (its value or its gradient), named for `--only`."""
    def section(cfg):
        return section_for(op, gradient, cfg)
    section.__name__ = name
    return section


solve_value = _section("solve", False, "solve_value")
solve_gradient = _section("solve", True, "solve_gradient")
det_value = _section("det", False, "det_value")
det_gradient = _section("det", True, "det_gradient")
cholesky_value = _section("cholesky", False, "cholesky_value")
cholesky_gradient_section = _section("cholesky", True, "cholesky_gradient_section")


AREA = bt.Area("linalg", "Dense linear algebra: solve, det, cholesky and their gradients; "
               "large matrices through LAPACK",
               (solve_value, solve_gradient, det_value, det_gradient, cholesky_value,
                cholesky_gradient_section, large_matrices), QUICK, FULL,
               intro="One matrix per call, float64. ")


if __name__ == "__main__":
    AREA.main(__doc__)
