"""Loop benchmarks of anvil_llvm side by side with CasADi (SX; MX with `Function.map`), JAX
(`jit`, `lax` loops) and hand-written numba: traced Python loops (unrolled into the graph) and
the loop functions (`av.fori_loop`, `av.scan`, `av.map`: one traced body run by a native loop),
their build times against the trip count and the run time of their derivatives. Prints markdown
tables and writes them to docs/benchmarks/loops.md.

    python scripts/bench_loops.py            # the full run (docs/benchmarks/loops.md)
    python scripts/bench_loops.py --quick    # reduced sizes, a smoke test (a few minutes)
    python scripts/bench_loops.py --only pendulum_jacobian --out /tmp/loops.md

Every tool's output is checked against a reference (a plain-Python loop, or CasADi for the
cart-pole Jacobians) before it is timed; call times are medians over rounds in which the tools
take turns. anvil_llvm's builds run in fresh processes (disk cache off) with a timeout; the
peers' builds run in this process (warm), for context.
"""
import functools
import itertools
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
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
    """build_rounds: the peers' builds here; processes: per anvil build, one when it is slow."""

    pendulum_steps: int         # section 1 (the targets are stated at 200 steps)
    long_steps: int             # section 1: fori_loop at a large step count
    chain_sizes: tuple[int, ...]    # section 2
    value_steps: int            # section 3
    cartpole_steps: int         # section 4
    stages: int                 # section 5
    build_timeout: float        # seconds allowed to one anvil build process


FULL = Config(rounds=7, seconds=0.05, build_rounds=3, processes=3, pendulum_steps=200,
              long_steps=100_000, chain_sizes=(1000, 2000, 4000, 8000, 16000),
              value_steps=10_000, cartpole_steps=80, stages=50, build_timeout=120)
QUICK = Config(rounds=2, seconds=0.005, build_rounds=1, processes=1, pendulum_steps=20,
               long_steps=1000, chain_sizes=(100, 200), value_steps=200,
               cartpole_steps=5, stages=3, build_timeout=60)
SLOW = 2.0
"""Seconds above which a build is measured once (one process, one round): its spread no longer
matters, and repeating it would take most of the run."""
REBUILD_LIMIT = 60.0
"""anvil's functions whose build in a fresh process took longer are not built again here to
time their calls (keeps the full run under ~20 minutes)."""


# ---- the problems, written once for every tool: `xp` supplies the maths and the loops ---------
PEND_H = 0.01
CHAIN_X = np.array([0.3, -0.7])
MC, MP, L, G = 1.0, 0.1, 0.5, 9.81     # cart mass, pole mass, pole length, gravity
CP_H = 0.05                             # single shooting: one RK4 step per control
MS_H, MS_SUBSTEPS = 0.02, 4             # multiple shooting: four RK4 steps per stage


def rk4(f: Callable, x, h: float):
    k1 = f(x)
    k2 = f(x + h / 2 * k1)
    k3 = f(x + h / 2 * k2)
    k4 = f(x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def pendulum_rhs(x, p, xp):
    return xp.stack([x[1], -p * xp.sin(x[0])])


def pendulum_step(x, p, xp):
    return rk4(lambda s: pendulum_rhs(s, p, xp), x, PEND_H)


def pendulum_traced(z, xp, steps: int):
    """z = [theta, omega, p] -> the state after `steps` RK4 steps (a Python loop)."""
    x, p = z[0:2], z[2]
    for _ in range(steps):
        x = pendulum_step(x, p, xp)
    return x


def pendulum_loop(z, xp, steps: int):
    p = z[2]
    return xp.fori_loop(0, steps, lambda i, x: pendulum_step(x, p, xp), z[0:2])


def chain_step(y, xp):
    return y * 1.00001 + xp.sin(y) * 1e-6


def chain_traced(x, xp, n: int):
    y = x
    for _ in range(n):
        y = chain_step(y, xp)
    return (y * y).sum()


def chain_loop(x, xp, n: int):
    y = xp.fori_loop(0, n, lambda i, y: chain_step(y, xp), x)
    return (y * y).sum()


def cartpole_rhs(x, u, xp):
    """Cart-pole, state [x, theta, xdot, thetadot] (theta = 0 hanging down), force u on the
    cart; a point mass at the end of a massless pole (Tedrake, Underactuated Robotics, 3.2)."""
    s, c = xp.sin(x[1]), xp.cos(x[1])
    d = MC + MP * s * s
    xdd = (u + MP * s * (L * x[3] * x[3] + G * c)) / d
    thdd = (-u * c - MP * L * x[3] * x[3] * c * s - (MC + MP) * G * s) / (L * d)
    return xp.stack([x[2], x[3], xdd, thdd])


def cartpole_step(x, u, xp, h: float, substeps: int = 1):
    for _ in range(substeps):
        x = rk4(lambda s: cartpole_rhs(s, u, xp), x, h)
    return x


def shooting_traced(z, xp, steps: int):
    """Single shooting: z = [x0 (4), u (steps)] -> the states after each step, flat."""
    x, states = z[0:4], []
    for k in range(steps):
        x = cartpole_step(x, z[4 + k], xp, CP_H)
        states.append(x)
    return xp.concatenate(states)


def shooting_loop(z, xp, steps: int):
    def body(x, u):
        x = cartpole_step(x, u, xp, CP_H)
        return x, x
    _, states = xp.scan(body, z[0:4], z[4:])
    return states.reshape(-1)


def ms_stage(x, u, xp):
    return cartpole_step(x, u, xp, MS_H, MS_SUBSTEPS)


def ms_traced(w, xp, stages: int):
    """Multiple shooting: w = [x_0..x_S (4 each), u_0..u_{S-1}] -> the continuity constraints
    F(x_k, u_k) - x_{k+1}, flat (stage-major)."""
    xs = [w[4 * k:4 * k + 4] for k in range(stages + 1)]
    us = w[4 * (stages + 1):]
    return xp.concatenate([ms_stage(xs[k], us[k], xp) - xs[k + 1] for k in range(stages)])


def ms_loop(w, xp, stages: int):
    xs = w[:4 * (stages + 1)].reshape(stages + 1, 4)
    us = w[4 * (stages + 1):]
    ends = xp.map(lambda xu: ms_stage(xu[0], xu[1], xp), (xs[:-1], us))
    return (ends - xs[1:]).reshape(-1)


@dataclass(frozen=True)
class LoopCase:
    """A problem: its Python-loop and loop-function forms (`f(x, xp, size)`), what is computed
    of it, and its input at a size."""

    traced: Callable
    loop: Callable
    kind: str                               # value, gradient or jacobian
    n_in: Callable[[int], int]
    n_out: Callable[[int], int]             # of the function (before the derivative)
    input: Callable[[int], np.ndarray]


def _shooting_input(steps: int) -> np.ndarray:
    return np.concatenate(([0.0, 0.2, 0.0, 0.0], 2.0 * np.sin(0.3 * np.arange(steps))))


def _ms_input(stages: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1.0, 1.0, 5 * stages + 4)


PEND_Z = np.array([0.8, 0.2, 9.81])
CASES = {
    "pendulum": LoopCase(pendulum_traced, pendulum_loop, "jacobian", lambda n: 3, lambda n: 2,
                         lambda n: PEND_Z),
    "pendulum_value": LoopCase(pendulum_traced, pendulum_loop, "value", lambda n: 3,
                               lambda n: 2, lambda n: PEND_Z),
    "chain": LoopCase(chain_traced, chain_loop, "gradient", lambda n: 2, lambda n: 1,
                      lambda n: CHAIN_X),
    "single_shooting": LoopCase(shooting_traced, shooting_loop, "jacobian", lambda n: 4 + n,
                                lambda n: 4 * n, _shooting_input),
    "multiple_shooting": LoopCase(ms_traced, ms_loop, "jacobian", lambda n: 5 * n + 4,
                                  lambda n: 4 * n, _ms_input),
}


# ---- anvil_llvm ---------------------------------------------------------------------------------
def _missing(name: str) -> Callable:
    def fail(*args, **kwargs):
        raise NotImplementedError(f"anvil_llvm has no {name} (yet)")
    return fail


def anvil_xp() -> SimpleNamespace:
    """anvil_llvm's maths and loops; a loop function not (yet) in the package fails its row."""
    loops = {name: getattr(av, name, None) or _missing(name) for name in ("fori_loop", "scan",
                                                                            "map")}
    return SimpleNamespace(sin=av.sin, cos=av.cos, stack=av.stack, concatenate=av.concatenate,
                           **loops)


def build_anvil(spec: dict, name: str, stages: bt.Stages):
    """Trace, differentiate and compile what `spec` names: {"case", "variant" ("traced" or
    "loop"), "size", "mode" (of `jacobian`, or "sparse": `spjacobian`)}."""
    case = CASES[spec["case"]]
    body, size, xp = getattr(case, spec["variant"]), spec["size"], anvil_xp()
    f = av.NumericalFunction(name, lambda x: body(x, xp, size), (av.Arg(case.n_in(size)),))
    stages.lap("trace")
    if case.kind == "jacobian" and spec.get("mode") == "sparse":
        f = ad.spjacobian(f)
    elif case.kind == "jacobian":
        f = ad.jacobian(f, mode=spec.get("mode", "auto"))
    elif case.kind == "gradient":
        f = ad.gradient(f)
    stages.lap("AD")
    f.compile()
    stages.lap("compile")
    return f


def at_pattern(f, expected: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """The dense reference's entries at the pattern of a sparse Jacobian `f`, in CSC order (what
    `f` returns), once the reference is checked to have no nonzero outside that pattern."""
    def values() -> np.ndarray:
        dense = np.asarray(expected(), dtype=np.float64).reshape(f.shape)
        rows, cols = f.indices, np.repeat(np.arange(f.shape[1]), np.diff(f.indptr))
        outside = dense.copy()
        outside[rows, cols] = 0.0
        if np.any(outside):
            raise bt.Unavailable(f"DISAGREE (reference has {np.count_nonzero(outside)} "
                                 "nonzeros outside the pattern)")
        return dense[rows, cols]
    return values


def dense_output(f, x: np.ndarray) -> np.ndarray:
    """`f(x)`, a sparse Jacobian's as its dense matrix."""
    return f.csc(x).toarray() if hasattr(f, "csc") else np.asarray(f(x))


def anvil_builder(spec: dict, expected: Callable[[], np.ndarray]) -> Callable[[], Tool]:
    case = CASES[spec["case"]]

    def build() -> Tool:
        f = build_anvil(spec, bt.fresh_name(spec["case"]), bt.Stages())
        return Tool("f(x)", {"f": f, "x": case.input(spec["size"])},
                    at_pattern(f, expected) if hasattr(f, "csc") else expected)
    return build


@dataclass
class FreshBuild:
    """anvil's build in fresh processes: the median seconds of the first build of each process
    (or a status), and a note with its stages."""

    time: Value
    note: str = ""


def fresh_build(cfg: Config, spec: dict, expected: Callable[[], np.ndarray]) -> FreshBuild:
    """Build `spec` in up to `cfg.processes` fresh processes (one if the build is slow), each
    building it twice when the first build is fast; the output is checked against `expected`."""
    results = []
    for _ in range(cfg.processes):
        result = bt.run_worker(SCRIPT, {"kind": "anvil", **spec, "repeat": 2, "budget": 1.0},
                               {}, cfg.build_timeout)
        results.append(result)
        if isinstance(result, str) or result["times"][0] > SLOW:
            break
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        return FreshBuild(failed[0])
    try:
        error = max(bt.rel_error(r["out"], expected()) for r in results)
    except Exception as e:  # noqa: BLE001 -- a shape mismatch is reported as a disagreement
        return FreshBuild(f"DISAGREE ({e})")
    if not error <= bt.TOLERANCE:
        return FreshBuild(f"DISAGREE (err {error:.1e})")
    stages = {k: statistics.median(r["stages"][k] for r in results) for k in results[0]["stages"]}
    later = [t for r in results for t in r["times"][1:]]
    note = "".join(f"{about}; " for about in results[0].get("about", []))
    note += ", ".join(f"{k} {bt.fmt_time(v)}" for k, v in stages.items())
    if later:
        note += f"; later build in that process {bt.fmt_time(statistics.median(later))}"
    return FreshBuild(statistics.median(r["times"][0] for r in results), note)


# ---- peers: imported by the main process only (benchtools.import_peers) ----------------------
def jax_xp() -> SimpleNamespace:
    jnp, lax = peers.jnp, peers.jax.lax
    return SimpleNamespace(sin=jnp.sin, cos=jnp.cos, stack=jnp.stack, concatenate=jnp.concatenate,
                           fori_loop=lax.fori_loop, scan=lax.scan, map=lax.map)


def casadi_xp() -> SimpleNamespace:
    ca = peers.ca
    return SimpleNamespace(sin=ca.sin, cos=ca.cos, stack=lambda v: ca.vertcat(*v),
                           concatenate=lambda v: ca.vertcat(*v))


def casadi_sx(case: LoopCase, size: int, dense: bool = True):
    """The case's Python-loop form traced with SX symbols, and its derivative, as a Function (a
    Jacobian densified unless `dense` is false: then the Function returns a sparse DM)."""
    ca = peers.ca
    z = ca.SX.sym("z", case.n_in(size))
    e = case.traced(z, casadi_xp(), size)
    out = {"value": lambda: e, "gradient": lambda: ca.gradient(e, z),
           "jacobian": lambda: ca.jacobian(e, z)}[case.kind]()
    return ca.Function("f", [z], [ca.densify(out) if case.kind == "jacobian" and dense else out])


def casadi_ms_map(stages: int):
    """Multiple shooting as CasADi users write it: the stage as an SX Function, `map`ped over
    the stages in an MX graph, and the Jacobian of that graph."""
    ca = peers.ca
    x, u = ca.SX.sym("x", 4), ca.SX.sym("u")
    stage = ca.Function("stage", [x, u], [ms_stage(x, u, casadi_xp())])
    w = ca.MX.sym("w", 5 * stages + 4)
    xs = ca.reshape(w[:4 * (stages + 1)], 4, stages + 1)    # column k: x_k
    us = w[4 * (stages + 1):].T
    g = ca.vec(stage.map(stages)(xs[:, :stages], us) - xs[:, 1:])
    return ca.Function("ms", [w], [ca.densify(ca.jacobian(g, w))])


def casadi_builder(make: Callable[[], object], x: np.ndarray,
                   expected: Callable[[], np.ndarray]) -> Callable[[], Tool]:
    def build() -> Tool:
        return Tool("F(x)", {"F": make(), "x": peers.ca.DM(x)}, expected)
    return build


def jax_builder(case: LoopCase, size: int, expected: Callable[[], np.ndarray]
                ) -> Callable[[], Tool]:
    """`jit` of the case's loop-function form (lax loops), under `jacfwd` or `jacrev` (fewer
    directions, as anvil's mode "auto") or `grad`."""
    def build() -> Tool:
        jax = peers.jax
        x = peers.jnp.asarray(case.input(size))
        fwd = case.n_in(size) <= case.n_out(size)
        derivative = {"value": lambda f: f, "gradient": jax.grad,
                      "jacobian": jax.jacfwd if fwd else jax.jacrev}[case.kind]
        # a fresh Python function each time: JAX caches traces and executables by function
        f = jax.jit(derivative(lambda z: case.loop(z, jax_xp(), size)))
        f(x).block_until_ready()
        return Tool("f(x).block_until_ready()", {"f": f, "x": x}, expected)
    return build


def numba_builder(kernel: Callable, x: np.ndarray, expected: Callable[[], np.ndarray]
                  ) -> Callable[[], Tool]:
    def build() -> Tool:
        f = peers.numba.njit(kernel)        # a new dispatcher: compiled afresh
        f(x)
        return Tool("f(x)", {"f": f, "x": x}, expected)
    return build


# ---- hand-written numba kernels (plain functions, also the references when run by Python) -----
def nb_pendulum_jacobian(steps: int, h: float = PEND_H) -> Callable:
    """The pendulum's final state's Jacobian by forward-mode tangents written by hand: three
    directions (theta, omega, p) carried through every RK4 stage."""
    def kernel(z):
        p, a, b = z[2], z[0], z[1]
        da, db, dp = np.zeros(3), np.zeros(3), np.zeros(3)
        da[0] = db[1] = dp[2] = 1.0
        ka, kb = np.zeros(4), np.zeros(4)               # stage slopes
        dka, dkb = np.zeros((4, 3)), np.zeros((4, 3))   # and their tangents
        for _ in range(steps):
            for i in range(4):
                w = h if i == 3 else 0.5 * h
                ai, bi = a, b
                if i:
                    ai += w * ka[i - 1]
                    bi += w * kb[i - 1]
                s, c = math.sin(ai), math.cos(ai)
                ka[i], kb[i] = bi, -p * s
                for j in range(3):
                    ta, tb = da[j], db[j]
                    if i:
                        ta += w * dka[i - 1, j]
                        tb += w * dkb[i - 1, j]
                    dka[i, j] = tb
                    dkb[i, j] = -dp[j] * s - p * c * ta
            a += h / 6 * (ka[0] + 2 * ka[1] + 2 * ka[2] + ka[3])
            b += h / 6 * (kb[0] + 2 * kb[1] + 2 * kb[2] + kb[3])
            for j in range(3):
                da[j] += h / 6 * (dka[0, j] + 2 * dka[1, j] + 2 * dka[2, j] + dka[3, j])
                db[j] += h / 6 * (dkb[0, j] + 2 * dkb[1, j] + 2 * dkb[2, j] + dkb[3, j])
        out = np.empty((2, 3))
        for j in range(3):
            out[0, j], out[1, j] = da[j], db[j]
        return out
    return kernel


def nb_pendulum_value(steps: int, h: float = PEND_H) -> Callable:
    def kernel(z):
        p, a, b = z[2], z[0], z[1]
        for _ in range(steps):
            k1a, k1b = b, -p * math.sin(a)
            k2a, k2b = b + h / 2 * k1b, -p * math.sin(a + h / 2 * k1a)
            k3a, k3b = b + h / 2 * k2b, -p * math.sin(a + h / 2 * k2a)
            k4a, k4b = b + h * k3b, -p * math.sin(a + h * k3a)
            a += h / 6 * (k1a + 2 * k2a + 2 * k3a + k4a)
            b += h / 6 * (k1b + 2 * k2b + 2 * k3b + k4b)
        out = np.empty(2)
        out[0], out[1] = a, b
        return out
    return kernel


def nb_chain_gradient(n: int) -> Callable:
    """The map is elementwise: each component's derivative is a product along its chain."""
    def kernel(x):
        g = np.empty_like(x)
        for j in range(x.size):
            y, d = x[j], 1.0
            for _ in range(n):
                d *= 1.00001 + math.cos(y) * 1e-6
                y = y * 1.00001 + math.sin(y) * 1e-6
            g[j] = 2.0 * y * d
        return g
    return kernel


def python_reference(kernel: Callable, x: np.ndarray) -> Callable[[], np.ndarray]:
    """The hand-written kernel run by the Python interpreter, once, when first asked."""
    return functools.cache(lambda: np.asarray(kernel(x)))


def casadi_reference(case: LoopCase, size: int) -> Callable[[], np.ndarray]:
    return functools.cache(lambda: casadi_sx(case, size)(case.input(size)).full())


# ---- measuring: anvil builds in fresh processes, everything else here ---------------------------
@dataclass
class Measured:
    builds: dict[str, Value]
    calls: dict[str, Value]
    notes: dict[str, str] = field(default_factory=dict)


def measure(cfg: Config, anvil: dict[str, dict], peer_builders: dict[str, Callable[[], Tool]],
            expected: Callable[[], np.ndarray], calls: bool = True) -> Measured:
    """anvil's builds of `anvil` (label -> spec) in fresh processes; the peers' builds here;
    then (with `calls`) anvil's functions built here and every tool's call timed side by side.
    A tool that failed to build gets its status as its call time too."""
    builds, notes = {}, {}
    for label, spec in anvil.items():
        fresh = fresh_build(cfg, spec, expected)
        builds[label], notes[label] = fresh.time, fresh.note
    tools, peer_builds = bt.build_timed(peer_builders, cfg.build_rounds if calls else 1)
    builds.update(peer_builds)
    if not calls:
        return Measured(builds, {}, notes)
    built = {label: anvil_builder(spec, expected) for label, spec in anvil.items()
             if isinstance(builds[label], float) and builds[label] <= REBUILD_LIMIT}
    anvil_tools, here = bt.build_timed(built, 1)
    here.update({label: f"not timed (build > {REBUILD_LIMIT:g} s)" for label in anvil
                 if isinstance(builds[label], float) and label not in built})
    for label, seconds in here.items():
        if isinstance(seconds, float):
            notes[label] += (f"{'; ' if notes[label] else ''}built again here: "
                             f"{bt.fmt_time(seconds)}")
    times = bt.side_by_side({**anvil_tools, **tools}, cfg.rounds, cfg.seconds)
    statuses = {name: value for name, value in {**builds, **here}.items()
                if isinstance(value, str)}      # failed builds, and builds not repeated here
    return Measured(builds, {**times, **statuses}, notes)


def pick(times: dict[str, Value], *names: str) -> dict[str, Value]:
    """The times of `names`, in that order (so in that column order); "-" for a tool not run."""
    return {name: times.get(name, "-") for name in names}


def spec(case: str, variant: str, size: int, mode: str = "auto") -> dict:
    return {"case": case, "variant": variant, "size": size, "mode": mode}


def paragraph(text: str) -> str:
    """A section's notes, written as an indented block, as one line of markdown."""
    return " ".join(text.split())


# ---- 1. pendulum Jacobian: Python loop vs fori_loop ---------------------------------------------
def pendulum_jacobian(cfg: Config) -> Section:
    case, n = CASES["pendulum"], cfg.pendulum_steps
    z = case.input(n)
    expected = python_reference(nb_pendulum_jacobian(n), z)
    anvil = {"anvil traced": spec("pendulum", "traced", n),
             "anvil traced rev": spec("pendulum", "traced", n, "rev"),
             "anvil fori_loop": spec("pendulum", "loop", n),
             "anvil fori_loop rev": spec("pendulum", "loop", n, "rev")}
    m = measure(cfg, anvil, {
        "CasADi": casadi_builder(lambda: casadi_sx(case, n), z, expected),
        "JAX": jax_builder(case, n, expected),
        "numba": numba_builder(nb_pendulum_jacobian(n), z, expected)}, expected)
    long_n = cfg.long_steps
    long_expected = python_reference(nb_pendulum_jacobian(long_n), z)
    long = measure(cfg, {"anvil fori_loop": spec("pendulum", "loop", long_n)}, {
        "JAX": jax_builder(case, long_n, long_expected),
        "numba": numba_builder(nb_pendulum_jacobian(long_n), z, long_expected)}, long_expected)
    what = {"anvil traced": "Python loop, `jacobian` (auto: fwd)",
            "anvil traced rev": "Python loop, `jacobian(mode=\"rev\")`",
            "anvil fori_loop": "`fori_loop`, `jacobian` (auto: fwd)",
            "anvil fori_loop rev": "`fori_loop`, `jacobian(mode=\"rev\")`"}
    builds = pick(m.builds, "CasADi", "JAX", "numba")
    calls = pick(m.calls, "numba", "JAX", "CasADi")
    def point(quantity: str, steps: int, label: str) -> Point:
        return Point("pendulum", "jacobian", quantity, steps, label)
    rows = [Row(f"{what[label]}, {n} steps: build", m.builds[label], builds, (),
                0.5 if "traced" in label else 0.1, m.notes[label], point("build", n, label))
            for label in anvil]
    rows.append(Row(f"{what['anvil fori_loop']}, {long_n:,} steps: build",
                    long.builds["anvil fori_loop"], pick(long.builds, "CasADi", "JAX", "numba"),
                    (), 0.1, long.notes["anvil fori_loop"],
                    point("build", long_n, "anvil fori_loop")))
    rows += [Row(f"{what[label]}, {n} steps: call", m.calls[label], calls, ("numba",),
                 2.0 if "traced" in label else 1.5, point=point("run", n, label))
             for label in anvil]
    rows.append(Row(f"{what['anvil fori_loop']}, {long_n:,} steps: call",
                    long.calls["anvil fori_loop"], pick(long.calls, "numba", "JAX", "CasADi"),
                    ("numba",), 1.5, point=point("run", long_n, "anvil fori_loop")))
    return Section(f"1. Pendulum RK4, Jacobian (2x3) of the final state, {n} steps", rows,
                   paragraph(f"""
        z = [theta, omega, p], f(x) = [omega, -p sin(theta)], h = 0.01. Builds: anvil = trace +
        AD + compile, first build in a fresh process (disk cache off; median over up to
        {cfg.processes} processes, one when it takes over {SLOW:g} s; stages in the note); peers
        in this process (warm, median of {cfg.build_rounds}), for context: CasADi = SX traced
        from the Python loop + `jacobian` + `Function`; JAX = first call of a new
        `jit(jacfwd(f))` with `lax.fori_loop`; numba = first call of a new `njit` dispatcher of
        a hand-written forward-mode loop (three tangents through each RK4 stage). Reference:
        that hand-written loop run by Python. Calls: CasADi `F(DM)` (virtual machine); JAX
        `f(x).block_until_ready()`."""))


# ---- 2. deep chain gradient: build time against the number of iterations -----------------------
def chain_gradient(cfg: Config) -> Section:
    case, rows = CASES["chain"], []
    traced: dict[int, Value] = {}
    timed_out = None
    call_sizes = {cfg.chain_sizes[0], cfg.chain_sizes[-1]}
    for n in cfg.chain_sizes:
        expected = python_reference(nb_chain_gradient(n), CHAIN_X)
        anvil = {"anvil fori_loop": spec("chain", "loop", n)}
        if timed_out is None:
            anvil["anvil traced"] = spec("chain", "traced", n)
        calls = n in call_sizes
        m = measure(cfg, anvil, {
            "JAX": jax_builder(case, n, expected),
            **({"numba": numba_builder(nb_chain_gradient(n), CHAIN_X, expected)} if calls
               else {})}, expected, calls)
        traced[n] = m.builds.get("anvil traced", f"skipped ({timed_out:,} timed out)"
                                 if timed_out else "-")
        if timed_out is None and isinstance(traced[n], str) and traced[n].startswith("timeout"):
            timed_out = n
        builds = pick(m.builds, "JAX")
        rows.append(Row(f"Python loop, {n:,} iterations: build", traced[n], builds, (),
                        2.0 if n == 8000 else None, m.notes.get("anvil traced", ""),
                        Point("chain", "gradient", "build", n, "anvil traced")))
        rows.append(Row(f"`fori_loop`, {n:,} iterations: build", m.builds["anvil fori_loop"],
                        builds, (), 0.1, m.notes["anvil fori_loop"],
                        Point("chain", "gradient", "build", n, "anvil fori_loop")))
        if calls:
            shown = pick(m.calls, "numba", "JAX")
            rows += [Row(f"{what}, {n:,} iterations: call", m.calls.get(label, traced[n]),
                         shown, ("numba",), point=Point("chain", "gradient", "run", n, label))
                     for what, label in (("Python loop", "anvil traced"),
                                         ("`fori_loop`", "anvil fori_loop"))]
    sizes = [n for n in cfg.chain_sizes if isinstance(traced[n], float)]
    for small, large in itertools.pairwise(sizes):
        label = f"anvil {small:,}"
        rows.append(Row(f"Python loop: growth {large:,} / {small:,} iterations", traced[large],
                        {label: traced[small]}, (label,), 1.5 * large / small,
                        f"{large / small:g}x the iterations; target: roughly linear"))
    return Section(
        "2. Deep chain gradient: `y = y * 1.00001 + sin(y) * 1e-6` on a 2-vector, "
        "gradient of sum(y*y)", rows, paragraph(f"""
        anvil: `gradient` (reverse mode) of the Python loop (unrolled) and of `fori_loop`, trace
        + AD + compile in a fresh process (disk cache off), timeout {cfg.build_timeout:g} s
        (larger sizes are skipped after a timeout). JAX: `jit(grad(f))` with `lax.fori_loop`,
        first call of a new function (in this process). numba and the reference: the
        hand-written derivative (a product along each component's chain). Targets: Python loop
        8k iterations <= 2 s and linear growth; `fori_loop` <= 0.1 s at any count (section 1's
        target). Calls at the smallest and largest size, for information."""))


# ---- 3.-5.: anvil's forms of a problem beside the peers -----------------------------------------
@dataclass(frozen=True)
class Form:
    """One of anvil's forms of a section's problem: its variant ("traced" or "loop") and mode,
    the rows' name for it, and its targets: build seconds, call time over the fastest of
    `against`."""

    variant: str
    what: str
    build: float
    call: float
    against: tuple[str, ...]
    mode: str = "auto"


def form_rows(cfg: Config, case: str, size: int, forms: list[Form],
              peer_builders: dict[str, Callable[[], Tool]], expected: Callable[[], np.ndarray],
              build_peers: tuple[str, ...], call_peers: tuple[str, ...]) -> list[Row]:
    """Measure each form of `case` at `size` beside the peers: its build row (the peers of
    `build_peers` as columns), then, after all of those, its call row (`call_peers`)."""
    m = measure(cfg, {f.what: spec(case, f.variant, size, f.mode) for f in forms},
                peer_builders, expected)
    builds, calls = pick(m.builds, *build_peers), pick(m.calls, *call_peers)

    def point(quantity: str, form: Form) -> Point:
        return Point(case, CASES[case].kind, quantity, size, f"anvil {form.what}")
    return ([Row(f"{f.what}: build", m.builds[f.what], builds, (), f.build, m.notes[f.what],
                 point("build", f)) for f in forms] +
            [Row(f"{f.what}: call", m.calls[f.what], calls, f.against, f.call,
                 point=point("run", f)) for f in forms])


# ---- 3. RK4 value, many steps ---------------------------------------------------------------
def rk4_value(cfg: Config) -> Section:
    case, n = CASES["pendulum_value"], cfg.value_steps
    z = case.input(n)
    expected = python_reference(nb_pendulum_value(n), z)
    rows = form_rows(cfg, "pendulum_value", n, [
        Form("traced", "Python loop", 2.0, 2.0, ("numba",)),
        Form("loop", "`fori_loop`", 0.05, 1.5, ("numba",)),
    ], {"CasADi": casadi_builder(lambda: casadi_sx(case, n), z, expected),
        "JAX": jax_builder(case, n, expected),
        "numba": numba_builder(nb_pendulum_value(n), z, expected),
        }, expected, ("CasADi", "JAX", "numba"), ("numba", "JAX", "CasADi"))
    return Section(f"3. Pendulum RK4 value (no derivative), {n:,} steps", rows, paragraph(f"""
        The pendulum of section 1, its final state only. Builds: anvil in a fresh process (disk
        cache off, timeout {cfg.build_timeout:g} s); CasADi = SX traced from the Python loop +
        `Function`, JAX = `jit` with `lax.fori_loop`, numba = a hand-written loop (in this
        process). Targets: Python loop build <= 2 s, `fori_loop` build <= 50 ms; the call
        targets are section 1's (Python loop <= 2x numba, `fori_loop` <= 1.5x numba)."""))


# ---- 4. cart-pole single shooting -----------------------------------------------------------
def single_shooting(cfg: Config) -> Section:
    case, n = CASES["single_shooting"], cfg.cartpole_steps
    z = case.input(n)
    expected = casadi_reference(case, n)
    rows = form_rows(cfg, "single_shooting", n, [
        Form("traced", "Python loop", 1.0, 1.0, ("JAX",)),
        Form("loop", "`scan`", 1.0, 1.0, ("JAX",)),
    ], {"CasADi": casadi_builder(lambda: casadi_sx(case, n), z, expected),
        "JAX": jax_builder(case, n, expected)}, expected, ("JAX", "CasADi"), ("JAX", "CasADi"))
    return Section(
        f"4. Cart-pole single shooting, {n} RK4 steps: dense Jacobian ({4 * n}x{4 + n})", rows,
        paragraph(f"""
        z = [x0 (4), u ({n})] -> the {n} states after each RK4 step (h = {CP_H:g}, u held over a
        step), flat; state [x, theta, xdot, thetadot], mc = 1, mp = 0.1, l = 0.5, g = 9.81. The
        dynamics are written as `x[0]`, `x[1]`, `av.stack([...])`; the Python loop collects the
        states with `concatenate`, the loop form is `scan(body, x0, u)` returning the states as
        its ys. anvil: `jacobian` (auto: fwd, fewer inputs than outputs), build in a fresh
        process (disk cache off). JAX: `jit(jacfwd(f))` with `lax.scan`; CasADi: SX traced from
        the Python loop + `jacobian` + `densify`, which is also the reference."""))


# ---- 5. cart-pole multiple shooting ---------------------------------------------------------
def multiple_shooting(cfg: Config) -> Section:
    case, s = CASES["multiple_shooting"], cfg.stages
    w = case.input(s)
    expected = casadi_reference(case, s)
    casadi = ("CasADi map", "CasADi")
    peer_columns = ("CasADi map", "CasADi", "CasADi sparse", "JAX")
    rows = form_rows(cfg, "multiple_shooting", s, [
        Form("loop", "`map` over the stages", 1.0, 1.0, casadi),
        Form("loop", "`map` over the stages, sparse (`spjacobian`)", 1.0, 1.0,
             ("CasADi sparse",), "sparse"),
        Form("traced", "Python loop over the stages", 1.0, 1.0, casadi),
    ], {"CasADi map": casadi_builder(lambda: casadi_ms_map(s), w, expected),
        "CasADi": casadi_builder(lambda: casadi_sx(case, s), w, expected),
        "CasADi sparse": casadi_builder(lambda: casadi_sx(case, s, dense=False), w, expected),
        "JAX": jax_builder(case, s, expected)}, expected, peer_columns, peer_columns)
    return Section(
        f"5. Cart-pole multiple shooting, {s} stages: constraint Jacobian ({4 * s}x{5 * s + 4})",
        rows, paragraph(f"""
        w = [x_0..x_{s} (4 each), u_0..u_{s - 1}] -> the continuity constraints F(x_k, u_k) -
        x_{{k+1}}, F = four RK4 steps of h = 0.02 of the cart-pole of section 4. anvil:
        `jacobian` (auto: through its sparsity, 8 column colours) of
        `av.map(stage, (xs[:-1], us))` and of the Python loop; build in a fresh process (disk cache off). `spjacobian`: anvil's
        sparse Jacobian of the `map` form, computed entry by entry through the map (its
        nonzeros, and the colours a colouring would use, in the note); a call returns the nonzeros in CSC order, checked against the
        reference's entries at its pattern, once the reference is found to have no nonzero
        outside it (the fresh process checks `J.csc(w).toarray()` against the dense reference). CasADi map: the stage
        as an SX `Function`, `map(S)` in an MX graph, `jacobian` + `densify`; CasADi: SX traced
        from the Python loop (the reference); CasADi sparse: the same without `densify`, a call
        returns a sparse DM. JAX: `jit(jacrev(f))` with `lax.map` (`jacfwd` builds faster, 2-5
        s, but `jacrev` is the mode with fewer directions; `vmap` instead of `lax.map` builds as
        slowly). Targets (section 4's, as none is set for this problem): builds <= 1 s, calls
        <= 1x the faster CasADi (the sparse call: <= 1x CasADi sparse)."""))


SECTIONS = [pendulum_jacobian, chain_gradient, rk4_value, single_shooting, multiple_shooting]


# ---- workers: run in fresh interpreters ---------------------------------------------------------
def worker_anvil(spec: dict) -> dict:
    """Build `spec` up to `repeat` times (the later builds under new names, and only while the
    first took less than `budget` seconds); its stages, times and output."""
    times, stages, f = [], None, None
    for k in range(spec["repeat"]):
        laps = bt.Stages()
        f = build_anvil(spec, f"{spec['case']}_{spec['variant']}_{k}", laps)
        times.append(sum(laps.seconds.values()))
        stages = stages or laps.seconds
        if times[0] > spec["budget"]:
            break
    out = dense_output(f, CASES[spec["case"]].input(spec["size"]))
    about = [f"{f.nnz} nonzeros, {f.ncolors} colours"] if hasattr(f, "ncolors") else []
    return {"times": times, "stages": stages, "out": out.ravel().tolist(), "about": about}


WORKERS = {"anvil": worker_anvil}


AREA = bt.Area(
    "loops", "Loop benchmarks", tuple(SECTIONS), QUICK, FULL, WORKERS,
    intro="Python loops are traced once per iteration, then their repeated iterations are "
    "rolled back into one loop (docs/loops.md); `fori_loop`, `scan` and `map` trace one body "
    "run by a native loop. ",
    failures=", one that fails to build shows its error (in its build and call cells)")


if __name__ == "__main__":
    AREA.main(__doc__)
