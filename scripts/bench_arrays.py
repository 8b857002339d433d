"""Array benchmarks of anvil_llvm side by side with JAX (`jit`, x64) and CasADi: dense Hessians of
quadratic forms plus elementwise terms (a captured constant matrix, and a matrix argument) and
Gauss-Newton products J^T J, where the basis seeds of the dense derivative meet contractions
(issue 20, item 2). Prints markdown tables and writes them to docs/benchmarks/arrays.md.

    python scripts/bench_arrays.py            # the full run (docs/benchmarks/arrays.md)
    python scripts/bench_arrays.py --quick    # reduced sizes, a smoke test (about a minute)

Every tool's output is checked against the closed form (NumPy) before it is timed. Builds run in
this process for every tool (interleaved rounds, each a fresh function: trace, derivative,
compile and the first call; anvil's disk cache off); call times are medians over rounds in which
the tools take turns.
"""
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Before NumPy: NumPy's and SciPy's OpenBLAS thread pools fight on this 2-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import benchtools as bt
import numpy as np
from benchtools import Point, Row, Section, Tool, Value, peers

import anvil_llvm as av
from anvil_llvm import ad

SCRIPT = str(Path(__file__).resolve())


@dataclass(frozen=True)
class Config(bt.Timing):
    hessian_ns: tuple[int, ...]     # sizes of the quadratic-form Hessians
    casadi_max_n: int               # larger SX Hessians take minutes to build
    gauss_newton: tuple[int, int]   # (n, m): J is m x n


FULL = Config(rounds=7, seconds=0.05, build_rounds=3, processes=1, hessian_ns=(200, 1000),
              casadi_max_n=200, gauss_newton=(200, 300))
QUICK = Config(rounds=3, seconds=0.01, build_rounds=1, processes=1, hessian_ns=(50, 200),
               casadi_max_n=50, gauss_newton=(50, 80))


# ---- the problems: data from default_rng(20), one constant per size --------------------------
def matrix(rows: int, cols: int) -> np.ndarray:
    return np.random.default_rng(20).standard_normal((rows, cols))


def point(n: int) -> np.ndarray:
    return 0.5 * np.random.default_rng(21).standard_normal(n)


def quadratic_hessian(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The Hessian of x^T A x + sum(cos x): A + A^T - diag(cos x)."""
    return A + A.T - np.diag(np.cos(x))


def gauss_newton(C: np.ndarray, x: np.ndarray) -> np.ndarray:
    """J^T J for r(x) = C tanh(x): J = C diag(1 - tanh(x)^2)."""
    J = C * (1 - np.tanh(x) ** 2)
    return J.T @ J


@functools.cache
def warm_up() -> None:
    """Builds before the timed ones: the one-off set-up of LLVM, of the JIT, of the BLAS that
    GEMMs call and of JAX is no build."""
    f = av.NumericalFunction("warm", lambda x: (x @ x).sum(), [av.Arg((40, 40))])
    ad.gradient(f)(np.ones((40, 40)))
    if hasattr(peers, "jax"):       # a missing JAX: its cells say so
        peers.jax.jit(peers.jax.hessian(lambda x: x @ x))(peers.jnp.ones(3)).block_until_ready()


# ---- builders: each returns a Tool; a build is a fresh function ------------------------------
def builder(make: Callable[[], Callable], inputs: list, expected: Callable[[], np.ndarray],
            convert: Callable = np.asarray, finish: str = "") -> Callable[[], Tool]:
    """A Tool's builder: `make()` gives the function, called once on the `inputs` (each
    `convert`ed) and timed as `f(x0, ...)` followed by `finish`."""
    def build() -> Tool:
        f = make()
        xs = [convert(x) for x in inputs]
        stmt = f"f({', '.join(f'x{i}' for i in range(len(xs)))}){finish}"
        env = {"f": f, **{f"x{i}": x for i, x in enumerate(xs)}}
        eval(stmt, env)
        return Tool(stmt, env, expected)
    return build


def anvil_builder(make: Callable[[str], av.NumericalFunction], inputs: list,
                  expected: Callable[[], np.ndarray]) -> Callable[[], Tool]:
    return builder(lambda: make(bt.fresh_name("f")), inputs, expected)


def jax_builder(make: Callable[[], Callable], inputs: list,
                expected: Callable[[], np.ndarray]) -> Callable[[], Tool]:
    # make() is a fresh Python function each time: JAX caches its compilations by function
    return builder(lambda: peers.jax.jit(make()), inputs, expected,
                   lambda x: peers.jnp.asarray(x), ".block_until_ready()")


def casadi_builder(make: Callable[[], object], inputs: list,
                   expected: Callable[[], np.ndarray]) -> Callable[[], Tool]:
    return builder(make, inputs, expected, lambda x: peers.ca.DM(x))


def measure(cfg: Config, builders: dict[str, Callable[[], Tool]]
            ) -> tuple[dict[str, Value], dict[str, Value]]:
    """Build times and call times of each tool."""
    tools, builds = bt.build_timed(builders, cfg.build_rounds, slow=5.0)
    calls = bt.side_by_side(tools, cfg.rounds, cfg.seconds)
    return builds, {name: calls.get(name, builds[name]) for name in builders}


def rows_for(what: str, builds: dict, calls: dict, problem: str, operator: str, n: int
             ) -> list[Row]:
    """The build and call rows of `operator` of `problem` at size `n`."""
    peer_names = [name for name in builds if name != "anvil"]
    return [Row(f"{what}: build", builds["anvil"], {p: builds[p] for p in peer_names},
                ("JAX",), 1.0, point=Point(problem, operator, "build", n)),
            Row(f"{what}: call", calls["anvil"], {p: calls[p] for p in peer_names},
                ("JAX",), 1.0, point=Point(problem, operator, "run", n))]


# ---- sections ----------------------------------------------------------------------------------
def quadratic_form(cfg: Config) -> Section:
    """x^T A x + sum(cos x), A a captured constant matrix."""
    warm_up()
    rows = []
    for n in cfg.hessian_ns:
        A, x0 = matrix(n, n), point(n)
        expected = lambda A=A, x0=x0: quadratic_hessian(A, x0)

        def anvil(name, A=A, n=n):
            return ad.hessian(av.NumericalFunction(
                name, lambda x: x @ A @ x + av.cos(x).sum(), [av.Arg((n,))]))

        def jax(A=A):
            jnp = peers.jnp
            return peers.jax.hessian(lambda x: x @ A @ x + jnp.sum(jnp.cos(x)))

        def casadi(A=A, n=n):
            ca = peers.ca
            z = ca.SX.sym("x", n)
            H, _ = ca.hessian(ca.mtimes(z.T, ca.mtimes(ca.DM(A), z)) + ca.sum1(ca.cos(z)), z)
            return ca.Function("h", [z], [H])

        builders = {"anvil": anvil_builder(anvil, [x0], expected),
                    "JAX": jax_builder(jax, [x0], expected)}
        if n <= cfg.casadi_max_n:
            builders["CasADi SX"] = casadi_builder(casadi, [x0], expected)
        builds, calls = measure(cfg, builders)
        if n > cfg.casadi_max_n:
            builds["CasADi SX"] = calls["CasADi SX"] = "not run (SX build: minutes)"
        rows += rows_for(f"n = {n}", builds, calls, "x^T A x + sum(cos x)", "hessian", n)
    return Section("1. Dense Hessian of x^T A x + sum(cos x), A a constant matrix", rows, """\
The dense Hessian is vmap of the JVP of the gradient over the basis seeds, a symbolic identity
(`iota == iota`). Simplification turns every contraction with that identity into a selection
(ir/simplify.py), and contractions over one element into products, so the graph is the closed
form A + A^T - diag(cos x): one fused loop over the n x n result, no GEMM. JAX's
`jit(hessian(f))` pushes the n seeds through the products with A. CasADi SX builds the
expression graph of all n^2 entries (its build grows with n^2 symbolic nodes).""")


def argument_matrix(cfg: Config) -> Section:
    """x^T M x + sum(cos x) with M an argument."""
    warm_up()
    rows = []
    for n in cfg.hessian_ns[:1]:
        M0, x0 = matrix(n, n), point(n)
        expected = lambda M0=M0, x0=x0: quadratic_hessian(M0, x0)

        def anvil(name, n=n):
            return ad.hessian(av.NumericalFunction(
                name, lambda x, M: x @ M @ x + av.cos(x).sum(), [av.Arg((n,)), av.Arg((n, n))]))

        def jax():
            jnp = peers.jnp
            return peers.jax.hessian(lambda x, M: x @ M @ x + jnp.sum(jnp.cos(x)))

        def casadi(n=n):
            ca = peers.ca
            z, m = ca.SX.sym("x", n), ca.SX.sym("M", n, n)
            H, _ = ca.hessian(ca.mtimes(z.T, ca.mtimes(m, z)) + ca.sum1(ca.cos(z)), z)
            return ca.Function("h", [z, m], [H])

        builders = {"anvil": anvil_builder(anvil, [x0, M0], expected),
                    "JAX": jax_builder(jax, [x0, M0], expected)}
        if n <= cfg.casadi_max_n:
            builders["CasADi SX"] = casadi_builder(casadi, [x0, M0], expected)
        builds, calls = measure(cfg, builders)
        rows += rows_for(f"n = {n}", builds, calls, "x^T M x + sum(cos x)", "hessian", n)
    return Section("2. Dense Hessian of x^T M x + sum(cos x), M an argument", rows, """\
The same rules with a matrix that is not a constant: the Hessian reads M and its transpose.""")


def gauss_newton_product(cfg: Config) -> Section:
    """J^T J of r(x) = C tanh(x)."""
    warm_up()
    n, m = cfg.gauss_newton
    C, x0 = matrix(m, n), point(n)
    expected = lambda: gauss_newton(C, x0)

    def anvil(name):
        r = av.NumericalFunction(f"{name}_r", lambda x: C @ av.tanh(x), [av.Arg((n,))])
        J = ad.jacobian(r)
        return av.NumericalFunction(name, lambda x: J(x).T @ J(x), [av.Arg((n,))])

    def jax():
        J = peers.jax.jacfwd(lambda x: C @ peers.jnp.tanh(x))
        return lambda x: J(x).T @ J(x)

    def casadi():
        ca = peers.ca
        z = ca.MX.sym("x", n)
        J = ca.jacobian(ca.mtimes(ca.DM(C), ca.tanh(z)), z)
        return ca.Function("gn", [z], [ca.mtimes(J.T, J)])

    builds, calls = measure(cfg, {"anvil": anvil_builder(anvil, [x0], expected),
                                  "JAX": jax_builder(jax, [x0], expected),
                                  "CasADi MX": casadi_builder(casadi, [x0], expected)})
    return Section(f"3. Gauss-Newton product J^T J, r(x) = C tanh(x), C {m} x {n}",
                   rows_for(f"n = {n}, m = {m}", builds, calls, "J^T J, r = C tanh(x)",
                            "Gauss-Newton product", n), f"""\
The Jacobian's seeds select columns of C (a scaled identity: C diag(1 - tanh(x)^2), no GEMM);
J^T J is the one GEMM the product needs ({n} x {m} x {n}). JAX's `jacfwd` pushes the {n} seeds
through C as a matrix product first. CasADi as MX (matrix operations; SX would build
{n}^2 {m} scalar products).""")


AREA = bt.Area("arrays", "Array benchmarks: dense Hessians and Gauss-Newton products with "
               "matrices", (quadratic_form, argument_matrix, gauss_newton_product), QUICK, FULL,
               intro="Builds: in this process, each a fresh function (trace or definition, "
               "derivative, compile, first call), the median of interleaved rounds. ")


if __name__ == "__main__":
    AREA.main(__doc__)
