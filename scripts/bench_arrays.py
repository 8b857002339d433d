"""Array benchmarks of anvil_llvm side by side with JAX (`jit`, x64), CasADi, NumPy and
hand-written numba, one section per class of array code (issue 20): dense Hessians of quadratic
forms plus elementwise terms (a captured constant matrix, and a matrix argument), Gauss-Newton
products J^T J (where the basis seeds of the dense derivative meet contractions), gradients of
row normalisations (softmax, log-sum-exp, cross-entropy, layer norm), gradients of stencil
energies on 2-D and 3-D grids, a matrix-vector product with a constant matrix, a batched
kinematics Jacobian and the gradient of a vectorised RK4 loss. Prints markdown tables and writes
them to docs/benchmarks/arrays.md.

    python scripts/bench_arrays.py            # the full run (docs/benchmarks/arrays.md)
    python scripts/bench_arrays.py --quick    # reduced sizes, a smoke test (about a minute)

Every tool's output is checked before it is timed against a NumPy reference: a closed form
(itself checked against complex-step directional derivatives) or complex-step derivatives.
Builds run in this process for every tool (interleaved rounds, each a fresh function: trace,
derivative, compile and the first call; anvil's disk cache off); call times are medians over
rounds in which the tools take turns.
"""
import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

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
    rows: tuple[int, int]           # the matrix of the row normalisations
    grid_2d: int                    # points per side of the stencil grids
    grid_3d: int
    matvec_n: int                   # the constant matrix is n x n
    arm_batch: int                  # configurations of the kinematics chain
    rk4_points: int                 # points of the vectorised RK4 loss


FULL = Config(rounds=7, seconds=0.05, build_rounds=3, processes=1, hessian_ns=(200, 1000),
              casadi_max_n=200, gauss_newton=(200, 300), rows=(512, 1000), grid_2d=1000,
              grid_3d=100, matvec_n=1000, arm_batch=10_000, rk4_points=100_000)
QUICK = Config(rounds=3, seconds=0.01, build_rounds=1, processes=1, hessian_ns=(50, 200),
               casadi_max_n=50, gauss_newton=(50, 80), rows=(16, 40), grid_2d=12, grid_3d=6,
               matvec_n=40, arm_batch=50, rk4_points=500)


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


# ---- 4.-6.: scalar functions of arrays, their gradients beside their values -----------------
COMPLEX_STEP = 1e-30


def complex_step(loss: Callable, inputs: tuple, direction: np.ndarray) -> float:
    """The derivative of `loss(*inputs, np)` along `direction` in its first input, by the
    complex step (exact to rounding: no difference is taken)."""
    x = inputs[0] + 1j * COMPLEX_STEP * direction
    return float(np.imag(loss(x, *inputs[1:], np))) / COMPLEX_STEP


@dataclass(frozen=True)
class Problem:
    """A scalar function of arrays written once on `xp` (NumPy, whose functions also trace
    anvil's Tensors, or jax.numpy) with its data bound, `loss(*inputs, xp)`, differentiated with
    respect to its first input. `gradient`: the closed form in NumPy, `gradient(*inputs)` (None:
    the reference is the complex-step gradient); `kernel`: a hand-written gradient compiled by
    numba, `kernel(*inputs, *kernel_data)`; `jax_xp()`: the `xp` of JAX's tools."""

    name: str
    loss: Callable
    inputs: tuple[np.ndarray, ...]
    gradient: Callable[..., np.ndarray] | None = None
    kernel: Callable | None = None
    kernel_data: tuple = ()
    jax_xp: Callable[[], object] = lambda: peers.jnp

    def value(self) -> float:
        return self.loss(*self.inputs, np)

    def reference(self) -> np.ndarray:
        """The gradient: the closed form once it agrees with complex-step derivatives along two
        random directions, or (no closed form) the complex-step gradient."""
        x = self.inputs[0]
        if self.gradient is None:
            basis = np.eye(x.size).reshape((x.size,) + x.shape)
            return np.reshape([complex_step(self.loss, self.inputs, e) for e in basis], x.shape)
        g = self.gradient(*self.inputs)
        for v in np.random.default_rng(22).standard_normal((2,) + x.shape):
            error = bt.rel_error(np.vdot(g, v), complex_step(self.loss, self.inputs, v))
            if error > bt.TOLERANCE:
                raise ValueError(f"{self.name}: the closed-form gradient disagrees with the "
                                 f"complex step (err {error:.1e})")
        return g


def gradient_builders(p: Problem, fastmath: bool = False) -> dict[str, Callable[[], Tool]]:
    """anvil's gradient and value, JAX's `jit(grad)` and `jit`, NumPy's value and closed-form
    gradient, numba's hand-written gradient (`fastmath` as given, single-threaded)."""
    args = [av.Arg(x.shape) for x in p.inputs]
    value, gradient = functools.cache(p.value), functools.cache(p.reference)

    def anvil_value(name: str) -> av.NumericalFunction:
        return av.NumericalFunction(name, lambda *xs: p.loss(*xs, np), args)

    def loss(xp) -> Callable:       # a fresh function: JAX caches compilations by function
        return lambda *xs: p.loss(*xs, xp)

    found = {"anvil": anvil_builder(lambda name: ad.gradient(anvil_value(name), 0), p.inputs,
                                    gradient),
             "anvil value": anvil_builder(anvil_value, p.inputs, value),
             "JAX": jax_builder(lambda: peers.jax.grad(loss(p.jax_xp())), p.inputs, gradient),
             "JAX value": jax_builder(lambda: loss(p.jax_xp()), p.inputs, value),
             "NumPy value": builder(lambda: loss(np), p.inputs, value)}
    if p.gradient is not None:
        found["NumPy"] = builder(lambda: p.gradient, p.inputs, gradient)
    if p.kernel is not None:
        found["numba"] = builder(lambda: peers.numba.njit(fastmath=fastmath)(p.kernel),
                                 [*p.inputs, *p.kernel_data], gradient)
    return found


def pick(values: dict[str, Value], *names: str) -> dict[str, Value]:
    return {name: values[name] for name in names if name in values}


def gradient_rows(p: Problem, n: int, builds: dict, calls: dict,
                  targets: dict[str, float | None], per_value: float | None) -> list[Row]:
    """The gradient's build (target <= 1x JAX), the value's call, the gradient's call against
    each peer of `targets` (its bound; None: no target) and gradient / value (`per_value`)."""
    gradients = pick(calls, "JAX", "NumPy", "numba")
    rows = [Row(f"{p.name}: build", builds["anvil"], pick(builds, "JAX", "numba"), ("JAX",),
                1.0, point=Point(p.name, "gradient", "build", n)),
            Row(f"{p.name}: value", calls["anvil value"], {"JAX": calls["JAX value"],
                "NumPy": calls["NumPy value"]}, ("JAX", "NumPy"),
                point=Point(p.name, "value", "run", n))]
    rows += [Row(f"{p.name}: gradient", calls["anvil"], gradients, (peer,), bound,
                 point=Point(p.name, "gradient", "run", n)) for peer, bound in targets.items()]
    return rows + [Row(f"{p.name}: gradient / value", calls["anvil"],
                       {"anvil value": calls["anvil value"]}, ("anvil value",), per_value)]


# ---- 4. row normalisations ---------------------------------------------------------------------
LAYER_NORM_EPS = 1e-5
SOFTMAX, LOGSUMEXP, CROSS_ENTROPY = range(3)


def softmax_loss(X, xp, W):
    E = xp.exp(X - xp.max(X, axis=1, keepdims=True))
    return xp.sum(W * (E / xp.sum(E, axis=1, keepdims=True)))


def logsumexp_loss(X, xp, W):
    """The log-sum-exp of each row, weighted by W's first column."""
    m = xp.max(X, axis=1, keepdims=True)
    return xp.sum(W[:, :1] * (xp.log(xp.sum(xp.exp(X - m), axis=1, keepdims=True)) + m))


def cross_entropy_loss(X, xp, labels):
    Z = X - xp.max(X, axis=1, keepdims=True)
    log_p = Z - xp.log(xp.sum(xp.exp(Z), axis=1, keepdims=True))
    return -xp.mean(log_p[np.arange(len(labels)), labels])


def layer_norm_loss(X, xp, W):
    D = X - xp.mean(X, axis=1, keepdims=True)
    return xp.sum(W * (D / xp.sqrt(xp.mean(D * D, axis=1, keepdims=True) + LAYER_NORM_EPS)))


def row_softmax(X: np.ndarray) -> np.ndarray:
    E = np.exp(X - X.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def softmax_gradient(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    S = row_softmax(X)
    return S * (W - np.sum(W * S, axis=1, keepdims=True))


def logsumexp_gradient(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    return W[:, :1] * row_softmax(X)


def cross_entropy_gradient(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    G = row_softmax(X)
    G[np.arange(len(labels)), labels] -= 1.0
    return G / len(labels)


def layer_norm_gradient(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(W - mean W - Y mean(W Y)) / s per row, Y = (X - mean X) / s the normalised rows."""
    D = X - X.mean(axis=1, keepdims=True)
    s = np.sqrt(np.mean(D * D, axis=1, keepdims=True) + LAYER_NORM_EPS)
    Y = D / s
    return (W - W.mean(axis=1, keepdims=True) - Y * np.mean(W * Y, axis=1, keepdims=True)) / s


def nb_softmax_family(kind: int) -> Callable:
    """A hand-written gradient of a loss of the row softmax S of X (`kind` a constant when it
    compiles): softmax S (W - sum(W S)), log-sum-exp W[:, 0] S, cross-entropy
    (S - onehot(labels)) / rows."""
    def kernel(X, W, labels):
        rows, cols = X.shape
        G = np.empty_like(X)
        for r in range(rows):
            m = X[r, 0]
            for j in range(1, cols):
                m = max(m, X[r, j])
            total = 0.0
            for j in range(cols):
                G[r, j] = math.exp(X[r, j] - m)
                total += G[r, j]
            if kind == SOFTMAX:
                dot = 0.0
                for j in range(cols):
                    G[r, j] /= total
                    dot += W[r, j] * G[r, j]
                for j in range(cols):
                    G[r, j] *= W[r, j] - dot
            elif kind == LOGSUMEXP:
                scale = W[r, 0] / total
                for j in range(cols):
                    G[r, j] *= scale
            else:
                scale = 1.0 / (total * rows)
                for j in range(cols):
                    G[r, j] *= scale
                G[r, labels[r]] -= 1.0 / rows
        return G
    return kernel


def nb_layer_norm(X, W):
    rows, cols = X.shape
    G = np.empty_like(X)
    for r in range(rows):
        mean = 0.0
        for j in range(cols):
            mean += X[r, j]
        mean /= cols
        var = 0.0
        for j in range(cols):
            var += (X[r, j] - mean) ** 2
        s = math.sqrt(var / cols + LAYER_NORM_EPS)
        w_mean, wy_mean = 0.0, 0.0
        for j in range(cols):
            w_mean += W[r, j]
            wy_mean += W[r, j] * (X[r, j] - mean) / s
        w_mean /= cols
        wy_mean /= cols
        for j in range(cols):
            G[r, j] = (W[r, j] - w_mean - (X[r, j] - mean) / s * wy_mean) / s
    return G


def row_problems(rows: int, cols: int) -> list[Problem]:
    rng = np.random.default_rng(23)
    X, W = rng.standard_normal((rows, cols)), rng.standard_normal((rows, cols))
    labels = rng.integers(0, cols, rows)
    by_weights = functools.partial(functools.partial, W=W)
    return [
        Problem("softmax", by_weights(softmax_loss), (X,), by_weights(softmax_gradient),
                nb_softmax_family(SOFTMAX), (W, labels)),
        Problem("log-sum-exp", by_weights(logsumexp_loss), (X,), by_weights(logsumexp_gradient),
                nb_softmax_family(LOGSUMEXP), (W, labels)),
        Problem("cross-entropy", functools.partial(cross_entropy_loss, labels=labels), (X,),
                functools.partial(cross_entropy_gradient, labels=labels),
                nb_softmax_family(CROSS_ENTROPY), (W, labels)),
        Problem("layer norm", by_weights(layer_norm_loss), (X,),
                by_weights(layer_norm_gradient), nb_layer_norm, (W,))]


def row_normalisations(cfg: Config) -> Section:
    warm_up()
    rows, cols = cfg.rows
    found = []
    for p in row_problems(rows, cols):
        builds, calls = measure(cfg, gradient_builders(p))
        found += gradient_rows(p, rows * cols, builds, calls, {"JAX": 1.0, "NumPy": 1.0}, None)
    return Section(f"4. Gradients of row normalisations, X {rows} x {cols}", found, """\
Gradients with respect to X of scalar losses of row normalisations: sum(W * softmax(X)) (the
row maximum subtracted first), sum(w * logsumexp(X)) per row, the mean cross-entropy of
log_softmax(X) picked at constant integer labels, and sum(W * (X - mean) / sqrt(var + 1e-5))
(a layer norm without its affine part); W, w and the labels are random constants. anvil:
`anvil_llvm.ad.gradient` of the traced NumPy code; JAX: `jit(grad(f))`; NumPy: the closed-form
gradient, vectorised (checked against complex-step directional derivatives, then the reference
of the others); numba: the same closed form as loops over each row (`fastmath` off, one
thread), for information. Value: the loss alone (anvil's function, `jit(f)`, the NumPy code).
Targets: the gradient <= 1x JAX and <= 1x the NumPy gradient.""")


# ---- 5. stencil energies --------------------------------------------------------------------
SHIFTS_3D = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))


def interior(n: int, shift: tuple[int, ...] = (0, 0, 0)) -> tuple[slice, ...]:
    """The interior of an n^3 grid moved by `shift`."""
    return tuple(slice(1 + s, n - 1 + s) for s in shift)


def laplacian(g, n: int):
    """The 7-point Laplacian on the interior of the n^3 grid g."""
    return sum(g[interior(n, s)] for s in SHIFTS_3D) - 6 * g[interior(n)]


def surface_energy(u, xp, n: int):
    """sum sqrt(1 + dx^2 + dy^2) over the forward differences of the n x n grid u on their
    common (n-1)^2 interior, plus sum(exp(u))."""
    g = u.reshape(n, n)
    dx, dy = g[1:, :-1] - g[:-1, :-1], g[:-1, 1:] - g[:-1, :-1]
    return xp.sum(xp.sqrt(1 + dx * dx + dy * dy)) + xp.sum(xp.exp(u))


def curvature_energy(u, xp, n: int):
    """sum sqrt(1 + L^2), L the 7-point Laplacian of the n^3 grid u, plus sum(exp(u))."""
    L = laplacian(u.reshape(n, n, n), n)
    return xp.sum(xp.sqrt(1 + L * L)) + xp.sum(xp.exp(u))


def surface_gradient(u: np.ndarray, n: int) -> np.ndarray:
    g = u.reshape(n, n)
    dx, dy = g[1:, :-1] - g[:-1, :-1], g[:-1, 1:] - g[:-1, :-1]
    r = np.sqrt(1 + dx * dx + dy * dy)
    G = np.exp(g)
    G[1:, :-1] += dx / r
    G[:-1, 1:] += dy / r
    G[:-1, :-1] -= (dx + dy) / r
    return G.ravel()


def curvature_gradient(u: np.ndarray, n: int) -> np.ndarray:
    g = u.reshape(n, n, n)
    L = laplacian(g, n)
    t = L / np.sqrt(1 + L * L)
    G = np.exp(g)
    for s in SHIFTS_3D:
        G[interior(n, s)] += t
    G[interior(n)] -= 6 * t
    return G.ravel()


def nb_surface_gradient(n: int) -> Callable:
    """surface_gradient as loops (n a constant when it compiles)."""
    def kernel(u):
        g = u.reshape((n, n))
        G = np.exp(u).reshape((n, n))
        for i in range(n - 1):
            for j in range(n - 1):
                dx, dy = g[i + 1, j] - g[i, j], g[i, j + 1] - g[i, j]
                r = 1.0 / math.sqrt(1.0 + dx * dx + dy * dy)
                G[i + 1, j] += dx * r
                G[i, j + 1] += dy * r
                G[i, j] -= (dx + dy) * r
        return G.reshape(n * n)
    return kernel


def nb_curvature_gradient(n: int) -> Callable:
    """curvature_gradient as loops (n a constant when it compiles)."""
    def kernel(u):
        g = u.reshape((n, n, n))
        G = np.exp(u).reshape((n, n, n))
        for i in range(1, n - 1):
            for j in range(1, n - 1):
                for k in range(1, n - 1):
                    L = (g[i + 1, j, k] + g[i - 1, j, k] + g[i, j + 1, k] + g[i, j - 1, k]
                         + g[i, j, k + 1] + g[i, j, k - 1] - 6.0 * g[i, j, k])
                    t = L / math.sqrt(1.0 + L * L)
                    G[i, j, k] -= 6.0 * t
                    G[i + 1, j, k] += t
                    G[i - 1, j, k] += t
                    G[i, j + 1, k] += t
                    G[i, j - 1, k] += t
                    G[i, j, k + 1] += t
                    G[i, j, k - 1] += t
        return G.reshape(n * n * n)
    return kernel


def stencil_problems(n2: int, n3: int) -> list[Problem]:
    u2 = 0.1 * np.random.default_rng(24).standard_normal(n2 * n2)
    u3 = 0.1 * np.random.default_rng(25).standard_normal(n3 ** 3)
    return [Problem(f"2-D surface, {n2} x {n2}", functools.partial(surface_energy, n=n2), (u2,),
                    functools.partial(surface_gradient, n=n2), nb_surface_gradient(n2)),
            Problem(f"3-D 7-point, {n3}^3", functools.partial(curvature_energy, n=n3), (u3,),
                    functools.partial(curvature_gradient, n=n3), nb_curvature_gradient(n3))]


def stencil_energies(cfg: Config) -> Section:
    warm_up()
    rows = []
    for p in stencil_problems(cfg.grid_2d, cfg.grid_3d):
        builds, calls = measure(cfg, gradient_builders(p, fastmath=True))
        rows += gradient_rows(p, p.inputs[0].size, builds, calls, {"numba": 1.0, "JAX": None},
                              4.0)
    return Section("5. Gradients of stencil energies on 2-D and 3-D grids", rows, """\
Energies of a grid u (a flat argument, reshaped and sliced): in 2-D, sum(sqrt(1 + dx^2 + dy^2))
over the forward differences on their common interior plus sum(exp(u)); in 3-D, sum(sqrt(1 +
L^2)) with L the 7-point Laplacian on the interior plus sum(exp(u)). The gradient scatters each
interior term back to its neighbours (the transposes of the slices). anvil:
`anvil_llvm.ad.gradient`; JAX: `jit(grad(f))`; numba: the hand-written gradient as loops
(`fastmath=True`, one thread); NumPy: the closed form with slices, the reference (checked
against complex-step directional derivatives), for information. Targets: gradient <= 1x numba,
gradient / value <= 4; the ratio to JAX is shown.""")


# ---- 6. a matrix-vector product, a batched Jacobian, a vectorised RK4 loss ---------------------
LINKS = np.array([0.5, 0.45, 0.4, 0.35, 0.3, 0.2, 0.1])
RK4_H, RK4_STEPS = 0.04, 25


def planar_arm(q, xp):
    """The end of a planar chain of revolute joints (lengths LINKS, angles q): x, y and its
    orientation."""
    angle, x, y = 0.0, 0.0, 0.0
    for i, length in enumerate(LINKS):
        angle = angle + q[i]
        x = x + length * xp.cos(angle)
        y = y + length * xp.sin(angle)
    return xp.stack([x, y, angle])


def arm_jacobians(Q: np.ndarray) -> np.ndarray:
    """(batch, 3, joints): the Jacobians of every configuration (a row of Q) by the complex
    step, one joint at a time for the whole batch."""
    columns = [planar_arm((Q + 1j * COMPLEX_STEP * e).T, np).imag / COMPLEX_STEP
               for e in np.eye(Q.shape[1])]
    return np.stack(columns, axis=-1).transpose(1, 0, 2)


def looped(J: Callable, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """J called from Python on each row of a batch, into one array."""
    def call(Q: np.ndarray) -> np.ndarray:
        out = np.empty((len(Q),) + shape)
        for q, o in zip(Q, out):
            J(q, out=o)
        return out
    return call


def rk4_step(rhs: Callable, state: tuple, h: float) -> tuple:
    def moved(slopes: tuple, w: float) -> tuple:
        return tuple(s + w * d for s, d in zip(state, slopes))
    k1 = rhs(*state)
    k2 = rhs(*moved(k1, h / 2))
    k3 = rhs(*moved(k2, h / 2))
    k4 = rhs(*moved(k3, h))
    return tuple(s + h / 6 * (a + 2 * b + 2 * c + d)
                 for s, a, b, c, d in zip(state, k1, k2, k3, k4))


def python_fori_loop(lower: int, upper: int, body: Callable, state):
    for i in range(lower, upper):
        state = body(i, state)
    return state


def jax_loop_xp() -> SimpleNamespace:
    """JAX's maths with `lax.fori_loop`: XLA takes minutes to compile the gradient of the RK4
    loss written as a Python loop (unrolled)."""
    return SimpleNamespace(sin=peers.jnp.sin, sum=peers.jnp.sum,
                           fori_loop=peers.jax.lax.fori_loop)


def pendulum_loss(p, theta, omega, xp, data):
    """sum((theta(T) - data)^2) after RK4_STEPS steps of theta'' = -k sin(theta) - c theta'
    from every point (theta, omega); p = [k, c] (stiffness, damping). A Python loop unless `xp`
    has a `fori_loop`."""
    k, c = p[0], p[1]
    fori_loop = getattr(xp, "fori_loop", python_fori_loop)
    final = fori_loop(0, RK4_STEPS, lambda i, state: rk4_step(
        lambda a, b: (b, -k * xp.sin(a) - c * b), state, RK4_H), (theta, omega))
    return xp.sum((final[0] - data) ** 2)


def matvec_rows(cfg: Config) -> list[Row]:
    n = cfg.matvec_n
    A, x0 = matrix(n, n), point(n)
    expected = lambda: A @ x0

    def anvil(name):
        return av.NumericalFunction(name, lambda x: A @ x, [av.Arg((n,))])

    builds, calls = measure(cfg, {
        "anvil": anvil_builder(anvil, [x0], expected),
        "NumPy": builder(lambda: A.__matmul__, [x0], expected),
        "JAX": jax_builder(lambda: lambda x: peers.jnp.dot(A, x), [x0], expected)})
    what = f"A @ x, A a constant {n} x {n}"
    return [Row(f"{what}: build", builds["anvil"], pick(builds, "JAX"), ("JAX",), 1.0,
                point=Point("A @ x", "matrix-vector product", "build", n)),
            Row(f"{what}: call", calls["anvil"], pick(calls, "NumPy", "JAX"), ("NumPy",), 1.0,
                point=Point("A @ x", "matrix-vector product", "run", n))]


def arm_rows(cfg: Config) -> list[Row]:
    batch, joints = cfg.arm_batch, len(LINKS)
    Q = np.random.default_rng(26).uniform(-1.0, 1.0, (batch, joints))
    expected = functools.cache(lambda: arm_jacobians(Q))

    def arm(name):
        return av.NumericalFunction(name, lambda q: planar_arm(q, np), [av.Arg((joints,))])

    builds, calls = measure(cfg, {
        "anvil": anvil_builder(lambda name: ad.vmap(ad.jacobian(arm(name)), axis_size=batch),
                               [Q], expected),
        "anvil Python loop": builder(lambda: looped(ad.jacobian(arm(bt.fresh_name("arm"))),
                                                    (3, joints)), [Q], expected),
        "JAX": jax_builder(lambda: peers.jax.vmap(peers.jax.jacfwd(
            lambda q: planar_arm(q, peers.jnp))), [Q], expected)})
    what = f"vmap(jacobian) of a {joints}-joint arm, {batch:,} configurations"
    point = functools.partial(Point, "planar arm", "batched Jacobian", n=batch)
    shown = pick(calls, "anvil Python loop", "JAX")
    return [Row(f"{what}: build", builds["anvil"], pick(builds, "JAX"), ("JAX",), 1.0,
                point=point("build")),
            Row(f"{what}: call", calls["anvil"], shown, ("JAX",), 1.0, point=point("run")),
            Row(f"{what}: call", calls["anvil"], shown, ("anvil Python loop",))]


def rk4_rows(cfg: Config) -> list[Row]:
    n = cfg.rk4_points
    rng = np.random.default_rng(27)
    theta, omega = rng.uniform(-1.0, 1.0, n), rng.uniform(-1.0, 1.0, n)
    data = 0.1 * rng.standard_normal(n)
    p = Problem(f"RK4 loss, {n:,} points", functools.partial(pendulum_loss, data=data),
                (np.array([2.0, 0.3]), theta, omega), jax_xp=jax_loop_xp)
    builds, calls = measure(cfg, gradient_builders(p))
    return gradient_rows(p, n, builds, calls, {"JAX": None}, 4.0)


def other_classes(cfg: Config) -> Section:
    warm_up()
    rows = matvec_rows(cfg) + arm_rows(cfg) + rk4_rows(cfg)
    return Section("6. A constant matrix-vector product, a batched Jacobian, a vectorised RK4 "
                   "loss", rows, f"""\
A @ x with A a captured constant (anvil: the traced function; NumPy: `A @ x`, one BLAS GEMV;
JAX: `jit`), target <= 1x NumPy. The Jacobians (3 x {len(LINKS)}: x, y and orientation of the
end of a planar chain of {len(LINKS)} revolute joints) of {cfg.arm_batch:,} configurations:
anvil's `vmap(jacobian(fk))`, the compiled `jacobian(fk)` called from a Python loop (into one
array, `out=`), and JAX's `jit(vmap(jacfwd(fk)))`; the reference is the complex-step Jacobian;
target <= 1x JAX. The RK4 loss: {RK4_STEPS} RK4 steps (h = {RK4_H}) of a damped pendulum from
{cfg.rk4_points:,} initial states (two arrays, theta and omega), the sum of squared differences
of the final angles to data, and its gradient with respect to p = [stiffness, damping]; anvil
traces a Python loop (unrolled; reverse mode keeps every stage's arrays); JAX runs the steps as
`lax.fori_loop`, as XLA took minutes to compile the gradient of the unrolled loop (145 s at 500
points); the reference is the complex-step gradient. Targets: gradient / value <= 4; the ratio
to JAX is shown.""")

AREA = bt.Area("arrays", "Array benchmarks: dense Hessians, Gauss-Newton products, row "
               "normalisations, stencils, batched Jacobians",
               (quadratic_form, argument_matrix, gauss_newton_product, row_normalisations,
                stencil_energies, other_classes), QUICK, FULL,
               intro="Builds: in this process, each a fresh function (trace or definition, "
               "derivative, compile, first call), the median of interleaved rounds. ")


if __name__ == "__main__":
    AREA.main(__doc__)
