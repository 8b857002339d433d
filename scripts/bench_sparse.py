"""Sparse derivative benchmarks of anvil_llvm (`spjacobian`, `sphessian`) side by side with
hand-written numba kernels of the CSC values, JAX (`jvp` vmapped over colour seeds, then a
gather) and CasADi (SX, sparse `jacobian` / `hessian`): build time by stage, memory per nonzero,
call time, and colour counts on the public problems. Prints markdown tables and writes them to
docs/benchmarks/sparse.md.

    python scripts/bench_sparse.py            # the full run (docs/benchmarks/sparse.md)
    python scripts/bench_sparse.py --quick    # reduced sizes, a smoke test (about a minute)
    python scripts/bench_sparse.py --only rosen_hessian --out /tmp/sparse.md

Every tool's output is checked against a reference (the hand-written kernel's values, whose
pattern is checked equal to anvil's detected pattern; CasADi's pattern must equal it too)
before it is timed; call times are medians over rounds in which the tools take turns.
anvil_llvm's builds run in fresh processes (disk cache off) with a timeout; the peers' builds
run in this process, for context. (The multiple-shooting `spjacobian` row is in
bench_loops.py.)
"""
import functools
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Before NumPy: NumPy's and SciPy's OpenBLAS thread pools fight on this 2-core machine.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import benchtools as bt
import numpy as np
import scipy.sparse as sp
from benchtools import Point, Row, Section, Tool, Value, peers

from anvil_llvm import ad
from anvil_llvm.benchmarks import problem

SCRIPT = str(Path(__file__).resolve())


@dataclass(frozen=True)
class Config(bt.Timing):
    """build_rounds: the peers' builds here; processes: fresh processes per anvil build."""

    bratu_m: int                # section 1: n = m²
    rosen_n: int                # section 2
    arrow_n: int                # section 3
    casadi_bratu_m: int         # CasADi's sizes (its builds take 15-30 s at the full sizes)
    casadi_rosen_n: int
    casadi_arrow_n: int
    colour_sizes: tuple         # section 4: (problem, size) pairs
    networkx_max_n: int         # sparsejac's networkx colouring only up to this many columns
    build_timeout: float        # seconds allowed to one anvil build process


_PUBLIC = (("rosen", 100), ("rosen", 10_000), ("rosen", 1_000_000), ("bratu2d", 10),
           ("bratu2d", 100), ("bratu2d", 1000), ("bratu2d_E", 10), ("bratu2d_E", 100),
           ("bratu2d_E", 1000), ("arrowhead", 1000), ("arrowhead", 100_000), ("sumsq", 5),
           ("arm", 6), ("expdecay", 2))
FULL = Config(rounds=7, seconds=0.05, build_rounds=1, processes=3, bratu_m=1000,
              rosen_n=1_000_000, arrow_n=100_000, casadi_bratu_m=1000, casadi_rosen_n=1_000_000,
              casadi_arrow_n=100_000, colour_sizes=_PUBLIC, networkx_max_n=10_000,
              build_timeout=120)
QUICK = Config(rounds=3, seconds=0.01, build_rounds=1, processes=1, bratu_m=100,
               rosen_n=10_000, arrow_n=1000, casadi_bratu_m=100, casadi_rosen_n=10_000,
               casadi_arrow_n=1000, colour_sizes=(("rosen", 100), ("bratu2d", 10), ("bratu2d", 100),
                                                  ("bratu2d_E", 10), ("arrowhead", 1000),
                                                  ("arm", 6), ("expdecay", 2)),
               networkx_max_n=1000, build_timeout=60)
CASADI_CUTOFF = 2000
"""CasADi's colourings stop (a null result) beyond this many colours."""


# ---- hand-written numba kernels: the CSC values (plain functions; njit-compiled as peers) -----
def bratu_structure(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The CSC pattern of bratu2d's Jacobian (5-point stencil on the m x m grid, row-major)."""
    n = m * m
    c = np.arange(n)
    ci, cj = c // m, c % m
    rows = np.stack([c - m, c - 1, c, c + 1, c + m])     # ascending rows in each column
    keep = np.stack([ci > 0, cj > 0, np.ones(n, bool), cj < m - 1, ci < m - 1])
    counts = keep.sum(axis=0)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    return indptr, rows.T[keep.T]


def nb_bratu_jacobian(m: int, lam: float = 6.0) -> Callable:
    h2 = (1.0 / (m + 1)) ** 2

    def kernel(x, out):
        q = 0
        for ci in range(m):
            for cj in range(m):
                if ci > 0:
                    out[q] = -1.0
                    q += 1
                if cj > 0:
                    out[q] = -1.0
                    q += 1
                out[q] = 4.0 - lam * h2 * math.exp(x[ci * m + cj])
                q += 1
                if cj < m - 1:
                    out[q] = -1.0
                    q += 1
                if ci < m - 1:
                    out[q] = -1.0
                    q += 1
        return out
    return kernel


def rosen_structure(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The upper triangle of the chained Rosenbrock Hessian, CSC: column j holds j - 1, j."""
    counts = np.where(np.arange(n) > 0, 2, 1)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    rows = np.stack([np.arange(n) - 1, np.arange(n)])
    return indptr, rows.T[np.stack([np.arange(n) > 0, np.ones(n, bool)]).T]


def nb_rosen_hessian(x, out):
    n = x.size
    q = 0
    for j in range(n):
        if j > 0:
            out[q] = -400.0 * x[j - 1]
            q += 1
        d = 0.0
        if j < n - 1:
            d += 1200.0 * x[j] * x[j] - 400.0 * x[j + 1] + 2.0
        if j > 0:
            d += 200.0
        out[q] = d
        q += 1
    return out


def arrow_structure(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The upper triangle of the arrowhead Hessian, CSC: column 0 holds 0; column j, 0 and j."""
    indptr = np.concatenate(([0, 1], 1 + 2 * np.arange(1, n)))
    rows = np.zeros(2 * n - 1, np.int64)
    rows[2::2] = np.arange(1, n)
    return indptr, rows


def nb_arrow_hessian(x, out):
    n = x.size
    x0 = x[0]
    s = 0.0
    for i in range(1, n):
        s += x[i] * x[i]
    out[0] = 2.0 * s + 12.0 * x0 * x0
    for i in range(1, n):
        out[2 * i - 1] = 4.0 * x0 * x[i]
        out[2 * i] = 2.0 * x0 * x0 + 12.0 * x[i] * x[i]
    return out


@dataclass(frozen=True)
class Case:
    """A sparse derivative of a public problem: the kind ("jacobian", or the Hessian `method`
    "star" / "acyclic"), and its hand-written CSC pattern and kernel (x, out) -> out;
    `entrywise`: the operator's default (nonzeros computed entry by entry where the derivative
    allows it), else `entrywise=False` (the colouring's directional derivatives)."""

    name: str
    size: int
    kind: str
    structure: Callable[[int], tuple[np.ndarray, np.ndarray]]
    kernel: Callable
    entrywise: bool = True

    @functools.cached_property
    def problem(self):
        return problem(self.name, self.size)

    @functools.cached_property
    def pattern(self) -> tuple[np.ndarray, np.ndarray]:
        return self.structure(self.size)

    @property
    def nnz(self) -> int:
        return int(self.pattern[0][-1])

    @functools.cached_property
    def expected(self) -> np.ndarray:
        """The hand-written kernel's values (run by numba once: Python is too slow at 1e6)."""
        out = np.empty(self.nnz)
        peers.numba.njit(self.kernel)(self.problem.x0, out)
        return out

    def spec(self) -> dict:
        return {"name": self.name, "size": self.size, "derivative": self.kind,
                "entrywise": self.entrywise}

    @property
    def label(self) -> str:
        """The call that builds it, as the rows name it."""
        options = [] if self.kind == "jacobian" else [f'method="{self.kind}"']
        options += [] if self.entrywise else ["entrywise=False"]
        return f"`{'spjacobian' if self.kind == 'jacobian' else 'sphessian'}({', '.join(options)})`"

    def point(self, quantity: str) -> Point:
        """Where the case's rows go in the plots (a Hessian's method names anvil's series)."""
        series = "anvil" if self.entrywise else f"anvil colours ({self.kind})"
        operator = "spjacobian" if self.kind == "jacobian" else "sphessian"
        return Point(self.name, operator, quantity, self.problem.n, series)


def bratu_case(m: int, entrywise: bool = True) -> Case:
    return Case("bratu2d", m, "jacobian", lambda m: bratu_structure(m), nb_bratu_jacobian(m),
                entrywise)


def rosen_case(n: int, method: str, entrywise: bool = True) -> Case:
    return Case("rosen", n, method, rosen_structure, nb_rosen_hessian, entrywise)


def arrow_case(n: int, method: str, entrywise: bool = True) -> Case:
    return Case("arrowhead", n, method, arrow_structure, nb_arrow_hessian, entrywise)


# ---- anvil_llvm: staged builds (the calls `spjacobian` / `sphessian` make, timed each) ---------
def build_staged(spec: dict, name: str, laps: bt.Stages):
    """Trace, detect the pattern, build the graph entry by entry or colour and build it, and
    compile what `spec` names, with the same calls as `ad.spjacobian` / `ad.sphessian`,
    lapping each stage (numba and the colouring kernels are imported by the colouring)."""
    from anvil_llvm.ad import sparse
    from anvil_llvm.ad.sparsity import hessian_pattern, jacobian_pattern
    from anvil_llvm.function import SparseNumericalFunction
    laps.lap("import")
    f = problem(spec["name"], spec["size"]).function(name)
    x = f.inputs[0]
    laps.lap("trace")
    jacobian = spec["derivative"] == "jacobian"
    if jacobian:
        pattern = sparse.jacobian_csc(jacobian_pattern(f.outputs, [x]))
    else:
        full = hessian_pattern(f.outputs[0], [x])
        pattern = sparse.hessian_upper(full)
    laps.lap("detect")
    def colour():
        from anvil_llvm.ad.coloring import hessian_coloring, jacobian_coloring
        return (jacobian_coloring(pattern) if jacobian else
                hessian_coloring(full, method=spec["derivative"]))
    graph = None
    if spec["entrywise"]:
        graph = (sparse.entrywise_jacobian(list(f.outputs), x, pattern) if jacobian else
                 sparse.entrywise_hessian(f.outputs[0], x, pattern))
    if graph is None:
        coloring = colour()
        laps.lap("colour")
        graph = (sparse.spjacobian_graph(list(f.outputs), x, coloring) if jacobian else
                 sparse.sphessian_graph(f.outputs[0], x, coloring))
        J = SparseNumericalFunction.from_coloring(f"{name}_d", f, graph, coloring)
    else:
        J = SparseNumericalFunction.from_coloring(f"{name}_d", f, graph, colour, pattern)
    laps.lap("graph")
    J.compile()
    laps.lap("compile")
    return J


def build_public(spec: dict, name: str):
    """The same through the public operator, compiled."""
    f = problem(spec["name"], spec["size"]).function(name)
    J = (ad.spjacobian(f, entrywise=spec["entrywise"]) if spec["derivative"] == "jacobian" else
         ad.sphessian(f, method=spec["derivative"], entrywise=spec["entrywise"]))
    return J.compile()


def _status(field: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes. VmHWM is the peak of this
    process image (getrusage's ru_maxrss also counts the parent's resident set at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Make VmHWM the current resident set (Linux >= 4.0), so the peak counts what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass


def worker_build(spec: dict) -> dict:
    """The first build in this (fresh) process, by stage; then later builds through the public
    operator (while the first took less than `budget` seconds); the values go to spec["out"]."""
    laps = bt.Stages()
    J = build_staged(spec, "first", laps)
    first = sum(laps.seconds.values())
    later = []
    for k in range(spec["repeat"] - 1):
        if first > spec["budget"]:
            break
        start = time.perf_counter()
        build_public(spec, f"later{k}")
        later.append(time.perf_counter() - start)
    p = problem(spec["name"], spec["size"])
    np.save(spec["out"], J(p.x0))
    np.save(spec["out"] + ".structure.npy", np.concatenate((J.indptr, J.indices)))
    how = (f"entry by entry (no colouring made; its colouring: {J.ncolors} colours)"
           if J.entrywise else f"{J.ncolors} colours ({J.coloring.order})")
    return {"time": first, "stages": laps.seconds, "later": later, "nnz": J.nnz, "how": how}


def worker_memory(spec: dict) -> dict:
    """Peak memory of a build and one call (into a given `out=`) over what the process held
    before (its problem and input made, and the same build on a tiny size done, so imports and
    JIT initialisation are not counted)."""
    tiny = {"bratu2d": 10, "rosen": 100, "arrowhead": 100}[spec["name"]]
    build_public({**spec, "size": tiny}, "warm")
    p = problem(spec["name"], spec["size"])
    x = p.x0.copy()
    _reset_peak()
    before = _status("VmRSS")
    J = build_public(spec, "measured")
    out = np.empty(J.nnz)
    J(x, out=out)
    peak = _status("VmHWM")
    return {"bytes": max(peak - before, 0), "nnz": J.nnz, "work_bytes": J.work_bytes}


WORKERS = {"build": worker_build, "memory": worker_memory}


@dataclass
class FreshBuild:
    time: Value
    note: str = ""
    later: Value = "-"


def fresh_build(cfg: Config, case: Case) -> FreshBuild:
    """`case` built in up to `cfg.processes` fresh processes (disk cache off), each building it
    up to three times; the first build's output is checked against the hand-written kernel's."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(cfg.processes):
            out = os.path.join(tmp, f"out{k}.npy")
            result = bt.run_worker(SCRIPT, {"kind": "build", **case.spec(), "out": out,
                                            "repeat": 3, "budget": 5.0}, {}, cfg.build_timeout)
            if isinstance(result, str):
                return FreshBuild(result)
            structure = np.load(out + ".structure.npy")
            indptr, indices = case.pattern
            if not np.array_equal(structure, np.concatenate((indptr, indices))):
                return FreshBuild("DISAGREE (pattern differs from the hand-written one)")
            error = bt.rel_error(np.load(out), case.expected)
            if not error <= bt.TOLERANCE:
                return FreshBuild(f"DISAGREE (err {error:.1e})")
            results.append(result)
            if result["time"] > 10.0:
                break
    stages = {k: statistics.median(r["stages"][k] for r in results) for k in results[0]["stages"]}
    later = [t for r in results for t in r["later"]]
    note = (f"{results[0]['how']}; " +
            ", ".join(f"{k} {bt.fmt_time(v)}" for k, v in stages.items()))
    return FreshBuild(statistics.median(r["time"] for r in results), note,
                      statistics.median(later) if later else "-")


def memory_row(cfg: Config, case: Case, what: str) -> Row:
    result = bt.run_worker(SCRIPT, {"kind": "memory", **case.spec()}, {}, cfg.build_timeout)
    if isinstance(result, str):
        return Row(what, result)
    per = result["bytes"] / max(result["nnz"], 1)
    return Row(what, f"{per:.0f} B/nnz", note=(
        f"target <= 100 B/nnz: {'met' if per <= 100 else 'not met'}; peak growth "
        f"{result['bytes'] / 2**20:.0f} MiB for {result['nnz']:,} nonzeros; workspace of a "
        f"call {result['work_bytes'] / max(result['nnz'], 1):.0f} B/nnz"))


# ---- peers (imported by the main process only) ------------------------------------------------
@dataclass
class SparseTool(Tool):
    """A tool whose output is first turned into CSC values (`convert` may raise Unavailable,
    for example when the pattern differs)."""

    convert: Callable = bt.as_array

    def status(self) -> str | None:
        try:
            error = bt.rel_error(self.convert(eval(self.stmt, self.env)), self.expected())
        except Exception as e:  # noqa: BLE001 -- a tool that fails is reported, not fatal
            return bt.failure(e)
        return None if error <= bt.TOLERANCE else f"DISAGREE (err {error:.1e})"


def anvil_builder(case: Case) -> Callable[[], Tool]:
    def build() -> Tool:
        J = build_public(case.spec(), bt.fresh_name(case.name))
        indptr, indices = case.pattern
        if not (np.array_equal(J.indptr, indptr) and np.array_equal(J.indices, indices)):
            raise bt.Unavailable("DISAGREE (pattern differs from the hand-written one)")
        return SparseTool("J(x, out=out)", {"J": J, "x": case.problem.x0,
                                            "out": np.empty(J.nnz)}, lambda: case.expected)
    return build


def numba_builder(case: Case) -> Callable[[], Tool]:
    def build() -> Tool:
        f = peers.numba.njit(case.kernel)       # a new dispatcher: compiled afresh
        out = np.empty(case.nnz)
        f(case.problem.x0, out)
        return SparseTool("f(x, out)", {"f": f, "x": case.problem.x0, "out": out},
                          lambda: case.expected)
    return build


def casadi_values(pattern: tuple[np.ndarray, np.ndarray]) -> Callable:
    """A CasADi DM's nonzeros, once its pattern is found equal to `pattern` (CSC)."""
    def convert(dm) -> np.ndarray:
        sparsity = dm.sparsity()
        if not (np.array_equal(np.asarray(sparsity.colind()), pattern[0]) and
                np.array_equal(np.asarray(sparsity.row()), pattern[1])):
            raise bt.Unavailable("DISAGREE (CasADi's pattern differs)")
        return np.asarray(dm.nonzeros())
    return convert


def casadi_builder(case: Case) -> Callable[[], Tool]:
    """SX traced from the problem's code, sparse `jacobian` or the upper triangle of `hessian`,
    as a `Function` run by CasADi's virtual machine (a call returns a sparse DM)."""
    def build() -> Tool:
        from bench_core import CasadiArray, casadi_xp
        ca, p = peers.ca, case.problem
        x = ca.SX.sym("x", p.n)
        e = p.f(CasadiArray(x), casadi_xp()).e
        d = ca.jacobian(e, x) if case.kind == "jacobian" else ca.triu(ca.hessian(e, x)[0])
        F = ca.Function("f", [x], [d])
        return SparseTool("F(x)", {"F": F, "x": ca.DM(p.x0)}, lambda: case.expected,
                          casadi_values(case.pattern))
    return build


def jax_builder(case: Case, colors: np.ndarray, source: np.ndarray) -> Callable[[], Tool]:
    """`jit` of: `jvp` of the problem's code vmapped over the colour seeds (given as an
    argument, K x n), then the gather of the CSC values from the compressed products; with
    anvil's colouring and decompression table (sparsejac is not installed here)."""
    def build() -> Tool:
        jax, jnp, p = peers.jax, peers.jnp, case.problem
        count = int(colors.max()) + 1
        seeds = jnp.asarray((colors[None, :] == np.arange(count)[:, None]).astype(np.float64))
        table = jnp.asarray(source.astype(np.int32))
        x = jnp.asarray(p.x0)

        def values(x, seeds, table):
            f = lambda z: p.f(z, jnp)  # a fresh function: JAX caches by function
            tangents = jax.vmap(lambda s: jax.jvp(f, (x,), (s,))[1])(seeds)
            return tangents.reshape(-1)[table]
        jf = jax.jit(values)
        jf(x, seeds, table).block_until_ready()
        return SparseTool("f(x, s, t).block_until_ready()",
                          {"f": jf, "x": x, "s": seeds, "t": table}, lambda: case.expected)
    return build


# ---- measuring ----------------------------------------------------------------------------------
def peer_builds(builders: dict[str, Callable[[], Tool]], rounds: int
                ) -> tuple[dict[str, Tool], dict[str, Value]]:
    return bt.build_timed(builders, rounds, slow=2.0)


def call_rows(cfg: Config, what: str, anvil: dict[str, Case], peer_tools: dict[str, Tool],
              against: tuple[str, ...], bound: float, order: tuple[str, ...]) -> list[Row]:
    """anvil's functions built here, timed side by side with `peer_tools`."""
    tools, failed = bt.build_all({label: anvil_builder(case) for label, case in anvil.items()})
    times = {**bt.side_by_side({**tools, **peer_tools}, cfg.rounds, cfg.seconds), **failed}
    peers_shown = {name: times.get(name, "-") for name in order}
    return [Row(f"{label}: call (out=)", times[label], peers_shown, against, bound,
                point=case.point("run")) for label, case in anvil.items()]


def paragraph(text: str) -> str:
    return " ".join(text.split())


# ---- 1. bratu2d Jacobian ---------------------------------------------------------------------
def bratu_jacobian(cfg: Config) -> Section:
    m = cfg.bratu_m
    case, colours = bratu_case(m), bratu_case(m, entrywise=False)
    fresh = {c: fresh_build(cfg, c) for c in (case, colours)}
    memory = memory_row(cfg, case, "peak memory of build + call")
    J = build_public(case.spec(), bt.fresh_name("bratu"))   # its colouring for JAX
    builders = {"numba": numba_builder(case),
                "JAX": jax_builder(case, J.coloring.column_colors, J.coloring.tables.source)}
    casadi_case = case if cfg.casadi_bratu_m == m else bratu_case(cfg.casadi_bratu_m)
    casadi_label = "CasADi" if casadi_case is case else f"CasADi (m={casadi_case.size})"
    builders[casadi_label] = casadi_builder(casadi_case)
    tools, builds = peer_builds(builders, cfg.build_rounds)
    if casadi_case is not case:                 # timed apart: its size differs
        casadi_tool = tools.pop(casadi_label, None)
        casadi_call = bt.side_by_side({casadi_label: casadi_tool}, cfg.rounds, cfg.seconds)[
            casadi_label] if casadi_tool else builds[casadi_label]
    order = ("numba", "JAX", "CasADi", casadi_label)
    shown = {name: builds.get(name, "-") for name in order if name in builds}
    rows = []
    for c in (case, colours):
        rows += [Row(f"{c.label} m={m} (n={m * m:,}, {c.nnz:,} nonzeros): build, fresh process",
                     fresh[c].time, shown, (), 3.0, fresh[c].note, c.point("build")),
                 Row("the same: a later build in that process", fresh[c].later, shown, (), 3.0)]
    rows += call_rows(cfg, f"m={m}", {c.label: c for c in (case, colours)}, tools, ("numba",),
                      1.0, tuple(n for n in order if n in tools or n == "numba"))
    if casadi_case is not case:
        rows.append(Row(f"{casadi_label}: call", casadi_call, note="a smaller size: for scale"))
    rows.append(memory)
    return Section(f"1. bratu2d Jacobian, m = {m} (n = {m * m:,}): `spjacobian`", rows,
                   paragraph(f"""
        F_ij = 4u_ij - (4 neighbours) - lambda h² exp(u_ij) on the m x m grid, its Jacobian's
        {case.nnz:,} nonzeros in CSC order. `spjacobian` computes them entry by entry (the
        derivative is a sum of coefficients times shifted copies of the direction: no colours
        evaluated, docs/sparsity.md); `entrywise=False` evaluates one directional derivative per
        colour of the lattice colouring. anvil build: trace + sparsity detection + (colouring)
        + graph + compile, the first build in a fresh process (disk cache off; median over up
        to {cfg.processes} processes), by stage in the note; with colours that first build
        includes numba's import and initialisation (about 0.4 s, once per process) and the
        loading of the colouring kernels, entry by entry neither; "a later build" goes through `ad.spjacobian` again in that process.
        Peers are built in this process: numba = first call of a new `njit` dispatcher of a
        hand-written loop writing the CSC values (its pattern checked equal to anvil's); JAX =
        first call of `jit` of `vmap(jvp)` over the colour seeds (K x n, an argument) and a
        gather by the decompression table: anvil's own colouring and table, as sparsejac is not
        installed (sparsejac would also need the pattern given); CasADi = SX traced from the
        problem's code + sparse `jacobian` + `Function` (its pattern checked equal). Calls: anvil
        `J(x, out=out)`, numba `f(x, out)`, JAX `f(x, seeds, table).block_until_ready()`,
        CasADi `F(DM)` (returns a sparse DM). Memory: peak resident set growth of a build and one
        call in a process that built a tiny case first (imports and JIT set up), over the
        nonzeros. Targets (issue 16): build <= 3 s, call <= 1x numba, <= 100 B/nnz."""))


# ---- 2.-3. Hessians ----------------------------------------------------------------------------
def hessian_section(cfg: Config, title: str, make: Callable[[int, str], Case], n: int,
                    casadi_n: int, about: str) -> Section:
    cases = {"entrywise": make(n, "star")}
    cases.update({method: make(n, method, False) for method in ("star", "acyclic")})
    fresh = {method: fresh_build(cfg, case) for method, case in cases.items()}
    star = cases["entrywise"]
    casadi_case = star if casadi_n == n else make(casadi_n, "star")
    casadi_label = "CasADi" if casadi_case is star else f"CasADi (n={casadi_n:,})"
    tools, builds = peer_builds({"numba": numba_builder(star),
                                 casadi_label: casadi_builder(casadi_case)}, cfg.build_rounds)
    if casadi_case is not star:
        casadi_tool = tools.pop(casadi_label, None)
        casadi_call = bt.side_by_side({casadi_label: casadi_tool}, cfg.rounds, cfg.seconds)[
            casadi_label] if casadi_tool else builds[casadi_label]
    rows = []
    for method, case in cases.items():
        what = f"{case.label} n={n:,} ({case.nnz:,} nonzeros)"
        rows.append(Row(f"{what}: build, fresh process", fresh[method].time, builds, (), 1.0,
                        fresh[method].note, case.point("build")))
        rows.append(Row(f"{what}: a later build in that process", fresh[method].later, builds,
                        (), 1.0))
    rows += call_rows(cfg, f"n={n}", {c.label: c for c in cases.values()},
                      tools, ("numba",), 2.0, tuple(t for t in ("numba", "CasADi") if t in tools))
    if casadi_case is not star:
        rows.append(Row(f"{casadi_label}: call", casadi_call, note="a smaller size: for scale"))
    rows.append(memory_row(cfg, star, f"peak memory of build + call ({star.label})"))
    return Section(title, rows, paragraph(f"""
        {about} The upper triangle of the Hessian in CSC order. anvil: trace + Hessian sparsity
        + (entry by entry where the gradient's derivative allows it: no colouring; with
        `entrywise=False`, colouring: star, direct decompression; acyclic, fewer colours,
        substitution) + graph + compile, the first build in a fresh process (disk cache off;
        numba's import and initialisation included, about 0.4 s), by stage in the note; a
        later build goes through `ad.sphessian` again in that process. numba: a hand-written
        loop writing the CSC values (pattern checked equal to anvil's); CasADi: SX + `hessian`
        + `triu` + `Function`, in this process (its pattern checked equal). Calls: anvil
        `H(x, out=out)`, numba `f(x, out)`, CasADi `F(DM)`. Targets (issue 16): build <= 1 s,
        call <= 2x numba."""))


def rosen_hessian(cfg: Config) -> Section:
    return hessian_section(
        cfg, f"2. Chained Rosenbrock Hessian, n = {cfg.rosen_n:,}: `sphessian`", rosen_case,
        cfg.rosen_n, cfg.casadi_rosen_n, "f(x) = sum 100(x_{i+1} - x_i²)² + (1 - x_i)²: a "
        "tridiagonal Hessian (star colouring 3, acyclic 2).")


def arrowhead_hessian(cfg: Config) -> Section:
    return hessian_section(
        cfg, f"3. Arrowhead Hessian, n = {cfg.arrow_n:,}: `sphessian`", arrow_case,
        cfg.arrow_n, cfg.casadi_arrow_n, "f(x) = sum_{i>=1} (x_0 x_i)² + sum x_i⁴: a dense "
        "first row and column and the diagonal (star colouring 2; a column colouring needs n).")


# ---- 4. colours on the public problems -----------------------------------------------------------
def _casadi_sparsity(P: sp.csc_array):
    P = sp.csc_array(P)
    return peers.ca.Sparsity(P.shape[0], P.shape[1], P.indptr.tolist(), P.indices.tolist())


def _count(coloring) -> str:
    return f">{CASADI_CUTOFF}" if coloring.is_null() else str(coloring.size2())


def _networkx(P: sp.csc_array) -> str:
    """sparsejac's colouring: networkx greedy largest_first on the column intersection graph."""
    import networkx as nx
    G = sp.csc_array(P, dtype=np.int8)
    graph = nx.from_scipy_sparse_array((G.T @ G) != 0)
    graph.remove_edges_from(nx.selfloop_edges(graph))
    return str(max(nx.greedy_color(graph, strategy="largest_first").values(), default=-1) + 1)


def colours(cfg: Config) -> Section:
    from anvil_llvm.ad.coloring import hessian_coloring, jacobian_coloring
    rows = []
    for name, size in cfg.colour_sizes:
        p = problem(name, size)
        f = p.function(bt.fresh_name(name))
        hessian = f.outputs[0].shape == ()
        P = ad.hessian_sparsity(f) if hessian else ad.jacobian_sparsity(f)
        P = sp.csc_array(P)
        label = f"{name} {p.label or f'n={p.n:,}'} " + ("Hessian" if hessian else "Jacobian")
        ours: dict[str, str] = {}
        start = time.perf_counter()
        if hessian:
            ours["star"] = str(hessian_coloring(P).ncolors)
            ours["acyclic"] = str(hessian_coloring(P, method="acyclic").ncolors)
        else:
            ours["auto"] = str(jacobian_coloring(P).ncolors)
        seconds = time.perf_counter() - start
        pattern = _casadi_sparsity(P)
        theirs = {"CasADi fwd": _count(pattern.uni_coloring(pattern.T, CASADI_CUTOFF)),
                  "CasADi rev": _count(pattern.T.uni_coloring(pattern, CASADI_CUTOFF))}
        if hessian:
            theirs["CasADi star"] = _count(pattern.star_coloring(1, CASADI_CUTOFF))
        theirs["sparsejac (networkx)"] = (_networkx(P) if P.shape[1] <= cfg.networkx_max_n
                                          else "-")
        fewest = min(int(v.lstrip(">")) for v in theirs.values() if v != "-")
        never_more = max(int(v) for v in ours.values()) <= fewest if not hessian else \
            int(ours["star"]) <= int(theirs["CasADi star"].lstrip(">"))
        note = (f"{P.nnz:,} nonzeros; ours in {bt.fmt_time(seconds)}; never more: "
                f"{'yes' if never_more else 'NO'}")
        rows.append(Row(label, " / ".join(f"{k} {v}" for k, v in ours.items()), theirs,
                        note=note))
    return Section("4. Colours (directional derivatives) on the public problems", rows,
                   paragraph(f"""
        anvil: `jacobian_coloring` (partition "auto": the fewest of column, row and
        bidirectional colourings) of `jacobian_sparsity`, or `hessian_coloring` star / acyclic
        of `hessian_sparsity`, order "best" (the colourings `spjacobian` and `sphessian` use).
        CasADi colours the same pattern (built as a `casadi.Sparsity`): `uni_coloring` of the
        pattern (fwd) and of its transpose (rev), `star_coloring` (largest-first) for Hessians,
        each stopped beyond {CASADI_CUTOFF} colours. sparsejac's colouring: networkx greedy
        largest_first on the column intersection graph (what `sparsejac.jacfwd` does; run up to
        n = {cfg.networkx_max_n:,}). "Never more": our count (for Hessians, the star count; the
        acyclic count needs substitution) against CasADi's fewest (star for Hessians). mlp is
        left out: its Hessian is dense in blocks (tens of millions of nonzeros)."""))


SECTIONS = [bratu_jacobian, rosen_hessian, arrowhead_hessian, colours]


AREA = bt.Area("sparse", "Sparse derivative benchmarks", tuple(SECTIONS), QUICK, FULL, WORKERS,
               intro="Sparse Jacobians and Hessians return their nonzeros in CSC order; every "
               "tool's values are compared there. ",
               failures=", one that fails to build shows its error")


if __name__ == "__main__":
    AREA.main(__doc__)
