"""Core benchmarks of anvil_llvm side by side with numba, NumPy, CasADi (its virtual machine, and
its generated C compiled by gcc -O3) and JAX: call overhead, build time (in process, from the
disk cache, against size, of huge scalar graphs), run time, and AD. Prints markdown tables and
writes them to docs/benchmarks/core.md.

    python scripts/bench_core.py            # the full run (docs/benchmarks/core.md)
    python scripts/bench_core.py --quick    # reduced sizes, a smoke test (under 2 minutes)

Every tool's output is checked against a reference (NumPy, or CasADi for small dense
derivatives) before it is timed; times are medians over rounds in which the tools take turns.
Builds that may be slow or crash run in subprocesses with timeouts.
"""
import functools
import operator
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

# Before NumPy: NumPy's and SciPy's OpenBLAS thread pools fight on this 2-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import benchtools as bt
import numpy as np
from benchtools import Point, Row, Section, Tool, Value, peers

from anvil_llvm import ad
from anvil_llvm.benchmarks import Problem, problem

SCRIPT = str(Path(__file__).resolve())


@dataclass(frozen=True)
class Config(bt.Timing):
    builds_per_process: int
    rosen_n: int            # the large chained Rosenbrock
    rosen_ns: tuple[int, ...]   # gradients
    bratu_ms: tuple[int, ...]   # gradients of bratu2d_E
    casadi_n: int           # the largest n traced by CasADi (virtual machine and C)
    scalar_ops: tuple[int, int]
    scalar_timeout: float
    jacobian_n: tuple[int, int]
    worker_timeout: float


FULL = Config(rounds=7, seconds=0.05, build_rounds=5, processes=5, builds_per_process=4,
              rosen_n=10**6, rosen_ns=(100, 10**4, 10**6), bratu_ms=(10, 100, 1000),
              casadi_n=10**4, scalar_ops=(10_000, 100_000), scalar_timeout=300,
              jacobian_n=(100, 10_000), worker_timeout=120)
QUICK = Config(rounds=2, seconds=0.005, build_rounds=1, processes=1, builds_per_process=2,
               rosen_n=10**4, rosen_ns=(100, 10**4), bratu_ms=(10, 30), casadi_n=100,
               scalar_ops=(1_000, 3_000), scalar_timeout=60, jacobian_n=(100, 300),
               worker_timeout=60)
GCC_TIMEOUT = 120.0
"""Seconds allowed to gcc -O3 on CasADi's generated C (large expressions do not finish)."""


# ---- peers: imported by the main process only (benchtools.import_peers) ---------------------
def _lift(value):
    return value.e if isinstance(value, CasadiArray) else \
        peers.ca.DM(np.asarray(value, np.float64))


def _broadcast(a, b):
    """NumPy's broadcasting of a 1-D array (a CasADi column) along the rows of a matrix (as a
    product with a column of ones: one node, where `repmat` makes one per row in MX)."""
    def spread(v, like):
        if v.shape != like.shape and v.size2() == 1 and v.size1() == like.size2():
            return peers.ca.mtimes(peers.ca.DM.ones(like.size1(), 1), v.T)
        return v
    return spread(a, b), spread(b, a)


def _same(a, b):
    return a, b


def _binary(op, align=_broadcast):
    """`op` on CasADi arrays, and reflected (`ndarray op CasadiArray`)."""
    return (lambda a, b: CasadiArray(op(*align(a.e, _lift(b)))),
            lambda a, b: CasadiArray(op(*align(_lift(b), a.e))))


class CasadiArray:
    """Just enough of NumPy's array API over a CasADi SX or MX matrix (1-D arrays as columns)
    for the public problems, so that CasADi traces the same problem code as the other tools
    (`problem.f(x, casadi_xp())`)."""

    __array_ufunc__ = None          # `ndarray * CasadiArray` defers to CasadiArray.__rmul__
    __add__, __radd__ = _binary(operator.add)
    __sub__, __rsub__ = _binary(operator.sub)
    __mul__, __rmul__ = _binary(operator.mul)
    __truediv__, __rtruediv__ = _binary(operator.truediv)
    __pow__, __rpow__ = _binary(operator.pow)
    __matmul__, __rmatmul__ = _binary(operator.matmul, _same)

    def __init__(self, e):
        self.e = e

    def __getitem__(self, key):
        return CasadiArray(self.e[key])

    def __neg__(self):
        return CasadiArray(-self.e)

    def reshape(self, *shape):
        """Row-major, as NumPy's (CasADi's own reshape is column-major)."""
        shape = shape[0] if isinstance(shape[0], tuple) else shape
        flat = peers.ca.vec(self.e.T)
        return CasadiArray(flat if len(shape) == 1 else
                           peers.ca.reshape(flat, shape[1], shape[0]).T)

    def sum(self):
        return CasadiArray(peers.ca.sum1(peers.ca.sum2(self.e)))

    def mean(self):
        return self.sum() / self.e.numel()


def _casadi_unary(f):
    return lambda v: CasadiArray(f(v.e))


def _casadi_pad(a: CasadiArray, width: int) -> CasadiArray:
    """Zeros around a matrix (NumPy's `pad(a, width)` of a 2-D array)."""
    ca = peers.ca
    side = ca.DM.zeros(a.e.size1(), width)
    cap = ca.DM.zeros(width, a.e.size2() + 2 * width)
    return CasadiArray(ca.vertcat(cap, ca.horzcat(side, a.e, side), cap))


def casadi_xp() -> SimpleNamespace:
    unary = {name: _casadi_unary(getattr(peers.ca, name))
             for name in ("sin", "cos", "exp", "tanh")}
    return SimpleNamespace(**unary, pad=_casadi_pad,
                           stack=lambda vs: CasadiArray(peers.ca.vertcat(*[v.e for v in vs])))


def casadi_function(p: Problem, kind: str, symbols: str = "SX", name: str | None = None):
    """`kind` of problem `p` as a CasADi Function, traced with SX or MX `symbols`."""
    ca = peers.ca
    x = getattr(ca, symbols).sym("x", p.n)
    e = p.f(CasadiArray(x), casadi_xp()).e
    derivative = {"value": lambda: e, "gradient": lambda: ca.gradient(e, x),
                  "hessian": lambda: ca.densify(ca.hessian(e, x)[0]),
                  "jacobian": lambda: ca.densify(ca.jacobian(e, x))}
    return ca.Function(name or p.name, [x], [derivative[kind]()])


@dataclass
class CasadiC:
    """A CasADi Function generated as C, compiled by gcc -O3 and loaded (`casadi.external`):
    the loaded Function, or why there is none; and the seconds of each build stage."""

    function: object
    stages: dict[str, float]

    @property
    def build_time(self) -> Value:
        return self.function if isinstance(self.function, str) else sum(self.stages.values())

    def stages_text(self) -> str:
        return ", ".join(f"{stage} {bt.fmt_time(t)}" for stage, t in self.stages.items())


def build_casadi_c(p: Problem, kind: str, symbols: str) -> CasadiC:
    ca = peers.ca
    stages = bt.Stages()
    name = bt.fresh_name(p.name)
    try:
        f = casadi_function(p, kind, symbols, name)
        stages.lap(f"{symbols} + AD")
        generator = ca.CodeGenerator(f"{name}.c")
        generator.add(f)
        with tempfile.TemporaryDirectory() as tmp:
            source = generator.generate(tmp + os.sep)
            stages.lap("generate")
            library = os.path.join(tmp, f"{name}.so")
            gcc = bt.run_command(["gcc", "-O3", "-fPIC", "-shared", source, "-o", library, "-lm"],
                                 GCC_TIMEOUT)
            stages.lap("gcc")
            # once loaded, the library may be deleted
            function = f"gcc {gcc}" if isinstance(gcc, str) else ca.external(name, library)
    except Exception as e:  # noqa: BLE001 -- reported in the tables
        function = bt.failure(e)
    return CasadiC(function, stages.seconds)


def jax_operator(p: Problem, kind: str) -> Callable:
    jax = peers.jax
    if kind == "jacobian":      # the mode with fewer directions (JAX's usual choice)
        return jax.jacfwd if p.n <= np.size(p.reference(p.x0)) else jax.jacrev
    return {"value": lambda f: f, "gradient": jax.grad, "hessian": jax.hessian}[kind]


# ---- hand-written numba kernels (plain functions; njit-compiled afresh for build timing) ------
def nb_sumsq(x):
    out = np.empty(())
    s = 0.0
    for v in x:
        s += v * v
    out[()] = s
    return out


def nb_rosen(x):
    out = np.empty(())
    s = 0.0
    for i in range(x.size - 1):
        a = x[i]
        r = x[i + 1] - a * a
        s += 100.0 * r * r + (1.0 - a) * (1.0 - a)
    out[()] = s
    return out


def nb_rosen_grad(x):
    g = np.zeros_like(x)
    for i in range(x.size - 1):
        a = x[i]
        r = x[i + 1] - a * a
        g[i] += -400.0 * a * r - 2.0 * (1.0 - a)
        g[i + 1] += 200.0 * r
    return g


def nb_bratu_energy_grad(m: int, lam: float = 6.0):
    """The gradient of bratu2d_E (= the bratu2d residual); m and lam h^2 are compile-time
    constants, as the grid size and constants are for anvil."""
    c = lam / (m + 1) ** 2

    def grad(x):
        g = np.empty_like(x)
        for i in range(m):
            for j in range(m):
                k = i * m + j
                s = 4.0 * x[k] - c * np.exp(x[k])
                if i > 0:
                    s -= x[k - m]
                if i < m - 1:
                    s -= x[k + m]
                if j > 0:
                    s -= x[k - 1]
                if j < m - 1:
                    s -= x[k + 1]
                g[k] = s
        return g
    return grad


# ---- NumPy references for the gradients -------------------------------------------------------
def rosen_grad_numpy(x):
    a, b = x[:-1], x[1:]
    r = b - a * a
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * r - 2.0 * (1.0 - a)
    g[1:] += 200.0 * r
    return g


def mlp_grad(p: Problem) -> Callable:
    """Backpropagation by hand for mean((tanh(X W1 + b1) W2 + b2 - Y)^2): the NumPy reference,
    and (compiled by `njit`, X and Y frozen in as constants) the hand-written numba kernel."""
    X, Y = p.data["X"], p.data["Y"]
    n_in, n_out = X.shape[1], Y.shape[1]
    hidden = (p.n - n_out) // (n_in + 1 + n_out)
    b1_at = n_in * hidden
    W2_at = b1_at + hidden
    b2_at = W2_at + hidden * n_out

    def grad(x):
        W1, b1 = x[:b1_at].reshape(n_in, hidden), x[b1_at:W2_at]
        W2, b2 = x[W2_at:b2_at].reshape(hidden, n_out), x[b2_at:]
        H = np.tanh(X @ W1 + b1)
        dR = 2.0 * (H @ W2 + b2 - Y) / Y.size
        dZ = (dR @ W2.T) * (1.0 - H * H)
        return np.concatenate(((X.T @ dZ).ravel(), dZ.sum(0), (H.T @ dR).ravel(), dR.sum(0)))
    return grad


# ---- the quantities every tool builds and runs ------------------------------------------------
@dataclass
class Case:
    """A value or derivative of a problem, as each tool builds it and calls it. The builders
    return a `Tool` running what they built; `reference` (x -> expected) defaults to CasADi."""

    problem: Problem
    kind: str = "value"                  # value, gradient, hessian or jacobian
    numba: Callable | None = None        # hand-written numba kernel of x
    reference: Callable | None = None
    casadi: str = ""                     # "SX" or "MX": CasADi traces it with these symbols
    options: dict = field(default_factory=dict)     # for the anvil_llvm.ad operator

    def point(self, quantity: str) -> Point:
        """Where the case's rows go in the plots."""
        return Point(self.problem.name, self.kind, quantity, self.problem.n)

    @property
    def label(self) -> str:
        p = self.problem
        size = p.label or f"n={p.n:,}"
        return f"{p.name} {size} {self.kind}"

    @functools.cached_property
    def expected(self) -> np.ndarray:
        if self.reference is not None:
            return np.asarray(self.reference(self.problem.x0))
        return casadi_function(self.problem, self.kind)(self.problem.x0).full()

    def tool(self, stmt: str, env: dict) -> Tool:
        return Tool(stmt, env, lambda: self.expected)

    @functools.cached_property
    def jax_x(self):
        return peers.jnp.asarray(self.problem.x0)

    def build_anvil(self) -> Tool:
        f = self.problem.function(bt.fresh_name(self.problem.name))
        if self.kind != "value":
            f = getattr(ad, self.kind)(f, **self.options)
        return self.tool("f(x)", {"f": f.compile(), "x": self.problem.x0})

    def build_jax(self) -> Tool:
        # a fresh Python function each time: JAX caches traces and executables by function
        f = peers.jax.jit(jax_operator(self.problem, self.kind)(
            lambda x: self.problem.f(x, peers.jnp)))
        f(self.jax_x).block_until_ready()
        return self.tool("f(x).block_until_ready()", {"f": f, "x": self.jax_x})

    def build_numba(self) -> Tool:
        f = peers.numba.njit(self.numba)
        f(self.problem.x0)
        return self.tool("f(x)", {"f": f, "x": self.problem.x0})

    def _casadi_tool(self, F) -> Tool:
        return self.tool("F(x)", {"F": F, "x": peers.ca.DM(self.problem.x0)})

    def build_casadi(self) -> Tool:
        return self._casadi_tool(casadi_function(self.problem, self.kind, self.casadi))

    @functools.cached_property
    def casadi_c(self) -> CasadiC:
        """Built once, as gcc can take minutes: both its run time and its build time (section
        6c) come from this build."""
        return build_casadi_c(self.problem, self.kind, self.casadi)

    def build_casadi_c(self) -> Tool:
        if isinstance(self.casadi_c.function, str):
            raise bt.Unavailable(self.casadi_c.function)
        return self._casadi_tool(self.casadi_c.function)

    def builders(self) -> dict[str, Callable[[], Tool]]:
        """The builders of a fresh build each time they are called (CasADi C: see `casadi_c`)."""
        found = {"anvil": self.build_anvil, "JAX": self.build_jax}
        if self.numba is not None:
            found["numba"] = self.build_numba
        if self.casadi:
            found["CasADi"] = self.build_casadi
        return found


def measure(cfg: Config, case: Case, extra: dict[str, Callable[[], Tool]] | None = None
            ) -> dict[str, Value]:
    """Build every tool of `case` and the `extra` ones, and time them side by side."""
    builders = {**case.builders(), **(extra or {})}
    if case.casadi:
        builders["CasADi C"] = case.build_casadi_c
    tools, failed = bt.build_all(builders)
    return {**bt.side_by_side(tools, cfg.rounds, cfg.seconds), **failed}


def pick(times: dict[str, Value], *names: str) -> dict[str, Value]:
    """The times of `names`, in that order (so in that column order); "-" for a tool not run."""
    return {name: times.get(name, "-") for name in names}


# ---- 1. call overhead -------------------------------------------------------------------------
def call_overhead(cfg: Config) -> Section:
    p = problem("sumsq", 5)
    case = Case(p, numba=nb_sumsq, reference=p.reference, casadi="SX")

    def build_native() -> Tool:
        return case.tool("f(x)", {"f": case.build_anvil().env["f"].native, "x": p.x0})
    t = measure(cfg, case, {"anvil native": build_native})
    peer_times = pick(t, "numba", "CasADi", "CasADi C", "JAX")
    return Section("1. Call overhead from Python, sumsq n=5", [
        Row("`f(x)`", t["anvil"], peer_times, ("numba",), 0.3, point=case.point("run")),
        Row("`native(x)`, `native = f.native`", t["anvil native"], peer_times, ("numba",), 0.3,
            point=Point("sumsq", "value", "run", 5, "anvil native")),
    ], "numba: `@njit` loop returning a new 0-d array; CasADi: `F(DM)` (virtual machine; C: "
       "its generated C compiled by gcc -O3 and loaded by `casadi.external`); JAX: "
       "`f(x).block_until_ready()` on a device array (float64). Harness: `timeit` statement.")


# ---- 2. small build: in process, and in a new process from the disk cache ---------------------
def _worker_times(results: list[dict | str], pick_times: Callable[[list], list]) -> Value:
    """The median of the times picked from each worker's result, or the first failure."""
    failures = [r for r in results if isinstance(r, str)]
    if failures:
        return failures[0]
    bad = [r["error"] for r in results if not r["error"] <= bt.TOLERANCE]
    if bad:
        return f"DISAGREE (err {bad[0]:.1e})"
    return statistics.median(t for r in results for t in pick_times(r["times"]))


def _sumsq_workers(cfg: Config, count: int, repeat: int, env=None) -> list:
    """`count` fresh processes, each building sumsq `repeat` times."""
    spec = {"kind": "build", "problem": "sumsq", "size": 5, "repeat": repeat}
    return [bt.run_worker(SCRIPT, spec, env or {}, cfg.worker_timeout) for _ in range(count)]


def _first(times):
    return times[:1]


def _later(times):
    return times[1:]


def small_build(cfg: Config) -> Section:
    p = problem("sumsq", 5)
    results = _sumsq_workers(cfg, cfg.processes, cfg.builds_per_process)
    builders = Case(p, numba=nb_sumsq, reference=p.reference, casadi="SX").builders()
    del builders["anvil"]
    peer_times = bt.time_builds(builders, cfg.build_rounds)
    rows = [Row("trace + compile, first build in a process", _worker_times(results, _first),
                peer_times, (), 0.020),
            Row("trace + compile, later builds in that process",
                _worker_times(results, _later), peer_times, (), 0.020)]
    return Section(
        "2. Build time of a small function (sumsq n=5)", rows + _disk_cache_rows(cfg),
        f"anvil: {cfg.processes} fresh processes, each building {cfg.builds_per_process} times "
        "(distinct names, disk cache off); time inside the process, without interpreter start "
        "and imports. Disk cache: one process populates a new cache directory with two "
        f"functions (sumsq under two names), then {cfg.processes} new processes trace and load "
        "both (checked: no entry rewritten). Peers (in this process, warm, for context): JAX = "
        "first call of a new `jit` function; numba = first call of a new `njit` dispatcher; "
        "CasADi = SX + `Function`.")


def _disk_cache_rows(cfg: Config) -> list[Row]:
    # Two builds per process: "sumsq" and "sumsq_b0" (names are the same in every new process),
    # so the second load shows the cost without the process's one-time set-up.
    with tempfile.TemporaryDirectory() as cache:
        env = {"ANVIL_LLVM_NO_CACHE": None, "ANVIL_LLVM_CACHE_DIR": cache}
        populate = _worker_times(_sumsq_workers(cfg, 1, 2, env), _first)
        # A rewrite is an atomic rename: a new inode (a load refreshes the time, for eviction).
        written = {f: f.stat().st_ino for f in Path(cache).glob("*.o")}
        loads = _sumsq_workers(cfg, cfg.processes, 2, env)
        rewritten = written != {f: f.stat().st_ino for f in Path(cache).glob("*.o")}
    # two functions and the entry point of their signature, which they share
    if isinstance(populate, str) or len(written) != 3 or rewritten:
        loads = [populate if isinstance(populate, str) else "cache miss"]
    return [Row("trace + load from the disk cache, first function in a new process",
                _worker_times(loads, _first), {}, (), 0.005,
                note=f"populating run: {bt.fmt_time(populate)}"),
            Row("trace + load from the disk cache, second function in that process",
                _worker_times(loads, _later), {}, (), 0.005)]


# ---- 3. build time against size ---------------------------------------------------------------
def build_scaling(cfg: Config) -> Section:
    small, large = 100, cfg.rosen_n
    results: dict[int, list] = {small: [], large: []}
    for _ in range(cfg.processes):          # sizes alternate, one fresh process each
        for n, found in results.items():
            spec = {"kind": "build", "problem": "rosen", "size": n,
                    "repeat": cfg.builds_per_process}
            found.append(bt.run_worker(SCRIPT, spec, {}, cfg.worker_timeout))
    label = f"anvil n={small}"
    rows = [Row(f"rosen n={large:,}: {what}", _worker_times(results[large], which),
                {label: _worker_times(results[small], which)}, (label,), 1.5,
                point=Point("rosen", "value", "build", large, series, {label: small}))
            for what, which, series in (("first build in a fresh process", _first, "anvil"),
                                        ("later builds in that process", _later,
                                         "anvil, later build"))]
    return Section(f"3. Build time against size: chained Rosenbrock n={large:,} vs n={small}",
                   rows, "trace + compile, disk cache off; medians over "
                         f"{cfg.processes} fresh processes per size.")


# ---- 4. run time of a large fused loop --------------------------------------------------------
def rosen_run(cfg: Config) -> Section:
    p = problem("rosen", cfg.rosen_n)
    case = Case(p, numba=nb_rosen, reference=p.reference)
    t = measure(cfg, case, {"NumPy": lambda: case.tool("f(x)", {"f": p.reference, "x": p.x0})})
    peer_times = pick(t, "numba", "NumPy", "JAX")
    return Section(f"4. Run time: chained Rosenbrock value, n={p.n:,}", [
        Row("value", t["anvil"], peer_times, ("numba",), 1.2, point=case.point("run")),
        Row("value", t["anvil"], peer_times, ("NumPy",), 1.0, point=case.point("run")),
    ], "numba: a hand-written loop; NumPy: `p.reference`; JAX: `jit` (default threading).")


# ---- 5. huge straight-line scalar graphs ------------------------------------------------------
CHAIN_INPUTS, CHAIN_WINDOW, CHAIN_OPS_PER_STEP = 100, 50, 6


def scalar_chain(x, xp, steps: int):
    """A straight-line scalar program of 6 distinct operations a step: each new value combines
    the newest, the second newest (through sin) and one of the last 50 values, so most
    intermediates are used several times, plus an input."""
    inputs = [x[i] for i in range(CHAIN_INPUTS)]
    v = list(inputs)
    for i in range(steps):
        older = v[-1 - (7 * i + 3) % CHAIN_WINDOW]
        v.append(0.5 * v[-1] + 0.4 * xp.sin(v[-2]) * older + 0.3 * inputs[i % CHAIN_INPUTS])
    return v[-1]


def chain_problem(ops: int) -> Problem:
    steps = ops // CHAIN_OPS_PER_STEP
    return Problem("chain", ops, functools.partial(scalar_chain, steps=steps),
                   np.linspace(0.1, 1.0, CHAIN_INPUTS))


def scalar_graphs(cfg: Config) -> Section:
    results = {ops: bt.run_worker(SCRIPT, {"kind": "scalar", "ops": ops}, {}, cfg.scalar_timeout)
               for ops in cfg.scalar_ops}
    rows = [_scalar_row(ops, result, bound) for (ops, result), bound in
            zip(results.items(), (1.0, 10.0))]
    small, large = cfg.scalar_ops
    growth = large / small
    rows.append(Row(f"growth {large:,} / {small:,} ops", rows[1].anvil,
                    {f"anvil {small:,} ops": rows[0].anvil}, (f"anvil {small:,} ops",),
                    1.5 * growth, note=f"{growth:g}x the operations; target: roughly linear"))
    return Section(
        "5. Build time of straight-line scalar graphs (n=100 inputs)", rows,
        "Each size in a fresh process (disk cache off), with a timeout; trace + compile. "
        "Targets: 10k ops <= 1 s, 100k ops <= 10 s (the `--quick` sizes keep those targets).")


def _scalar_row(ops: int, result: dict | str, bound: float) -> Row:
    point = Point("scalar chain (n=100)", "value", "build", ops)
    if isinstance(result, str):
        return Row(f"{ops:,} ops", result, bound=bound, point=point)
    total = result["trace"] + result["compile"]
    if not result["error"] <= 1e-10:
        total = f"DISAGREE (err {result['error']:.1e})"
    return Row(f"{ops:,} ops ({result['nodes']:,} graph nodes)", total, bound=bound, point=point,
               note=f"trace {bt.fmt_time(result['trace'])}, "
                    f"compile {bt.fmt_time(result['compile'])}, call {bt.fmt_time(result['call'])}")


# ---- 6. AD ------------------------------------------------------------------------------------
def traced_by_casadi(cfg: Config, p: Problem) -> str:
    return "SX" if p.n <= cfg.casadi_n else ""


@functools.cache
def gradient_cases(cfg: Config) -> tuple[Case, ...]:
    """Cached, so that each case's CasADi C is built once (sections 6a and 6c)."""
    rosen = [problem("rosen", n) for n in cfg.rosen_ns]
    bratu = [problem("bratu2d_E", m) for m in cfg.bratu_ms]
    sumsq, arrowhead, mlp = problem("sumsq", 5), problem("arrowhead", 1000), problem("mlp")
    return (Case(sumsq, "gradient", casadi=traced_by_casadi(cfg, sumsq)),
            *[Case(p, "gradient", nb_rosen_grad, rosen_grad_numpy, traced_by_casadi(cfg, p))
              for p in rosen],
            *[Case(p, "gradient", nb_bratu_energy_grad(p.size),
                   problem("bratu2d", p.size).reference, traced_by_casadi(cfg, p))
              for p in bratu],
            Case(arrowhead, "gradient", casadi=traced_by_casadi(cfg, arrowhead)),
            Case(mlp, "gradient", mlp_grad(mlp), mlp_grad(mlp), casadi="MX"))


@functools.cache
def dense_cases(cfg: Config) -> tuple[Case, ...]:
    """Cached, as `gradient_cases`."""
    found = [(problem(name, size), kind) for name, size, kind in
             (("sumsq", 5, "hessian"), ("rosen", 100, "hessian"), ("arrowhead", 1000, "hessian"),
              ("arm", None, "jacobian"), ("expdecay", None, "jacobian"))]
    return tuple(Case(p, kind, casadi=traced_by_casadi(cfg, p)) for p, kind in found)


def run_rows(case: Case, t: dict[str, Value]) -> list[Row]:
    """anvil against each compiled peer of `case` that has a time: at most 1.5x the
    hand-written numba kernel, faster than CasADi's generated C and JAX; every peer's time or
    status shown."""
    shown = pick(t, "numba", "CasADi C", "JAX", "CasADi")
    bounds = {"numba": 1.5, "CasADi C": 1.0, "JAX": 1.0}
    return [Row(case.label, t["anvil"], shown, (peer,), bound, point=case.point("run"))
            for peer, bound in bounds.items() if isinstance(t.get(peer), float)]


CASADI_NOTE = (
    "CasADi C: CasADi's derivative generated as C (`CodeGenerator`), compiled by `gcc -O3 "
    f"-fPIC -shared` (timeout {GCC_TIMEOUT:g} s), loaded by `casadi.external` and called as "
    "`F(DM)`; CasADi: the same Function in CasADi's virtual machine. CasADi traces the problem "
    "code with SX symbols where n <= {casadi_n:,}, and with MX for mlp (whose matrix products "
    "SX would expand into millions of scalar operations).")


def gradient_runs(cfg: Config) -> Section:
    rows = []
    for case in gradient_cases(cfg):
        value = Case(case.problem, reference=case.problem.reference)
        t = measure(cfg, case, {"anvil value": value.build_anvil})
        rows += [Row(f"{case.label} / value", t["anvil"], pick(t, "anvil value"),
                     ("anvil value",), 3.0, point=case.point("run")), *run_rows(case, t)]
    return Section(
        "6a. AD run time: gradients", rows,
        "numba: hand-written gradient loops (mlp: the NumPy backpropagation below compiled by "
        "`njit`, matrix products through BLAS); JAX: `jit(grad(f))`. "
        + CASADI_NOTE.format(casadi_n=cfg.casadi_n) + " References: closed-form NumPy "
        "gradients (rosen; mlp by backpropagation), the bratu2d residual for bratu2d_E, CasADi "
        "(virtual machine) for sumsq and arrowhead.")


def dense_runs(cfg: Config) -> Section:
    rows = []
    for case in dense_cases(cfg):
        rows += run_rows(case, measure(cfg, case))
    return Section(
        "6b. AD run time: dense Hessians and Jacobians", rows,
        "Reference: CasADi (SX, traced from the same problem code). JAX: `jit(hessian)`, "
        "`jit(jacfwd)` or `jit(jacrev)` (fewer directions). "
        + CASADI_NOTE.format(casadi_n=cfg.casadi_n) + " CasADi's Hessians and Jacobians are "
        "sparse matrices (arrowhead n=1000: 3k nonzeros): here they are made dense with "
        "`casadi.densify`, so that every tool computes the same dense array (10^6 values for "
        "the arrowhead); sparse Hessians are compared with CasADi's by `sphessian`.")


def ad_builds(cfg: Config) -> Section:
    rows = []
    for case in gradient_cases(cfg) + dense_cases(cfg):
        t = bt.time_builds(case.builders(), cfg.build_rounds)
        note = ""
        if case.casadi:
            t["CasADi C"] = case.casadi_c.build_time
            note = f"CasADi C: {case.casadi_c.stages_text()}"
        compilers = tuple(name for name in ("JAX", "numba", "CasADi C") if name in t)
        rows.append(Row(f"{case.label}: build", t["anvil"],
                        pick(t, "JAX", "numba", "CasADi C", "CasADi"), compilers, 0.5, note,
                        case.point("build")))
    return Section(
        "6c. AD build time: trace + AD + compile", rows,
        f"Median of {cfg.build_rounds} interleaved builds in this process (disk cache off). "
        "JAX: first call of a new jitted function; numba: first call of a new dispatcher of "
        "the hand-written kernel; CasADi C: one build (the one timed in 6a/6b): SX or MX "
        "expression + derivative + `Function`, then `generate`, then gcc -O3 (stages in the "
        "note). CasADi (the same Function in its virtual machine, no native code) is shown for "
        "context and not counted as a compiling peer.")


def flip_map(x, xp):
    return xp.sin(x) * x[::-1]


def flip_map_jacobian(x):
    return np.diag(np.cos(x) * x[::-1]) + np.fliplr(np.diag(np.sin(x)))


def jacobian_build_scaling(cfg: Config) -> Section:
    small, large = (Case(Problem("flipmap", n, flip_map, np.linspace(0.0, 1.0, n)), "jacobian",
                         reference=flip_map_jacobian, options={"unroll": False})
                    for n in cfg.jacobian_n)
    status = small.build_anvil().status()
    t = bt.time_builds({"small": small.build_anvil, "large": large.build_anvil},
                       cfg.build_rounds)
    label = f"anvil n={small.problem.n:,}"
    return Section("6d. Dense Jacobian build time against size", [
        Row(f"`jacobian(f, unroll=False)`, n={large.problem.n:,}", status or t["large"],
            {label: t["small"]}, (label,), 1.5,
            point=Point("flipmap", "jacobian", "build", large.problem.n,
                        at={label: small.problem.n}))],
        f"f(x) = sin(x) * x[::-1]; trace + AD + compile, median of {cfg.build_rounds} "
        "interleaved builds; the n=100 result is checked against the analytic Jacobian.")


SECTIONS = [call_overhead, small_build, build_scaling, rosen_run, scalar_graphs, gradient_runs,
            dense_runs, ad_builds, jacobian_build_scaling]


# ---- workers: run in fresh interpreters by the sections above ---------------------------------
def worker_build(spec: dict) -> dict:
    """Build a problem's value `repeat` times (the first under its own name, so that it can hit
    the disk cache, the others under new names) and check the result."""
    p = problem(spec["problem"], spec["size"])
    times = []
    for k in range(spec["repeat"]):
        start = time.perf_counter()
        f = p.function(p.name if k == 0 else bt.fresh_name(p.name)).compile()
        times.append(time.perf_counter() - start)
    return {"times": times, "error": bt.rel_error(f(p.x0), p.reference(p.x0))}


def worker_scalar(spec: dict) -> dict:
    p = chain_problem(spec["ops"])
    start = time.perf_counter()
    f = p.function()
    traced = time.perf_counter()
    f.compile()
    compiled = time.perf_counter()
    out = f(p.x0)
    call = time.perf_counter()
    f(p.x0)
    return {"trace": traced - start, "compile": compiled - traced,
            "call": time.perf_counter() - call, "nodes": len(f.graph.splitlines()),
            "error": bt.rel_error(out, p.reference(p.x0))}


WORKERS = {"build": worker_build, "scalar": worker_scalar}


AREA = bt.Area("core", "Core benchmarks", tuple(SECTIONS), QUICK, FULL, WORKERS, commit=True)


if __name__ == "__main__":
    AREA.main(__doc__)
